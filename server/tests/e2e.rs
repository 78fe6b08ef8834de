//! End-to-end tests with real third-party XMPP clients against the real `meerkat`
//! binary on loopback: slixmpp (Python) and @xmpp/client (Node).
//!
//! Each test starts its own server (temp dir, free ports, a certificate made with
//! openssl, users made with `meerkat user add`), then runs two client processes at
//! once, one per user. The clients (`tests/e2e/slixmpp_peer.py` and
//! `tests/e2e/node/peer.mjs`) coordinate only through XMPP; each logs in with a wrong
//! password (must get not-authorized), over STARTTLS, does the full subscription
//! handshake, sees the other's presence, exchanges messages, and gets a message sent
//! while it was offline after logging in again over direct TLS. See their headers.
//!
//! Two more scenarios run both users in one client process: `tests/e2e/node/fast_sm.mjs`
//! (@xmpp/client: SASL2 + Bind 2 login that saves a FAST token, a reconnect with the
//! token and a wrong password, messages, and a cut connection resumed inline in SASL2
//! with nothing lost) and `tests/e2e/slixmpp_sm.py` (slixmpp, which has stream
//! management but no SASL2: a cut connection resumed with `<resume/>`, nothing lost).
//!
//! tests/e2e/setup.sh installs the clients first (once per test process); if it
//! fails, the tests fail. Nothing here is skipped.

use std::fs;
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

mod support;

use support::peers::{finish, Running};
use support::{e2e_dir, Server, DOMAIN};

/// Per-wait timeout handed to the client scripts (seconds).
const STEP_TIMEOUT_SECS: u32 = 20;

/// Runs tests/e2e/setup.sh once per process; every test fails if it failed.
fn setup() {
    support::run_setup_once("setup.sh");
}

#[derive(Clone, Copy, Debug)]
enum Lib {
    Slixmpp,
    XmppJs,
}

impl Lib {
    fn name(self) -> &'static str {
        match self {
            Lib::Slixmpp => "slixmpp",
            Lib::XmppJs => "@xmpp/client",
        }
    }

    /// The SASL mechanism forced in this client. @xmpp/client has no SCRAM-SHA-256.
    fn mechanism(self) -> &'static str {
        match self {
            Lib::Slixmpp => "SCRAM-SHA-256",
            Lib::XmppJs => "SCRAM-SHA-1",
        }
    }
}

/// One user's side of the scenario.
struct PeerSpec {
    lib: Lib,
    role: &'static str,
    user: &'static str,
    peer: &'static str,
}

fn spawn_peer(server: &Server, p: &PeerSpec, token: &str) -> Running {
    let dir = e2e_dir();
    let mut cmd = match p.lib {
        Lib::Slixmpp => {
            let mut c = Command::new(dir.join(".venv").join("bin").join("python"));
            c.arg(dir.join("slixmpp_peer.py"));
            c
        }
        Lib::XmppJs => {
            let mut c = Command::new("node");
            c.arg(dir.join("node").join("peer.mjs"));
            // @xmpp/client passes no CA to node:tls; trust comes from this variable.
            c.env("NODE_EXTRA_CA_CERTS", &server.cert);
            c
        }
    };
    cmd.args(["--role", p.role])
        .args(["--jid", &format!("{}@{DOMAIN}", p.user)])
        .args(["--password", &password_of(p.user)])
        .args(["--peer", &format!("{}@{DOMAIN}", p.peer)])
        .args(["--domain", DOMAIN])
        .args(["--starttls-port", &server.starttls_port.to_string()])
        .args(["--tls-port", &server.tls_port.to_string()])
        .arg("--ca")
        .arg(&server.cert)
        .args(["--token", token])
        .args(["--mech", p.lib.mechanism()])
        .args(["--timeout", &STEP_TIMEOUT_SECS.to_string()])
        .current_dir(&server.dir.0)
        .stdin(Stdio::null());
    let label = format!("{} {} ({})", p.lib.name(), p.user, p.role);
    let out = server.dir.0.join(format!("peer-{}.log", p.user));
    let file = fs::File::create(&out).expect("create a peer log");
    let err = file.try_clone().expect("clone a file handle");
    cmd.stdout(file).stderr(err);
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start the {label} client: {e}"));
    Running::new(label, child, out)
}

fn password_of(user: &str) -> String {
    format!("pw-{user}-S3cret")
}

fn token(test: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!("{test}-{}-{nanos:x}", std::process::id())
}

/// Starts a server on `runtime` whose accounts are `users`, each with its
/// [`password_of`].
fn start_with_users(runtime: &str, test: &str, users: &[&str]) -> Server {
    let passwords: Vec<String> = users.iter().map(|u| password_of(u)).collect();
    let creds: Vec<(&str, &str)> = users
        .iter()
        .copied()
        .zip(passwords.iter().map(String::as_str))
        .collect();
    Server::start(runtime, test, &creds)
}

