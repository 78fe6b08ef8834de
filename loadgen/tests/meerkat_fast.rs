//! The load generator's SASL2 and FAST login paths against the real `meerkat` binary on its
//! embedded default configuration (ports moved to free ones, users made with `meerkat user
//! add`), over real sockets and STARTTLS: the protocol is the server's, not a mock's.
//!
//! The server binary is (re)built by cargo in this test's profile, so it is never stale:
//! it is another package's binary, which `cargo test -p meerkat-loadgen` alone would not
//! build.

mod common;
use common::num;

use std::fs;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const SESSIONS: usize = 6;
const PASSWORD: &str = "password";

/// The `meerkat` binary next to this test's loadgen, built once per test process.
fn meerkat() -> PathBuf {
    static BUILT: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = built.as_ref() {
        return p.clone();
    }
    let loadgen = PathBuf::from(env!("CARGO_BIN_EXE_meerkat-loadgen"));
    let path = loadgen.with_file_name(format!("meerkat{}", std::env::consts::EXE_SUFFIX));
    let release = loadgen
        .parent()
        .and_then(|p| p.file_name())
        .is_some_and(|n| n == "release");
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["build", "--quiet", "-p", "meerkat", "--bin", "meerkat"]);
    if release {
        cmd.arg("--release");
    }
    let status = cmd.status().expect("run cargo build -p meerkat");
    assert!(status.success(), "building meerkat failed");
    assert!(path.exists(), "no server binary at {}", path.display());
    *built = Some(path.clone());
    path
}

