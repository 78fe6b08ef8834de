#!/usr/bin/env python3
"""One user's side of Meerkat's end-to-end scenario, driven by slixmpp.

Two peers run at the same time, each in its own process: role "a" starts the
subscription handshake, role "b" answers it. The peer may be this script or
tests/e2e/node/peer.mjs (@xmpp/client); the two coordinate only through XMPP,
and every wait has a timeout. The steps, for each peer:

  1. log in with a wrong password over STARTTLS: must fail with not-authorized
  2. log in over STARTTLS with the forced SASL mechanism, certificate verified
     against --ca for the XMPP domain
  3. subscription handshake (a: subscribe; b: subscribed + subscribe;
     a: subscribed), until a roster push and a roster get both say
     subscription="both"; then see the other's available presence
  4. a sends "ping" to b's full JID, b answers "pong"
  5. a goes offline; b sends a message to a's bare JID; a logs in again over
     direct TLS (XEP-0368 port) and must receive it from offline storage
     (with a XEP-0203 delay), and see b's presence again
  6. the same with the roles swapped (b goes offline, a sends), then b says
     "done" and both log out

Prints one line per step and a one-line summary; exits 0 on success, 1 on any
failure (with the reason), 2 on bad arguments.
"""

import argparse
import asyncio
import logging
import sys
import time
from pathlib import Path

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout

LIB = "slixmpp"
NS_DELAY = "{urn:xmpp:delay}delay"


class Failure(Exception):
    """A scenario step went wrong; the message says what was expected."""


class LoginRefused(Exception):
    def __init__(self, condition, text):
        super().__init__(f"SASL failure <{condition}/> {text}".strip())
        self.condition = condition


class Inbox:
    """Everything a session received, so a wait also sees what came before it."""

    def __init__(self):
        self.items = []
        self.changed = asyncio.Event()
        self.closed = None

    def push(self, item):
        self.items.append(item)
        self.changed.set()

    def close(self, reason):
        if self.closed is None:
            self.closed = reason
        self.changed.set()

    async def wait(self, pred, what, timeout):
        deadline = time.monotonic() + timeout
        while True:
            for i, item in enumerate(self.items):
                if pred(item):
                    return self.items.pop(i)
            errors = [i for i in self.items if i["kind"] == "error"]
            if errors:
                raise Failure(f"got an error stanza ({describe(errors[0])}) while waiting for {what}")
            if self.closed is not None:
                raise Failure(f"connection closed ({self.closed}) while waiting for {what}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                seen = "; ".join(describe(i) for i in self.items[-8:]) or "nothing"
                raise Failure(f"timed out after {timeout:g}s waiting for {what} (unconsumed: {seen})")
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), remaining)
            except asyncio.TimeoutError:
                pass


def describe(item):
    kind = item["kind"]
    if kind == "presence":
        return f"presence type={item['type']} from={item['from']}"
    if kind == "message":
        return f"message from={item['from']} body={item['body']!r}"
    if kind == "error":
        return f"{item['stanza']} type=error from={item['from']} <{item['condition']}/> {item['text']}".strip()
    push = "push" if item["push"] else "result"
    return f"roster {push} {item['jid']} subscription={item['subscription']}"


