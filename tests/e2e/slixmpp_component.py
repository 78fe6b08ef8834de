#!/usr/bin/env python3
"""An external component (XEP-0114) built with slixmpp's ComponentXMPP, for
Meerkat's end-to-end tests: it connects (in clear, or with direct TLS verified
against --ca for --tls-name), prints "COMPONENT READY" once the handshake is
accepted, answers every chat message with "echo: <body>" from the address it
was sent to, and exits 0 after --answers replies (1 on a stream error or a
timeout)."""

import argparse
import asyncio
import ssl
import sys

import slixmpp


def main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("--jid", required=True, help="the component's domain")
    ap.add_argument("--secret", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--tls", action="store_true", help="direct TLS")
    ap.add_argument("--ca", help="PEM the server certificate must verify against")
    ap.add_argument("--tls-name", default="localhost", help="the name the server certificate is checked for")
    ap.add_argument("--answers", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=60.0)
    args = ap.parse_args(argv)

    c = slixmpp.ComponentXMPP(args.jid, args.secret, "127.0.0.1", args.port)
    if args.tls:
        # ComponentXMPP knows no TLS service of its own: direct TLS to the given
        # address, the server's certificate checked for the server's domain.
        c.enable_plaintext = False
        c.enable_direct_tls = True
        c.tls_services = {"xmpps-component"}
        c.default_domain = args.tls_name
        c.ssl_context = ssl.create_default_context(cafile=args.ca)
    done = asyncio.get_event_loop().create_future()
    answered = 0

    def on_start(_):
        print("COMPONENT READY", flush=True)

    def on_message(m):
        nonlocal answered
        if m["type"] == "error" or not m["body"]:
            return
        reply = m.reply(f"echo: {m['body']}")
        reply.send()
        answered += 1
        print(f"COMPONENT ANSWERED {m['from']}", flush=True)
        if answered >= args.answers and not done.done():
            done.set_result(0)

    def on_error(e):
        if not done.done():
            done.set_result(f"stream error {e['condition']}")

    def on_disconnected(_):
        if not done.done():
            done.set_result("disconnected")

    c.add_event_handler("session_start", on_start)
    c.add_event_handler("message", on_message)
    c.add_event_handler("stream_error", on_error)
    c.add_event_handler("disconnected", on_disconnected)
    c.connect()
    loop = asyncio.get_event_loop()
    try:
        result = loop.run_until_complete(asyncio.wait_for(done, args.timeout))
    except asyncio.TimeoutError:
        result = "timeout"
    if result == 0:
        # Let the last reply leave before closing.
        loop.run_until_complete(asyncio.sleep(0.5))
        c.disconnect()
        print("COMPONENT DONE", flush=True)
        return 0
    print(f"COMPONENT FAIL {result}", flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
