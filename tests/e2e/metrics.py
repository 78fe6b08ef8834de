"""Scrapes Meerkat's metrics page and parses it with Prometheus' own Python client
(prometheus_client's text-format parser), which refuses what Prometheus would not
take. Prints one line per sample, `name{label="value",...} value`, labels sorted,
for the end-to-end tests to compare; exits 1 if the page does not parse.

Usage: metrics.py URL
"""

import sys
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def main() -> int:
    url = sys.argv[1]
    with urllib.request.urlopen(url, timeout=20) as response:
        content_type = response.headers.get("Content-Type", "")
        text = response.read().decode("utf-8")
    if not content_type.startswith("text/plain"):
        print(f"unexpected content type {content_type!r}", file=sys.stderr)
        return 1
    families = 0
    try:
        for family in text_string_to_metric_families(text):
            families += 1
            if family.type not in ("counter", "gauge", "histogram"):
                print(f"family {family.name} has type {family.type}", file=sys.stderr)
                return 1
            for s in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
                print(f"{s.name}{{{labels}}} {s.value}")
    except ValueError as e:
        print(f"the metrics page does not parse: {e}", file=sys.stderr)
        return 1
    print(f"# families {families}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
