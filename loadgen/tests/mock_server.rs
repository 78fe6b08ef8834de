//! End-to-end tests of the `meerkat-loadgen` binary against a small in-process XMPP server
//! (STARTTLS or direct TLS with a generated certificate, in-band registration, SASL PLAIN and
//! SCRAM-SHA-1/256, bind, roster with RFC 6121 subscriptions and pushes, presence broadcast
//! to subscribers, message routing between full JIDs, a ping to every session). The mock is
//! deliberately naive: it exists to check the tool, not to be a server.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;

mod common;
use common::num;

const PASSWORD: &str = "secret";
const ITERATIONS: u32 = 256;

/// One roster item's state (RFC 6121 §3): the user receives the contact's presence (`to`),
/// the contact receives the user's (`from`), the user asked to subscribe (`ask`).
#[derive(Default, Clone, Copy)]
struct Sub {
    to: bool,
    from: bool,
    ask: bool,
}

impl Sub {
    fn name(self) -> &'static str {
        match (self.to, self.from) {
            (true, true) => "both",
            (true, false) => "to",
            (false, true) => "from",
            (false, false) => "none",
        }
    }
}

#[derive(Default)]
struct Hub {
    routes: Mutex<HashMap<String, mpsc::UnboundedSender<String>>>,
    registered: Mutex<HashSet<String>>,
    /// user bare JID -> contact bare JID -> state.
    rosters: Mutex<HashMap<String, HashMap<String, Sub>>>,
    pongs: AtomicU64,
    logins: AtomicU64,
    /// Presence updates with a status that were broadcast (counted per update, not per copy).
    presence_updates: AtomicU64,
}

impl Hub {
    /// Sends `stanza` to every session of the bare JID `user`.
    fn to_bare(&self, user: &str, stanza: &str) {
        let prefix = format!("{user}/");
        for (j, tx) in self.routes.lock().unwrap().iter() {
            if j.starts_with(&prefix) {
                let _ = tx.send(stanza.to_string());
            }
        }
    }

    fn item(&self, user: &str, contact: &str) -> Sub {
        let r = self.rosters.lock().unwrap();
        r.get(user)
            .and_then(|m| m.get(contact))
            .copied()
            .unwrap_or_default()
    }

    /// Changes an item and pushes it to the user's sessions (RFC 6121 §2.1.6).
    fn update(&self, user: &str, contact: &str, f: impl FnOnce(&mut Sub)) {
        let s = {
            let mut r = self.rosters.lock().unwrap();
            let s = r
                .entry(user.into())
                .or_default()
                .entry(contact.into())
                .or_default();
            f(s);
            *s
        };
        let ask = if s.ask { " ask='subscribe'" } else { "" };
        self.to_bare(
            user,
            &format!(
                "<iq type='set' id='push'><query xmlns='jabber:iq:roster'><item jid='{contact}' \
                 subscription='{}'{ask}/></query></iq>",
                s.name()
            ),
        );
    }

    /// Outbound subscription stanza of `kind` from `user` to `contact` (RFC 6121 §3).
    fn subscription(&self, user: &str, kind: &str, contact: &str) {
        match kind {
            "subscribe" => {
                if self.item(contact, user).from {
                    // Already approved: the contact's server answers on its behalf.
                    self.update(user, contact, |s| {
                        s.to = true;
                        s.ask = false;
                    });
                    self.to_bare(user, &format!("<presence type='subscribed' from='{contact}'/>"));
                } else {
                    self.update(user, contact, |s| s.ask = true);
                    self.to_bare(contact, &format!("<presence type='subscribe' from='{user}'/>"));
                }
            }
            // `user` approves `contact`'s pending request.
            "subscribed" if self.item(contact, user).ask => {
                self.update(contact, user, |s| {
                    s.to = true;
                    s.ask = false;
                });
                self.update(user, contact, |s| s.from = true);
                self.to_bare(contact, &format!("<presence type='subscribed' from='{user}'/>"));
            }
            _ => {}
        }
    }

