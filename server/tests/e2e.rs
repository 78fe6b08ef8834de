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
//! tests/e2e/setup.sh installs the clients first (once per test process); if it
//! fails, the tests fail. Nothing here is skipped.

use std::fmt::Write as _;
use std::fs;
use std::io::Read as _;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const DOMAIN: &str = "localhost";
/// How long the server may take to listen after it starts.
const SERVER_START: Duration = Duration::from_secs(30);
/// Per-wait timeout handed to the client scripts (seconds).
const STEP_TIMEOUT_SECS: u32 = 20;
/// Hard limit for one client process.
const PEER_LIMIT: Duration = Duration::from_secs(120);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("server/ has a parent")
        .to_path_buf()
}

fn e2e_dir() -> PathBuf {
    repo_root().join("tests").join("e2e")
}

/// Runs tests/e2e/setup.sh once per process; every test fails if it failed.
fn setup() {
    static SETUP: OnceLock<Result<(), String>> = OnceLock::new();
    let result = SETUP.get_or_init(|| {
        let script = e2e_dir().join("setup.sh");
        let started = Instant::now();
        let out = Command::new("bash")
            .arg(&script)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() {
            eprintln!("[e2e] setup done in {:.1}s", started.elapsed().as_secs_f64());
            Ok(())
        } else {
            Err(format!("{} failed ({}):\n{text}", script.display(), out.status))
        }
    });
    if let Err(e) = result {
        panic!("e2e setup failed, the clients are not installed: {e}");
    }
}

