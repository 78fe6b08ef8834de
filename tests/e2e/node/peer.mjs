#!/usr/bin/env node
// One user's side of Meerkat's end-to-end scenario, driven by @xmpp/client.
//
// The same steps, roles and command line as tests/e2e/slixmpp_peer.py (see
// its docstring); a peer of either library can talk to a peer of the other.
// Two differences, both from what @xmpp/client offers:
//  * SASL: @xmpp/client 0.14 has SCRAM-SHA-1, PLAIN, ANONYMOUS (and
//    HT-SHA-256-NONE for FAST tokens), no SCRAM-SHA-256; so --mech defaults
//    to SCRAM-SHA-1 here.
//  * TLS trust: the library passes no `ca` option to node:tls, so the test CA
//    comes in through NODE_EXTRA_CA_CERTS, which must name the --ca file
//    (checked below); certificate verification stays on.
// Logging out is a plain stream close (xmpp.stop(), as apps using this
// library do), so the server has to broadcast the unavailable presence itself.
//
// Prints one line per step and a one-line summary; exits 0 on success, 1 on
// any failure (with the reason), 2 on bad arguments.

import crypto from "node:crypto";
import dns from "node:dns";
import fs from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { setTimeout as sleep } from "node:timers/promises";

import { client, xml } from "@xmpp/client";

const LIB = "xmpp.js";
const NS_ROSTER = "jabber:iq:roster";
const NS_DELAY = "urn:xmpp:delay";

// The direct TLS service is xmpps://<domain>:<port> (the library checks the
// certificate against the service's host name); make "localhost" mean the
// IPv4 loopback the server listens on.
dns.setDefaultResultOrder("ipv4first");

class Failure extends Error {}

const bareOf = (jid) => (jid || "").split("/")[0];

function describe(i) {
  if (i.kind === "presence") return `presence type=${i.type} from=${i.from}`;
  if (i.kind === "message") return `message from=${i.from} body=${JSON.stringify(i.body)}`;
  if (i.kind === "error") return `${i.stanza} type=error from=${i.from} <${i.condition}/> ${i.text}`.trim();
  return `roster ${i.push ? "push" : "result"} ${i.jid} subscription=${i.subscription}`;
}

// Everything a session received, so a wait also sees what came before it.
class Inbox {
  items = [];
  closed = null;
  #wake = null;

  push(item) {
    this.items.push(item);
    this.#wake?.();
  }

  close(reason) {
    this.closed ??= reason;
    this.#wake?.();
  }

  async wait(pred, what, timeout) {
    const deadline = Date.now() + timeout * 1000;
    for (;;) {
      const i = this.items.findIndex(pred);
      if (i >= 0) return this.items.splice(i, 1)[0];
      const error = this.items.find((it) => it.kind === "error");
      if (error) throw new Failure(`got an error stanza (${describe(error)}) while waiting for ${what}`);
      if (this.closed) throw new Failure(`connection closed (${this.closed}) while waiting for ${what}`);
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        const seen = this.items.slice(-8).map(describe).join("; ") || "nothing";
        throw new Failure(`timed out after ${timeout}s waiting for ${what} (unconsumed: ${seen})`);
      }
      await new Promise((resolve) => {
        const t = setTimeout(resolve, remaining);
        this.#wake = () => {
          clearTimeout(t);
          this.#wake = null;
          resolve();
        };
      });
    }
  }
}

