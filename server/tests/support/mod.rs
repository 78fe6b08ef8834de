//! What the binary-level tests share: a temporary directory, free ports, a
//! certificate, and a running `meerkat` with a MongooseIM-shaped config, killed on drop
//! (its output printed when the test fails).

#![allow(dead_code)] // each test binary uses its own part of this

pub mod dns;
pub mod peers;

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
/// Never the same port twice in one test process: a port is only probed free, not
/// held, so two calls before anyone binds could otherwise get the same one (seen:
/// Meerkat's S2S listener and ejabberd's given one port, ejabberd `eaddrinuse`).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind an ephemeral port");
        let port = l.local_addr().expect("local addr").port();
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
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
    /// More ports to wait for at start.
    pub extra_ports: Vec<u16>,
    // Last, so that it is removed after the server is stopped.
    pub dir: TempDir,
}

impl Server {
    /// Writes a config for two C2S listeners (STARTTLS and direct TLS) on `runtime`,
    /// with a fresh
    /// certificate, creates `users` (name, password), starts the server and waits until
    /// both ports accept connections.
    pub fn start(runtime: &str, name: &str, users: &[(&str, &str)]) -> Server {
        Self::start_with(runtime, name, users, Extra::default())
    }

    /// [`Server::start`] with more: another domain, more certificate names, more
    /// config (listeners, `[s2s]`) and more ports to wait for.
    pub fn start_with(runtime: &str, name: &str, users: &[(&str, &str)], extra: Extra) -> Server {
        let domain = extra.domain.clone().unwrap_or_else(|| DOMAIN.to_string());
        let dir = TempDir::new(&format!("{name}-{runtime}"));
        let cert = dir.0.join("cert.pem");
        let key = dir.0.join("key.pem");
        let mut names = vec![domain.clone()];
        names.extend(extra.cert_names.iter().cloned());
        make_cert_signed(
            &cert,
            &key,
            &names,
            extra.ca.as_ref().map(|(c, k)| (c.as_path(), k.as_path())),
        );
        // free_port never hands out the same port twice.
        let (starttls_port, tls_port) = (free_port(), free_port());
        let (http_port, https_port) = (free_port(), free_port());
        let config = dir.0.join("meerkat.toml");
        let db = dir.0.join("meerkat.db");
        let tls = format!(
            "tls.certfile = {}\ntls.keyfile = {}\n",
            toml_str(&cert.to_string_lossy()),
            toml_str(&key.to_string_lossy())
        );
        let text = format!(
            r#"[general]
hosts = ["{domain}"]
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
{extra_toml}
"#,
            db = toml_str(&db.to_string_lossy()),
            extra_toml = extra.toml.replace("{tls}", &tls),
            general = extra.general,
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
            extra_ports: Vec::new(),
            dir,
        };
        for (user, password) in users {
            server.user_add(&format!("{user}@{domain}"), password);
        }
        server.extra_ports = extra.ports;
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

    /// What the server has logged so far (its stderr).
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
        pending.extend(self.extra_ports.iter().copied());
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

/// More for [`Server::start_with`]. In `toml`, `{tls}` stands for the
/// `tls.certfile`/`tls.keyfile` lines of the server's certificate.
#[derive(Default)]
pub struct Extra {
    /// The served domain instead of DOMAIN.
    pub domain: Option<String>,
    /// More DNS names in the certificate.
    pub cert_names: Vec<String>,
    /// Appended to the config.
    pub toml: String,
    /// A CA (certificate, key) to sign the server's certificate with.
    pub ca: Option<(PathBuf, PathBuf)>,
    /// More ports to wait for.
    pub ports: Vec<u16>,
    /// Added to the `[general]` section.
    pub general: String,
}

/// A self-signed P-256 end-entity certificate for DOMAIN; the clients trust exactly
/// this file.
pub fn make_cert(cert: &Path, key: &Path) {
    make_cert_for(cert, key, &[DOMAIN.to_string()])
}

/// A self-signed P-256 end-entity certificate for `names` (the first is the CN),
/// for server and client use (S2S peers present it as a client certificate).
pub fn make_cert_for(cert: &Path, key: &Path, names: &[String]) {
    make_cert_signed(cert, key, names, None)
}

/// A test CA (certificate and key), for certificates that verify for their names
/// (SASL EXTERNAL between servers, XEP-0178).
pub fn make_ca(cert: &Path, key: &Path) {
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
        .args(["-subj", "/CN=Meerkat test CA"])
        .args(["-addext", "basicConstraints=critical,CA:TRUE"])
        .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        .args(["-days", "2", "-keyout"])
        .arg(key)
        .arg("-out")
        .arg(cert)
        .stdin(Stdio::null())
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl CA: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// [`make_cert_for`], signed by the CA (certificate, key) when given.
pub fn make_cert_signed(cert: &Path, key: &Path, names: &[String], ca: Option<(&Path, &Path)>) {
    let san: Vec<String> = names.iter().map(|n| format!("DNS:{n}")).collect();
    let mut cmd = Command::new("openssl");
    if let Some((ca_cert, ca_key)) = ca {
        cmd.args(["req", "-x509", "-CA"])
            .arg(ca_cert)
            .arg("-CAkey")
            .arg(ca_key);
    } else {
        cmd.args(["req", "-x509"]);
    }
    let out = cmd
        .args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"])
        .args(["-subj", &format!("/CN={}", names[0])])
        .args(["-addext", &format!("subjectAltName={}", san.join(","))])
        // An end-entity certificate: strict verifiers (rustls, webpki) refuse a CA
        // certificate presented as the server's own.
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "extendedKeyUsage=serverAuth,clientAuth"])
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

/// The metrics page of `server` (plain HTTP listener, `/metrics`), fetched with a
/// raw HTTP/1.1 GET.
pub fn metrics_page(server: &Server) -> String {
    use std::io::Write;
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, server.http_port)).expect("connect to /metrics");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .expect("send GET /metrics");
    let response = read_until_closed(&mut s);
    assert!(response.starts_with("HTTP/1.1 200"), "GET /metrics: {response}");
    response
}