/// A port nobody listens on now, never the same twice in this process.
fn free_port() -> u16 {
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    loop {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .expect("an ephemeral port")
            .port();
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// `meerkat` on the embedded default config in a scratch directory, killed on drop.
struct Server {
    child: Child,
    dir: PathBuf,
    starttls_port: u16,
}

impl Server {
    /// Starts the server on `server/src/config/default.toml`, with `fast_options` added to
    /// its `[modules.mod_fast_auth_token]`, and users `user0..user{SESSIONS}`.
    fn start(name: &str, fast_options: &str) -> Server {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos();
        let dir = std::env::temp_dir().join(format!("loadgen-{name}-{}-{nanos:x}", std::process::id()));
        fs::create_dir_all(&dir).expect("scratch directory");
        let default = Path::new(env!("CARGO_MANIFEST_DIR")).join("../server/src/config/default.toml");
        let mut config = fs::read_to_string(&default).expect("the embedded default config");
        let starttls_port = free_port();
        for (from, to) in [
            (5222, starttls_port),
            (5223, free_port()),
            (5280, free_port()),
            (9091, free_port()),
        ] {
            let (from, to) = (format!("port = {from}\n"), format!("port = {to}\n"));
            assert!(config.contains(&from), "default.toml has {from}");
            config = config.replace(&from, &to);
        }
        let fast = "[modules.mod_fast_auth_token]\n";
        assert!(config.contains(fast), "default.toml enables FAST");
        config = config.replace(fast, &format!("{fast}{fast_options}"));
        fs::write(dir.join("m.toml"), config).expect("config");
        let bin = meerkat();
        for i in 0..SESSIONS {
            let out = Command::new(&bin)
                .current_dir(&dir)
                .args([
                    "--config",
                    "m.toml",
                    "user",
                    "add",
                    &format!("user{i}@localhost"),
                    PASSWORD,
                ])
                .output()
                .expect("meerkat user add");
            assert!(
                out.status.success(),
                "user add: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let child = Command::new(&bin)
            .current_dir(&dir)
            .args(["--config", "m.toml"])
            .stdout(Stdio::null())
            .stderr(fs::File::create(dir.join("server.log")).expect("log file"))
            .spawn()
            .expect("start meerkat");
        let mut server = Server {
            child,
            dir,
            starttls_port,
        };
        let until = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect((Ipv4Addr::LOCALHOST, starttls_port)).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("meerkat exited ({status}): {}", server.log());
            }
            assert!(Instant::now() < until, "meerkat did not listen: {}", server.log());
            thread::sleep(Duration::from_millis(50));
        }
        server
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// Runs the load generator against this server, with its pid for /proc measurements.
    fn loadgen(&self, args: &[&str]) -> (Output, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_meerkat-loadgen"))
            .args(["--addr", &format!("127.0.0.1:{}", self.starttls_port)])
            .args(["-n", &SESSIONS.to_string(), "--password", PASSWORD])
            .args(["--json", "--quiet", "--timeout", "120"])
            .args(["--server-pid", &self.child.id().to_string()])
            .args(args)
            .output()
            .expect("run meerkat-loadgen");
        let json = String::from_utf8_lossy(&out.stdout).to_string();
        eprintln!(
            "loadgen {args:?}: {json}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (out, json)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!("server log:\n{}", self.log());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// A reconnect storm: every session reconnects about every 0.2 s for 3 s.
const STORM: [&str; 6] = [
    "--scenario",
    "reconnect",
    "--duration",
    "3",
    "--reconnect-hold",
    "0.2",
];

#[test]
fn sasl2_logins_and_fast_reconnects_against_the_embedded_default() {
    let server = Server::start("fast", "");
    let n = SESSIONS as f64;

    // SASL2 with SCRAM-SHA-1 and Bind 2: no token asked for, none used.
    let (out, json) = server.loadgen(&["--auth", "sasl2", "--hold", "0"]);
    assert!(out.status.success(), "clean run: {json}");
    assert_eq!(num(&json, "sessions", "established"), n);
    assert_eq!(num(&json, "logins", "sasl2"), n);
    assert_eq!(num(&json, "logins", "fast_tokens"), 0.0);

    // FAST: the first login of each session is SASL2 + SCRAM asking for a token, every
    // reconnect authenticates with the token.
    let (out, json) = server.loadgen(&[&["--auth", "fast"][..], &STORM].concat());
    assert!(out.status.success(), "clean run: {json}");
    assert!(json.contains("\"auth\":\"fast\""), "{json}");
    assert_eq!(num(&json, "sessions", "established"), n);
    let reconnects = num(&json, "reconnect", "succeeded");
    assert!(
        reconnects >= 2.0 * n,
        "several reconnects per session, got {reconnects}"
    );
    assert_eq!(num(&json, "reconnect", "failed"), 0.0, "{json}");
    assert_eq!(
        num(&json, "logins", "sasl2"),
        n,
        "only first logins use the password"
    );
    assert_eq!(
        num(&json, "logins", "fast"),
        reconnects,
        "every reconnect used its token"
    );
    assert_eq!(num(&json, "logins", "sasl1"), 0.0);
    assert_eq!(
        num(&json, "logins", "fast_tokens"),
        n,
        "one token per session, no rotation due"
    );
    assert_eq!(num(&json, "client", "pbkdf2_runs"), n, "SCRAM once per user");
    assert_eq!(
        num(&json, "client", "pbkdf2_cached"),
        0.0,
        "no SCRAM on a FAST reconnect"
    );
}

#[test]
fn fast_reconnects_take_the_rotated_token() {
    // Tokens due for rotation from the start: the server sends a new one in every FAST
    // success (XEP-0484 §3.3), and the session logs in with it next time. (The server still
    // accepts the token it replaced, so that a session keeps the new one is checked by the
    // unit test of sasl2::Device, not here.)
    let server = Server::start(
        "fast-rotate",
        "  validity_period.rotate_before_expire = {value = 4, unit = \"days\"}\n",
    );
    let n = SESSIONS as f64;
    let (out, json) =
        server.loadgen(&[&["--auth", "fast", "--mechanism", "scram-sha-256"][..], &STORM].concat());
    assert!(out.status.success(), "clean run: {json}");
    let reconnects = num(&json, "reconnect", "succeeded");
    assert!(
        reconnects >= 2.0 * n,
        "several reconnects per session, got {reconnects}"
    );
    assert_eq!(num(&json, "reconnect", "failed"), 0.0, "{json}");
    assert_eq!(num(&json, "logins", "fast"), reconnects);
    assert_eq!(
        num(&json, "logins", "fast_tokens"),
        n + reconnects,
        "a token on each first login and a rotated one on each reconnect"
    );
}