class Session {
  constructor(args, transport, password, resource) {
    this.args = args;
    this.transport = transport;
    this.inbox = new Inbox();
    this.offered = [];
    this.used = null;
    this.errors = [];
    const service =
      transport === "starttls"
        ? `xmpp://127.0.0.1:${args["starttls-port"]}`
        : `xmpps://${args.domain}:${args["tls-port"]}`;
    this.service = service;
    const username = args.jid.split("@")[0];
    this.xmpp = client({
      service,
      domain: args.domain,
      resource,
      timeout: args.timeout * 1000,
      // Force the mechanism: the library hands over what both sides support.
      credentials: async (authenticate, mechanisms) => {
        this.candidates = mechanisms;
        if (!mechanisms.includes(args.mech)) {
          throw new Failure(
            `${args.mech} not available: server offers [${this.offered}], both support [${mechanisms}]`,
          );
        }
        this.used = args.mech;
        // The user agent only matters if the server offers SASL2 (XEP-0388).
        const userAgent = xml("user-agent", { id: crypto.randomUUID() }, xml("software", {}, "meerkat-e2e"));
        await authenticate({ username, password }, args.mech, userAgent);
      },
    });
    const x = this.xmpp;
    x.reconnect.stop();
    x.on("error", (err) => this.errors.push(err));
    x.on("status", (status) => {
      if (status === "disconnect" || status === "offline") this.inbox.close(status);
    });
    // Before the library's own listener, which starts SASL on this element.
    x.prependListener("element", (el) => {
      if (el.is("features", "http://etherx.jabber.org/streams")) {
        const m =
          el.getChild("mechanisms", "urn:ietf:params:xml:ns:xmpp-sasl") ||
          el.getChild("authentication", "urn:xmpp:sasl:2");
        if (m) this.offered = m.getChildren("mechanism").map((c) => c.text());
        if (el.getChild("authentication", "urn:xmpp:sasl:2")) this.sasl2 = true;
      }
    });
    x.on("stanza", (el) => this.#onStanza(el));
    // Roster pushes (RFC 6121 2.1.6): only from our own server/account.
    x.iqCallee.set(NS_ROSTER, "query", (ctx) => {
      const from = ctx.stanza.attrs.from;
      if (from && bareOf(from) !== args.jid) return xml("error", { type: "cancel" }, xml("service-unavailable", { xmlns: "urn:ietf:params:xml:ns:xmpp-stanzas" }));
      this.#pushRoster(ctx.element, true);
      return true;
    });
  }

  #pushRoster(query, push) {
    for (const item of query.getChildren("item")) {
      this.inbox.push({
        kind: "roster",
        push,
        jid: item.attrs.jid,
        subscription: item.attrs.subscription || "none",
        ask: item.attrs.ask || "",
      });
    }
  }

