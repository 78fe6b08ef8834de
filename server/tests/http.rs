//! The HTTP listener end to end, on every runtime: real clients over WebSocket and
//! BOSH against the real binary, the metrics page scraped and parsed by
//! Prometheus' Python client, the health endpoint, and JSON logs.
//!
//! - `tests/e2e/node/http_clients.mjs`: strophe.js (the library under converse.js)
//!   over BOSH on HTTPS and @xmpp/client over WebSocket on plain HTTP log in and
//!   chat; the metrics must count exactly the messages they sent.
//! - `tests/e2e/node/fast_sm.mjs` over secure WebSocket: SASL2 + Bind 2, a FAST
//!   token, a reconnect with the token alone, and a cut connection resumed inline
//!   with nothing lost: the same C2S machine as TCP clients get.
//! - `tests/e2e/node/browser.mjs`: Debian's Chromium, headless, loads converse.js,
//!   which logs in over WebSocket, then over BOSH, and chats through its chat box
//!   with a slixmpp user (`tests/e2e/slixmpp_echo.py`); screenshots on failure.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod support;

use support::{e2e_dir, e2e_setup, Server, DOMAIN};

/// Per-wait timeout handed to the client scripts (seconds).
const STEP_TIMEOUT_SECS: u32 = 20;

fn password_of(user: &str) -> String {
    format!("pw-{user}-S3cret")
}

fn start(runtime: &str, test: &str, users: &[&str], general: &str) -> Server {
    let passwords: Vec<String> = users.iter().map(|u| password_of(u)).collect();
    let creds: Vec<(&str, &str)> = users
        .iter()
        .copied()
        .zip(passwords.iter().map(String::as_str))
        .collect();
    let extra = support::Extra {
        general: general.to_string(),
        ..Default::default()
    };
    Server::start_with(runtime, test, &creds, extra)
}

/// The metrics page, parsed by `tests/e2e/metrics.py` (prometheus_client): sample
/// (`name{labels}`, labels sorted) to value. Fails the test if it does not parse.
fn scrape(server: &Server) -> HashMap<String, f64> {
    let url = format!("http://127.0.0.1:{}/metrics", server.http_port);
    let out = Command::new(e2e_dir().join(".venv").join("bin").join("python"))
        .arg(e2e_dir().join("metrics.py"))
        .arg(&url)
        .stdin(Stdio::null())
        .output()
        .expect("run metrics.py");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the metrics page at {url} does not parse: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut samples = HashMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (name, value) = line.rsplit_once(' ').expect("sample line");
        samples.insert(name.to_string(), value.parse::<f64>().expect("sample value"));
    }
    assert!(samples.len() > 100, "too few samples: {text}");
    samples
}

/// How much `sample` grew between two scrapes.
fn delta(before: &HashMap<String, f64>, after: &HashMap<String, f64>, sample: &str) -> f64 {
    let a = after
        .get(sample)
        .unwrap_or_else(|| panic!("no sample {sample} after"));
    a - before.get(sample).copied().unwrap_or(0.0)
}

/// A GET on the plain HTTP listener: status line and body.
fn get(port: u16, path: &str) -> (String, String) {
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).expect("response");
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.lines().next().unwrap_or("").to_string(), body.to_string())
}

