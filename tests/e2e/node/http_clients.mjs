#!/usr/bin/env node
// XMPP over HTTP against Meerkat, with two real client libraries in one process:
//  * A: strophe.js (the XMPP library under converse.js) over BOSH (XEP-0206);
//  * B: @xmpp/client over WebSocket (RFC 7395).
// Both log in (SCRAM, or whatever the server offers on that transport); A sends
// --count-a messages to B, B sends --count-b messages to A, each side checks that
// it got exactly those, in order; both log out cleanly. The test then compares
// the server's metrics with the number of messages sent.
//
// Node 20 needs --experimental-websocket for @xmpp/client's WebSocket. strophe.js
// uses XMLHttpRequest for BOSH, which Node has not: xhr2 stands in for it, with a
// responseXML parsed by @xmldom/xmldom (what a browser's XHR does).
//
// Prints one line per step; the last line is "E2E-PEER PASS ..." or
// "E2E-PEER FAIL ..."; exits 0 on success, 1 on failure, 2 on bad arguments.

import dns from "node:dns";
import { parseArgs } from "node:util";
import { setTimeout as sleep } from "node:timers/promises";

import { DOMParser } from "@xmldom/xmldom";
import XHR from "xhr2";
import { Strophe, $msg, $pres } from "strophe.js";
import { client, xml } from "@xmpp/client";

dns.setDefaultResultOrder("ipv4first");

class XMLHttpRequestWithXML extends XHR {
  get responseXML() {
    if (!this.responseText) return null;
    return new DOMParser().parseFromString(this.responseText, "text/xml");
  }
}
globalThis.XMLHttpRequest = XMLHttpRequestWithXML;

class Failure extends Error {}

const started = Date.now();
const log = (msg) => console.log(`[http clients +${((Date.now() - started) / 1000).toFixed(2)}s] ${msg}`);

function parse() {
  const { values } = parseArgs({
    options: {
      "jid-a": { type: "string" },
      "jid-b": { type: "string" },
      "password-a": { type: "string" },
      "password-b": { type: "string" },
      bosh: { type: "string" },
      websocket: { type: "string" },
      domain: { type: "string", default: "localhost" },
      "count-a": { type: "string", default: "3" },
      "count-b": { type: "string", default: "2" },
      token: { type: "string" },
      timeout: { type: "string", default: "20" },
    },
  });
  for (const k of ["jid-a", "jid-b", "password-a", "password-b", "bosh", "websocket", "token"]) {
    if (!values[k]) {
      console.error(`http_clients.mjs: --${k} is required`);
      process.exit(2);
    }
  }
  values.timeout = Number(values.timeout);
  values["count-a"] = Number(values["count-a"]);
  values["count-b"] = Number(values["count-b"]);
  return values;
}

async function until(what, pred, timeout) {
  const deadline = Date.now() + timeout * 1000;
  while (!pred()) {
    if (Date.now() > deadline) throw new Failure(`timed out after ${timeout}s waiting for ${what}`);
    await sleep(20);
  }
}

// A: strophe.js over BOSH.
async function boshLogin(args) {
  const conn = new Strophe.Connection(args.bosh);
  conn.bodies = [];
  if (process.env.E2E_DEBUG) {
    conn.xmlInput = (el) => log(`A << ${Strophe.serialize(el)}`);
    conn.xmlOutput = (el) => log(`A >> ${Strophe.serialize(el)}`);
  }
  conn.addHandler(
    (msg) => {
      const body = msg.getElementsByTagName("body")[0];
      if (body) conn.bodies.push(Strophe.getText(body));
      return true;
    },
    null,
    "message",
  );
  let status = null;
  conn.connect(`${args["jid-a"]}/bosh`, args["password-a"], (s, condition) => {
    status = s;
    if (s === Strophe.Status.AUTHFAIL || s === Strophe.Status.CONNFAIL) log(`A: status ${s} ${condition ?? ""}`);
  });
  await until("A (BOSH) to be connected", () => status === Strophe.Status.CONNECTED || status === Strophe.Status.AUTHFAIL || status === Strophe.Status.CONNFAIL, args.timeout);
  if (status !== Strophe.Status.CONNECTED) throw new Failure(`A could not log in over BOSH (status ${status})`);
  conn.send($pres());
  return conn;
}

