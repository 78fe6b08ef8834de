//! What the binary-level tests share: a temporary directory, free ports, a
//! certificate, and a running `meerkat` with a MongooseIM-shaped config, killed on drop
//! (its output printed when the test fails).

#![allow(dead_code)] // each test binary uses its own part of this

use std::fmt::Write as _;
use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The served domain.
pub const DOMAIN: &str = "localhost";

/// The runtimes every end-to-end test runs on (the default build has all three).
pub const RUNTIMES: [&str; 3] = ["tokio", "smol", "glommio"];

/// Defines, for each `fn name(runtime) { body }`, a module `name` with one test per
/// runtime (`name::tokio`, `name::smol`, `name::glommio`), each running the body with
/// `runtime` bound to the runtime's name: the same test, parametrised by runtime.
#[macro_export]
macro_rules! on_every_runtime {
    ($($(#[$meta:meta])* fn $name:ident($rt:ident) $body:block)*) => {
        $(
            $(#[$meta])*
            mod $name {
                #[allow(unused_imports)]
                use super::*;
                fn run($rt: &'static str) $body
                #[test]
                fn tokio() { run("tokio") }
                #[test]
                fn smol() { run("smol") }
                #[test]
                fn glommio() { run("glommio") }
            }
        )*
    };
}
/// How long the server may take to listen after it starts.
const SERVER_START: Duration = Duration::from_secs(30);

/// A temporary directory, removed on drop unless the test is failing (then kept and
/// named, for a look at the server's files).
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
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
pub fn free_port() -> u16 {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

pub fn tail(path: &Path, max_lines: usize) -> String {
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
pub struct Server {
    child: Option<Child>,
    stdout: PathBuf,
    stderr: PathBuf,
    /// The STARTTLS listener's port.
    pub starttls_port: u16,
    /// The direct-TLS listener's port.
    pub tls_port: u16,
    /// The plain HTTP listener's port: metrics at `/metrics`, WebSocket at
    /// `/ws-xmpp`, BOSH at `/http-bind`, health at `/health`.
    pub http_port: u16,
    /// The HTTPS listener's port: WebSocket at `/ws-xmpp`, BOSH at `/http-bind`.
    pub https_port: u16,
    /// The certificate clients must trust.
    pub cert: PathBuf,
    /// The config file.
    pub config: PathBuf,
    // Last, so that it is removed after the server is stopped.
    pub dir: TempDir,
}

impl Server {
    /// Writes a config for two C2S listeners (STARTTLS and direct TLS) on `runtime`,
    /// with a fresh
    /// certificate, creates `users` (name, password), starts the server and waits until
    /// both ports accept connections.
    pub fn start(runtime: &str, name: &str, users: &[(&str, &str)]) -> Server {
        Self::start_with(runtime, name, users, "")
    }

    /// [`Server::start`] with `general` added to the `[general]` section.
    pub fn start_with(runtime: &str, name: &str, users: &[(&str, &str)], general: &str) -> Server {
        let dir = TempDir::new(&format!("{name}-{runtime}"));
        let cert = dir.0.join("cert.pem");
        let key = dir.0.join("key.pem");
        make_cert(&cert, &key);
        let mut ports: Vec<u16> = Vec::new();
        while ports.len() < 4 {
            let p = free_port();
            if !ports.contains(&p) {
                ports.push(p);
            }
        }
        let (starttls_port, tls_port, http_port, https_port) = (ports[0], ports[1], ports[2], ports[3]);
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
runtime = "{runtime}"
# Two threads, so two hub shards: users on different shards talk across them.
threads = 2
{general}

[[listen.c2s]]
port = {starttls_port}
ip_address = "127.0.0.1"
tls.mode = "starttls"
{tls}
[[listen.c2s]]
port = {tls_port}
ip_address = "127.0.0.1"
tls.mode = "tls"
tls.session_tickets = "stateless"
tls.early_data = true
{tls}
[[listen.http]]
port = {http_port}
ip_address = "127.0.0.1"

[[listen.http.handlers.mongoose_prometheus_handler]]
host = "_"
path = "/metrics"

[[listen.http.handlers.mongoose_websocket_handler]]
host = "_"
path = "/ws-xmpp"

[[listen.http.handlers.mongoose_bosh_handler]]
host = "_"
path = "/http-bind"

[[listen.http]]
port = {https_port}
ip_address = "127.0.0.1"
{tls}
[[listen.http.handlers.mongoose_websocket_handler]]
host = "_"
path = "/ws-xmpp"

[[listen.http.handlers.mongoose_bosh_handler]]
host = "_"
path = "/http-bind"

[auth]
methods = ["rdbms"]
sasl_mechanisms = ["scram_sha256", "scram_sha1", "plain"]

[outgoing_pools.rdbms.default.connection]
driver = "sqlite"
database = {db}

[modules.mod_offline]

[modules.mod_register]

[modules.mod_stream_management]
resume_timeout = 30

[modules.mod_carbons]

[modules.mod_csi]

[modules.mod_fast_auth_token]

[modules.mod_bosh]
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
            http_port,
            https_port,
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

    pub fn meerkat(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_meerkat"));
        cmd.arg("--config")
            .arg(&self.config)
            .current_dir(&self.dir.0)
            .stdin(Stdio::null());
        cmd
    }

    pub fn user_add(&self, jid: &str, password: &str) {
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

    /// What the server wrote to standard error so far (its log).
    pub fn log(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).expect("server running")
    }

    /// The running process, for signals and exit checks.
    pub fn child(&mut self) -> &mut Child {
        self.child.as_mut().expect("server running")
    }

    fn wait_listening(&mut self) {
        let deadline = Instant::now() + SERVER_START;
        let mut pending = vec![self.starttls_port, self.tls_port, self.http_port, self.https_port];
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
pub fn toml_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A self-signed P-256 end-entity certificate for DOMAIN; the clients trust exactly
/// this file.
pub fn make_cert(cert: &Path, key: &Path) {
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
        // An end-entity certificate: strict verifiers (rustls, webpki) refuse a CA
        // certificate presented as the server's own.
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "extendedKeyUsage=serverAuth"])
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

/// The stream header a plain-text client sends to DOMAIN.
pub const STREAM_OPEN: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";

/// Connects to `port`, opens a stream in clear and reads up to the end of the features.
pub fn open_plain_stream(port: u16) -> TcpStream {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("read timeout");
    s.write_all(STREAM_OPEN.as_bytes())
        .expect("send the stream header");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("</stream:features>") {
        let n = s.read(&mut buf).expect("features");
        assert!(n > 0, "closed before features");
        got.extend_from_slice(&buf[..n]);
    }
    s
}

/// Everything the server writes on `s` until it closes the connection.
pub fn read_until_closed(s: &mut TcpStream) -> String {
    use std::io::Read;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// The repository's root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("server/ has a parent")
        .to_path_buf()
}

/// Where the end-to-end clients live (tests/e2e).
pub fn e2e_dir() -> PathBuf {
    repo_root().join("tests").join("e2e")
}

/// Runs tests/e2e/setup.sh once per process; every test fails if it failed.
pub fn e2e_setup() {
    static SETUP: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
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