/// Starts a server with the users of `pairs`, runs every pair's two clients at once
/// (all pairs concurrently), and checks that all of them passed.
fn run_pairs(runtime: &str, test: &str, pairs: &[(PeerSpec, PeerSpec)]) {
    setup();
    let mut users = Vec::new();
    for (a, b) in pairs {
        users.push(a.user);
        users.push(b.user);
    }
    let started = Instant::now();
    let server = start_with_users(runtime, test, &users);
    let token = token(&format!("{test}-{runtime}"));
    let mut running = Vec::new();
    for (a, b) in pairs {
        running.push(spawn_peer(&server, a, &token));
        running.push(spawn_peer(&server, b, &token));
    }
    finish(running);
    eprintln!(
        "[e2e] {test} on {runtime} passed in {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

on_every_runtime! {
fn slixmpp_with_slixmpp(runtime) {
    run_pairs(
        runtime,
        "slixmpp",
        &[(
            PeerSpec {
                lib: Lib::Slixmpp,
                role: "a",
                user: "alice",
                peer: "bob",
            },
            PeerSpec {
                lib: Lib::Slixmpp,
                role: "b",
                user: "bob",
                peer: "alice",
            },
        )],
    );
}

fn xmppjs_with_xmppjs(runtime) {
    run_pairs(
        runtime,
        "xmppjs",
        &[(
            PeerSpec {
                lib: Lib::XmppJs,
                role: "a",
                user: "carol",
                peer: "dave",
            },
            PeerSpec {
                lib: Lib::XmppJs,
                role: "b",
                user: "dave",
                peer: "carol",
            },
        )],
    );
}

/// slixmpp and @xmpp/client users with each other, once with each library in each
/// role; both pairs at the same time on one server.
fn slixmpp_with_xmppjs(runtime) {
    run_pairs(
        runtime,
        "cross",
        &[
            (
                PeerSpec {
                    lib: Lib::Slixmpp,
                    role: "a",
                    user: "erin",
                    peer: "frank",
                },
                PeerSpec {
                    lib: Lib::XmppJs,
                    role: "b",
                    user: "frank",
                    peer: "erin",
                },
            ),
            (
                PeerSpec {
                    lib: Lib::XmppJs,
                    role: "a",
                    user: "grace",
                    peer: "heidi",
                },
                PeerSpec {
                    lib: Lib::Slixmpp,
                    role: "b",
                    user: "heidi",
                    peer: "grace",
                },
            ),
        ],
    );
}
}

/// Runs one scenario script (both users in one process) against a fresh server.
fn run_script(runtime: &str, test: &str, lib: Lib, users: [&str; 2]) {
    setup();
    let passwords: Vec<String> = users.iter().map(|u| password_of(u)).collect();
    let started = Instant::now();
    let server = start_with_users(runtime, test, &users);
    let dir = e2e_dir();
    let mut cmd = match lib {
        Lib::Slixmpp => {
            let mut c = Command::new(dir.join(".venv").join("bin").join("python"));
            c.arg(dir.join("slixmpp_sm.py")).arg("--ca").arg(&server.cert);
            c
        }
        Lib::XmppJs => {
            let mut c = Command::new("node");
            c.arg(dir.join("node").join("fast_sm.mjs"));
            c.env("NODE_EXTRA_CA_CERTS", &server.cert);
            c
        }
    };
    cmd.args(["--jid-a", &format!("{}@{DOMAIN}", users[0])])
        .args(["--jid-b", &format!("{}@{DOMAIN}", users[1])])
        .args(["--password-a", &passwords[0]])
        .args(["--password-b", &passwords[1]])
        .args(["--tls-port", &server.tls_port.to_string()])
        .args(["--token", &token(&format!("{test}-{runtime}"))])
        .args(["--timeout", &STEP_TIMEOUT_SECS.to_string()])
        .current_dir(&server.dir.0)
        .stdin(Stdio::null());
    let label = format!("{} {test}", lib.name());
    let out = server.dir.0.join(format!("{test}.log"));
    let file = fs::File::create(&out).expect("create a script log");
    let err = file.try_clone().expect("clone a file handle");
    cmd.stdout(file).stderr(err);
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start the {label} script: {e}"));
    finish(vec![Running::new(label, child, out)]);
    eprintln!(
        "[e2e] {test} on {runtime} passed in {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

on_every_runtime! {
/// @xmpp/client: SASL2 + Bind 2 login with a FAST token request, reconnect with the
/// token alone, messages, and a cut connection resumed inline with nothing lost.
fn xmppjs_fast_token_and_resumption(runtime) {
    run_script(runtime, "fast-sm", Lib::XmppJs, ["ivan", "judy"]);
}

/// slixmpp: stream management enabled after binding, a cut connection resumed with
/// `<resume/>`, nothing lost and nothing twice.
fn slixmpp_stream_resumption(runtime) {
    run_script(runtime, "slixmpp-sm", Lib::Slixmpp, ["mallory", "niaj"]);
}
}