    /// RFC 6121 §2.5.2: removing an item cancels the subscriptions both ways.
    fn remove(&self, user: &str, contact: &str) {
        self.rosters
            .lock()
            .unwrap()
            .entry(user.into())
            .or_default()
            .remove(contact);
        self.to_bare(
            user,
            &format!(
                "<iq type='set' id='push'><query xmlns='jabber:iq:roster'><item jid='{contact}' \
                 subscription='remove'/></query></iq>"
            ),
        );
        if self
            .rosters
            .lock()
            .unwrap()
            .get(contact)
            .is_some_and(|m| m.contains_key(user))
        {
            self.update(contact, user, |s| *s = Sub::default());
        }
    }

    fn roster_result(&self, user: &str, id: &str) -> String {
        let r = self.rosters.lock().unwrap();
        let items: String = r
            .get(user)
            .map(|m| {
                m.iter()
                    .map(|(c, s)| format!("<item jid='{c}' subscription='{}'/>", s.name()))
                    .collect()
            })
            .unwrap_or_default();
        format!("<iq type='result' id='{id}'><query xmlns='jabber:iq:roster'>{items}</query></iq>")
    }

    /// RFC 6121 §4.4.2: an available presence goes to the subscribers and the user's own
    /// sessions.
    fn broadcast(&self, user: &str, full: &str, presence: &str) {
        let subscribers: Vec<String> = {
            let r = self.rosters.lock().unwrap();
            r.get(user)
                .map(|m| m.iter().filter(|(_, s)| s.from).map(|(c, _)| c.clone()).collect())
                .unwrap_or_default()
        };
        for c in subscribers.iter().map(String::as_str).chain([user]) {
            let stamped = presence.replacen("<presence", &format!("<presence from='{full}' to='{c}'"), 1);
            self.to_bare(c, &stamped);
        }
    }
}

struct Mock {
    addr: SocketAddr,
    hub: Arc<Hub>,
    /// The server's self-signed certificate, PEM.
    cert_pem: String,
}

fn tls_acceptor() -> (TlsAcceptor, String) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let b64 = B64.encode(ck.cert.der());
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    let pem = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    );
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![ck.cert.der().clone()], key)
        .unwrap();
    (TlsAcceptor::from(Arc::new(config)), pem)
}

async fn start_mock(direct_tls: bool) -> Mock {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hub = Arc::new(Hub::default());
    let (acceptor, cert_pem) = tls_acceptor();
    let h = hub.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (h, acceptor) = (h.clone(), acceptor.clone());
            tokio::spawn(async move {
                let _ = connection(tcp, h, acceptor, direct_tls).await;
            });
        }
    });
    Mock { addr, hub, cert_pem }
}

/// Splits the client's bytes into the stream header and top-level elements. Assumes
/// attribute values contain no `<` or `>` (true for what the tool sends).
#[derive(Default)]
struct Splitter {
    buf: Vec<u8>,
}

enum Item {
    Header,
    Element(String),
    Close,
}

impl Splitter {
    fn next(&mut self, in_stream: &mut bool) -> Option<Item> {
        let mut depth = 0;
        let mut i = 0;
        let mut start = None;
        while let Some(p) = self.buf[i..].iter().position(|&b| b == b'<') {
            let s = i + p;
            let e = s + self.buf[s..].iter().position(|&b| b == b'>')?;
            let tag = &self.buf[s..=e];
            i = e + 1;
            if tag.starts_with(b"<?") {
                continue;
            }
            if tag.starts_with(b"<stream:stream") {
                self.buf.drain(..i);
                *in_stream = true;
                return Some(Item::Header);
            }
            if tag.starts_with(b"</stream:stream") {
                self.buf.drain(..i);
                return Some(Item::Close);
            }
            if start.is_none() {
                start = Some(s);
            }
            if tag.starts_with(b"</") {
                depth -= 1;
            } else if !tag.ends_with(b"/>") {
                depth += 1;
            }
            if depth == 0 {
                let el = String::from_utf8(self.buf[start.unwrap()..i].to_vec()).unwrap();
                self.buf.drain(..i);
                return Some(Item::Element(el));
            }
        }
        None
    }
}