  #onStanza(el) {
    const from = el.attrs.from || "";
    if ((el.is("presence") || el.is("message")) && el.attrs.type === "error") {
      const err = el.getChild("error");
      const cond = err?.getChildElements().find((c) => c.attrs.xmlns === "urn:ietf:params:xml:ns:xmpp-stanzas" && c.name !== "text");
      this.inbox.push({
        kind: "error",
        stanza: el.name,
        from,
        condition: cond?.name || "?",
        text: err?.getChildText("text", "urn:ietf:params:xml:ns:xmpp-stanzas") || "",
      });
    } else if (el.is("presence")) {
      this.inbox.push({
        kind: "presence",
        type: el.attrs.type || "available",
        from,
        bare: bareOf(from),
        status: el.getChildText("status"),
      });
    } else if (el.is("message")) {
      const type = el.attrs.type || "normal";
      const body = el.getChildText("body");
      if (!body || (type !== "chat" && type !== "normal")) return;
      this.inbox.push({
        kind: "message",
        from,
        bare: bareOf(from),
        body,
        delay: Boolean(el.getChild("delay", NS_DELAY)),
      });
    }
  }

  tlsSocket() {
    // xmpp.socket is the library's wrapper; .socket is node's TLSSocket.
    return this.xmpp.socket?.socket;
  }

  async login() {
    const { args } = this;
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(
        () => reject(new Failure(`no session within ${args.timeout}s (${this.transport}, ${this.service})`)),
        args.timeout * 1000,
      );
    });
    // Not just `await xmpp.start()`: @xmpp/client 0.14 listens for the server's
    // stream header only once its own header's write has completed, and on
    // loopback a fast server's header can arrive before that; the session still
    // comes up ("online"), but start() then times out waiting for "open".
    const started = this.xmpp.start();
    const online = new Promise((resolve, reject) => {
      this.xmpp.once("online", resolve);
      started.catch((err) => (err?.name === "TimeoutError" ? undefined : reject(err)));
    });
    try {
      await Promise.race([online, timeout]);
    } catch (err) {
      await this.abort();
      if (err?.name === "SASLError") throw err;
      if (err instanceof Failure) throw err;
      const more = this.errors.filter((e) => e !== err).map((e) => e.message);
      throw new Failure(
        `login over ${this.transport} (${this.service}) failed: ${err?.code ? err.code + " " : ""}${err?.message || err}` +
          (more.length ? ` (also: ${more.join("; ")})` : ""),
      );
    } finally {
      clearTimeout(timer);
    }
    const sock = this.tlsSocket();
    if (!this.xmpp.isSecure() || !sock || typeof sock.getProtocol !== "function") {
      throw new Failure(`session over ${this.transport} is not encrypted`);
    }
    if (!sock.authorized) throw new Failure(`server certificate not verified: ${sock.authorizationError}`);
    if (this.used !== args.mech) throw new Failure(`logged in with ${this.used}, expected ${args.mech}`);
    return (
      `${this.transport} login as ${this.xmpp.jid}: mechanism=${this.used}` +
      `${this.sasl2 ? " via SASL2" : ""} (server offered ${[...this.offered].sort().join(",")}), ` +
      `${sock.getProtocol()}, certificate verified for ${args.domain}`
    );
  }

  async abort() {
    this.xmpp.reconnect.stop();
    try {
      await Promise.race([this.xmpp.stop(), sleep(3000)]);
    } catch {
      // already closed
    }
  }

  send(el) {
    return this.xmpp.send(el);
  }

  sendPresence(status) {
    return this.send(xml("presence", {}, status ? xml("status", {}, status) : null));
  }

  sendSubscription(type, to) {
    return this.send(xml("presence", { type, to }));
  }

  sendMessage(to, body) {
    return this.send(xml("message", { type: "chat", to }, xml("body", {}, body)));
  }

  async iq(type, child, what) {
    try {
      return await this.xmpp.iqCaller.request(xml("iq", { type }, child), this.args.timeout * 1000);
    } catch (err) {
      throw new Failure(`${what} failed: ${err.condition || err.message}`);
    }
  }

  async rosterGet() {
    const res = await this.iq("get", xml("query", { xmlns: NS_ROSTER }), "roster get");
    const roster = {};
    for (const item of res.getChild("query", NS_ROSTER)?.getChildren("item") || []) {
      roster[item.attrs.jid] = { subscription: item.attrs.subscription || "none", ask: item.attrs.ask };
    }
    return roster;
  }

  async rosterAdd(jid) {
    await this.iq(
      "set",
      xml("query", { xmlns: NS_ROSTER }, xml("item", { jid, name: "e2e peer" })),
      `roster set for ${jid}`,
    );
  }

  async logout() {
    // A plain stream close; the server broadcasts our unavailable presence.
    await this.abort();
  }
}

class Peer {
  constructor(args) {
    this.args = args;
    this.peer = args.peer;
    this.name = `${LIB} ${args.role}=${args.jid}`;
    this.done = [];
    this.step = "start";
    this.started = Date.now();
  }

  log(msg) {
    console.log(`[${this.name} +${((Date.now() - this.started) / 1000).toFixed(2)}s] ${msg}`);
  }

  ok(what, detail = "") {
    this.done.push(what);
    this.log(`ok: ${what}${detail ? ` -- ${detail}` : ""}`);
  }

  body(word) {
    return `${word} ${this.args.token}`;
  }

  async waitMessage(s, word, { offline = false } = {}) {
    const body = this.body(word);
    const m = await s.inbox.wait(
      (i) => i.kind === "message" && i.bare === this.peer && i.body === body,
      `message ${JSON.stringify(body)} from ${this.peer}`,
      this.args.timeout,
    );
    if (offline && !m.delay) {
      throw new Failure(
        `message ${JSON.stringify(body)} arrived without a XEP-0203 <delay/>: it was delivered live, not from offline storage`,
      );
    }
    return m;
  }