/// Runs a Node client script to its end; panics with its output unless it passed.
fn run_node(server: &Server, script: &str, args: &[String], log_name: &str) -> String {
    let mut cmd = Command::new("node");
    // Node 20 has the WebSocket client @xmpp/client uses behind this flag.
    cmd.arg("--experimental-websocket")
        .arg(e2e_dir().join("node").join(script))
        .args(args)
        // The library passes no CA to TLS; trust comes from this variable.
        .env("NODE_EXTRA_CA_CERTS", &server.cert)
        .current_dir(&server.dir.0)
        .stdin(Stdio::null());
    let log = server.dir.0.join(log_name);
    let file = std::fs::File::create(&log).expect("create a client log");
    cmd.stdout(file.try_clone().unwrap()).stderr(file);
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {script}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let passed = status.is_some_and(|s| s.success()) && text.contains("E2E-PEER PASS");
    // Strophe.js logs every request; keep the failure report readable.
    let steps: String = text
        .lines()
        .filter(|l| l.starts_with('[') || l.starts_with("E2E-") || l.contains("Error"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(
        passed,
        "{script} failed ({status:?}); full log in {}:\n{steps}",
        log.display()
    );
    text
}

/// Lines of the server's JSON log whose span list has `field` = `value`.
fn json_log_lines_with(log: &str, field: &str, value: &str) -> Vec<String> {
    let needle = format!("\"{field}\":\"{value}\"");
    log.lines()
        .filter(|l| l.starts_with('{') && l.contains("\"spans\":[") && l.contains(&needle))
        .map(str::to_string)
        .collect()
}

/// The slixmpp user who answers the web client, running until it answered
/// `count` messages.
struct Echo {
    child: std::process::Child,
    log: std::path::PathBuf,
}

impl Echo {
    fn start(server: &Server, user: &str, count: u32) -> Echo {
        let log = server.dir.0.join("slixmpp-echo.log");
        let file = std::fs::File::create(&log).expect("create the echo log");
        let child = Command::new(e2e_dir().join(".venv").join("bin").join("python"))
            .arg(e2e_dir().join("slixmpp_echo.py"))
            .args(["--jid", &format!("{user}@{DOMAIN}")])
            .args(["--password", &password_of(user)])
            .args(["--port", &server.starttls_port.to_string()])
            .arg("--ca")
            .arg(&server.cert)
            .args(["--count", &count.to_string()])
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("start slixmpp_echo.py");
        let echo = Echo { child, log };
        wait_for("the slixmpp user to be online", || {
            echo.output().contains("ECHO-READY")
        });
        echo
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for the end; its output, and whether it passed.
    fn finish(mut self) -> (String, bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                break Some(s);
            }
            if Instant::now() > deadline {
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let out = self.output();
        (
            out.clone(),
            status.is_some_and(|s| s.success()) && out.contains("E2E-PEER PASS"),
        )
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn wait_for(what: &str, mut pred: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !pred() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

on_every_runtime! {
/// strophe.js over BOSH (HTTPS) and @xmpp/client over WebSocket (HTTP) log in and
/// chat; the metrics page parses and counts exactly their messages, their logins
/// and their connections by transport; `/health` answers; the JSON log names the
/// connection, its type and its JID.
fn bosh_and_websocket_clients_chat_and_the_metrics_count_them(runtime) {
    e2e_setup();
    let server = start(runtime, "http-chat", &["alice", "bob"], "log_format = \"json\"\nloglevel = \"info\"");
    let (status, body) = get(server.http_port, "/health");
    assert_eq!((status.as_str(), body.as_str()), ("HTTP/1.1 200 OK", "ok\n"));
    assert!(get(server.http_port, "/nowhere").0.starts_with("HTTP/1.1 404 "));

    let before = scrape(&server);
    let args: Vec<String> = vec![
        "--jid-a".into(), format!("alice@{DOMAIN}"),
        "--jid-b".into(), format!("bob@{DOMAIN}"),
        "--password-a".into(), password_of("alice"),
        "--password-b".into(), password_of("bob"),
        "--bosh".into(), format!("https://localhost:{}/http-bind", server.https_port),
        "--websocket".into(), format!("ws://localhost:{}/ws-xmpp", server.http_port),
        "--count-a".into(), "3".into(),
        "--count-b".into(), "2".into(),
        "--token".into(), format!("http-{runtime}-{}", std::process::id()),
        "--timeout".into(), STEP_TIMEOUT_SECS.to_string(),
    ];
    run_node(&server, "http_clients.mjs", &args, "http-clients.log");

    // Both sessions end with the script; wait until the server has seen it.
    let mut after = scrape(&server);
    wait_for("both sessions to end", || {
        after = scrape(&server);
        after["sm_session_count{host_type=\"localhost\"}"] == 0.0
            && after["meerkat_c2s_connections{transport=\"bosh\"}"] == 0.0
    });
    let c2s = "connection_type=\"c2s\",host_type=\"localhost\"";
    // 3 messages from A and 2 from B: received once each, delivered once each.
    assert_eq!(delta(&before, &after, &format!("xmpp_element_in_message_count_total{{{c2s}}}")), 5.0);
    assert_eq!(delta(&before, &after, &format!("xmpp_element_out_message_count_total{{{c2s}}}")), 5.0);
    let elements_in = delta(&before, &after, &format!("xmpp_element_in_count_total{{{c2s}}}"));
    let stanzas_in = delta(&before, &after, &format!("xmpp_element_in_stanza_count_total{{{c2s}}}"));
    assert!(elements_in > stanzas_in && stanzas_in >= 5.0 + 2.0 * 2.0, "{elements_in} elements, {stanzas_in} stanzas");
    assert_eq!(
        delta(&before, &after, &format!("xmpp_element_in_byte_size_count{{{c2s}}}")),
        elements_in,
        "one size observation per element"
    );
    assert_eq!(delta(&before, &after, "sm_session_logins_total{host_type=\"localhost\"}"), 2.0);
    assert_eq!(delta(&before, &after, "sm_session_logouts_total{host_type=\"localhost\"}"), 2.0);
    let sasl_ok: f64 = after
        .iter()
        .filter(|(k, _)| k.starts_with("sasl_authentications_total{") && k.contains("result=\"success\""))
        .map(|(k, v)| v - before.get(k).copied().unwrap_or(0.0))
        .sum();
    assert_eq!(sasl_ok, 2.0);
    assert!(delta(&before, &after, "mod_bosh_data_received_byte_size_total{}") > 0.0);
    assert!(delta(&before, &after, "mod_websocket_data_sent_byte_size_total{}") > 0.0);
    assert!(after["storage_request_duration_seconds_count{operation=\"get_credentials\"}"] >= 2.0);
    assert_eq!(after["meerkat_c2s_connections{transport=\"websocket\"}"], 0.0);

    // Every line about a session carries its connection id, its type (the span's
    // `kind`, and the WebSocket transport) and its JID once bound.
    let log = server.log();
    let bosh_lines = json_log_lines_with(&log, "jid", &format!("alice@{DOMAIN}/bosh"));
    assert!(
        bosh_lines.iter().any(|l| l.contains("\"kind\":\"bosh\"") && l.contains("\"sid\":")),
        "no JSON log line about the BOSH session with its JID:\n{}",
        support::tail(&server.dir.0.join("meerkat.stderr"), 40)
    );
    let ws_lines = json_log_lines_with(&log, "transport", "websocket");
    assert!(
        ws_lines.iter().any(|l| l.contains(&format!("\"jid\":\"bob@{DOMAIN}/")) && l.contains("\"id\":")),
        "no JSON log line about the WebSocket session with its JID"
    );
    assert!(Path::new(&server.dir.0).exists());
}

/// @xmpp/client over secure WebSocket: SASL2 + Bind 2 with a FAST token, a
/// reconnect with the token alone, and a cut connection resumed inline in SASL2
/// with nothing lost.
fn websocket_fast_token_and_resumption(runtime) {
    e2e_setup();
    let server = start(runtime, "ws-fast-sm", &["ivan", "judy"], "");
    let args: Vec<String> = vec![
        "--jid-a".into(), format!("ivan@{DOMAIN}"),
        "--jid-b".into(), format!("judy@{DOMAIN}"),
        "--password-a".into(), password_of("ivan"),
        "--password-b".into(), password_of("judy"),
        "--tls-port".into(), server.tls_port.to_string(),
        "--service".into(), format!("wss://localhost:{}/ws-xmpp", server.https_port),
        "--token".into(), format!("ws-fast-{runtime}-{}", std::process::id()),
        "--timeout".into(), STEP_TIMEOUT_SECS.to_string(),
    ];
    run_node(&server, "fast_sm.mjs", &args, "ws-fast-sm.log");
    let after = scrape(&server);
    assert!(after["fast_tokens_issued_total{host_type=\"localhost\"}"] >= 1.0);
    assert!(after["fast_tokens_used_total{host_type=\"localhost\"}"] >= 1.0);
}

/// A real browser: Debian's Chromium, headless, loads converse.js, which logs in
/// over WebSocket and then over BOSH; each time the user types a message to a
/// slixmpp user in the chat box and the echo shows up in the chat. Screenshots of
/// both chats are kept in `target/e2e-screenshots/browser-RUNTIME/`; on failure,
/// the page's is in the test's kept directory.
fn converse_in_chromium_chats_with_slixmpp_over_websocket_and_bosh(runtime) {
    e2e_setup();
    let server = start(runtime, "browser", &["webuser", "echo"], "");
    let before = scrape(&server);
    let echo = Echo::start(&server, "echo", 2);
    let screenshots = server.dir.0.join("screenshots");
    let args: Vec<String> = vec![
        "--jid".into(), format!("webuser@{DOMAIN}"),
        "--password".into(), password_of("webuser"),
        "--peer".into(), format!("echo@{DOMAIN}"),
        "--websocket".into(), format!("ws://127.0.0.1:{}/ws-xmpp", server.http_port),
        "--bosh".into(), format!("http://127.0.0.1:{}/http-bind", server.http_port),
        "--screenshots".into(), screenshots.to_string_lossy().into_owned(),
        "--token".into(), format!("{runtime}-{}", std::process::id()),
    ];
    run_node(&server, "browser.mjs", &args, "browser.log");
    let (out, passed) = echo.finish();
    assert!(passed, "the slixmpp user did not answer both messages:\n{out}");
    assert!(out.contains("got 'hello over websocket "), "{out}");
    assert!(out.contains("got 'hello over bosh "), "{out}");
    // The screenshots outlive the test's directory, for a look at what the user saw.
    let kept = support::repo_root().join("target").join("e2e-screenshots").join(format!("browser-{runtime}"));
    std::fs::create_dir_all(&kept).expect("create target/e2e-screenshots");
    for shot in ["converse-websocket.png", "converse-bosh.png"] {
        let len = std::fs::metadata(screenshots.join(shot)).map(|m| m.len()).unwrap_or(0);
        assert!(len > 10_000, "no screenshot {shot} ({len} bytes)");
        std::fs::copy(screenshots.join(shot), kept.join(shot)).expect("keep the screenshot");
    }
    // The two typed messages and their echoes, counted on the metrics page.
    let after = scrape(&server);
    let c2s = "connection_type=\"c2s\",host_type=\"localhost\"";
    assert!(delta(&before, &after, &format!("xmpp_element_in_message_count_total{{{c2s}}}")) >= 4.0);
    assert!(delta(&before, &after, "sm_session_logins_total{host_type=\"localhost\"}") >= 3.0);
}
}
