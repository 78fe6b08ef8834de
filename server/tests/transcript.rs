//! The same conversation, byte for byte, on every runtime: two users log in over real
//! sockets (in clear, SCRAM-SHA-1), bind, chat, send directed presence, hit errors
//! and leave. Everything each client reads is written to one transcript, with only
//! the values that are random by design replaced (stream ids, SCRAM payloads); the
//! three runtimes must produce the one snapshot in `snapshots/`.
//!
//! With two hub shards, alice and bob live on different shards, so every stanza
//! between them crosses shards through the runtime.

mod support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use meerkat_engine::sasl::{ScramClient, ScramHash};
use support::{Server, STREAM_OPEN};

/// One client, recording what it sends and reads.
struct Client<'t> {
    name: &'static str,
    socket: TcpStream,
    log: &'t mut String,
}

impl Client<'_> {
    fn send(&mut self, xml: &str) {
        self.log
            .push_str(&format!("{} > {}\n", self.name, normalise(xml)));
        self.socket.write_all(xml.as_bytes()).expect("send");
    }

    /// Reads until `marker` has arrived and the input ends at a tag boundary.
    fn read_until(&mut self, marker: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut got = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            let text = String::from_utf8_lossy(&got);
            if text.contains(marker) && text.ends_with('>') {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{}: no {marker:?} in {text}",
                self.name
            );
            let n = self.socket.read(&mut buf).unwrap_or(0);
            assert!(n > 0, "{}: closed before {marker:?}; got {text}", self.name);
            got.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&got).into_owned();
        self.log
            .push_str(&format!("{} < {}\n", self.name, normalise(&text)));
        text
    }

    /// Stream, SCRAM-SHA-1, stream restart, bind `resource`, roster, initial presence.
    fn login(&mut self, user: &str, password: &str, resource: &str) {
        self.send(STREAM_OPEN);
        self.read_until("</stream:features>");
        let mut scram = ScramClient::new(ScramHash::Sha1, user, password, "tr4nscr1pt", "n,,", Vec::new());
        self.send(&format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-1'>{}</auth>",
            B64.encode(scram.first())
        ));
        let challenge = self.read_until("</challenge>");
        let server_first = B64.decode(element_text(&challenge)).expect("base64 challenge");
        let last = scram.finish(&server_first).expect("server-first");
        self.send(&format!(
            "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</response>",
            B64.encode(last)
        ));
        self.read_until("</success>");
        self.send(STREAM_OPEN);
        self.read_until("</stream:features>");
        self.send(&format!(
            "<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
             <resource>{resource}</resource></bind></iq>"
        ));
        self.read_until("</iq>");
        self.send("<iq type='get' id='roster'><query xmlns='jabber:iq:roster'/></iq>");
        self.read_until("id='roster'");
        self.send("<presence/>");
        self.read_until("<presence");
    }
}

/// The text content of the first element in `xml`.
fn element_text(xml: &str) -> &str {
    let start = xml.find('>').map_or(0, |i| i + 1);
    let end = xml[start..].find('<').map_or(xml.len(), |i| start + i);
    &xml[start..end]
}

/// Replaces what is random by design: stream ids and SASL payloads.
fn normalise(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("<stream:stream") {
        let end = rest[i..].find('>').map_or(rest.len(), |e| i + e + 1);
        let header = &rest[i..end];
        out.push_str(&rest[..i]);
        out.push_str(&replace_attr(header, "id", "STREAM-ID"));
        rest = &rest[end..];
    }
    out.push_str(rest);
    for tag in ["challenge", "response", "success", "auth"] {
        out = replace_content(&out, tag);
    }
    out
}

fn replace_attr(tag: &str, name: &str, with: &str) -> String {
    let key = format!(" {name}='");
    match tag.find(&key) {
        Some(i) => {
            let start = i + key.len();
            let end = tag[start..].find('\'').map_or(tag.len(), |e| start + e);
            format!("{}{with}{}", &tag[..start], &tag[end..])
        }
        None => tag.to_string(),
    }
}

fn replace_content(text: &str, tag: &str) -> String {
    let (open, close) = (format!("<{tag} "), format!("</{tag}>"));
    let Some(i) = text.find(&open) else {
        return text.to_string();
    };
    let Some(gt) = text[i..].find('>').map(|g| i + g + 1) else {
        return text.to_string();
    };
    match text[gt..].find(&close) {
        Some(c) => format!("{}B64{}", &text[..gt], &text[gt + c..]),
        None => text.to_string(),
    }
}

fn conversation(runtime: &str) -> String {
    let server = Server::start(runtime, "transcript", &[("alice", "alice-pw"), ("bob", "bob-pw")]);
    let connect = || {
        let s = TcpStream::connect((Ipv4Addr::LOCALHOST, server.starttls_port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        s
    };
    let (mut alice_log, mut bob_log) = (String::new(), String::new());
    let mut log = String::new();
    {
        let mut alice = Client {
            name: "alice",
            socket: connect(),
            log: &mut alice_log,
        };
        alice.login("alice", "alice-pw", "desk");
        let mut bob = Client {
            name: "bob",
            socket: connect(),
            log: &mut bob_log,
        };
        bob.login("bob", "bob-pw", "phone");

        alice.send("<message to='bob@localhost' type='chat' id='m1'><body>hi bob</body></message>");
        bob.read_until("</message>");
        bob.send("<message to='alice@localhost/desk' type='chat' id='m2'><body>hi alice</body></message>");
        alice.read_until("</message>");
        alice.send("<presence to='bob@localhost/phone'><show>chat</show></presence>");
        bob.read_until("</presence>");
        alice.send("<iq type='get' id='ping' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>");
        alice.read_until("id='ping'");
        alice.send("<iq type='get' id='disco' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>");
        alice.read_until("</iq>");
        alice.send("<message to='nobody@localhost' type='chat' id='m3'><body>anyone?</body></message>");
        alice.read_until("</message>");
        alice.send("<iq type='get' id='odd' to='localhost'><unknown xmlns='urn:example:nothing'/></iq>");
        alice.read_until("</iq>");
        alice.send("</stream:stream>");
        alice.read_until("</stream:stream>");
        // Alice's directed presence ends with her session (RFC 6121 §4.6.3).
        bob.read_until("type='unavailable'");
        bob.send("</stream:stream>");
        bob.read_until("</stream:stream>");
    }
    log.push_str(&alice_log);
    log.push_str(&bob_log);
    log
}

on_every_runtime! {
    fn two_users_chat_byte_for_byte(runtime) {
        insta::assert_snapshot!("two_users_chat", conversation(runtime));
    }
}
