//! Measures reconnects against a running server over real sockets: round trips to a
//! ready (bound) session and the server's CPU time per reconnect, for four paths:
//!
//! - `sasl1`: direct TLS, legacy SASL SCRAM-SHA-256, stream restart, resource binding;
//! - `sasl2`: direct TLS, SASL2 SCRAM-SHA-256 with Bind 2 inline;
//! - `fast`: direct TLS, SASL2 with a FAST token (HT-SHA-256-NONE) and Bind 2, the
//!   stream header and `<authenticate/>` sent together (the client knows the server
//!   supports FAST: it holds a token);
//! - `0rtt`: TLS 1.3 resumption with the stream header and the FAST
//!   `<authenticate/>` in early data.
//!
//! A round trip is counted each time the client has to wait for the server before
//! it can go on (the TCP handshake is not counted). Server CPU is user + system time
//! from `/proc/PID/stat` over a batch, divided by the batch size.
//!
//! ```sh
//! cargo run --release -p meerkat-tests --example reconnect -- \
//!     --addr 127.0.0.1:5223 --ca meerkat-data/cert.pem --user alice --password s3cret \
//!     --pid $(pgrep -f 'meerkat --config') -n 200
//! ```

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use meerkat_engine::sasl::{ScramClient, ScramHash};
use meerkat_tests::driver::element_text;
use meerkat_tests::sasl2::{attr_of, Authenticate};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";

struct Args {
    addr: String,
    ca: String,
    user: String,
    password: String,
    pid: Option<u32>,
    n: usize,
}

fn args() -> Args {
    let mut a = Args {
        addr: "127.0.0.1:5223".into(),
        ca: "meerkat-data/cert.pem".into(),
        user: String::new(),
        password: String::new(),
        pid: None,
        n: 100,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--addr" => a.addr = v,
            "--ca" => a.ca = v,
            "--user" => a.user = v,
            "--password" => a.password = v,
            "--pid" => a.pid = Some(v.parse().expect("pid")),
            "-n" => a.n = v.parse().expect("n"),
            _ => panic!("unknown option {k}"),
        }
    }
    assert!(
        !a.user.is_empty() && !a.password.is_empty(),
        "--user and --password are required"
    );
    a
}

/// One TLS connection, counting the waits for the server.
struct Conn {
    tcp: TcpStream,
    tls: rustls::ClientConnection,
    round_trips: u32,
    plain: String,
}

impl Conn {
    fn open(addr: &str, config: &Arc<rustls::ClientConfig>, early: Option<&[u8]>) -> Conn {
        let tcp = TcpStream::connect(addr).expect("connect");
        tcp.set_nodelay(true).ok();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).ok();
        let name = ServerName::try_from("localhost").unwrap();
        let mut tls = rustls::ClientConnection::new(config.clone(), name).unwrap();
        if let Some(data) = early {
            let mut e = tls.early_data().expect("a ticket that allows early data");
            e.write_all(data).expect("early data fits");
        }
        let mut c = Conn {
            tcp,
            tls,
            round_trips: 0,
            plain: String::new(),
        };
        c.flush();
        // The TLS 1.3 handshake: one round trip (the client's Finished goes out with
        // the next data, no wait).
        c.round_trips += 1;
        while c.tls.is_handshaking() {
            c.read_some();
        }
        c
    }

    fn flush(&mut self) {
        while self.tls.wants_write() {
            self.tls.write_tls(&mut self.tcp).expect("write");
        }
    }

    fn read_some(&mut self) -> bool {
        let mut buf = [0u8; 16384];
        let n = match self.tcp.read(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => n,
        };
        let mut rd = &buf[..n];
        while !rd.is_empty() {
            self.tls.read_tls(&mut rd).expect("read_tls");
            self.tls.process_new_packets().expect("tls");
        }
        let mut out = Vec::new();
        let _ = self.tls.reader().read_to_end(&mut out);
        self.plain.push_str(&String::from_utf8_lossy(&out));
        self.flush();
        true
    }

    fn send(&mut self, text: &str) {
        self.tls.writer().write_all(text.as_bytes()).unwrap();
        self.flush();
    }

    /// Waits for the server until the received text contains `needle`: one round
    /// trip. Returns everything received so far and clears it.
    fn wait_for(&mut self, needle: &str) -> String {
        self.round_trips += 1;
        while !self.plain.contains(needle) {
            assert!(
                self.read_some(),
                "closed while waiting for {needle}: {}",
                self.plain
            );
        }
        std::mem::take(&mut self.plain)
    }

    /// Reads until `needle` without counting a round trip: the client sent nothing
    /// the server waits for, the answer is still on its way.
    fn wait_more(&mut self, needle: &str) -> String {
        self.round_trips -= 1;
        self.wait_for(needle)
    }

    /// Closes the stream and reads to the end (new session tickets come along).
    fn close(mut self) {
        self.send("</stream:stream>");
        while self.read_some() {}
    }
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("server pid");
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split(' ').collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

