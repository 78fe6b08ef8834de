#!/usr/bin/env python3
"""The slixmpp user the browser test's web client talks to.

Logs in over STARTTLS (certificate verified against --ca), says it is available,
and answers every chat message with "echo: <body>" to its sender, until it has
answered --count messages (then logs out) or --timeout seconds pass. Prints
"ECHO-READY" once online, one line per message, and "E2E-PEER PASS ..." or
"E2E-PEER FAIL ..." at the end; exits 0 on success, 1 on failure.
"""

import argparse
import asyncio
import sys
from pathlib import Path

import slixmpp


class Echo:
    def __init__(self, args):
        self.args = args
        self.answered = 0
        self.done = None
        self.online = None
        self.xmpp = None

    def make_client(self):
        """The client, made inside the running event loop (slixmpp binds to the
        loop current at construction)."""
        args = self.args
        x = self.xmpp = slixmpp.ClientXMPP(f"{args.jid}/echo", args.password, sasl_mech="SCRAM-SHA-256")
        x.ca_certs = Path(args.ca)
        x.enable_plaintext = False
        x.enable_starttls = True
        x.enable_direct_tls = False
        x.add_event_handler("session_start", self.on_session_start)
        x.add_event_handler("failed_all_auth", lambda _: self.fail("authentication failed"))
        x.add_event_handler("message", self.on_message)

    def fail(self, why):
        if not self.online.done():
            self.online.set_exception(RuntimeError(why))

    async def on_session_start(self, _):
        self.xmpp.send_presence()
        print(f"ECHO-READY as {self.xmpp.boundjid}", flush=True)
        self.online.set_result(True)

    def on_message(self, msg):
        if msg["type"] not in ("chat", "normal") or not msg["body"]:
            return
        print(f"got {msg['body']!r} from {msg['from']}", flush=True)
        msg.reply(f"echo: {msg['body']}").send()
        self.answered += 1
        if self.answered >= self.args.count and not self.done.done():
            self.done.set_result(True)

    async def run(self):
        self.make_client()
        loop = asyncio.get_running_loop()
        self.online = loop.create_future()
        self.done = loop.create_future()
        self.xmpp.connect("127.0.0.1", self.args.port)
        await asyncio.wait_for(self.online, 30)
        await asyncio.wait_for(self.done, self.args.timeout)
        # Let the last answer leave before the stream closes.
        await asyncio.sleep(0.5)
        await self.xmpp.disconnect(wait=2.0)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--jid", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--port", type=int, required=True, help="the STARTTLS port")
    ap.add_argument("--ca", required=True)
    ap.add_argument("--count", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=120)
    args = ap.parse_args()
    echo = Echo(args)
    try:
        asyncio.run(echo.run())
    except Exception as e:  # every failure is reported the same way
        print(f"E2E-PEER FAIL slixmpp echo after {echo.answered} answers: {type(e).__name__}: {e}", flush=True)
        return 1
    print(f"E2E-PEER PASS slixmpp echo answered {echo.answered} messages", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