/// A temporary directory, removed on drop unless the test is failing (then kept and
/// named, for a look at the server's files).
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos();
        let path = std::env::temp_dir().join(format!("meerkat-e2e-{name}-{}-{nanos:x}", std::process::id()));
        fs::create_dir_all(&path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("[e2e] kept {} for inspection", self.0.display());
        } else {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

fn tail(path: &Path, max_lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_else(|e| format!("(cannot read {}: {e})", path.display()));
    let lines: Vec<&str> = text.lines().collect();
    let skip = lines.len().saturating_sub(max_lines);
    let mut out = String::new();
    if skip > 0 {
        let _ = writeln!(out, "... ({skip} earlier lines in {})", path.display());
    }
    for l in &lines[skip..] {
        let _ = writeln!(out, "{l}");
    }
    out
}

/// A running `meerkat`, killed on drop; its output is printed if the test fails.
struct Server {
    child: Option<Child>,
    stdout: PathBuf,
    stderr: PathBuf,
    starttls_port: u16,
    tls_port: u16,
    cert: PathBuf,
    config: PathBuf,
    // Last, so that it is removed after the server is stopped.
    dir: TempDir,
}

impl Server {
    /// Writes a config for two C2S listeners (STARTTLS and direct TLS) with a fresh
    /// certificate, creates `users` (name, password), starts the server and waits until
    /// both ports accept connections.
    fn start(name: &str, users: &[(&str, &str)]) -> Server {
        let dir = TempDir::new(name);
        let cert = dir.0.join("cert.pem");
        let key = dir.0.join("key.pem");
        make_cert(&cert, &key);
        let starttls_port = free_port();
        let mut tls_port = free_port();
        while tls_port == starttls_port {
            tls_port = free_port();
        }
        let config = dir.0.join("meerkat.toml");
        let db = dir.0.join("meerkat.db");
        let tls = format!(
            "tls.certfile = {}\ntls.keyfile = {}\n",
            toml_str(&cert.to_string_lossy()),
            toml_str(&key.to_string_lossy())
        );
        let text = format!(
            r#"[general]
hosts = ["{DOMAIN}"]

[[listen.c2s]]
port = {starttls_port}
ip_address = "127.0.0.1"
tls.mode = "starttls"
{tls}
[[listen.c2s]]
port = {tls_port}
ip_address = "127.0.0.1"
tls.mode = "tls"
{tls}
[auth]
methods = ["rdbms"]
sasl_mechanisms = ["scram_sha256", "scram_sha1", "plain"]

[outgoing_pools.rdbms.default.connection]
driver = "sqlite"
database = {db}

[modules.mod_offline]

[modules.mod_register]
"#,
            db = toml_str(&db.to_string_lossy()),
        );
        fs::write(&config, text).expect("write the config");

        let mut server = Server {
            child: None,
            stdout: dir.0.join("meerkat.stdout"),
            stderr: dir.0.join("meerkat.stderr"),
            starttls_port,
            tls_port,
            cert,
            config,
            dir,
        };
        for (user, password) in users {
            server.user_add(&format!("{user}@{DOMAIN}"), password);
        }
        server.spawn();
        server.wait_listening();
        server
    }

    fn meerkat(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_meerkat"));
        cmd.arg("--config")
            .arg(&self.config)
            .current_dir(&self.dir.0)
            .stdin(Stdio::null());
        cmd
    }

    fn user_add(&self, jid: &str, password: &str) {
        let out = self
            .meerkat()
            .args(["user", "add", jid, password])
            .output()
            .unwrap_or_else(|e| panic!("cannot run meerkat user add: {e}"));
        assert!(
            out.status.success(),
            "`meerkat --config {} user add {jid} ...` failed ({}):\n{}{}",
            self.config.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn spawn(&mut self) {
        let stdout = fs::File::create(&self.stdout).expect("create the server's stdout file");
        let stderr = fs::File::create(&self.stderr).expect("create the server's stderr file");
        let child = self
            .meerkat()
            .env("RUST_BACKTRACE", "1")
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start meerkat: {e}"));
        self.child = Some(child);
    }

    fn wait_listening(&mut self) {
        let deadline = Instant::now() + SERVER_START;
        let mut pending = vec![self.starttls_port, self.tls_port];
        while !pending.is_empty() {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!(
                    "meerkat exited ({status}) before listening on ports {pending:?}; config {}",
                    self.config.display()
                );
            }
            assert!(
                Instant::now() < deadline,
                "meerkat is not listening on 127.0.0.1 ports {pending:?} after {SERVER_START:?}"
            );
            pending.retain(|&port| {
                let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
                TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err()
            });
            if !pending.is_empty() {
                thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let mut status = None;
        if let Some(mut child) = self.child.take() {
            status = child.try_wait().ok().flatten();
            if status.is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        if thread::panicking() {
            let how = match status {
                Some(s) => format!("had exited by itself: {s}"),
                None => "was still running (killed)".to_string(),
            };
            eprintln!(
                "[e2e] meerkat {how}; config {}\n----- meerkat stderr -----\n{}----- meerkat stdout -----\n{}-----",
                self.config.display(),
                tail(&self.stderr, 300),
                tail(&self.stdout, 100)
            );
        }
    }
}

/// A TOML basic string.
fn toml_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A self-signed P-256 certificate for DOMAIN; the clients trust exactly this file.
fn make_cert(cert: &Path, key: &Path) {
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .args(["-subj", &format!("/CN={DOMAIN}")])
        .args(["-addext", &format!("subjectAltName=DNS:{DOMAIN}")])
        .args(["-days", "2", "-keyout"])
        .arg(key)
        .arg("-out")
        .arg(cert)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl (tests/e2e/setup.sh installs it): {e}"));
    assert!(
        out.status.success(),
        "openssl could not make a certificate ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
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

struct Running {
    label: String,
    child: Child,
    out: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
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
    Running { label, child, out }
}

fn password_of(user: &str) -> String {
    format!("pw-{user}-S3cret")
}

/// Waits for every client (killing those past `PEER_LIMIT`); panics with all their
/// output if any failed.
fn finish(mut running: Vec<Running>) {
    let deadline = Instant::now() + PEER_LIMIT;
    let mut results: Vec<Option<Result<ExitStatus, String>>> = running.iter().map(|_| None).collect();
    while results.iter().any(Option::is_none) {
        for (r, res) in running.iter_mut().zip(results.iter_mut()) {
            if res.is_some() {
                continue;
            }
            match r.child.try_wait() {
                Ok(Some(status)) => *res = Some(Ok(status)),
                Ok(None) if Instant::now() >= deadline => {
                    let _ = r.child.kill();
                    let _ = r.child.wait();
                    *res = Some(Err(format!("killed after {PEER_LIMIT:?}")));
                }
                Ok(None) => {}
                Err(e) => *res = Some(Err(format!("wait failed: {e}"))),
            }
        }
        thread::sleep(Duration::from_millis(50));
    }
    let mut report = String::new();
    let mut failed = Vec::new();
    for (r, res) in running.iter().zip(results) {
        let mut text = String::new();
        if let Ok(mut f) = fs::File::open(&r.out) {
            let _ = f.read_to_string(&mut text);
        }
        let res = res.expect("every result is set");
        let passed = matches!(&res, Ok(s) if s.success()) && text.contains("E2E-PEER PASS");
        if !passed {
            failed.push(format!(
                "{} ({})",
                r.label,
                res.map_or_else(|e| e, |s| s.to_string())
            ));
        }
        let _ = writeln!(report, "----- {} -----\n{}", r.label, text.trim_end());
    }
    // Shown by the test harness on failure, or with --nocapture.
    println!("{report}");
    assert!(
        failed.is_empty(),
        "e2e client(s) failed: {}\n{report}",
        failed.join(", ")
    );
}

fn token(test: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!("{test}-{}-{nanos:x}", std::process::id())
}

/// Starts a server with the users of `pairs`, runs every pair's two clients at once
/// (all pairs concurrently), and checks that all of them passed.
fn run_pairs(test: &str, pairs: &[(PeerSpec, PeerSpec)]) {
    setup();
    let mut users = Vec::new();
    for (a, b) in pairs {
        users.push(a.user);
        users.push(b.user);
    }
    let passwords: Vec<String> = users.iter().map(|u| password_of(u)).collect();
    let creds: Vec<(&str, &str)> = users
        .iter()
        .copied()
        .zip(passwords.iter().map(String::as_str))
        .collect();
    let started = Instant::now();
    let server = Server::start(test, &creds);
    let token = token(test);
    let mut running = Vec::new();
    for (a, b) in pairs {
        running.push(spawn_peer(&server, a, &token));
        running.push(spawn_peer(&server, b, &token));
    }
    finish(running);
    eprintln!("[e2e] {test} passed in {:.1}s", started.elapsed().as_secs_f64());
}

#[test]
fn slixmpp_with_slixmpp() {
    run_pairs(
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

#[test]
fn xmppjs_with_xmppjs() {
    run_pairs(
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
#[test]
fn slixmpp_with_xmppjs() {
    run_pairs(
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
