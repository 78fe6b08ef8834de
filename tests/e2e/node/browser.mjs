#!/usr/bin/env node
// Meerkat's browser test: Debian's Chromium, headless, driven by playwright-core,
// loads a page with converse.js (from npm) which logs in to Meerkat over WebSocket,
// then (in a fresh browser context) over BOSH. Each time the user types a message
// to a slixmpp user (tests/e2e/slixmpp_echo.py) in converse's chat box and presses
// Enter, and the echo must show up in the chat. On any failure a screenshot of the
// page is saved (--screenshots DIR) and its path printed.
//
// The page (tests/e2e/browser/) and converse's build are served by a static HTTP
// server on an ephemeral loopback port; BOSH requests to Meerkat are then
// cross-origin, as for a real web client hosted elsewhere (CORS).
//
// Prints one line per step; the last line is "E2E-PEER PASS ..." or
// "E2E-PEER FAIL ..."; exits 0 on success, 1 on failure, 2 on bad arguments.

import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const started = Date.now();
const log = (msg) => console.log(`[browser +${((Date.now() - started) / 1000).toFixed(2)}s] ${msg}`);

class Failure extends Error {}

function parse() {
  const { values } = parseArgs({
    options: {
      jid: { type: "string" },
      password: { type: "string" },
      peer: { type: "string" },
      websocket: { type: "string" },
      bosh: { type: "string" },
      screenshots: { type: "string" },
      chromium: { type: "string", default: "/usr/bin/chromium" },
      token: { type: "string", default: "" },
      timeout: { type: "string", default: "30" },
    },
  });
  for (const k of ["jid", "password", "peer", "websocket", "bosh", "screenshots"]) {
    if (!values[k]) {
      console.error(`browser.mjs: --${k} is required`);
      process.exit(2);
    }
  }
  values.timeout = Number(values.timeout) * 1000;
  return values;
}

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".wasm": "application/wasm",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".woff": "font/woff",
  ".woff2": "font/woff2",
  ".ttf": "font/ttf",
  ".mp3": "audio/mpeg",
  ".ogg": "audio/ogg",
};

// Serves the page at / and converse.js's build at /converse/.
function serveStatic() {
  const roots = [
    ["/converse/", path.join(here, "node_modules", "converse.js", "dist")],
    ["/", path.join(here, "..", "browser")],
  ];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, "http://localhost");
    let pathname = decodeURIComponent(url.pathname);
    if (pathname === "/") pathname = "/index.html";
    for (const [prefix, root] of roots) {
      if (!pathname.startsWith(prefix)) continue;
      const file = path.join(root, pathname.slice(prefix.length));
      if (!file.startsWith(root) || !fs.existsSync(file) || !fs.statSync(file).isFile()) break;
      res.writeHead(200, { "Content-Type": TYPES[path.extname(file)] ?? "application/octet-stream" });
      fs.createReadStream(file).pipe(res);
      return;
    }
    res.writeHead(404);
    res.end("not found");
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

async function scenario(browser, base, args, transport, service) {
  const context = await browser.newContext({ viewport: { width: 1200, height: 800 } });
  const page = await context.newPage();
  const consoleLines = [];
  page.on("console", (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => consoleLines.push(`pageerror: ${e.message}`));
  const shot = path.join(args.screenshots, `converse-${transport}.png`);
  try {
    const q = new URLSearchParams({ transport, service, jid: args.jid, password: args.password });
    await page.goto(`${base}/index.html?${q}`);
    await page.waitForFunction(() => window.meerkat?.connected || window.meerkat?.errors.length, null, {
      timeout: args.timeout,
    });
    const errors = await page.evaluate(() => window.meerkat.errors);
    if (errors.length) throw new Failure(`converse failed to start: ${errors.join("; ")}`);
    log(`ok: converse.js logged in over ${transport} (${service})`);

    // The slixmpp user becomes a contact: the roster entry converse's "Add a
    // contact" form makes. (converse.js 14 opens chats with non-contacts only once
    // its XEP-0191 blocklist is loaded, which never happens on a server without
    // blocking; contacts do not need it.) Then the user opens the chat by clicking
    // the contact, and types into the chat box.
    const added = await page.evaluate(
      (peer) => window.meerkat.api.contacts.add({ jid: peer, name: "Echo" }, true, true).then((c) => c.get("jid")),
      args.peer,
    );
    if (added !== args.peer) throw new Failure(`converse added ${added} to the roster, not ${args.peer}`);
    await page.locator("converse-roster .list-item-link", { hasText: "Echo" }).first().click({ timeout: args.timeout });
    const textarea = page.locator("converse-chats textarea.chat-textarea").first();
    await textarea.waitFor({ timeout: args.timeout });
    const text = `hello over ${transport} ${args.token}`;
    await textarea.fill(text);
    await textarea.press("Enter");
    log(`typed "${text}" to ${args.peer}`);

    // The echo arrives: converse got it, and shows it in the chat.
    const echo = `echo: ${text}`;
    await page.waitForFunction((e) => window.meerkat.received.includes(e), echo, { timeout: args.timeout });
    await page.locator(".chat-msg__text", { hasText: echo }).first().waitFor({ timeout: args.timeout });
    await page.locator(".chat-msg__text", { hasText: text }).first().waitFor({ timeout: args.timeout });
    log(`ok: the chat shows "${text}" and the answer "${echo}"`);
    await page.screenshot({ path: shot });
    log(`screenshot of the chat: ${shot}`);
  } catch (e) {
    const failure = path.join(args.screenshots, `failure-${transport}.png`);
    await page.screenshot({ path: failure, fullPage: true }).catch(() => {});
    console.log(`screenshot on failure: ${failure}`);
    console.log(`browser console (last 40 lines):\n  ${consoleLines.slice(-40).join("\n  ")}`);
    throw e;
  } finally {
    await context.close();
  }
}

async function run(args) {
  fs.mkdirSync(args.screenshots, { recursive: true });
  const server = await serveStatic();
  const base = `http://127.0.0.1:${server.address().port}`;
  log(`page served at ${base}`);
  const browser = await chromium.launch({
    executablePath: args.chromium,
    headless: true,
    // This machine has no network but loopback: no background fetches, no QUIC.
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  log(`started ${args.chromium} ${browser.version()}`);
  try {
    await scenario(browser, base, args, "websocket", args.websocket);
    await scenario(browser, base, args, "bosh", args.bosh);
  } finally {
    await browser.close();
    server.close();
  }
}

const args = parse();
const limit = setTimeout(() => {
  console.log("E2E-PEER FAIL browser: overall timeout");
  process.exit(1);
}, args.timeout * 6);
run(args).then(
  () => {
    clearTimeout(limit);
    console.log(`E2E-PEER PASS browser (converse.js over WebSocket and BOSH) in ${((Date.now() - started) / 1000).toFixed(1)}s`);
    process.exit(0);
  },
  (err) => {
    console.log(`E2E-PEER FAIL browser: ${err instanceof Failure ? err.message : err?.stack || err}`);
    process.exit(1);
  },
);
