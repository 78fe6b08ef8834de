//! The acceptance check of the foundation issue, on the real binary over real sockets:
//! 1,000 users register in-band (`[modules.mod_register]`), log in with STARTTLS and
//! SCRAM-SHA-1, bind, send presence, and exchange more than 10,000 messages in pairs
//! with none lost, while other connections send malformed, oversized and restricted
//! XML and get the stream error RFC 6120 prescribes, without disturbing anyone else.
//!
//! The load comes from our own `meerkat-loadgen`; the bad clients are raw sockets here.

mod support;

/// Serialises the load runs of the three runtimes.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use support::{open_plain_stream, read_until_closed, Server, DOMAIN};

/// The load generator binary, (re)built by cargo so that it is never stale: it is
/// another package's binary, which `cargo test -p meerkat` alone would not rebuild.
fn loadgen() -> PathBuf {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_meerkat"));
    let path = exe.with_file_name(format!("meerkat-loadgen{}", std::env::consts::EXE_SUFFIX));
    let release = exe
        .parent()
        .and_then(|p| p.file_name())
        .is_some_and(|n| n == "release");
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["build", "--quiet", "-p", "meerkat-loadgen"]);
    if release {
        cmd.arg("--release");
    }
    let status = cmd.status().expect("run cargo build -p meerkat-loadgen");
    assert!(status.success(), "building meerkat-loadgen failed");
    assert!(path.exists(), "no load generator at {}", path.display());
    path
}

/// The number after `"key":` in the loadgen's JSON report (first occurrence).
fn json_number(json: &str, key: &str) -> Option<f64> {
    let pat = format!("\"{key}\":");
    let start = json.find(&pat)? + pat.len();
    let rest = &json[start..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// Opens a plain stream, sends `bad` after the features, and returns what the server
/// wrote after that until it closed the connection.
fn bad_client(port: u16, bad: &[u8]) -> String {
    let mut s = open_plain_stream(port);
    // The server may close before it has read everything we send; that is its right.
    let _ = s.write_all(bad);
    read_until_closed(&mut s)
}

on_every_runtime! {
fn thousand_registered_users_chat_without_loss_while_bad_clients_get_stream_errors(runtime) {
    // One load at a time: three servers under load at once on a small machine would
    // measure the machine, not the server.
    let _one_at_a_time = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let server = Server::start(runtime, "load", &[]);
    let started = Instant::now();
    let load = Command::new(loadgen())
        .args(["--addr", &format!("127.0.0.1:{}", server.starttls_port)])
        .args([
            "--domain",
            DOMAIN,
            "-n",
            "1000",
            "--register",
            "--mechanism",
            "scram-sha-1",
        ])
        .args([
            "--scenario",
            "chat",
            "--msg-rate",
            "2000",
            "--duration",
            "6",
            "--grace",
            "10",
        ])
        .args(["--concurrency", "100", "--timeout", "300", "--json", "--quiet"])
        .arg("--ca-file")
        .arg(&server.cert)
        .args(["--server-pid", &server.pid().to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start meerkat-loadgen");

    // While the load runs, misbehaving clients come and go.
    thread::sleep(Duration::from_secs(2));
    let oversized = format!(
        "<message to='a@localhost'><body>{}</body></message>",
        "x".repeat(70_000)
    );
    let cases: [(&[u8], &str); 4] = [
        (b"<message><body>hi</mesage>", "<not-well-formed"),
        (oversized.as_bytes(), "<policy-violation"),
        (b"<!DOCTYPE foo [<!ENTITY x 'y'>]>", "<restricted-xml"),
        (
            b"<message to='a@localhost'><body>&bogus;</body></message>",
            "<restricted-xml",
        ),
    ];
    for round in 0..5 {
        for (bad, expected) in &cases {
            let answer = bad_client(server.starttls_port, bad);
            assert!(
                answer.contains(expected) && answer.ends_with("</stream:stream>"),
                "round {round}: expected {expected} then the stream close, got: {answer}"
            );
        }
    }

    let out = load.wait_with_output().expect("loadgen output");
    let json = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the load run was not clean ({}):\n{json}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        json_number(&json, "established"),
        Some(1000.0),
        "stdout: {json}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sent = json_number(&json, "sent").expect("sent");
    assert!(sent >= 10_000.0, "only {sent} messages sent: {json}");
    assert_eq!(json_number(&json, "received"), Some(sent), "{json}");
    assert_eq!(json_number(&json, "lost"), Some(0.0), "{json}");
    assert_eq!(json_number(&json, "duplicates"), Some(0.0), "{json}");
    eprintln!("load run on {runtime} took {:?}: {json}", started.elapsed());
}
}