fn attr(el: &str, name: &str) -> Option<String> {
    let tag_end = el.find('>')?;
    let tag = &el[..tag_end];
    for q in ['\'', '"'] {
        let pat = format!(" {name}={q}");
        if let Some(p) = tag.find(&pat) {
            let v = &tag[p + pat.len()..];
            return Some(v[..v.find(q)?].to_string());
        }
    }
    None
}

fn text_of(el: &str, name: &str) -> Option<String> {
    let s = el.find(&format!("<{name}"))?;
    let s = s + el[s..].find('>')? + 1;
    let e = s + el[s..].find(&format!("</{name}>"))?;
    Some(el[s..e].to_string())
}

fn hmac(sha256: bool, key: &[u8], data: &[u8]) -> Vec<u8> {
    if sha256 {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
        m.update(data);
        m.finalize().into_bytes().to_vec()
    } else {
        let mut m = <Hmac<Sha1> as Mac>::new_from_slice(key).unwrap();
        m.update(data);
        m.finalize().into_bytes().to_vec()
    }
}

fn h(sha256: bool, data: &[u8]) -> Vec<u8> {
    if sha256 {
        Sha256::digest(data).to_vec()
    } else {
        Sha1::digest(data).to_vec()
    }
}

fn salted(sha256: bool, salt: &[u8]) -> Vec<u8> {
    if sha256 {
        let mut out = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(PASSWORD.as_bytes(), salt, ITERATIONS, &mut out);
        out.to_vec()
    } else {
        let mut out = [0u8; 20];
        pbkdf2::pbkdf2_hmac::<Sha1>(PASSWORD.as_bytes(), salt, ITERATIONS, &mut out);
        out.to_vec()
    }
}

const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams' from='localhost' id='s1' version='1.0'>";

