#!/usr/bin/env node
// FAST, Bind 2 and stream management with @xmpp/client against Meerkat.
//
// Two users, both @xmpp/client, in one process:
//  1. A logs in with its password over direct TLS; the library speaks SASL2,
//     binds with Bind 2 (stream management enabled inline) and asks for a FAST
//     token, which it saves.
//  2. A logs out, then logs in again with the saved token and a WRONG password:
//     only HT-SHA-256-NONE with the token can succeed (checked on the wire).
//  3. B logs in; A and B exchange messages.
//  4. A's TCP connection is cut (socket destroyed, no stream close). While it is
//     down B sends three messages. The library reconnects, resumes the stream
//     inline in SASL2 with the token, and must receive all three, once each.
//
// --service picks the transport: direct TLS by default (xmpps://DOMAIN:TLS-PORT),
// or a WebSocket URL (ws:// or wss://, RFC 7395), where the cut is a WebSocket
// closed without the stream's <close/> (Node 20: run with --experimental-websocket).
//
// Prints one line per step; the last line is "E2E-PEER PASS ..." or
// "E2E-PEER FAIL ..."; exits 0 on success, 1 on failure, 2 on bad arguments.

import crypto from "node:crypto";
import dns from "node:dns";
import { parseArgs } from "node:util";
import { setTimeout as sleep } from "node:timers/promises";

import { client, xml } from "@xmpp/client";

dns.setDefaultResultOrder("ipv4first");

class Failure extends Error {}

const started = Date.now();
const log = (msg) => console.log(`[xmpp.js fast+sm +${((Date.now() - started) / 1000).toFixed(2)}s] ${msg}`);

function parse() {
  const { values } = parseArgs({
    options: {
      "jid-a": { type: "string" },
      "jid-b": { type: "string" },
      "password-a": { type: "string" },
      "password-b": { type: "string" },
      domain: { type: "string", default: "localhost" },
      "tls-port": { type: "string" },
      service: { type: "string" },
      token: { type: "string" },
      timeout: { type: "string", default: "20" },
    },
  });
  for (const k of ["jid-a", "jid-b", "password-a", "password-b", "tls-port", "token"]) {
    if (!values[k]) {
      console.error(`fast_sm.mjs: --${k} is required`);
      process.exit(2);
    }
  }
  values.timeout = Number(values.timeout);
  return values;
}

// A stable installation id (XEP-0388 user-agent): tokens are issued per user and
// installation, so a client that reconnects with a token sends the same id.
const AGENTS = new Map();

// One @xmpp/client with an inbox of message bodies and a log of what it sent.
function make(args, jid, password, resource) {
  if (!AGENTS.has(jid)) AGENTS.set(jid, crypto.randomUUID());
  const x = client({
    userAgent: xml("user-agent", { id: AGENTS.get(jid) }, xml("software", {}, "meerkat-e2e")),
    service: args.service ?? `xmpps://${args.domain}:${args["tls-port"]}`,
    domain: args.domain,
    username: jid.split("@")[0],
    password,
    resource,
    timeout: args.timeout * 1000,
  });
  x.bodies = [];
  x.sent = [];
  x.on("error", (e) => log(`${jid} error: ${e.message}`));
  x.on("send", (el) => x.sent.push(el));
  if (process.env.E2E_DEBUG) {
    x.on("send", (el) => log(`${jid} >> ${el.toString()}`));
    x.on("element", (el) => log(`${jid} << ${el.toString()}`));
    x.on("status", (st) => log(`${jid} status ${st}`));
  }
  x.on("stanza", (el) => {
    if (el.is("message") && el.getChildText("body")) x.bodies.push(el.getChildText("body"));
  });
  return x;
}

// Starts `x` and waits until it is online. Not `await x.start()`: @xmpp/client 0.14
// listens for the server's stream header only once its own header's write has
// completed, and on loopback a fast server's header can arrive before that; the
// session still comes up ("online"), but start() then times out waiting for "open".
async function login(x, timeout) {
  let failed = null;
  const onError = (e) => {
    failed ??= e;
  };
  x.on("error", onError);
  x.start().catch((e) => {
    if (e?.name !== "TimeoutError") failed ??= e;
  });
  await until("the session to be online", () => x.status === "online" || failed, timeout);
  x.off("error", onError);
  if (failed) throw failed;
}

async function until(what, pred, timeout) {
  const deadline = Date.now() + timeout * 1000;
  while (!pred()) {
    if (Date.now() > deadline) throw new Failure(`timed out after ${timeout}s waiting for ${what}`);
    await sleep(20);
  }
}