  waitPresence(s, type, full = null) {
    return s.inbox.wait(
      (i) => i.kind === "presence" && i.type === type && i.bare === this.peer && (!full || i.from === full),
      `presence type=${type} from ${full || this.peer}`,
      this.args.timeout,
    );
  }

  waitSubscription(s, type) {
    return s.inbox.wait(
      (i) => i.kind === "presence" && i.type === type && i.bare === this.peer,
      `${type} from ${this.peer}`,
      this.args.timeout,
    );
  }

  async waitBoth(s) {
    await s.inbox.wait(
      (i) => i.kind === "roster" && i.push && i.jid === this.peer && i.subscription === "both",
      `roster push with ${this.peer} subscription=both`,
      this.args.timeout,
    );
    const roster = await s.rosterGet();
    const item = roster[this.peer];
    if (!item || item.subscription !== "both") {
      throw new Failure(
        `roster get after the handshake: ${this.peer} is ${JSON.stringify(item)}, expected subscription=both`,
      );
    }
  }

  async run() {
    const a = this.args;
    this.step = "wrong password";
    const w = new Session(a, "starttls", `${a.password}-wrong`, "wrong");
    try {
      await w.login();
      await w.abort();
      throw new Failure("login with a wrong password succeeded");
    } catch (err) {
      if (err?.name !== "SASLError") throw err;
      if (err.condition !== "not-authorized") {
        throw new Failure(`wrong password refused with <${err.condition}/>, expected not-authorized`);
      }
      this.ok("wrong password refused", `SASL failure <not-authorized/> (mechanism ${w.used})`);
    }

    this.step = "STARTTLS login";
    const s1 = new Session(a, "starttls", a.password, `${LIB}-1`);
    this.ok("STARTTLS login", await s1.login());
    const roster = await s1.rosterGet();
    if (roster[this.peer]) {
      throw new Failure(`fresh user expected, but the roster already has ${this.peer}: ${JSON.stringify(roster[this.peer])}`);
    }
    await s1.sendPresence(`e2e ${a.token}`);

    this.step = "subscription handshake";
    if (a.role === "a") {
      await s1.rosterAdd(this.peer);
      await s1.sendSubscription("subscribe", this.peer);
      await this.waitSubscription(s1, "subscribed");
      await this.waitSubscription(s1, "subscribe");
      await s1.sendSubscription("subscribed", this.peer);
    } else {
      await this.waitSubscription(s1, "subscribe");
      await s1.sendSubscription("subscribed", this.peer);
      await s1.rosterAdd(this.peer);
      await s1.sendSubscription("subscribe", this.peer);
      await this.waitSubscription(s1, "subscribed");
    }
    await this.waitBoth(s1);
    this.ok("subscription handshake", "roster push and roster get say subscription=both");

    this.step = "presence";
    const p = await this.waitPresence(s1, "available");
    const peerFull = p.from;
    this.ok("peer presence seen", `available from ${peerFull}`);

    this.step = "message exchange";
    if (a.role === "a") {
      await s1.sendMessage(peerFull, this.body("ping"));
      await this.waitMessage(s1, "pong");
    } else {
      const m = await this.waitMessage(s1, "ping");
      await s1.sendMessage(m.from, this.body("pong"));
    }
    this.ok("messages exchanged", "ping/pong");

    // Offline phase: first a goes offline and b writes to it, then the reverse.
    if (a.role === "a") {
      const { s2, peerFull: full2 } = await this.goOfflineAndBack(s1);
      await this.writeToOfflinePeer(s2, full2, "offline-to-b");
      await this.waitMessage(s2, "done");
      this.ok("final message from peer received");
      await s2.logout();
    } else {
      await this.writeToOfflinePeer(s1, peerFull, "offline-to-a");
      await this.waitMessage(s1, "got-offline");
      const { s2 } = await this.goOfflineAndBack(s1);
      await s2.sendMessage(this.peer, this.body("done"));
      await sleep(200);
      await s2.logout();
    }
  }

