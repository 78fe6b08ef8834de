//! Federation with real peer servers from Debian's packages, on loopback: a user on
//! Meerkat and a user on Prosody, and on ejabberd, run the full e2e scenario of
//! tests/e2e/slixmpp_peer.py against each other, across S2S: subscription handshake
//! both ways, presence, messages both ways, and messages stored offline at the
//! other's server. Both directions of S2S use STARTTLS; servers authenticate with
//! Server Dialback (self-signed certificates, `tls.verify_mode = "none"`: Prosody
//! and ejabberd) or SASL EXTERNAL (XEP-0178: certificates from one test CA,
//! `tls.verify_mode = "peer"` and `tls.cacertfile`: ejabberd).
//!
//! The peers run as plain foreground processes with configs written into the
//! test's temporary folder, and reach Meerkat through static routes (Meerkat's
//! `s2s.outgoing.address` the other way), so every port is ephemeral and no DNS is
//! needed (ejabberd, which has no static routes, asks a test DNS server for
//! Meerkat's SRV record). tests/e2e/setup-peers.sh installs both (apt-get) if
//! missing.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::dns::TestDns;
use support::peers::{finish, Running};
use support::{e2e_dir, free_port, make_cert_for, run_setup_once, tail, Extra, Server, TempDir};

const MEERKAT: &str = "meerkat.test";

/// Prosody's dialback secret, known to the test so that it can authenticate a stream
/// of its own as Prosody's domain.
const PROSODY_DIALBACK_SECRET: &str = "prosody-dialback-secret";

/// One user's login on one server, for slixmpp_peer.py.
struct Endpoint {
    jid: String,
    password: String,
    domain: String,
    starttls_port: u16,
    tls_port: u16,
    ca: PathBuf,
}

fn spawn_peer(dir: &Path, role: &str, me: &Endpoint, peer: &Endpoint, token: &str) -> Running {
    let e2e = e2e_dir();
    let out = dir.join(format!("peer-{}.log", me.jid.replace('@', "_at_")));
    let file = fs::File::create(&out).expect("peer log");
    let child = Command::new(e2e.join(".venv").join("bin").join("python"))
        .arg(e2e.join("slixmpp_peer.py"))
        .args(["--role", role, "--jid", &me.jid, "--password", &me.password])
        .args(["--peer", &peer.jid, "--domain", &me.domain])
        .args(["--starttls-port", &me.starttls_port.to_string()])
        .args(["--tls-port", &me.tls_port.to_string()])
        .arg("--ca")
        .arg(&me.ca)
        .args(["--token", token, "--mech", "SCRAM-SHA-1", "--timeout", "30"])
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .expect("start slixmpp_peer.py");
    Running::new(format!("{} ({role})", me.jid), child, out)
}

fn token(test: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!("{test}-{}-{nanos:x}", std::process::id())
}

/// Meerkat for MEERKAT with an S2S listener, routing `peer_domain` to
/// 127.0.0.1:`peer_s2s`.
fn start_meerkat(
    runtime: &str,
    name: &str,
    users: &[(&str, &str)],
    s2s_port: u16,
    peer_domain: &str,
    peer_s2s: u16,
    ca: Option<&(PathBuf, PathBuf)>,
) -> Server {
    // With a CA, certificates authenticate both ways (SASL EXTERNAL); without,
    // they only encrypt and Server Dialback authenticates.
    let verify = match ca {
        Some((ca_cert, _)) => format!(
            "tls.verify_mode = \"peer\"\ntls.cacertfile = \"{}\"",
            ca_cert.display()
        ),
        None => "tls.verify_mode = \"none\"".to_string(),
    };
    let extra = Extra {
        domain: Some(MEERKAT.into()),
        ca: ca.cloned(),
        toml: format!(
            r#"
[[listen.s2s]]
port = {s2s_port}
ip_address = "127.0.0.1"
tls.mode = "starttls"
{verify}
{{tls}}
[s2s]
shared = "meerkat-dialback-secret"

[s2s.outgoing]
address = [{{host = "{peer_domain}", ip_address = "127.0.0.1", port = {peer_s2s}}}]
connection_timeout = 5000
state_timeout = 15000
max_retry_delay = 2
tls.mode = "starttls"
{verify}
{{tls}}"#
        ),
        ports: vec![s2s_port],
        ..Extra::default()
    };
    Server::start_with(runtime, name, users, extra)
}