/// The sum of every sample of `name` whose labels include `label` (e.g.
/// `connection_type="s2s"`) on a metrics page.
pub fn metric_sum(page: &str, name: &str, label: &str) -> f64 {
    page.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(label))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// The repository's root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("server/ has a parent")
        .to_path_buf()
}

/// tests/e2e, where the client scripts and setup scripts live.
pub fn e2e_dir() -> PathBuf {
    repo_root().join("tests").join("e2e")
}

/// Installs the end-to-end clients (tests/e2e/setup.sh) once per test process.
pub fn e2e_setup() {
    run_setup_once("setup.sh")
}

/// Runs the setup script tests/e2e/`script` once per test process; every caller
/// fails if it failed (nothing is skipped).
pub fn run_setup_once(script: &str) {
    use std::collections::HashMap;
    use std::sync::Mutex;
    static DONE: Mutex<Option<HashMap<String, Result<(), String>>>> = Mutex::new(None);
    let mut done = DONE.lock().unwrap_or_else(|e| e.into_inner());
    let results = done.get_or_insert_with(HashMap::new);
    let result = results.entry(script.to_string()).or_insert_with(|| {
        let path = e2e_dir().join(script);
        let started = Instant::now();
        let out = Command::new("bash")
            .arg(&path)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", path.display()))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() {
            eprintln!("[e2e] {script} done in {:.1}s", started.elapsed().as_secs_f64());
            Ok(())
        } else {
            Err(format!("{} failed ({}):\n{text}", path.display(), out.status))
        }
    });
    if let Err(e) = result {
        panic!("e2e setup failed: {e}");
    }
}

/// A client on a plain-text C2S stream (the STARTTLS listener, TLS not taken), for
/// tests that need a user but not a client library: SCRAM-SHA-256 login and raw
/// stanzas.
pub struct PlainClient {
    stream: TcpStream,
    buffer: String,
}

impl PlainClient {
    /// Logs `user@domain` in with `password` and binds `resource`.
    pub fn login(port: u16, domain: &str, user: &str, password: &str, resource: &str) -> PlainClient {
        use base64::Engine as _;
        use meerkat_engine::sasl::{ScramClient, ScramHash};
        let b64 = base64::engine::general_purpose::STANDARD;
        let stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let mut c = PlainClient {
            stream,
            buffer: String::new(),
        };
        let open = format!(
            "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
             xmlns:stream='http://etherx.jabber.org/streams' to='{domain}' version='1.0'>"
        );
        c.send(&open);
        c.read_until("</stream:features>", Duration::from_secs(10));
        let mut scram = ScramClient::new(
            ScramHash::Sha256,
            user,
            password,
            "e2eclientnonce",
            "n,,",
            Vec::new(),
        );
        c.send(&format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>{}</auth>",
            b64.encode(scram.first())
        ));
        let got = c.read_until("</challenge>", Duration::from_secs(10));
        let challenge = between(&got, ">", "</challenge>");
        let fin = scram
            .finish(&b64.decode(challenge).expect("base64"))
            .expect("server-first");
        c.send(&format!(
            "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</response>",
            b64.encode(fin)
        ));
        c.read_until("</success>", Duration::from_secs(10));
        c.send(&open);
        c.read_until("</stream:features>", Duration::from_secs(10));
        c.send(&format!(
            "<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>{resource}</resource></bind></iq>"
        ));
        c.read_until("</iq>", Duration::from_secs(10));
        c
    }

    /// The socket, for tests that read (or do not read) it themselves.
    pub fn into_stream(self) -> TcpStream {
        self.stream
    }

    /// Sends raw XML.
    pub fn send(&mut self, xml: &str) {
        use std::io::Write;
        self.stream.write_all(xml.as_bytes()).expect("send");
    }

    /// Reads until `needle` has arrived, returning (and consuming) everything up to
    /// and including it; panics with what came after `limit`.
    pub fn read_until(&mut self, needle: &str, limit: Duration) -> String {
        use std::io::Read;
        let deadline = Instant::now() + limit;
        loop {
            if let Some(i) = self.buffer.find(needle) {
                let rest = self.buffer.split_off(i + needle.len());
                return std::mem::replace(&mut self.buffer, rest);
            }
            assert!(
                Instant::now() < deadline,
                "waited {limit:?} for {needle:?}; got: {}",
                self.buffer
            );
            let mut buf = [0u8; 8192];
            match self.stream.read(&mut buf) {
                Ok(0) => panic!("closed while waiting for {needle:?}; got: {}", self.buffer),
                Ok(n) => self.buffer.push_str(&String::from_utf8_lossy(&buf[..n])),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("read: {e}"),
            }
        }
    }
}

fn between<'a>(s: &'a str, after: &str, before: &str) -> &'a str {
    let end = s.find(before).expect("end marker");
    let start = s[..end].rfind(after).expect("start marker") + after.len();
    &s[start..end]
}