// B: @xmpp/client over WebSocket.
async function websocketLogin(args) {
  const x = client({
    service: args.websocket,
    domain: args.domain,
    username: args["jid-b"].split("@")[0],
    password: args["password-b"],
    resource: "websocket",
    timeout: args.timeout * 1000,
  });
  x.bodies = [];
  x.on("error", (e) => log(`B error: ${e.message}`));
  if (process.env.E2E_DEBUG) {
    x.on("send", (el) => log(`B >> ${el.toString()}`));
    x.on("element", (el) => log(`B << ${el.toString()}`));
  }
  x.on("stanza", (el) => {
    if (el.is("message") && el.getChildText("body")) x.bodies.push(el.getChildText("body"));
  });
  x.reconnect.stop();
  let failed = null;
  x.start().catch((e) => {
    if (e?.name !== "TimeoutError") failed ??= e;
  });
  await until("B (WebSocket) to be online", () => x.status === "online" || failed, args.timeout);
  if (failed) throw failed;
  await x.send(xml("presence"));
  return x;
}

async function run(args) {
  const t = args.token;
  const a = await boshLogin(args);
  log(`ok: A logged in over BOSH as ${a.jid}`);
  const b = await websocketLogin(args);
  log(`ok: B logged in over WebSocket as ${b.jid}`);

  const toB = Array.from({ length: args["count-a"] }, (_, i) => `bosh-to-ws-${i + 1} ${t}`);
  const toA = Array.from({ length: args["count-b"] }, (_, i) => `ws-to-bosh-${i + 1} ${t}`);
  for (const body of toB) {
    a.send($msg({ to: b.jid.toString(), type: "chat" }).c("body").t(body));
  }
  for (const body of toA) {
    await b.send(xml("message", { to: a.jid, type: "chat" }, xml("body", {}, body)));
  }
  await until(`B to get ${toB.length} messages`, () => b.bodies.length >= toB.length, args.timeout);
  await until(`A to get ${toA.length} messages`, () => a.bodies.length >= toA.length, args.timeout);
  await sleep(300);
  if (JSON.stringify(b.bodies) !== JSON.stringify(toB)) throw new Failure(`B got ${JSON.stringify(b.bodies)}`);
  if (JSON.stringify(a.bodies) !== JSON.stringify(toA)) throw new Failure(`A got ${JSON.stringify(a.bodies)}`);
  log(`ok: ${toB.length} messages BOSH -> WebSocket and ${toA.length} WebSocket -> BOSH, in order, once each`);

  await b.stop();
  let disconnected = false;
  a.addHandler(() => true);
  const onStatus = a.connect_callback;
  a.connect_callback = (s, c) => {
    if (s === Strophe.Status.DISCONNECTED) disconnected = true;
    onStatus?.(s, c);
  };
  a.disconnect("bye");
  await until("A to be disconnected", () => disconnected, args.timeout);
  log("ok: both logged out");
  console.log(`E2E-COUNTS sent_a=${toB.length} sent_b=${toA.length}`);
}

const args = parse();
const limit = setTimeout(() => {
  console.log("E2E-PEER FAIL http clients: overall timeout");
  process.exit(1);
}, args.timeout * 5 * 1000);
run(args).then(
  () => {
    clearTimeout(limit);
    console.log(`E2E-PEER PASS http clients in ${((Date.now() - started) / 1000).toFixed(1)}s`);
    process.exit(0);
  },
  (err) => {
    console.log(`E2E-PEER FAIL http clients: ${err instanceof Failure ? err.message : err?.stack || err}`);
    process.exit(1);
  },
);
