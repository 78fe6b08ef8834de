#!/usr/bin/env python3
"""XEP-0198 stream resumption with slixmpp against Meerkat.

slixmpp 1.17 has stream management (xep_0198, with resumption) but neither SASL2,
Bind 2 nor FAST, so it logs in with legacy SASL, binds, enables stream management,
and resumes with <resume/> after authentication. Two users, both slixmpp, in one
process:

  1. A and B log in over direct TLS (certificate verified); A enables stream
     management with resumption.
  2. B sends A two messages; A gets them.
  3. A's TCP connection is cut (transport aborted, no stream close). While it is
     down B sends three more.
  4. A connects again and resumes the stream: it must get the three messages,
     once each, and no copy of the first two.

Prints one line per step; the last line is "E2E-PEER PASS ..." or
"E2E-PEER FAIL ..."; exits 0 on success, 1 on failure, 2 on bad arguments.
"""

import argparse
import asyncio
import logging
import sys
import time
from pathlib import Path

import slixmpp

START = time.monotonic()


class Failure(Exception):
    pass


def log(msg):
    print(f"[slixmpp sm +{time.monotonic() - START:.2f}s] {msg}", flush=True)


def make(args, jid, password, bodies):
    x = slixmpp.ClientXMPP(f"{jid}/e2e", password)
    x.ca_certs = Path(args.ca)
    x.enable_plaintext = False
    x.enable_starttls = False
    x.enable_direct_tls = True
    x.register_plugin("xep_0198")
    # Keep the stream management state over a lost connection, to resume it.
    x.end_session_on_disconnect = False
    x.events = {}

    def mark(name):
        def handler(_):
            x.events.setdefault(name, 0)
            x.events[name] += 1

        return handler

    for name in ("session_start", "session_resumed", "sm_enabled", "disconnected"):
        x.add_event_handler(name, mark(name))
    x.add_event_handler(
        "message", lambda m: bodies.append(m["body"]) if m["type"] in ("chat", "normal") and m["body"] else None
    )
    return x


async def until(what, pred, timeout):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise Failure(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(0.02)


async def run(args):
    t = args.token
    a_bodies, b_bodies = [], []
    a = make(args, args.jid_a, args.password_a, a_bodies)
    b = make(args, args.jid_b, args.password_b, b_bodies)
    for x in (a, b):
        x.connect("127.0.0.1", args.tls_port)
    await until("both sessions", lambda: a.events.get("session_start") and b.events.get("session_start"), args.timeout)
    await until("stream management on A", lambda: a.events.get("sm_enabled"), args.timeout)
    sm = a.plugin["xep_0198"]
    log(f"ok: logged in as {a.boundjid.full} and {b.boundjid.full}; A has stream management (id {sm.sm_id[:8]}...)")
    a.send_presence()
    full = a.boundjid.full
    first = [f"before-{i} {t}" for i in (1, 2)]
    for w in first:
        b.send_message(mto=full, mbody=w, mtype="chat")
    await until("the first messages at A", lambda: all(w in a_bodies for w in first), args.timeout)
    log("ok: A got the first two messages")

    a.abort()
    await until("A's disconnection", lambda: a.events.get("disconnected"), args.timeout)
    log("cut A's TCP connection")
    later = [f"while-cut-{i} {t}" for i in (1, 2, 3)]
    for w in later:
        b.send_message(mto=full, mbody=w, mtype="chat")
    await asyncio.sleep(0.3)
    a.connect("127.0.0.1", args.tls_port)
    await until("the resumption", lambda: a.events.get("session_resumed"), args.timeout)
    await until("the messages sent during the cut", lambda: all(w in a_bodies for w in later), args.timeout)
    await asyncio.sleep(0.3)
    for w in first + later:
        n = a_bodies.count(w)
        if n != 1:
            raise Failure(f"{w!r} arrived {n} times at A ({a_bodies})")
    if a.boundjid.full != full:
        raise Failure(f"resumed as {a.boundjid.full}, expected {full}")
    log(f"ok: A resumed its stream as {full}; the three messages sent during the cut arrived once each")
    for x in (a, b):
        x.disconnect()


def main():
    p = argparse.ArgumentParser()
    for k in ("--jid-a", "--jid-b", "--password-a", "--password-b", "--tls-port", "--ca", "--token"):
        p.add_argument(k, required=True)
    p.add_argument("--timeout", type=float, default=20)
    args = p.parse_args()
    args.tls_port = int(args.tls_port)
    logging.basicConfig(level=logging.WARNING, stream=sys.stdout)
    try:
        asyncio.run(asyncio.wait_for(run(args), args.timeout * 5))
    except Failure as e:
        print(f"E2E-PEER FAIL slixmpp sm: {e}", flush=True)
        sys.exit(1)
    except Exception as e:  # noqa: BLE001 - report anything as a failure
        print(f"E2E-PEER FAIL slixmpp sm: {type(e).__name__}: {e}", flush=True)
        sys.exit(1)
    print(f"E2E-PEER PASS slixmpp sm in {time.monotonic() - START:.1f}s", flush=True)


if __name__ == "__main__":
    main()