async fn connection(
    tcp: TcpStream,
    hub: Arc<Hub>,
    acceptor: TlsAcceptor,
    direct: bool,
) -> std::io::Result<()> {
    let mut tcp = tcp;
    if !direct {
        // Plain phase: header, STARTTLS offer, proceed.
        let mut sp = Splitter::default();
        let mut in_stream = false;
        let mut buf = [0u8; 4096];
        loop {
            let n = tcp.read(&mut buf).await?;
            if n == 0 {
                return Ok(());
            }
            sp.buf.extend_from_slice(&buf[..n]);
            let mut proceed = false;
            while let Some(item) = sp.next(&mut in_stream) {
                match item {
                    Item::Header => {
                        let f = format!(
                            "{HEADER}<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'>\
                             <required/></starttls></stream:features>"
                        );
                        tcp.write_all(f.as_bytes()).await?;
                    }
                    Item::Element(e) if e.starts_with("<starttls") => {
                        tcp.write_all(b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
                            .await?;
                        proceed = true;
                    }
                    _ => return Ok(()),
                }
            }
            if proceed {
                break;
            }
        }
    }
    let tls = acceptor.accept(tcp).await?;
    secure(tls, hub).await
}

async fn secure<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, hub: Arc<Hub>) -> std::io::Result<()> {
    let mut sp = Splitter::default();
    let mut in_stream = false;
    let mut user: Option<String> = None;
    let mut authed = false;
    let mut jid: Option<String> = None;
    let mut available = false;
    let mut scram: Option<(bool, String, String)> = None; // sha256, client-first-bare, server-first
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let mut buf = [0u8; 4096];
    let result = loop {
        let n = tokio::select! {
            r = s.read(&mut buf) => match r { Ok(0) | Err(_) => break Ok(()), Ok(n) => n },
            Some(m) = rx.recv() => { s.write_all(m.as_bytes()).await?; continue; }
        };
        sp.buf.extend_from_slice(&buf[..n]);
        let mut out = String::new();
        let mut close = false;
        while let Some(item) = sp.next(&mut in_stream) {
            match item {
                Item::Header if !authed => {
                    out += HEADER;
                    out += "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
                        <mechanism>SCRAM-SHA-256</mechanism><mechanism>SCRAM-SHA-1</mechanism>\
                        <mechanism>PLAIN</mechanism></mechanisms>\
                        <register xmlns='http://jabber.org/features/iq-register'/></stream:features>";
                }
                Item::Header => {
                    out += HEADER;
                    out += "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>\
                        </stream:features>";
                }
                Item::Close => {
                    out += "</stream:stream>";
                    close = true;
                }
                Item::Element(e) => {
                    let id = attr(&e, "id").unwrap_or_default();
                    if e.contains("jabber:iq:register") {
                        let u = text_of(&e, "username").unwrap();
                        if hub.registered.lock().unwrap().insert(u) {
                            out += &format!("<iq type='result' id='{id}'/>");
                        } else {
                            out += &format!(
                                "<iq type='error' id='{id}'><error type='cancel'><conflict \
                                 xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
                            );
                        }
                    } else if e.starts_with("<auth") {
                        let mech = attr(&e, "mechanism").unwrap();
                        let data = B64.decode(text_of(&e, "auth").unwrap()).unwrap();
                        let data = String::from_utf8(data).unwrap();
                        if mech == "PLAIN" {
                            let parts: Vec<&str> = data.split('\0').collect();
                            if parts[2] == PASSWORD {
                                user = Some(parts[1].to_string());
                                authed = true;
                                hub.logins.fetch_add(1, Relaxed);
                                out += "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>";
                            } else {
                                out += "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
                                    <not-authorized/></failure>";
                            }
                        } else {
                            let bare = data.strip_prefix("n,,").unwrap().to_string();
                            let u = bare
                                .strip_prefix("n=")
                                .unwrap()
                                .split(',')
                                .next()
                                .unwrap()
                                .to_string();
                            let cnonce = bare.split(",r=").nth(1).unwrap();
                            let salt = format!("salt-of-{u}");
                            let sf = format!("r={cnonce}srv,s={},i={ITERATIONS}", B64.encode(&salt));
                            out += &format!(
                                "<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</challenge>",
                                B64.encode(&sf)
                            );
                            user = Some(u);
                            scram = Some((mech == "SCRAM-SHA-256", bare, sf));
                        }
                    } else if e.starts_with("<response") {
                        let (sha256, bare, sf) = scram.take().unwrap();
                        let fin =
                            String::from_utf8(B64.decode(text_of(&e, "response").unwrap()).unwrap()).unwrap();
                        let (without_proof, proof) = fin.split_once(",p=").unwrap();
                        let proof = B64.decode(proof).unwrap();
                        let am = format!("{bare},{sf},{without_proof}");
                        let sp_ = salted(sha256, format!("salt-of-{}", user.as_ref().unwrap()).as_bytes());
                        let stored = h(sha256, &hmac(sha256, &sp_, b"Client Key"));
                        let sig = hmac(sha256, &stored, am.as_bytes());
                        let ck: Vec<u8> = proof.iter().zip(&sig).map(|(a, b)| a ^ b).collect();
                        if h(sha256, &ck) == stored {
                            let v = hmac(sha256, &hmac(sha256, &sp_, b"Server Key"), am.as_bytes());
                            authed = true;
                            hub.logins.fetch_add(1, Relaxed);
                            out += &format!(
                                "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</success>",
                                B64.encode(format!("v={}", B64.encode(v)))
                            );
                        } else {
                            out += "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/>\
                                </failure>";
                        }
                    } else if e.contains("urn:ietf:params:xml:ns:xmpp-bind") {
                        let res = text_of(&e, "resource").unwrap_or_else(|| "r".into());
                        let j = format!("{}@localhost/{res}", user.as_ref().unwrap());
                        hub.routes.lock().unwrap().insert(j.clone(), tx.clone());
                        out += &format!(
                            "<iq type='result' id='{id}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
                             <jid>{j}</jid></bind></iq>"
                        );
                        jid = Some(j);
                    } else if e.contains("jabber:iq:roster") {
                        let me = format!("{}@localhost", user.as_ref().unwrap());
                        if attr(&e, "type").as_deref() == Some("get") {
                            out += &hub.roster_result(&me, &id);
                        } else if e.contains("subscription='remove'") {
                            let item = &e[e.find("<item").unwrap()..];
                            hub.remove(&me, &attr(item, "jid").unwrap());
                            out += &format!("<iq type='result' id='{id}'/>");
                        }
                    } else if e.starts_with("<presence") {
                        let me = format!("{}@localhost", user.as_ref().unwrap());
                        match (attr(&e, "type"), attr(&e, "to")) {
                            (Some(kind), Some(to)) => hub.subscription(&me, &kind, &to),
                            (None, None) => {
                                if !available {
                                    available = true;
                                    out += "<iq type='get' id='ping1' from='localhost'>\
                                        <ping xmlns='urn:xmpp:ping'/></iq>";
                                }
                                if e.contains("<status>") {
                                    hub.presence_updates.fetch_add(1, Relaxed);
                                }
                                hub.broadcast(&me, jid.as_ref().unwrap(), &e);
                            }
                            _ => {}
                        }
                    } else if e.starts_with("<iq")
                        && id == "ping1"
                        && attr(&e, "type").as_deref() == Some("result")
                    {
                        hub.pongs.fetch_add(1, Relaxed);
                    } else if e.starts_with("<message") {
                        let to = attr(&e, "to").unwrap();
                        let fwd = e.replacen(
                            "<message ",
                            &format!("<message from='{}' ", jid.as_ref().unwrap()),
                            1,
                        );
                        let route = hub.routes.lock().unwrap().get(&to).cloned();
                        if let Some(r) = route {
                            let _ = r.send(fwd);
                        }
                    }
                }
            }
        }
        s.write_all(out.as_bytes()).await?;
        if close {
            break Ok(());
        }
    };
    if let Some(j) = jid {
        hub.routes.lock().unwrap().remove(&j);
    }
    let _ = s.shutdown().await;
    result
}

