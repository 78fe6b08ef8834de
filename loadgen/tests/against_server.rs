//! The `meerkat-loadgen` binary against a real XMPP server, for wiring into end-to-end runs.
//!
//! Does nothing (and says so) unless `MEERKAT_LOADGEN_ADDR` is set:
//!
//! ```text
//! MEERKAT_LOADGEN_ADDR=127.0.0.1:5222      server to load (loopback only)
//! MEERKAT_LOADGEN_DOMAIN=localhost         XMPP domain (default localhost)
//! MEERKAT_LOADGEN_SESSIONS=50              sessions per scenario (default 50)
//! MEERKAT_LOADGEN_ARGS="--register"        extra flags, split on whitespace
//! MEERKAT_LOADGEN_SERVER_PID=1234          measure the server's RSS/CPU too
//! cargo test -p meerkat-loadgen --test against_server
//! ```
//!
//! Each test runs one scenario and requires a clean run: every session established, nothing
//! dropped, no message lost, duplicated or bounced, no failed reconnect (exit code 0).

use std::process::Command;
use std::sync::Mutex;

/// The scenarios use the same accounts and resource, so they must not overlap.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

struct Target {
    addr: String,
    domain: String,
    sessions: String,
    extra: Vec<String>,
    pid: Option<String>,
}

fn target() -> Option<Target> {
    let addr = std::env::var("MEERKAT_LOADGEN_ADDR")
        .ok()
        .filter(|a| !a.is_empty());
    let Some(addr) = addr else {
        eprintln!("MEERKAT_LOADGEN_ADDR is not set: not running against a server");
        return None;
    };
    let var = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
    Some(Target {
        addr,
        domain: var("MEERKAT_LOADGEN_DOMAIN", "localhost"),
        sessions: var("MEERKAT_LOADGEN_SESSIONS", "50"),
        extra: var("MEERKAT_LOADGEN_ARGS", "")
            .split_whitespace()
            .map(str::to_string)
            .collect(),
        pid: std::env::var("MEERKAT_LOADGEN_SERVER_PID").ok(),
    })
}

fn run(t: &Target, scenario: &[&str]) -> String {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_meerkat-loadgen"));
    cmd.args([
        "--addr",
        &t.addr,
        "--domain",
        &t.domain,
        "-n",
        &t.sessions,
        "--json",
        "--quiet",
    ]);
    cmd.args(["--timeout", "300"]);
    if let Some(pid) = &t.pid {
        cmd.args(["--server-pid", pid]);
    }
    cmd.args(&t.extra).args(scenario);
    let out = cmd.output().expect("run meerkat-loadgen");
    let json = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    eprintln!("{json}");
    assert_eq!(
        out.status.code(),
        Some(0),
        "meerkat-loadgen {scenario:?} was not clean: {json}"
    );
    assert!(json.contains("\"clean\":true"), "{json}");
    json
}

#[test]
fn idle_sessions_against_server() {
    let Some(t) = target() else { return };
    run(&t, &["--scenario", "idle", "--hold", "2"]);
}

#[test]
fn chat_against_server() {
    let Some(t) = target() else { return };
    let json = run(
        &t,
        &[
            "--scenario",
            "chat",
            "--msg-rate",
            "200",
            "--duration",
            "3",
            "--grace",
            "5",
        ],
    );
    assert!(json.contains("\"lost\":0,\"duplicates\":0"), "{json}");
}

#[test]
fn reconnect_against_server() {
    let Some(t) = target() else { return };
    run(
        &t,
        &[
            "--scenario",
            "reconnect",
            "--duration",
            "3",
            "--reconnect-hold",
            "0.3",
        ],
    );
}