class Session:
    """One login of this peer's user over one transport."""

    def __init__(self, peer, transport, password, resource):
        self.peer = peer
        self.args = peer.args
        self.transport = transport
        self.inbox = Inbox()
        args = self.args
        self.xmpp = x = slixmpp.ClientXMPP(f"{args.jid}/{resource}", password, sasl_mech=args.mech)
        # Verify the server certificate against the test CA, for the XMPP domain.
        x.ca_certs = Path(args.ca)
        x.enable_plaintext = False
        x.enable_starttls = transport == "starttls"
        x.enable_direct_tls = transport == "tls"
        self.port = args.starttls_port if transport == "starttls" else args.tls_port
        # The scenario answers subscription requests itself.
        x.auto_authorize = None
        x.auto_subscribe = False
        self.login_result = None
        self.sasl_failure = None
        x.add_event_handler("session_start", self._on_session_start)
        x.add_event_handler("failed_auth", self._on_failed_auth)
        x.add_event_handler("failed_all_auth", self._on_failed_all_auth)
        x.add_event_handler("connection_failed", self._on_connection_failed)
        x.add_event_handler("stream_error", self._on_stream_error)
        x.add_event_handler("disconnected", self._on_disconnected)
        x.add_event_handler("presence", self._on_presence)
        x.add_event_handler("message", self._on_message)
        x.add_event_handler("message_error", self._error)
        x.add_event_handler("roster_update", self._on_roster)

    # --- events -----------------------------------------------------------
    def _settle(self, result):
        if self.login_result is not None and not self.login_result.done():
            if isinstance(result, BaseException):
                self.login_result.set_exception(result)
            else:
                self.login_result.set_result(result)

    def _on_session_start(self, _event):
        self._settle(True)

    def _on_failed_auth(self, stanza):
        self.sasl_failure = (stanza["condition"], stanza["text"] or "")

    def _on_failed_all_auth(self, _event):
        if self.sasl_failure is None:
            offered = ",".join(sorted(self.xmpp.plugin["feature_mechanisms"].mech_list))
            self._settle(Failure(f"{self.args.mech} not available: server offers [{offered}]"))
        else:
            self._settle(LoginRefused(*self.sasl_failure))

    def _on_connection_failed(self, err):
        self.xmpp.cancel_connection_attempt()
        self._settle(Failure(f"connection to 127.0.0.1:{self.port} ({self.transport}) failed: {err}"))

    def _on_stream_error(self, err):
        self.inbox.close(f"stream error {err['condition']}")
        self._settle(Failure(f"stream error: {err['condition']} {err['text']}"))

    def _on_disconnected(self, reason):
        self.inbox.close("disconnected")
        self._settle(Failure(f"disconnected before the session started ({reason or 'no reason given'})"))

    def _error(self, stanza):
        self.inbox.push(
            {
                "kind": "error",
                "stanza": stanza.name,
                "from": str(stanza["from"]),
                "condition": stanza["error"]["condition"],
                "text": stanza["error"]["text"] or "",
            }
        )

    def _on_presence(self, p):
        if p["type"] == "error":
            return self._error(p)
        self.inbox.push(
            {
                "kind": "presence",
                "type": p["type"],
                "from": str(p["from"]),
                "bare": p["from"].bare,
                "status": p["status"],
            }
        )

    def _on_message(self, m):
        if m["type"] == "error":
            return self._error(m)
        if m["type"] not in ("chat", "normal") or not m["body"]:
            return
        self.inbox.push(
            {
                "kind": "message",
                "from": str(m["from"]),
                "bare": m["from"].bare,
                "body": m["body"],
                "delay": m.xml.find(NS_DELAY) is not None,
            }
        )

    def _on_roster(self, iq):
        for jid, item in iq["roster"]["items"].items():
            self.inbox.push(
                {
                    "kind": "roster",
                    "push": iq["type"] == "set",
                    "jid": str(jid),
                    "subscription": item.get("subscription") or "none",
                    "ask": item.get("ask") or "",
                }
            )

    # --- actions ----------------------------------------------------------
    async def login(self):
        """Connect and authenticate; returns a description of the login."""
        self.login_result = asyncio.get_running_loop().create_future()
        self.xmpp.connect("127.0.0.1", self.port)
        try:
            await asyncio.wait_for(self.login_result, self.args.timeout)
        except asyncio.TimeoutError:
            self.xmpp.cancel_connection_attempt()
            self.xmpp.abort()
            raise Failure(f"no session within {self.args.timeout:g}s ({self.transport})") from None
        except BaseException:
            self.xmpp.abort()
            raise
        mechs = self.xmpp.plugin["feature_mechanisms"]
        ssl_obj = self.xmpp.transport.get_extra_info("ssl_object") if self.xmpp.transport else None
        if ssl_obj is None:
            raise Failure(f"session over {self.transport} is not encrypted")
        if not ssl_obj.getpeercert():
            raise Failure("server certificate was not verified")
        if self.transport == "starttls" and "starttls" not in self.xmpp.features:
            raise Failure("STARTTLS was not negotiated on the STARTTLS port")
        if mechs.mech is None or mechs.mech.name != self.args.mech:
            raise Failure(f"logged in with {mechs.mech and mechs.mech.name}, expected {self.args.mech}")
        offered = ",".join(sorted(mechs.mech_list))
        return (
            f"{self.transport} login as {self.xmpp.boundjid.full}: mechanism={mechs.mech.name} "
            f"(server offered {offered}), {ssl_obj.version()}, certificate verified for {self.args.domain}"
        )

    def send_presence(self, status=None):
        self.xmpp.send_presence(pstatus=status)

    def send_subscription(self, ptype, to):
        self.xmpp.send_presence(pto=to, ptype=ptype)

    def send_message(self, to, body):
        self.xmpp.send_message(mto=to, mbody=body, mtype="chat")

    async def roster_get(self):
        # A plain get without roster versioning, so the whole roster comes back.
        iq = self.xmpp.make_iq_get()
        iq.enable("roster")
        try:
            iq = await iq.send(timeout=self.args.timeout)
        except (IqError, IqTimeout) as e:
            raise Failure(f"roster get failed: {e}") from None
        return {str(j): dict(v) for j, v in iq["roster"]["items"].items()}

    async def roster_add(self, jid):
        iq = self.xmpp.make_iq_set()
        iq["roster"]["items"] = {jid: {"name": "e2e peer", "groups": []}}
        try:
            await iq.send(timeout=self.args.timeout)
        except (IqError, IqTimeout) as e:
            raise Failure(f"roster set for {jid} failed: {e}") from None

    async def logout(self):
        self.xmpp.send_presence(ptype="unavailable")
        await self.close()

    async def close(self):
        try:
            await asyncio.wait_for(self.xmpp.disconnect(wait=2.0), 5)
        except asyncio.TimeoutError:
            self.xmpp.abort()