struct Run {
    code: i32,
    json: String,
}

async fn loadgen(mock: &Mock, extra: &[&str]) -> Run {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_meerkat-loadgen"));
    cmd.args(["--addr", &mock.addr.to_string(), "--json", "--quiet"]);
    if !extra.contains(&"--password") {
        cmd.args(["--password", PASSWORD]);
    }
    cmd.args(extra);
    cmd.kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("loadgen finished")
        .unwrap();
    let json = String::from_utf8(out.stdout).unwrap();
    eprintln!("stderr: {}", String::from_utf8_lossy(&out.stderr));
    eprintln!("json: {json}");
    Run {
        code: out.status.code().unwrap_or(-1),
        json,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_with_registration_roster_and_server_measurement() {
    let mock = start_mock(false).await;
    let pid = std::process::id().to_string();
    let args = [
        "-n",
        "20",
        "--register",
        "--roster",
        "--hold",
        "1",
        "--server-pid",
        &pid,
    ];
    let r = loadgen(&mock, &args).await;
    assert_eq!(r.code, 0, "clean run exits 0");
    assert_eq!(num(&r.json, "sessions", "established"), 20.0);
    assert_eq!(num(&r.json, "sessions", "failed"), 0.0);
    assert!(r.json.contains("\"clean\":true"));
    assert!(r.json.contains("\"rss_per_session_kib\":"));
    assert!(!r.json.contains("\"rss_per_session_kib\":null"));
    assert!(num(&r.json, "sessions", "sessions_per_sec") > 0.0);
    assert_eq!(num(&r.json, "client", "pbkdf2_runs"), 20.0);
    assert_eq!(
        hub_count(&mock.hub.pongs),
        20,
        "every session answered the server's ping"
    );
    // Registering again is a conflict, which counts as already registered.
    let r = loadgen(&mock, &["-n", "5", "--register", "--hold", "0"]).await;
    assert_eq!(r.code, 0);
    assert_eq!(num(&r.json, "sessions", "established"), 5.0);
}

fn hub_count(a: &AtomicU64) -> u64 {
    a.load(Relaxed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_counts_every_message_once() {
    let mock = start_mock(false).await;
    let args = [
        "-n",
        "10",
        "--scenario",
        "chat",
        "--msg-rate",
        "200",
        "--duration",
        "2",
        "--mechanism",
        "scram-sha-256",
    ];
    let r = loadgen(&mock, &args).await;
    assert_eq!(r.code, 0);
    assert_eq!(num(&r.json, "chat", "pairs"), 5.0);
    let sent = num(&r.json, "chat", "sent");
    assert!((300.0..=420.0).contains(&sent), "about 200/s for 2 s, got {sent}");
    assert_eq!(num(&r.json, "chat", "received"), sent);
    assert_eq!(num(&r.json, "chat", "lost"), 0.0);
    assert_eq!(num(&r.json, "chat", "duplicates"), 0.0);
    assert!(num(&r.json, "latency", "count") == sent);
    assert!(num(&r.json, "chat", "delivered_per_sec") > 100.0);
    assert!(r.json.contains("\"clean\":true"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_reuses_salted_password() {
    let mock = start_mock(false).await;
    let args = [
        "-n",
        "4",
        "--scenario",
        "reconnect",
        "--duration",
        "2",
        "--reconnect-hold",
        "0.2",
        "--rate",
        "100",
    ];
    let r = loadgen(&mock, &args).await;
    assert_eq!(r.code, 0);
    let n = num(&r.json, "reconnect", "succeeded");
    assert!(n >= 8.0, "several reconnects per session, got {n}");
    assert_eq!(num(&r.json, "reconnect", "failed"), 0.0);
    assert_eq!(
        num(&r.json, "client", "pbkdf2_runs"),
        4.0,
        "one PBKDF2 per user, then cached"
    );
    assert!(num(&r.json, "client", "pbkdf2_cached") >= n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_tls_plain_and_failure_reasons() {
    let mock = start_mock(true).await;
    let r = loadgen(
        &mock,
        &[
            "-n",
            "3",
            "--tls",
            "direct",
            "--mechanism",
            "plain",
            "--hold",
            "0",
        ],
    )
    .await;
    assert_eq!(r.code, 0);
    assert_eq!(num(&r.json, "sessions", "established"), 3.0);
    let r = loadgen(
        &mock,
        &["-n", "3", "--tls", "direct", "--password", "wrong", "--hold", "0"],
    )
    .await;
    assert_eq!(r.code, 2, "a run with failures exits 2");
    assert_eq!(num(&r.json, "sessions", "failed"), 3.0);
    assert!(
        r.json
            .contains("\"failure_reasons\":{\"sasl: not-authorized\":3}"),
        "{}",
        r.json
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overall_timeout_stops_the_run() {
    let mock = start_mock(false).await;
    let t0 = std::time::Instant::now();
    let r = loadgen(&mock, &["-n", "2", "--hold", "60", "--timeout", "1.5"]).await;
    assert_eq!(r.code, 3);
    assert!(r.json.contains("\"outcome\":\"timed out\""));
    assert!(t0.elapsed() < Duration::from_secs(15));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_server_is_reported() {
    // A port nobody listens on: bind, learn the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mock = Mock {
        addr: format!("127.0.0.1:{port}").parse().unwrap(),
        hub: Arc::default(),
        cert_pem: String::new(),
    };
    let r = loadgen(&mock, &["-n", "2", "--hold", "0"]).await;
    assert_eq!(r.code, 2);
    assert!(r.json.contains("\"connect: ConnectionRefused\":2"), "{}", r.json);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_file_verifies_certificate_and_name() {
    let mock = start_mock(false).await;
    let path = std::env::temp_dir().join(format!("loadgen-test-ca-{}.pem", std::process::id()));
    std::fs::write(&path, &mock.cert_pem).unwrap();
    let ca = path.to_str().unwrap();
    let r = loadgen(&mock, &["-n", "2", "--hold", "0", "--ca-file", ca]).await;
    assert_eq!(r.code, 0, "the right certificate and name verify");
    let r = loadgen(
        &mock,
        &[
            "-n",
            "2",
            "--hold",
            "0",
            "--ca-file",
            ca,
            "--tls-server-name",
            "other.example",
        ],
    )
    .await;
    assert_eq!(r.code, 2, "a name the certificate does not cover fails");
    assert!(r.json.contains("\"tls: invalid peer certificate: "), "{}", r.json);
    std::fs::remove_file(&path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_storm_sets_rosters_up_once_and_counts_every_notification() {
    let mock = start_mock(false).await;
    let pid = std::process::id().to_string();
    let run = |k: &'static str| {
        let pid = pid.clone();
        let mock = &mock;
        async move {
            let args = [
                "-n",
                "10",
                "--scenario",
                "presence",
                "--roster-size",
                k,
                "--presence-rate",
                "100",
                "--duration",
                "2",
                "--server-pid",
                &pid,
            ];
            loadgen(mock, &args).await
        }
    };

    // First run: every session subscribes to its 4 ring contacts and accepts theirs.
    let r = run("4").await;
    assert_eq!(r.code, 0, "clean run");
    assert_eq!(num(&r.json, "roster_setup", "complete"), 10.0);
    assert_eq!(num(&r.json, "roster_setup", "incomplete"), 0.0);
    assert_eq!(num(&r.json, "roster_setup", "already_complete"), 0.0);
    assert!(num(&r.json, "roster_setup", "subscribes_sent") >= 40.0);
    assert!(num(&r.json, "roster_setup", "subscriptions_accepted") >= 1.0);
    let sent = num(&r.json, "presence", "updates_sent");
    assert!((150.0..=220.0).contains(&sent), "about 100/s for 2 s, got {sent}");
    assert_eq!(
        hub_count(&mock.hub.presence_updates) as f64,
        sent,
        "the server saw each update"
    );
    assert_eq!(num(&r.json, "presence", "notifications_expected"), 4.0 * sent);
    assert_eq!(num(&r.json, "presence", "notifications_received"), 4.0 * sent);
    assert_eq!(num(&r.json, "presence", "lost"), 0.0);
    assert_eq!(num(&r.json, "presence", "duplicates"), 0.0);
    assert_eq!(
        num(&r.json, "presence", "own_echoes"),
        sent,
        "each update comes back once"
    );
    assert_eq!(num(&r.json, "presence", "unexpected"), 0.0);
    assert_eq!(num(&r.json, "latency", "count"), 4.0 * sent);
    assert!(num(&r.json, "presence", "delivered_per_sec") > 200.0);
    assert!(
        !r.json.contains("\"cpu_ms_per_1000_notifications\":null"),
        "{}",
        r.json
    );
    assert!(!r.json.contains("\"before_scenario\":null"), "{}", r.json);

    // Second run on the same accounts: the rosters are there, nothing is sent again.
    let r = run("4").await;
    assert_eq!(r.code, 0);
    assert_eq!(num(&r.json, "roster_setup", "already_complete"), 10.0);
    assert_eq!(num(&r.json, "roster_setup", "subscribes_sent"), 0.0);
    assert_eq!(num(&r.json, "roster_setup", "items_removed"), 0.0);

    // A smaller ring: each session removes the 2 contacts it no longer has, and updates
    // reach only the 2 that remain.
    let r = run("2").await;
    assert_eq!(r.code, 0);
    assert_eq!(num(&r.json, "roster_setup", "items_removed"), 20.0);
    assert_eq!(num(&r.json, "roster_setup", "complete"), 10.0);
    let sent = num(&r.json, "presence", "updates_sent");
    assert_eq!(num(&r.json, "presence", "notifications_received"), 2.0 * sent);
    assert_eq!(num(&r.json, "presence", "unexpected"), 0.0);
}
