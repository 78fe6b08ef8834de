#!/usr/bin/env python3
"""Tables for scripts/compare-servers.sh: reads the load generator's JSON reports
(WORK/SERVER-SCENARIO.json) and WORK/meta, prints a table per server, Meerkat's ratios
against the others and issue 7's targets, and with a third argument writes the same as
markdown.

    compare-servers-report.py WORK "meerkat ejabberd prosody" [MARKDOWN_FILE]
"""

import json
import os
import sys

NAMES = {"meerkat": "Meerkat", "ejabberd": "ejabberd", "prosody": "Prosody"}


def load(work, server, scenario):
    try:
        with open(os.path.join(work, f"{server}-{scenario}.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def get(report, *path):
    """report[path[0]][path[1]]..., or None where anything is missing."""
    v = report
    for k in path:
        if not isinstance(v, dict) or v.get(k) is None:
            return None
        v = v[k]
    return v


def metrics(work, server):
    """Every number of the comparison for one server; None where a run gave none."""
    idle, chat, chatmax = (load(work, server, s) for s in ("idle", "chat", "chatmax"))
    rc, pr = load(work, server, "reconnect"), load(work, server, "presence")
    m = {}
    m["idle_established"] = get(idle, "sessions", "established")
    m["kib_per_session"] = get(idle, "server", "rss_per_session_kib")
    m["cpu_ms_per_setup"] = get(idle, "server", "cpu_ms_per_session_setup")
    m["sessions_per_sec"] = get(idle, "sessions", "sessions_per_sec")
    m["setup_p99_ms"] = get(idle, "sessions", "setup_latency", "p99_ms")
    m["chat_p50_ms"] = get(chat, "chat", "latency", "p50_ms")
    m["chat_p99_ms"] = get(chat, "chat", "latency", "p99_ms")
    m["chat_lost"] = get(chat, "chat", "lost")
    m["chat_delivered"] = get(chat, "chat", "delivered_per_sec")
    m["max_delivered"] = get(chatmax, "chat", "delivered_per_sec")
    m["max_p99_ms"] = get(chatmax, "chat", "latency", "p99_ms")
    m["max_lost"] = get(chatmax, "chat", "lost")
    m["max_cpu_per_1000"] = get(chatmax, "server", "cpu_ms_per_1000_messages")
    m["rc_per_sec"] = get(rc, "reconnect", "per_sec")
    m["rc_p50_ms"] = get(rc, "reconnect", "latency", "p50_ms")
    m["rc_p99_ms"] = get(rc, "reconnect", "latency", "p99_ms")
    m["rc_cpu_ms"] = get(rc, "server", "cpu_ms_per_reconnect")
    m["rc_failed"] = get(rc, "reconnect", "failed")
    m["pr_complete"] = get(pr, "presence", "roster_setup", "complete")
    m["pr_sessions"] = get(pr, "presence", "roster_setup", "sessions")
    m["pr_delivered"] = get(pr, "presence", "delivered_per_sec")
    m["pr_p50_ms"] = get(pr, "presence", "latency", "p50_ms")
    m["pr_p99_ms"] = get(pr, "presence", "latency", "p99_ms")
    m["pr_loss_pct"] = get(pr, "presence", "loss_percent")
    m["pr_cpu_per_1000"] = get(pr, "server", "cpu_ms_per_1000_notifications")
    return m


def saturated(m, meta):
    """Whether the run past saturation really was: a server that delivered (nearly) the
    offered rate was not saturated, and its number is the offered rate, not its limit."""
    d = m.get("max_delivered")
    return None if d is None else d < 0.9 * float(meta["max_rate"])


def fmt(v, digits=1):
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if isinstance(v, int) or (isinstance(v, float) and v.is_integer() and abs(v) >= 100):
        return f"{int(v):,}"
    return f"{v:,.{digits}f}"


def rows(meta):
    """(label, metric key, digits, True when lower is better)."""
    return [
        (f"idle sessions established (of {meta['sessions']})", "idle_established", 0, None),
        ("KiB server RSS per idle session", "kib_per_session", 1, True),
        ("ms server CPU per session setup", "cpu_ms_per_setup", 3, True),
        ("session setups per second", "sessions_per_sec", 0, False),
        ("setup latency p99, ms", "setup_p99_ms", 1, True),
        (f"chat at {meta['msg_rate']} msg/s: p50 latency, ms", "chat_p50_ms", 2, True),
        (f"chat at {meta['msg_rate']} msg/s: p99 latency, ms", "chat_p99_ms", 2, True),
        (f"chat at {meta['msg_rate']} msg/s: lost", "chat_lost", 0, None),
        (f"chat at {meta['max_rate']} msg/s: delivered msg/s", "max_delivered", 0, False),
        (f"chat at {meta['max_rate']} msg/s: p99 latency, ms", "max_p99_ms", 1, True),
        (f"chat at {meta['max_rate']} msg/s: lost", "max_lost", 0, None),
        (f"chat at {meta['max_rate']} msg/s: server saturated", "saturated", 0, None),
        (f"ms server CPU per 1000 messages at {meta['max_rate']} msg/s", "max_cpu_per_1000", 1, True),
        ("reconnects per second", "rc_per_sec", 0, False),
        ("reconnect latency p50, ms", "rc_p50_ms", 2, True),
        ("reconnect latency p99, ms", "rc_p99_ms", 2, True),
        ("ms server CPU per reconnect", "rc_cpu_ms", 3, True),
        ("reconnects failed", "rc_failed", 0, None),
        ("presence: rosters complete", "pr_complete", 0, None),
        ("presence: delivered notifications/s", "pr_delivered", 0, False),
        ("presence: p50 latency, ms", "pr_p50_ms", 2, True),
        ("presence: p99 latency, ms", "pr_p99_ms", 2, True),
        ("presence: loss, %", "pr_loss_pct", 2, None),
        ("ms server CPU per 1000 notifications", "pr_cpu_per_1000", 1, True),
    ]


def ratio(meerkat, other, lower_better):
    """How many times better Meerkat is (> 1) or worse (< 1)."""
    if meerkat is None or other is None or lower_better is None:
        return None
    if lower_better:
        return other / meerkat if meerkat > 0 else None
    return meerkat / other if other > 0 else None


def targets(m, e, meta):
    """Issue 7's targets: (target, Meerkat's value, met?, note)."""
    out = []
    kib = m.get("kib_per_session")
    note = f"{kib / 8:.1f}× the target; " if kib and kib > 8 else ""
    out.append(("≤ 8 KiB RSS per idle TLS session (at 10,000)", fmt(kib), kib is not None and kib <= 8,
                note + f"measured at {meta['sessions']} sessions"))
    cpu = m.get("cpu_ms_per_setup")
    out.append(("≤ 0.3 ms server CPU per session setup", fmt(cpu, 3), cpu is not None and cpu <= 0.3,
                f"{cpu / 0.3:.1f}× the target" if cpu and cpu > 0.3 else ""))
    md, ed = m.get("max_delivered"), (e or {}).get("max_delivered")
    r = md / ed if md and ed else None
    note = "ejabberd not measured" if e is None else ""
    if r is not None and r < 3:
        note = f"{r / 3:.0%} of the target"
    if e is not None and (not m.get("saturated", True) or not e.get("saturated", True)):
        note = "unknown: " + note if note else note
        note = (note + "; " if note else "") + "not saturated: raise --max-rate"
    unsaturated = not m.get("saturated", True) or not (e or {}).get("saturated", True)
    out.append(("≥ 3× ejabberd's delivered msg/s", "n/a" if r is None else f"{r:.2f}×",
                None if r is None or unsaturated else r >= 3, note))
    p99 = m.get("chat_p99_ms")
    note = f"{p99 / 2:.1f}× the limit; " if p99 and p99 >= 2 else ""
    out.append(("p99 < 2 ms at 10,000 msg/s", fmt(p99, 2), p99 is not None and p99 < 2,
                note + f"measured at {meta['msg_rate']} msg/s"))
    return out


def render(work, servers, meta, md):
    ms = {s: metrics(work, s) for s in servers}
    for m in ms.values():
        m["saturated"] = saturated(m, meta)
    others = [s for s in servers if s != "meerkat"]
    lines = []

    def table(header, body):
        if md:
            lines.append("| " + " | ".join(header) + " |")
            lines.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|")
            for r in body:
                lines.append("| " + " | ".join(r) + " |")
        else:
            widths = [max(len(r[i]) for r in [header] + body) for i in range(len(header))]
            for r in [header] + body:
                lines.append("  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i])
                                       for i, c in enumerate(r)))
        lines.append("")

    body = [[label] + [fmt(ms[s][key], digits) for s in servers] for label, key, digits, _ in rows(meta)]
    table(["scenario"] + [NAMES[s] for s in servers], body)
    if "meerkat" in servers and others:
        lines.append("Meerkat's advantage (× how much better; below 1 = worse):" if not md
                     else "Meerkat's advantage (how many times better; below 1: worse):")
        lines.append("")
        body = []
        for label, key, _, lower in rows(meta):
            if lower is None:
                continue
            rs = [ratio(ms["meerkat"][key], ms[o][key], lower) for o in others]
            body.append([label] + ["n/a" if r is None else f"{r:.2f}×" for r in rs])
        table(["scenario"] + [f"vs {NAMES[o]}" for o in others], body)
    if "meerkat" in servers:
        lines.append("Issue 7's targets:")
        lines.append("")
        body = [[t, v, {True: "met", False: "MISSED", None: "n/a"}[ok if v != "n/a" else None], note]
                for t, v, ok, note in targets(ms["meerkat"], ms.get("ejabberd"), meta)]
        table(["target", "Meerkat", "", "note"], body)
    return "\n".join(lines)


def main():
    work, servers = sys.argv[1], sys.argv[2].split()
    markdown = sys.argv[3] if len(sys.argv) > 3 else ""
    meta = {}
    with open(os.path.join(work, "meta")) as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition("=")
            meta[k] = v
    head = (f"{meta['sessions']} idle sessions; chat between {meta['pairs']} pairs at {meta['msg_rate']} "
            f"and {meta['max_rate']} msg/s; reconnect storm of {meta['reconnect_sessions']} sessions "
            f"(hold {meta['reconnect_hold']} s); presence storm of {meta['presence_sessions']} sessions "
            f"with {meta['roster_size']} contacts at {meta['presence_rate']} updates/s; "
            f"{meta['duration']} s per run; STARTTLS + SCRAM-SHA-1 on loopback")
    env = (f"{meta['date']}, {meta['cpu']}, Linux {meta['kernel']}; Meerkat {meta['meerkat']}, "
           f"ejabberd {meta['ejabberd']} (Erlang {meta['erlang']}), Prosody {meta['prosody']} "
           f"(Lua {meta['lua']})")
    loads = ", ".join(f"{k[5:]} {v}" for k, v in meta.items() if k.startswith("load_"))
    print(head)
    print(env)
    print(f"load average (1/5/15 min) before each server: {loads}")
    print()
    print(render(work, servers, meta, md=False))
    if markdown:
        with open(markdown, "w") as f:
            f.write(f"{head}.\n\n{env}. Load average (1/5/15 min) before each server: {loads}.\n\n")
            f.write(render(work, servers, meta, md=True))
        print(f"markdown written to {markdown}")


if __name__ == "__main__":
    main()