class Peer:
    def __init__(self, args):
        self.args = args
        self.peer = args.peer
        self.name = f"{LIB} {args.role}={args.jid}"
        self.done = []
        self.step = "start"
        self.started = time.monotonic()

    def log(self, msg):
        print(f"[{self.name} +{time.monotonic() - self.started:.2f}s] {msg}", flush=True)

    def ok(self, what, detail=""):
        self.done.append(what)
        self.log(f"ok: {what}" + (f" -- {detail}" if detail else ""))

    def body(self, word):
        return f"{word} {self.args.token}"

    async def wait_message(self, s, word, *, offline=False):
        body = self.body(word)
        m = await s.inbox.wait(
            lambda i: i["kind"] == "message" and i["bare"] == self.peer and i["body"] == body,
            f"message {body!r} from {self.peer}",
            self.args.timeout,
        )
        if offline and not m["delay"]:
            raise Failure(
                f"message {body!r} arrived without a XEP-0203 <delay/>: it was delivered live, "
                "not from offline storage"
            )
        return m

    async def wait_presence(self, s, ptype, *, full=None):
        def pred(i):
            if i["kind"] != "presence" or i["type"] != ptype or i["bare"] != self.peer:
                return False
            return full is None or i["from"] == full

        return await s.inbox.wait(pred, f"presence type={ptype} from {full or self.peer}", self.args.timeout)

    async def wait_both(self, s):
        await s.inbox.wait(
            lambda i: i["kind"] == "roster"
            and i["push"]
            and i["jid"] == self.peer
            and i["subscription"] == "both",
            f"roster push with {self.peer} subscription=both",
            self.args.timeout,
        )
        roster = await s.roster_get()
        item = roster.get(self.peer)
        if not item or item.get("subscription") != "both":
            raise Failure(f"roster get after the handshake: {self.peer} is {item}, expected subscription=both")

    async def run(self):
        a = self.args
        self.step = "wrong password"
        s = Session(self, "starttls", a.password + "-wrong", "wrong")
        try:
            await s.login()
        except LoginRefused as e:
            if e.condition != "not-authorized":
                raise Failure(f"wrong password refused with <{e.condition}/>, expected not-authorized")
            self.ok("wrong password refused", "SASL failure <not-authorized/>")
        else:
            raise Failure("login with a wrong password succeeded")
        finally:
            await s.close()

        self.step = "STARTTLS login"
        s1 = Session(self, "starttls", a.password, f"{LIB}-1")
        self.ok("STARTTLS login", await s1.login())
        roster = await s1.roster_get()
        if self.peer in roster:
            raise Failure(f"fresh user expected, but the roster already has {self.peer}: {roster[self.peer]}")
        s1.send_presence(f"e2e {a.token}")

        self.step = "subscription handshake"
        if a.role == "a":
            await s1.roster_add(self.peer)
            s1.send_subscription("subscribe", self.peer)
            await s1.inbox.wait(
                lambda i: i["kind"] == "presence" and i["type"] == "subscribed" and i["bare"] == self.peer,
                f"subscribed from {self.peer}",
                a.timeout,
            )
            await s1.inbox.wait(
                lambda i: i["kind"] == "presence" and i["type"] == "subscribe" and i["bare"] == self.peer,
                f"subscribe from {self.peer}",
                a.timeout,
            )
            s1.send_subscription("subscribed", self.peer)
        else:
            await s1.inbox.wait(
                lambda i: i["kind"] == "presence" and i["type"] == "subscribe" and i["bare"] == self.peer,
                f"subscribe from {self.peer}",
                a.timeout,
            )
            s1.send_subscription("subscribed", self.peer)
            await s1.roster_add(self.peer)
            s1.send_subscription("subscribe", self.peer)
            await s1.inbox.wait(
                lambda i: i["kind"] == "presence" and i["type"] == "subscribed" and i["bare"] == self.peer,
                f"subscribed from {self.peer}",
                a.timeout,
            )
        await self.wait_both(s1)
        self.ok("subscription handshake", "roster push and roster get say subscription=both")

        self.step = "presence"
        p = await self.wait_presence(s1, "available")
        peer_full = p["from"]
        self.ok("peer presence seen", f"available from {peer_full}")

        self.step = "message exchange"
        if a.role == "a":
            s1.send_message(peer_full, self.body("ping"))
            await self.wait_message(s1, "pong")
        else:
            m = await self.wait_message(s1, "ping")
            s1.send_message(m["from"], self.body("pong"))
        self.ok("messages exchanged", "ping/pong")

        # Offline phase: first a goes offline and b writes to it, then the reverse.
        if a.role == "a":
            await self.go_offline_and_back(s1)
            s2 = self.s2
            await self.write_to_offline_peer(s2, self.s2_peer_full, "offline-to-b")
            await self.wait_message(s2, "done")
            self.ok("final message from peer received")
            await s2.close()
        else:
            await self.write_to_offline_peer(s1, peer_full, "offline-to-a")
            await self.wait_message(s1, "got-offline")
            await self.go_offline_and_back(s1)
            self.s2.send_message(self.peer, self.body("done"))
            await asyncio.sleep(0.2)
            await self.s2.logout()

    async def write_to_offline_peer(self, s, peer_full, word):
        self.step = f"send {word}"
        await self.wait_presence(s, "unavailable", full=peer_full)
        s.send_message(self.peer, self.body(word))
        self.ok(f"peer went offline, sent {word!r} to its bare JID")
        self.step = "wait for the peer to come back"

    async def go_offline_and_back(self, s1):
        a = self.args
        mine = "offline-to-a" if a.role == "a" else "offline-to-b"
        self.step = "log out"
        await s1.logout()
        self.log(f"logged out; logging in again over direct TLS in {a.offline_pause:g}s")
        await asyncio.sleep(a.offline_pause)
        self.step = "direct TLS login"
        s2 = Session(self, "tls", a.password, f"{LIB}-2")
        self.ok("direct TLS login", await s2.login())
        s2.send_presence(f"e2e {a.token}")
        self.step = "offline message"
        await self.wait_message(s2, mine, offline=True)
        self.ok("offline message received", f"{mine!r} with a <delay/>")
        self.step = "presence after new login"
        p = await self.wait_presence(s2, "available")
        self.ok("peer presence seen after new login", p["from"])
        self.s2, self.s2_peer_full = s2, p["from"]
        if a.role == "a":
            s2.send_message(self.peer, self.body("got-offline"))


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--role", choices=["a", "b"], required=True)
    ap.add_argument("--jid", required=True, help="bare JID of this peer's user")
    ap.add_argument("--password", required=True)
    ap.add_argument("--peer", required=True, help="bare JID of the other user")
    ap.add_argument("--domain", default="localhost", help="XMPP domain the certificate is checked for")
    ap.add_argument("--starttls-port", type=int, required=True)
    ap.add_argument("--tls-port", type=int, required=True, help="direct TLS (XEP-0368) port")
    ap.add_argument("--ca", required=True, help="PEM file the server certificate must verify against")
    ap.add_argument("--token", required=True, help="run id carried in every message body")
    ap.add_argument("--mech", default="SCRAM-SHA-256", help="SASL mechanism to force")
    ap.add_argument("--timeout", type=float, default=20.0, help="seconds for each wait")
    ap.add_argument("--offline-pause", type=float, default=2.0, help="seconds offline before logging in again")
    ap.add_argument("--debug", action="store_true", help="slixmpp debug log on stderr")
    args = ap.parse_args(argv)
    if not Path(args.ca).is_file():
        ap.error(f"--ca {args.ca}: no such file")
    return args


def main(argv):
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.ERROR,
        format=f"%(asctime)s [{LIB} {args.role}] %(levelname)s %(name)s: %(message)s",
    )
    peer = Peer(args)
    started = time.monotonic()
    try:
        # Overall bound, on top of the per-wait timeouts.
        asyncio.run(asyncio.wait_for(peer.run(), args.timeout * 5))
    except (Failure, LoginRefused) as e:
        print(f"E2E-PEER FAIL {peer.name} at step '{peer.step}': {e}", flush=True)
        return 1
    except asyncio.TimeoutError:
        print(f"E2E-PEER FAIL {peer.name} at step '{peer.step}': overall timeout", flush=True)
        return 1
    except Exception as e:  # anything unexpected is a failure too, with its traceback
        logging.getLogger(LIB).exception("unexpected error")
        print(f"E2E-PEER FAIL {peer.name} at step '{peer.step}': {type(e).__name__}: {e}", flush=True)
        return 1
    print(
        f"E2E-PEER PASS {peer.name} with {args.peer} in {time.monotonic() - started:.1f}s: "
        + "; ".join(peer.done),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
