//! A scripted client on one simulated connection: sends text, reads the server's
//! answer (through TLS when negotiated) and records both in a [`Transcript`].

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use meerkat_engine::hub::SessionId;
use meerkat_engine::sasl::{ScramClient, ScramHash};

use crate::tls::TlsClient;
use crate::transcript::Transcript;
use crate::Simulation;

/// The stream header a client sends to `localhost`.
pub const STREAM_OPEN: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";

/// One client connection.
pub struct Driver {
    /// The connection id in the simulation.
    pub id: SessionId,
    tls: Option<TlsClient>,
    /// What was said.
    pub transcript: Transcript,
}

impl Driver {
    /// Connects a new client.
    pub fn connect(sim: &mut Simulation) -> Self {
        let id = sim.connect();
        Self {
            id,
            tls: None,
            transcript: Transcript::new(),
        }
    }

    /// Connects a new client over a message-framed transport (WebSocket, BOSH):
    /// every [`Driver::send`] is one message.
    pub fn connect_framed(
        sim: &mut Simulation,
        security: Option<meerkat_engine::stream::c2s::TransportSecurity>,
    ) -> Self {
        let id = sim.connect_framed(security);
        Self {
            id,
            tls: None,
            transcript: Transcript::new(),
        }
    }

    /// Connects a new client to a direct-TLS listener and completes the handshake.
    pub fn connect_tls(sim: &mut Simulation, config: Arc<rustls::ClientConfig>) -> Self {
        let mut d = Self::connect(sim);
        d.handshake(sim, config);
        d
    }

    /// Sends `text` as the client.
    pub fn send(&mut self, sim: &mut Simulation, text: &str) {
        self.transcript.client(text);
        self.send_quiet(sim, text.as_bytes());
    }

    /// Sends bytes without recording them (large or binary input).
    pub fn send_quiet(&mut self, sim: &mut Simulation, bytes: &[u8]) {
        match &mut self.tls {
            Some(tls) => {
                tls.send(bytes);
                let wire = tls.take_ciphertext();
                sim.client_bytes(self.id, &wire);
            }
            None => sim.client_bytes(self.id, bytes),
        }
    }

    /// Reads what the server sent since the last read.
    pub fn recv(&mut self, sim: &mut Simulation) -> String {
        let wire = sim.take_output(self.id);
        let plain = match &mut self.tls {
            Some(tls) => tls.receive(&wire),
            None => wire,
        };
        let text = String::from_utf8_lossy(&plain).into_owned();
        self.transcript.server(&text);
        text
    }

    /// Runs the TLS handshake (after `<proceed/>`, or from the start for direct TLS).
    pub fn handshake(&mut self, sim: &mut Simulation, config: Arc<rustls::ClientConfig>) {
        let mut tls = TlsClient::new(config);
        for _ in 0..10 {
            let out = tls.take_ciphertext();
            if !out.is_empty() {
                sim.client_bytes(self.id, &out);
            }
            let back = sim.take_output(self.id);
            let _ = tls.receive(&back);
            if !tls.is_handshaking() && back.is_empty() {
                break;
            }
        }
        assert!(!tls.is_handshaking(), "TLS handshake did not complete");
        self.transcript.note("TLS handshake");
        self.tls = Some(tls);
    }

    /// RFC 9266 exporter of the client side, once TLS is up.
    pub fn exporter(&self) -> Option<Vec<u8>> {
        self.tls.as_ref().map(|t| t.exporter())
    }

    /// SCRAM authentication with a fixed client nonce; returns the server's last answer.
    pub fn scram(
        &mut self,
        sim: &mut Simulation,
        mechanism: &str,
        hash: ScramHash,
        user: &str,
        password: &str,
    ) -> String {
        let mut client = ScramClient::new(hash, user, password, "cl13ntn0nc3", "n,,", Vec::new());
        self.scram_with(sim, mechanism, &mut client)
    }

    /// SCRAM authentication with a prepared client (channel binding, GS2 header).
    pub fn scram_with(&mut self, sim: &mut Simulation, mechanism: &str, client: &mut ScramClient) -> String {
        self.send(
            sim,
            &format!(
                "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='{mechanism}'>{}</auth>",
                B64.encode(client.first())
            ),
        );
        let challenge = self.recv(sim);
        let Some(server_first) = element_text(&challenge, "challenge") else {
            return challenge;
        };
        let server_first = B64.decode(server_first).expect("base64");
        let fin = client.finish(&server_first).expect("server-first");
        self.send(
            sim,
            &format!(
                "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</response>",
                B64.encode(fin)
            ),
        );
        let answer = self.recv(sim);
        if let Some(data) = element_text(&answer, "success") {
            let server_final = B64.decode(data).expect("base64");
            assert!(client.verify(&server_final), "server signature must verify");
        }
        answer
    }

    /// Opens the stream, authenticates with SCRAM-SHA-256 and binds `resource`
    /// (plain text; for connections without TLS).
    pub fn login(sim: &mut Simulation, user: &str, password: &str, resource: &str) -> Self {
        Self::login_to(sim, "localhost", user, password, resource)
    }

    /// [`Driver::login`] on a server whose domain is `domain`.
    pub fn login_to(sim: &mut Simulation, domain: &str, user: &str, password: &str, resource: &str) -> Self {
        let open = STREAM_OPEN.replace("to='localhost'", &format!("to='{domain}'"));
        let mut d = Self::connect(sim);
        d.send(sim, &open);
        d.recv(sim);
        let answer = d.scram(sim, "SCRAM-SHA-256", ScramHash::Sha256, user, password);
        assert!(answer.contains("<success"), "login of {user} failed: {answer}");
        d.send(sim, &open);
        d.recv(sim);
        d.send(
            sim,
            &format!("<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>{resource}</resource></bind></iq>"),
        );
        let bound = d.recv(sim);
        assert!(bound.contains("<jid>"), "bind failed: {bound}");
        d
    }
}

/// The text of the first `<name ...>text</name>` in `xml` (a crude reader for
/// transcripts the server itself produced).
pub fn element_text<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let start = xml.find(&format!("<{name}"))?;
    let rest = &xml[start..];
    let open_end = rest.find('>')?;
    if rest[..open_end].ends_with('/') {
        return Some("");
    }
    let body = &rest[open_end + 1..];
    let close = body.find(&format!("</{name}>"))?;
    Some(&body[..close])
}