/// A peer server process, killed on drop; its log printed if the test fails.
struct PeerServer {
    child: Child,
    log: PathBuf,
    name: &'static str,
    /// The DNS server a peer needs to find Meerkat, if any.
    _dns: Option<TestDns>,
}

impl Drop for PeerServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("----- {} log -----\n{}", self.name, tail(&self.log, 200));
        }
    }
}

fn wait_ports(ports: &[u16], what: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    for &port in ports {
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("{what} exited ({status}) before listening on {port}");
            }
            assert!(Instant::now() < deadline, "{what} is not listening on {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

struct PeerPorts {
    c2s: u16,
    c2s_tls: u16,
    s2s: u16,
}

fn start_prosody(
    dir: &Path,
    domain: &str,
    ports: &PeerPorts,
    meerkat_s2s: u16,
    users: &[(&str, &str)],
) -> PeerServer {
    let cert = dir.join("prosody-cert.pem");
    let key = dir.join("prosody-key.pem");
    make_cert_for(&cert, &key, &[domain.to_string()]);
    let data = dir.join("prosody-data");
    fs::create_dir_all(&data).unwrap();
    let plugins = e2e_dir().join("prosody");
    let log = dir.join("prosody.log");
    let config = dir.join("prosody.cfg.lua");
    let d = |p: &Path| p.display().to_string();
    fs::write(
        &config,
        format!(
            r#"pidfile = "{pid}"
data_path = "{data}"
plugin_paths = {{ "{plugins}" }}
run_as_root = true
interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {c2s} }}
c2s_direct_tls_ports = {{ {c2s_tls} }}
s2s_ports = {{ {s2s} }}
s2s_direct_tls_ports = {{ }}
admin_socket = "{admin}"
modules_enabled = {{ "roster", "saslauth", "tls", "dialback", "disco", "offline", "ping", "posix", "s2s_static_test" }}
authentication = "internal_plain"
c2s_require_encryption = true
s2s_require_encryption = true
s2s_secure_auth = false
s2s_static_routes = {{ ["{MEERKAT}"] = {{ "127.0.0.1", {meerkat_s2s} }} }}
dialback_secret = "{PROSODY_DIALBACK_SECRET}"
log = {{ debug = "{log}" }}
ssl = {{ certificate = "{cert}", key = "{key}" }}
VirtualHost "{domain}"
"#,
            pid = d(&dir.join("prosody.pid")),
            data = d(&data),
            plugins = d(&plugins),
            c2s = ports.c2s,
            c2s_tls = ports.c2s_tls,
            s2s = ports.s2s,
            admin = d(&dir.join("prosody-admin.sock")),
            log = d(&log),
            cert = d(&cert),
            key = d(&key),
        ),
    )
    .unwrap();
    for (user, password) in users {
        let out = Command::new("prosodyctl")
            .arg("--config")
            .arg(&config)
            .args(["register", user, domain, password])
            .stdin(Stdio::null())
            .output()
            .expect("prosodyctl");
        assert!(
            out.status.success(),
            "prosodyctl register: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = fs::File::create(dir.join("prosody.out")).unwrap();
    let mut child = Command::new("prosody")
        .arg("-F")
        .arg("--config")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("start prosody");
    wait_ports(&[ports.c2s, ports.c2s_tls, ports.s2s], "prosody", &mut child);
    PeerServer {
        child,
        log,
        name: "prosody",
        _dns: None,
    }
}

/// Runs the scenario in both pairings: a Meerkat user starting it with a peer
/// user, and a peer user starting it with a Meerkat user.
/// How the servers authenticate each other.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Trust {
    /// Self-signed certificates: Server Dialback.
    Dialback,
    /// Certificates from one CA that both trust: SASL EXTERNAL.
    Certificates,
}

fn federate(
    runtime: &str,
    name: &str,
    peer_domain: &str,
    trust: Trust,
    start_peer: impl FnOnce(&Path, &PeerPorts, u16, &[(&str, &str)], Option<&(PathBuf, PathBuf)>) -> PeerServer,
    after: impl FnOnce(u16),
) {
    run_setup_once("setup.sh");
    run_setup_once("setup-peers.sh");
    let dir = TempDir::new(&format!("{name}-{runtime}-peer"));
    let ca = (trust == Trust::Certificates).then(|| {
        let ca = (dir.0.join("ca.pem"), dir.0.join("ca-key.pem"));
        support::make_ca(&ca.0, &ca.1);
        ca
    });
    let meerkat_s2s = free_port();
    let ports = PeerPorts {
        c2s: free_port(),
        c2s_tls: free_port(),
        s2s: free_port(),
    };
    let server = start_meerkat(
        runtime,
        name,
        &[("ma", "pw-ma"), ("mb", "pw-mb")],
        meerkat_s2s,
        peer_domain,
        ports.s2s,
        ca.as_ref(),
    );
    let peer = start_peer(
        &dir.0,
        &ports,
        meerkat_s2s,
        &[("pa", "pw-pa"), ("pb", "pw-pb")],
        ca.as_ref(),
    );
    let meerkat_user = |u: &str| Endpoint {
        jid: format!("{u}@{MEERKAT}"),
        password: format!("pw-{u}"),
        domain: MEERKAT.into(),
        starttls_port: server.starttls_port,
        tls_port: server.tls_port,
        ca: ca.as_ref().map_or(server.cert.clone(), |c| c.0.clone()),
    };
    let peer_user = |u: &str| Endpoint {
        jid: format!("{u}@{peer_domain}"),
        password: format!("pw-{u}"),
        domain: peer_domain.into(),
        starttls_port: ports.c2s,
        tls_port: ports.c2s_tls,
        ca: ca
            .as_ref()
            .map_or(dir.0.join(format!("{}-cert.pem", peer.name)), |c| c.0.clone()),
    };
    let token = token(name);
    let (ma, mb, pa, pb) = (
        meerkat_user("ma"),
        meerkat_user("mb"),
        peer_user("pa"),
        peer_user("pb"),
    );
    let started = Instant::now();
    let running = vec![
        spawn_peer(&dir.0, "a", &ma, &pb, &token),
        spawn_peer(&dir.0, "b", &pb, &ma, &token),
        spawn_peer(&dir.0, "a", &pa, &mb, &token),
        spawn_peer(&dir.0, "b", &mb, &pa, &token),
    ];
    finish(running);
    // Both directions went through S2S streams authenticated as intended.
    let log = fs::read_to_string(server.dir.0.join("meerkat.stderr")).unwrap_or_default();
    assert!(
        log.contains("outgoing S2S established"),
        "no outgoing stream in the log"
    );
    match trust {
        Trust::Dialback => assert!(
            log.contains("S2S dialback result") && log.contains("valid=true"),
            "no incoming stream authenticated by dialback in the log"
        ),
        Trust::Certificates => assert!(
            log.contains("S2S authenticated with SASL EXTERNAL")
                && log.contains("authenticated with SASL EXTERNAL session"),
            "SASL EXTERNAL was not used both ways"
        ),
    }
    // The metrics count the S2S traffic by connection type (issue 6): at least the
    // two chat messages each way, plus the stream negotiation.
    let page = support::metrics_page(&server);
    for (name, at_least) in [("xmpp_element_in_count", 2.0), ("xmpp_element_out_count", 2.0)] {
        let counted = support::metric_sum(&page, name, "connection_type=\"s2s\"");
        assert!(counted >= at_least, "{name} for s2s is {counted}:\n{page}");
    }
    after(meerkat_s2s);
    eprintln!(
        "[interop] {name} passed in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    drop(peer);
}

fn start_ejabberd(
    dir: &Path,
    domain: &str,
    ports: &PeerPorts,
    meerkat_s2s: u16,
    users: &[(&str, &str)],
    ca: Option<&(PathBuf, PathBuf)>,
) -> PeerServer {
    let cert = dir.join("ejabberd-cert.pem");
    let key = dir.join("ejabberd-key.pem");
    support::make_cert_signed(
        &cert,
        &key,
        &[domain.to_string()],
        ca.map(|(c, k)| (c.as_path(), k.as_path())),
    );
    // Without a CA, ejabberd trusts its own certificate only, so Meerkat's is not
    // trusted and dialback authenticates.
    let ca_file = ca.map_or(cert.clone(), |(c, _)| c.clone());
    let spool = dir.join("ejabberd-spool");
    fs::create_dir_all(&spool).unwrap();
    let log = dir.join("ejabberd.log");
    let config = dir.join("ejabberd.yml");
    let d = |p: &Path| p.display().to_string();
    // ejabberd has no static S2S address: it asks DNS for SRV records itself
    // (Erlang's inet_res), then the system's getaddrinfo for the target. Its
    // resolver is pointed at a test DNS server whose SRV record for MEERKAT names
    // Meerkat's ephemeral S2S port with the target 127.0.0.1, which getaddrinfo
    // takes as it is.
    let srv_name = format!("_xmpp-server._tcp.{MEERKAT}");
    let dns = TestDns::start(&[(&srv_name, ("127.0.0.1", meerkat_s2s))], &[]);
    let resolver = format!(
        "inet_db:set_resolv_conf(\"\"), inet_db:set_hosts_file(\"\"), inet_db:set_lookup([dns]), \
         ok = inet_db:ins_ns({{127,0,0,1}}, {}), ",
        dns.port
    );
    fs::write(
        &config,
        format!(
            r#"hosts:
  - "{domain}"
loglevel: info
certfiles:
  - "{cert}"
  - "{key}"
ca_file: "{ca}"
listen:
  - port: {c2s}
    ip: "127.0.0.1"
    module: ejabberd_c2s
    starttls_required: true
  - port: {c2s_tls}
    ip: "127.0.0.1"
    module: ejabberd_c2s
    tls: true
  - port: {s2s}
    ip: "127.0.0.1"
    module: ejabberd_s2s_in
s2s_use_starttls: required
s2s_access: all
s2s_dns_timeout: 2
s2s_dns_retries: 1
outgoing_s2s_families:
  - ipv4
auth_method: internal
auth_password_format: plain
modules:
  mod_disco: {{}}
  mod_offline: {{}}
  mod_ping: {{}}
  mod_roster: {{}}
  mod_s2s_dialback: {{}}
"#,
            cert = d(&cert),
            key = d(&key),
            ca = d(&ca_file),
            c2s = ports.c2s,
            c2s_tls = ports.c2s_tls,
            s2s = ports.s2s,
        ),
    )
    .unwrap();
    let mut register = String::new();
    for (user, password) in users {
        register.push_str(&format!(
            "ok = ejabberd_auth:try_register(<<\"{user}\">>, <<\"{domain}\">>, <<\"{password}\">>), "
        ));
    }
    let out = fs::File::create(dir.join("ejabberd.out")).unwrap();
    // erl directly, not ejabberdctl (which switches to the ejabberd user), and no
    // distribution (no epmd, no fixed port): the users are registered in-process.
    let mut child = Command::new("erl")
        .args(["-noinput", "-noshell"])
        .arg("-mnesia")
        .arg("dir")
        .arg(format!("\"{}\"", d(&spool)))
        .args(["-s", "ejabberd"])
        .arg("-eval")
        .arg(format!("{resolver}{register}io:format(\"users registered~n\")."))
        .env("ERL_LIBS", ejabberd_libs())
        .env("EJABBERD_CONFIG_PATH", &config)
        .env("EJABBERD_LOG_PATH", &log)
        .env("ERL_CRASH_DUMP", dir.join("erl_crash.dump"))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("start ejabberd (erl)");
    wait_ports(&[ports.c2s, ports.c2s_tls, ports.s2s], "ejabberd", &mut child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !fs::read_to_string(dir.join("ejabberd.out"))
        .unwrap_or_default()
        .contains("users registered")
    {
        assert!(Instant::now() < deadline, "ejabberd did not register the users");
        std::thread::sleep(Duration::from_millis(100));
    }
    PeerServer {
        child,
        log,
        name: "ejabberd",
        _dns: Some(dns),
    }
}

/// Where Debian puts ejabberd's Erlang applications (/usr/lib/<triplet>), for
/// ERL_LIBS as ejabberdctl sets it.
fn ejabberd_libs() -> PathBuf {
    for entry in fs::read_dir("/usr/lib").expect("/usr/lib").flatten() {
        let Ok(inner) = fs::read_dir(entry.path()) else {
            continue;
        };
        if inner
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("ejabberd-"))
        {
            return entry.path();
        }
    }
    panic!("no /usr/lib/*/ejabberd-* (tests/e2e/setup-peers.sh installs ejabberd)");
}

fn with_ejabberd(runtime: &str, trust: Trust) {
    federate(
        runtime,
        "ejabberd",
        "ejabberd.test",
        trust,
        |dir, ports, meerkat_s2s, users, ca| {
            start_ejabberd(dir, "ejabberd.test", ports, meerkat_s2s, users, ca)
        },
        |_| {},
    );
}

#[test]
fn meerkat_and_ejabberd_federate_both_ways_on_tokio() {
    with_ejabberd("tokio", Trust::Certificates);
}

#[test]
fn meerkat_and_ejabberd_federate_both_ways_on_smol() {
    with_ejabberd("smol", Trust::Certificates);
}

#[test]
fn meerkat_and_ejabberd_federate_with_dialback_on_tokio() {
    with_ejabberd("tokio", Trust::Dialback);
}

#[test]
fn meerkat_and_ejabberd_federate_with_dialback_on_smol() {
    with_ejabberd("smol", Trust::Dialback);
}

#[test]
fn meerkat_and_ejabberd_federate_with_dialback_on_glommio() {
    with_ejabberd("glommio", Trust::Dialback);
}

#[test]
fn meerkat_and_ejabberd_federate_both_ways_on_glommio() {
    with_ejabberd("glommio", Trust::Certificates);
}

fn with_prosody(runtime: &str) {
    federate(
        runtime,
        "prosody",
        "prosody.test",
        Trust::Dialback,
        |dir, ports, meerkat_s2s, users, _| start_prosody(dir, "prosody.test", ports, meerkat_s2s, users),
        forged_from_is_refused,
    );
}

/// A stream to Meerkat that authenticates as prosody.test by dialback (the key is
/// right: the test knows Prosody's secret, and Meerkat checks it with the real
/// Prosody) may send from prosody.test, and a stanza from any other domain ends it
/// with `invalid-from` (RFC 6120 §4.9.3.9). A made-up key is `invalid`.
fn forged_from_is_refused(meerkat_s2s: u16) {
    use std::io::{Read, Write};
    let read_until = |s: &mut std::net::TcpStream, needle: &str| -> String {
        let mut got = String::new();
        let mut buf = [0u8; 4096];
        while !got.contains(needle) {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => panic!("closed or timed out waiting for {needle:?}; got {got}"),
                Ok(n) => got.push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
        got
    };
    let open = |s: &mut std::net::TcpStream| -> String {
        s.write_all(
            b"<?xml version='1.0'?><stream:stream xmlns='jabber:server' \
              xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' \
              from='prosody.test' to='meerkat.test' version='1.0'>",
        )
        .unwrap();
        let got = read_until(s, "</stream:features>");
        let start = got.find(" id='").expect("a stream id") + 5;
        got[start..start + got[start..].find('\'').unwrap()].to_string()
    };
    let connect = || {
        let s = std::net::TcpStream::connect(("127.0.0.1", meerkat_s2s)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s
    };
    let prosody = meerkat_engine::stream::s2s::S2sConfig::new(Vec::new(), PROSODY_DIALBACK_SECRET);

    let mut bogus = connect();
    open(&mut bogus);
    bogus
        .write_all(b"<db:result from='prosody.test' to='meerkat.test'>0123456789abcdef</db:result>")
        .unwrap();
    read_until(&mut bogus, "type='invalid'");

    let mut s = connect();
    let id = open(&mut s);
    let key = prosody.dialback_key(MEERKAT, "prosody.test", &id);
    s.write_all(format!("<db:result from='prosody.test' to='meerkat.test'>{key}</db:result>").as_bytes())
        .unwrap();
    read_until(&mut s, "type='valid'");
    s.write_all(
        b"<message from='pa@prosody.test' to='ma@meerkat.test' type='chat'><body>fine</body></message>",
    )
    .unwrap();
    s.write_all(
        b"<message from='mallory@evil.test' to='ma@meerkat.test' type='chat'><body>forged</body></message>",
    )
    .unwrap();
    let got = read_until(&mut s, "</stream:stream>");
    assert!(got.contains("<invalid-from"), "{got}");
    assert!(
        !got.contains("<not-authorized"),
        "the first message was accepted: {got}"
    );
}

#[test]
fn meerkat_and_prosody_federate_both_ways_on_tokio() {
    with_prosody("tokio");
}

#[test]
fn meerkat_and_prosody_federate_both_ways_on_smol() {
    with_prosody("smol");
}

#[test]
fn meerkat_and_prosody_federate_both_ways_on_glommio() {
    with_prosody("glommio");
}