  async writeToOfflinePeer(s, peerFull, word) {
    this.step = `send ${word}`;
    await this.waitPresence(s, "unavailable", peerFull);
    await s.sendMessage(this.peer, this.body(word));
    this.ok(`peer went offline, sent '${word}' to its bare JID`);
    this.step = "wait for the peer to come back";
  }

  async goOfflineAndBack(s1) {
    const a = this.args;
    const mine = a.role === "a" ? "offline-to-a" : "offline-to-b";
    this.step = "log out";
    await s1.logout();
    this.log(`logged out; logging in again over direct TLS in ${a["offline-pause"]}s`);
    await sleep(a["offline-pause"] * 1000);
    this.step = "direct TLS login";
    const s2 = new Session(a, "tls", a.password, `${LIB}-2`);
    this.ok("direct TLS login", await s2.login());
    await s2.sendPresence(`e2e ${a.token}`);
    this.step = "offline message";
    await this.waitMessage(s2, mine, { offline: true });
    this.ok("offline message received", `'${mine}' with a <delay/>`);
    this.step = "presence after new login";
    const p = await this.waitPresence(s2, "available");
    this.ok("peer presence seen after new login", p.from);
    if (a.role === "a") await s2.sendMessage(this.peer, this.body("got-offline"));
    return { s2, peerFull: p.from };
  }
}

function usage(msg) {
  console.error(`peer.mjs: ${msg}`);
  console.error(
    "usage: node peer.mjs --role a|b --jid JID --password PW --peer JID --starttls-port N --tls-port N " +
      "--ca PEM --token T [--domain localhost] [--mech SCRAM-SHA-1] [--timeout 20] [--offline-pause 2]\n" +
      "       with NODE_EXTRA_CA_CERTS set to the --ca file",
  );
  process.exit(2);
}

function parse(argv) {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        role: { type: "string" },
        jid: { type: "string" },
        password: { type: "string" },
        peer: { type: "string" },
        domain: { type: "string", default: "localhost" },
        "starttls-port": { type: "string" },
        "tls-port": { type: "string" },
        ca: { type: "string" },
        token: { type: "string" },
        mech: { type: "string", default: "SCRAM-SHA-1" },
        timeout: { type: "string", default: "20" },
        "offline-pause": { type: "string", default: "2" },
      },
    }));
  } catch (err) {
    usage(err.message);
  }
  for (const k of ["role", "jid", "password", "peer", "starttls-port", "tls-port", "ca", "token"]) {
    if (!values[k]) usage(`--${k} is required`);
  }
  if (!["a", "b"].includes(values.role)) usage("--role must be a or b");
  for (const k of ["timeout", "offline-pause"]) {
    values[k] = Number(values[k]);
    if (!(values[k] >= 0)) usage(`--${k} must be a number`);
  }
  if (!fs.existsSync(values.ca)) usage(`--ca ${values.ca}: no such file`);
  const extra = process.env.NODE_EXTRA_CA_CERTS;
  if (!extra || path.resolve(extra) !== path.resolve(values.ca)) {
    usage(`NODE_EXTRA_CA_CERTS must name the --ca file (${values.ca}); it is ${extra ?? "unset"}`);
  }
  return values;
}

async function main() {
  const args = parse(process.argv.slice(2));
  const peer = new Peer(args);
  const started = Date.now();
  let overall;
  const limit = new Promise((_, reject) => {
    overall = setTimeout(() => reject(new Failure("overall timeout")), args.timeout * 5 * 1000);
  });
  try {
    await Promise.race([peer.run(), limit]);
  } catch (err) {
    const reason = err instanceof Failure ? err.message : `${err?.name || "Error"}: ${err?.message || err}`;
    if (!(err instanceof Failure)) console.error(err);
    console.log(`E2E-PEER FAIL ${peer.name} at step '${peer.step}': ${reason}`);
    process.exit(1);
  }
  clearTimeout(overall);
  const secs = ((Date.now() - started) / 1000).toFixed(1);
  console.log(`E2E-PEER PASS ${peer.name} with ${args.peer} in ${secs}s: ${peer.done.join("; ")}`);
  process.exit(0);
}

main();