function authenticateMechanism(x) {
  const auth = x.sent.filter((el) => el.is("authenticate", "urn:xmpp:sasl:2"));
  return auth.length ? auth[auth.length - 1].attrs.mechanism : null;
}

async function run(args) {
  const t = args.token;
  let saved = null;

  // 1. Password login through SASL2 + Bind 2, token requested and saved.
  const a1 = make(args, args["jid-a"], args["password-a"], "e2e");
  a1.reconnect.stop();
  a1.fast.saveToken = async (token) => {
    saved = token;
  };
  await login(a1, args.timeout);
  if (!a1.sent.some((el) => el.is("authenticate", "urn:xmpp:sasl:2"))) throw new Failure("SASL2 was not used");
  if (!a1.sent.some((el) => el.getChild("bind", "urn:xmpp:bind:0"))) throw new Failure("Bind 2 was not used");
  if (!saved?.token || saved.mechanism !== "HT-SHA-256-NONE") {
    throw new Failure(`no FAST token saved (${JSON.stringify(saved)})`);
  }
  log(`ok: password login via SASL2 (${authenticateMechanism(a1)}) + Bind 2 as ${a1.jid}; token saved, expires ${saved.expiry}`);
  await a1.stop();

  // 2. Token login with a wrong password: only FAST can get in.
  const a = make(args, args["jid-a"], `${args["password-a"]}-not-it`, "e2e");
  a.fast.fetchToken = async () => saved;
  a.fast.saveToken = async (token) => {
    saved = token;
  };
  await login(a, args.timeout);
  if (authenticateMechanism(a) !== "HT-SHA-256-NONE") {
    throw new Failure(`reconnected with ${authenticateMechanism(a)}, not the FAST token`);
  }
  if (!a.streamManagement.enabled) throw new Failure("stream management not enabled inline");
  log(`ok: reconnected with the FAST token (HT-SHA-256-NONE) as ${a.jid}, stream management on`);

  // 3. Messages flow.
  const b = make(args, args["jid-b"], args["password-b"], "e2e");
  b.reconnect.stop();
  await login(b, args.timeout);
  await a.send(xml("presence"));
  await b.send(xml("message", { to: a.jid.toString(), type: "chat" }, xml("body", {}, `hello ${t}`)));
  await until("hello at A", () => a.bodies.includes(`hello ${t}`), args.timeout);
  await a.send(xml("message", { to: b.jid.toString(), type: "chat" }, xml("body", {}, `back ${t}`)));
  await until("back at B", () => b.bodies.includes(`back ${t}`), args.timeout);
  log("ok: messages exchanged");

  // 4. Cut A's connection; B writes while it is down; A resumes.
  let resumed = false;
  a.streamManagement.on("resumed", () => {
    resumed = true;
  });
  const full = a.jid.toString();
  const raw = a.socket.socket;
  if (typeof raw.destroy === "function") raw.destroy();
  else raw.close();
  log("cut A's connection");
  await sleep(300);
  const words = [1, 2, 3].map((i) => `while-cut-${i} ${t}`);
  for (const w of words) {
    await b.send(xml("message", { to: full, type: "chat" }, xml("body", {}, w)));
  }
  await until("the stream to be resumed", () => resumed, args.timeout);
  if (a.jid.toString() !== full) throw new Failure(`resumed as ${a.jid}, expected ${full}`);
  await until("the messages sent during the cut", () => words.every((w) => a.bodies.includes(w)), args.timeout);
  for (const w of [...words, `hello ${t}`]) {
    const n = a.bodies.filter((x) => x === w).length;
    if (n !== 1) throw new Failure(`'${w}' arrived ${n} times`);
  }
  log(`ok: resumed inline in SASL2 (${authenticateMechanism(a)}) as ${a.jid}; all 3 messages sent during the cut arrived once`);
  a.reconnect.stop();
  await a.stop();
  await b.stop();
}

const args = parse();
const limit = setTimeout(() => {
  console.log("E2E-PEER FAIL xmpp.js fast+sm: overall timeout");
  process.exit(1);
}, args.timeout * 5 * 1000);
run(args).then(
  () => {
    clearTimeout(limit);
    console.log(`E2E-PEER PASS xmpp.js fast+sm in ${((Date.now() - started) / 1000).toFixed(1)}s`);
    process.exit(0);
  },
  (err) => {
    console.log(`E2E-PEER FAIL xmpp.js fast+sm: ${err instanceof Failure ? err.message : err?.stack || err}`);
    process.exit(1);
  },
);