fn scram_exchange(c: &mut Conn, sasl2: bool, user: &str, password: &str, bind2: bool) -> String {
    let mut scram = ScramClient::new(ScramHash::Sha256, user, password, "r3c0nn3ct", "n,,", Vec::new());
    if sasl2 {
        let mut auth = Authenticate {
            mechanism: "SCRAM-SHA-256".into(),
            initial: Some(scram.first()),
            agent: Some(meerkat_tests::sasl2::AGENT.into()),
            ..Authenticate::default()
        };
        if bind2 {
            auth = auth.bind("Bench", "");
            auth.request_token = Some("HT-SHA-256-NONE".into());
        }
        c.send(&auth.to_xml());
    } else {
        c.send(&format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>{}</auth>",
            B64.encode(scram.first())
        ));
    }
    let challenge = c.wait_for("</challenge>");
    let first = B64
        .decode(element_text(&challenge, "challenge").unwrap().trim())
        .unwrap();
    let fin = scram.finish(&first).expect("server-first");
    let ns = if sasl2 {
        "urn:xmpp:sasl:2"
    } else {
        "urn:ietf:params:xml:ns:xmpp-sasl"
    };
    c.send(&format!("<response xmlns='{ns}'>{}</response>", B64.encode(fin)));
    let success = c.wait_for(if sasl2 { "</stream:features>" } else { "</success>" });
    assert!(success.contains("<success"), "{success}");
    success
}

struct Row {
    path: &'static str,
    round_trips: u32,
    server_cpu_us: Option<f64>,
    latency_ms: f64,
}

fn batch(a: &Args, path: &'static str, mut one: impl FnMut() -> u32) -> Row {
    let before = a.pid.map(cpu_ticks);
    let start = Instant::now();
    let mut rts = 0;
    for _ in 0..a.n {
        rts = one();
    }
    let elapsed = start.elapsed();
    // Let the server finish closing the streams before reading its CPU time.
    std::thread::sleep(Duration::from_millis(200));
    let ticks_per_sec = 100.0; // USER_HZ on Linux
    let cpu = a.pid.zip(before).map(|(pid, b)| {
        let t = (cpu_ticks(pid) - b) as f64 / ticks_per_sec;
        t * 1e6 / a.n as f64
    });
    Row {
        path,
        round_trips: rts,
        server_cpu_us: cpu,
        latency_ms: elapsed.as_secs_f64() * 1e3 / a.n as f64,
    }
}

fn main() {
    let a = args();
    let pem = std::fs::read(&a.ca).expect("--ca");
    let mut roots = rustls::RootCertStore::empty();
    for der in CertificateDer::pem_slice_iter(&pem) {
        roots.add(der.expect("pem")).expect("root");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"xmpp-client".to_vec()];
    let full = Arc::new(config.clone());
    config.enable_early_data = true;
    let resuming = Arc::new(config);

    let (user, password) = (a.user.clone(), a.password.clone());
    let mut rows = Vec::new();

    rows.push(batch(&a, "SASL1 (SCRAM-SHA-256, restart, bind)", || {
        let mut c = Conn::open(&a.addr, &full, None);
        c.send(HEADER);
        c.wait_for("</stream:features>");
        scram_exchange(&mut c, false, &user, &password, false);
        c.send(HEADER);
        c.wait_for("</stream:features>");
        c.send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>");
        c.wait_for("</iq>");
        let rts = c.round_trips;
        c.close();
        rts
    }));

    let mut token = String::new();
    rows.push(batch(&a, "SASL2 (SCRAM-SHA-256 + Bind 2)", || {
        let mut c = Conn::open(&a.addr, &full, None);
        c.send(HEADER);
        c.wait_for("</stream:features>");
        let success = scram_exchange(&mut c, true, &user, &password, true);
        assert!(success.contains("<bound"), "{success}");
        token = attr_of(&success, "token", "token").expect("token");
        let rts = c.round_trips;
        c.close();
        rts
    }));

    let mut count = 0u64;
    rows.push(batch(&a, "SASL2 + FAST (HT-SHA-256-NONE + Bind 2)", || {
        let mut c = Conn::open(&a.addr, &full, None);
        count += 1;
        let auth = Authenticate::fast(&user, &token, Some(count)).bind("Bench", "");
        c.send(&format!("{HEADER}{}", auth.to_xml()));
        let success = c.wait_for("<bound");
        assert!(success.contains("<success"), "{success}");
        let rts = c.round_trips;
        c.close();
        rts
    }));

    // One full connection to get tickets; each 0-RTT connection brings new ones.
    Conn::open(&a.addr, &resuming, None).close();
    rows.push(batch(&a, "0-RTT (early data: header + FAST + Bind 2)", || {
        count += 1;
        let auth = Authenticate::fast(&user, &token, Some(count)).bind("Bench", "");
        let early = format!("{HEADER}{}", auth.to_xml());
        let mut c = Conn::open(&a.addr, &resuming, Some(early.as_bytes()));
        assert!(c.tls.is_early_data_accepted(), "early data refused");
        // The answer to the early data needs nothing more from the client: it
        // belongs to the handshake's round trip even when the server's storage
        // makes it leave in a later TCP segment than the handshake messages.
        let success = c.wait_more("<bound");
        assert!(success.contains("<success"), "{success}");
        let rts = c.round_trips;
        c.close();
        rts
    }));

    println!("| path | round trips to a bound session | server CPU per reconnect | client-side latency |");
    println!("|---|---|---|---|");
    for r in rows {
        let cpu = r
            .server_cpu_us
            .map_or("(no --pid)".to_string(), |us| format!("{us:.0} µs"));
        println!(
            "| {} | {} | {} | {:.2} ms |",
            r.path, r.round_trips, cpu, r.latency_ms
        );
    }
}
