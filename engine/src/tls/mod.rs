//! TLS for streams, on rustls used sans-IO: ciphertext in, plaintext out, no socket.
//!
//! Serves STARTTLS (RFC 6120 §5) and direct TLS (XEP-0368) alike, and gives the SASL
//! layer its channel bindings: `tls-exporter` (RFC 9266, TLS 1.3 only, as the RFC
//! requires without extended master secret guarantees) and `tls-server-end-point`
//! (RFC 5929 §4, hash of our certificate, computed once per identity).
//!
//! The server side runs on rustls' unbuffered API (`UnbufferedServerConnection`): the
//! caller owns the buffers, so an idle connection keeps no receive buffer at all
//! (rustls' buffered `ServerConnection` keeps 4 KiB per connection for good once it
//! has read). Ciphertext is held only while a record is incomplete.

use std::cell::RefCell;
use std::io::{Read, Write};
use std::sync::Arc;

use rustls::crypto::tls13::{HkdfExpander, OkmBlock};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, UnbufferedStatus};
use sha2::Digest;

use crate::sasl::ChannelBindings;

/// RFC 9266 §2: the exporter label for `tls-exporter` channel binding.
const EXPORTER_LABEL: &[u8] = b"EXPORTER-Channel-Binding";

/// RFC 9266 §2: 32 bytes of exporter output.
const EXPORTER_LEN: usize = 32;

/// Why TLS could not be set up or went wrong.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file holds no certificate or is not PEM.
    #[error("no usable certificate: {0}")]
    Certificate(String),
    /// The key file holds no private key or is not PEM.
    #[error("no usable private key: {0}")]
    PrivateKey(String),
    /// rustls refused the configuration or the peer's records.
    #[error("tls: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A server identity: the rustls configuration and the `tls-server-end-point` data.
/// Built once per listener and shared by its connections.
#[derive(Debug, Clone)]
pub struct TlsIdentity {
    /// The rustls server configuration. Build the identity with
    /// [`TlsIdentity::from_config`] (or [`TlsIdentity::from_pem`]) so that sessions
    /// can compute their `tls-exporter` channel binding.
    pub server_config: Arc<rustls::ServerConfig>,
    /// RFC 5929 §4.1 hash of the end-entity certificate.
    pub end_point_hash: Arc<[u8]>,
    /// TLS 1.3 early data (0-RTT) is accepted (see [`TlsIdentity::with_resumption`]).
    pub early_data: bool,
}

impl TlsIdentity {
    /// Builds an identity from a PEM certificate chain (end-entity first) and a PEM
    /// private key. `alpn` is announced for direct TLS (XEP-0368: `xmpp-client`).
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8], alpn: &[&[u8]]) -> Result<Self, TlsError> {
        let chain = certificate_chain(cert_pem)?;
        let end_point_hash = end_point_hash(chain[0].as_ref());
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::PrivateKey(e.to_string()))?;
        let mut config = rustls::ServerConfig::builder_with_provider(crypto_provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Self::from_config(config, end_point_hash))
    }

    /// An identity from a rustls configuration built elsewhere (client certificates
    /// asked for, say) and the RFC 5929 hash of its certificate
    /// ([`end_point_hash`]). The configuration's key log is taken over: it is how
    /// sessions learn the TLS 1.3 exporter secret (see [`TlsSession::channel_bindings`]).
    pub fn from_config(mut config: rustls::ServerConfig, end_point_hash: Arc<[u8]>) -> Self {
        config.key_log = Arc::new(ExporterSecretCapture);
        // The suite is chosen by our order (see [`crypto_provider`]), not the client's.
        config.ignore_client_order = true;
        Self {
            server_config: Arc::new(config),
            end_point_hash,
            early_data: false,
        }
    }
}

/// ring's provider with TLS 1.3's AES-128-GCM-SHA256 preferred (the server picks
/// the suite by its own order). rustls puts AES-256-GCM-SHA384 first, whose key
/// schedule and transcript hash run on SHA-384, which CPUs accelerate less than
/// SHA-256 (x86's SHA extensions cover SHA-1 and SHA-256 only): SHA-512 blocks were
/// 3.6 % of the server's CPU per login (perf, 5,000 STARTTLS logins). AES-128-GCM
/// is TLS 1.3's mandatory suite (RFC 8446 §9.1) and first in Mozilla's
/// recommendations; every suite stays offered. Server configurations made into a
/// [`TlsIdentity`] follow this order rather than the client's.
pub fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    provider
        .cipher_suites
        .sort_by_key(|s| s.suite() != rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    Arc::new(provider)
}

/// The PEM certificate chain in `cert_pem`, end-entity first; never empty.
pub(crate) fn certificate_chain(cert_pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Certificate(e.to_string()))?;
    if chain.is_empty() {
        return Err(TlsError::Certificate("no CERTIFICATE block".into()));
    }
    Ok(chain)
}

/// Most TLS 1.3 early data accepted per connection: room for a stream header and a
/// SASL2 `<authenticate/>` with a FAST token, Bind 2 and a resumption (well under
/// 2 KiB), with slack for record overhead; nothing else is allowed in it anyway.
pub const MAX_EARLY_DATA: u32 = 8192;

/// How TLS 1.3 sessions are resumed (and whether 0-RTT is possible).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resumption {
    /// Encrypted tickets, no server-side state; rustls never accepts early data on
    /// them (RFC 8446 §8.1: no anti-replay).
    Stateless,
    /// Single-use tickets in server memory: a ticket resumes once, so a replayed
    /// ClientHello gets no early data accepted (RFC 8446 §8.1, single-use tickets).
    SingleUse {
        /// Accept up to [`MAX_EARLY_DATA`] bytes of 0-RTT data.
        early_data: bool,
    },
}

impl TlsIdentity {
    /// This identity with TLS 1.3 session resumption as given. With early data,
    /// the server also sends its first answer right after its Finished (0.5-RTT),
    /// so a 0-RTT FAST login completes in the handshake's round trip.
    pub fn with_resumption(self, resumption: Resumption) -> Result<Self, TlsError> {
        let mut config = (*self.server_config).clone();
        let mut early_data = false;
        match resumption {
            Resumption::Stateless => {
                config.ticketer = rustls::crypto::ring::Ticketer::new()?;
            }
            Resumption::SingleUse { early_data: on } => {
                config.session_storage = rustls::server::ServerSessionMemoryCache::new(65_536);
                if on {
                    config.max_early_data_size = MAX_EARLY_DATA;
                    config.send_half_rtt_data = true;
                    early_data = true;
                }
            }
        }
        Ok(Self {
            server_config: Arc::new(config),
            end_point_hash: self.end_point_hash,
            early_data,
        })
    }
}

/// RFC 5929 §4.1: hash the certificate with its signature's hash, upgrading MD5 and
/// SHA-1 to SHA-256 (and using SHA-256 where the algorithm names no hash, e.g. Ed25519).
pub fn end_point_hash(der: &[u8]) -> Arc<[u8]> {
    use x509_parser::oid_registry as oids;
    let alg = x509_parser::parse_x509_certificate(der)
        .ok()
        .map(|(_, c)| c.signature_algorithm.algorithm.clone());
    match alg {
        Some(a) if a == oids::OID_PKCS1_SHA384WITHRSA || a == oids::OID_SIG_ECDSA_WITH_SHA384 => {
            sha2::Sha384::digest(der).as_slice().into()
        }
        Some(a) if a == oids::OID_PKCS1_SHA512WITHRSA || a == oids::OID_SIG_ECDSA_WITH_SHA512 => {
            sha2::Sha512::digest(der).as_slice().into()
        }
        _ => sha2::Sha256::digest(der).as_slice().into(),
    }
}

thread_local! {
    /// The TLS 1.3 exporter master secret that rustls derived during the call into
    /// rustls that this thread is making (see [`ExporterSecretCapture`]).
    static EXPORTER_SECRET: RefCell<Option<OkmBlock>> = const { RefCell::new(None) };
}

/// rustls' unbuffered server API (0.23) has no `export_keying_material`; what it
/// gives is the exporter master secret, through the configuration's key log, while
/// the handshake is processed. This key log keeps that one secret for the session
/// whose records are being processed on this thread (rustls calls it synchronously
/// from `process_tls_records`), which then derives its RFC 9266 binding
/// ([`tls_exporter`]) and forgets the secret. Nothing is written anywhere.
#[derive(Debug)]
struct ExporterSecretCapture;

impl rustls::KeyLog for ExporterSecretCapture {
    fn log(&self, label: &str, _client_random: &[u8], secret: &[u8]) {
        if label == "EXPORTER_SECRET" && secret.len() <= OkmBlock::MAX_LEN {
            EXPORTER_SECRET.with(|s| *s.borrow_mut() = Some(OkmBlock::new(secret)));
        }
    }

    fn will_log(&self, label: &str) -> bool {
        label == "EXPORTER_SECRET"
    }
}

/// RFC 8446 §7.1 `HKDF-Expand-Label(Secret, Label, Context, Length)`, with `Secret`
/// in `expander` and `Length` the size of `out`.
fn hkdf_expand_label(expander: &dyn HkdfExpander, label: &[u8], context: &[u8], out: &mut [u8]) {
    const PREFIX: &[u8] = b"tls13 ";
    let length = (out.len() as u16).to_be_bytes();
    let label_len = [(PREFIX.len() + label.len()) as u8];
    let context_len = [context.len() as u8];
    let info: [&[u8]; 6] = [&length, &label_len, PREFIX, label, &context_len, context];
    // The lengths used here (32 bytes, one hash) are far below HKDF's 255 × HashLen.
    let _ = expander.expand_slice(&info, out);
}

/// RFC 8446 §7.5 `TLS-Exporter(label, context_value, key_length)` with the
/// RFC 9266 label, an empty context and 32 bytes, from the exporter master secret.
fn tls_exporter(suite: &rustls::Tls13CipherSuite, exporter_secret: &OkmBlock) -> [u8; EXPORTER_LEN] {
    let empty_hash = suite.common.hash_provider.hash(&[]);
    let expander = suite.hkdf_provider.expander_for_okm(exporter_secret);
    // Derive-Secret(exporter_master_secret, label, "").
    let mut derived = [0u8; OkmBlock::MAX_LEN];
    let derived = &mut derived[..expander.hash_len()];
    hkdf_expand_label(expander.as_ref(), EXPORTER_LABEL, empty_hash.as_ref(), derived);
    let expander = suite.hkdf_provider.expander_for_okm(&OkmBlock::new(derived));
    derived.fill(0);
    let mut out = [0u8; EXPORTER_LEN];
    // The context is empty: its hash is that of the empty string.
    hkdf_expand_label(expander.as_ref(), b"exporter", empty_hash.as_ref(), &mut out);
    out
}

/// The TLS layer of one connection: the server side of a C2S, S2S or component
/// stream, or the client side of an outgoing S2S stream.
pub struct TlsSession {
    side: Side,
}

// Every C2S session is a server side: boxing it would cost each one an allocation.
#[allow(clippy::large_enum_variant)]
enum Side {
    Server(ServerTls),
    /// Outgoing S2S streams are few: they keep rustls' buffered client.
    Client(Box<rustls::ClientConnection>),
}

/// The server side of a connection, on rustls' unbuffered API.
struct ServerTls {
    conn: UnbufferedServerConnection,
    /// Ciphertext received and not yet consumed: the start of an incomplete record
    /// (or of a handshake message split over records). Empty, and unallocated,
    /// between reads otherwise.
    incoming: Vec<u8>,
    /// Ciphertext for the peer, until [`TlsSession::take_output`].
    outgoing: Vec<u8>,
    /// Plaintext written before application data may be sent (during the
    /// handshake); encrypted as soon as it may.
    pending: Vec<u8>,
    /// RFC 9266 `tls-exporter` data, known once the TLS 1.3 keys are.
    exporter: Option<[u8; EXPORTER_LEN]>,
    end_point_hash: Arc<[u8]>,
    /// A `close_notify` is to be sent (after any pending plaintext).
    closing: bool,
    /// The `close_notify` went into `outgoing`.
    close_sent: bool,
    /// rustls reported an error: the session is over.
    failed: bool,
}

impl TlsSession {
    /// A server-side TLS session for `identity`.
    pub fn new(identity: &TlsIdentity) -> Result<Self, TlsError> {
        Ok(Self {
            side: Side::Server(ServerTls {
                conn: UnbufferedServerConnection::new(identity.server_config.clone())?,
                incoming: Vec::new(),
                outgoing: Vec::new(),
                pending: Vec::new(),
                exporter: None,
                end_point_hash: identity.end_point_hash.clone(),
                closing: false,
                close_sent: false,
                failed: false,
            }),
        })
    }

    /// A client-side TLS session towards `server_name` (an outgoing S2S stream,
    /// RFC 6120 §5.4.3.1: the certificate is checked against the peer's domain).
    pub fn client(config: Arc<rustls::ClientConfig>, server_name: &str) -> Result<Self, TlsError> {
        let name = rustls::pki_types::ServerName::try_from(server_name.to_string())
            .map_err(|e| TlsError::Rustls(rustls::Error::General(e.to_string())))?;
        Ok(Self {
            side: Side::Client(Box::new(rustls::ClientConnection::new(config, name)?)),
        })
    }

    /// The certificate chain the peer presented (end-entity first), once the
    /// handshake is done. For a server session, only when client certificates were
    /// asked for and verified (XEP-0178).
    pub fn peer_certificates(&self) -> Option<&[CertificateDer<'static>]> {
        match &self.side {
            Side::Server(s) => s.conn.peer_certificates(),
            Side::Client(c) => c.peer_certificates(),
        }
    }

    /// Feeds ciphertext; decrypted application data is appended to `plaintext`.
    /// An error means the TLS session is broken: send what [`TlsSession::take_output`]
    /// has (an alert) and close.
    pub fn read(&mut self, ciphertext: &[u8], plaintext: &mut Vec<u8>) -> Result<(), TlsError> {
        match &mut self.side {
            // Early data comes first, so it lands in `plaintext` in order.
            Side::Server(s) => s.receive(ciphertext, None, plaintext),
            Side::Client(c) => read_client(c, ciphertext, plaintext),
        }
    }

    /// [`TlsSession::read`], keeping TLS 1.3 early (0-RTT) data apart: it comes
    /// first, into `early`; everything after the handshake into `plaintext`.
    /// Early data may be a replay (RFC 8446 §8), so the caller treats it apart.
    pub fn read_with_early(
        &mut self,
        ciphertext: &[u8],
        early: &mut Vec<u8>,
        plaintext: &mut Vec<u8>,
    ) -> Result<(), TlsError> {
        match &mut self.side {
            Side::Server(s) => s.receive(ciphertext, Some(early), plaintext),
            // Only a server receives early data.
            Side::Client(c) => read_client(c, ciphertext, plaintext),
        }
    }

    /// Encrypts application data (queued until the handshake allows it).
    pub fn write(&mut self, plaintext: &[u8]) {
        match &mut self.side {
            Side::Server(s) => {
                s.pending.extend_from_slice(plaintext);
                s.pump_output();
            }
            // Writing into rustls' buffer cannot fail except when the connection is closed.
            Side::Client(c) => {
                let _ = c.writer().write_all(plaintext);
            }
        }
    }

    /// Appends pending ciphertext (handshake records, alerts, application data) to `out`.
    pub fn take_output(&mut self, out: &mut Vec<u8>) {
        match &mut self.side {
            Side::Server(s) => {
                if out.is_empty() && out.capacity() == 0 {
                    *out = std::mem::take(&mut s.outgoing);
                } else if !s.outgoing.is_empty() {
                    out.extend_from_slice(&s.outgoing);
                    s.outgoing = Vec::new();
                }
            }
            Side::Client(c) => {
                while c.wants_write() {
                    if c.write_tls(out).is_err() {
                        break;
                    }
                }
            }
        }
    }

    /// Queues a `close_notify` alert, after what was written before. A server
    /// session whose handshake has not got far enough to send application data
    /// sends none.
    pub fn close(&mut self) {
        match &mut self.side {
            Side::Server(s) => {
                s.closing = true;
                s.pump_output();
            }
            Side::Client(c) => c.send_close_notify(),
        }
    }

    /// True until the handshake has completed.
    pub fn is_handshaking(&self) -> bool {
        match &self.side {
            Side::Server(s) => s.conn.is_handshaking(),
            Side::Client(c) => c.is_handshaking(),
        }
    }

    /// The negotiated protocol version, once known.
    pub fn protocol_version(&self) -> Option<rustls::ProtocolVersion> {
        match &self.side {
            Side::Server(s) => s.conn.protocol_version(),
            Side::Client(c) => c.protocol_version(),
        }
    }

    /// Channel bindings of this connection (empty before the handshake completes,
    /// and on the client side, which never needs them).
    pub fn channel_bindings(&self) -> ChannelBindings {
        match &self.side {
            Side::Server(s) if !s.conn.is_handshaking() => ChannelBindings {
                tls_exporter: s.exporter.map(|e| e.to_vec()),
                tls_server_end_point: Some(s.end_point_hash.to_vec()),
            },
            _ => ChannelBindings::default(),
        }
    }
}

fn read_client(
    conn: &mut rustls::ClientConnection,
    mut ciphertext: &[u8],
    plaintext: &mut Vec<u8>,
) -> Result<(), TlsError> {
    while !ciphertext.is_empty() {
        // rustls takes records at its own pace; loop until all input is consumed.
        match conn.read_tls(&mut ciphertext) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => return Err(TlsError::Rustls(rustls::Error::General(e.to_string()))),
        }
        conn.process_new_packets()?;
        drain_client_plaintext(conn, plaintext);
    }
    conn.process_new_packets()?;
    drain_client_plaintext(conn, plaintext);
    Ok(())
}

fn drain_client_plaintext(conn: &mut rustls::ClientConnection, plaintext: &mut Vec<u8>) {
    let mut buf = [0u8; 8192];
    loop {
        match conn.reader().read(&mut buf) {
            Ok(0) => break,
            Ok(n) => plaintext.extend_from_slice(&buf[..n]),
            // WouldBlock: no more plaintext now; other errors: peer closed uncleanly,
            // which the runtime sees as EOF anyway.
            Err(_) => break,
        }
    }
}

impl ServerTls {
    /// Ciphertext from the peer: handshake records are answered into `outgoing`,
    /// early data goes to `early` (or `plaintext` when `None`), application data to
    /// `plaintext`.
    fn receive(
        &mut self,
        ciphertext: &[u8],
        early: Option<&mut Vec<u8>>,
        plaintext: &mut Vec<u8>,
    ) -> Result<(), TlsError> {
        if self.failed {
            return Err(TlsError::Rustls(rustls::Error::General(
                "TLS session failed".into(),
            )));
        }
        self.incoming.extend_from_slice(ciphertext);
        let result = self.pump(early, plaintext);
        if self.incoming.is_empty() {
            // Idle: no receive buffer.
            self.incoming = Vec::new();
        } else if self.incoming.capacity() > 2 * self.incoming.len() + 1024 {
            self.incoming.shrink_to_fit();
        }
        result.map_err(|e| {
            self.fail();
            TlsError::Rustls(e)
        })
    }

    /// Encrypts pending plaintext (and the `close_notify`) if the handshake allows.
    fn pump_output(&mut self) {
        if self.failed {
            return;
        }
        let mut none = Vec::new();
        if self.pump(None, &mut none).is_err() {
            self.fail();
        }
    }

    /// The session broke: what rustls still has to say (a fatal alert) goes to
    /// `outgoing`, and nothing else is ever processed.
    fn fail(&mut self) {
        self.failed = true;
        self.incoming = Vec::new();
        self.pending = Vec::new();
        for _ in 0..8 {
            let UnbufferedStatus { state, .. } = self.conn.process_tls_records(&mut []);
            match state {
                Ok(ConnectionState::EncodeTlsData(mut data)) => {
                    let _ = append_encoded(&mut self.outgoing, |buf| data.encode(buf));
                }
                Ok(ConnectionState::TransmitTlsData(data)) => data.done(),
                _ => break,
            }
        }
    }

    /// Drives rustls until it needs more input: the unbuffered API's state machine
    /// (rustls::unbuffered), each state handled as the docs ask.
    fn pump(
        &mut self,
        mut early: Option<&mut Vec<u8>>,
        plaintext: &mut Vec<u8>,
    ) -> Result<(), rustls::Error> {
        EXPORTER_SECRET.with(|s| s.borrow_mut().take());
        let result = self.pump_records(&mut early, plaintext);
        if let Some(secret) = EXPORTER_SECRET.with(|s| s.borrow_mut().take()) {
            if let Some(rustls::SupportedCipherSuite::Tls13(suite)) = self.conn.negotiated_cipher_suite() {
                self.exporter = Some(tls_exporter(suite, &secret));
            }
        }
        result
    }

    fn pump_records(
        &mut self,
        early: &mut Option<&mut Vec<u8>>,
        plaintext: &mut Vec<u8>,
    ) -> Result<(), rustls::Error> {
        let Self {
            conn,
            incoming,
            outgoing,
            pending,
            closing,
            close_sent,
            ..
        } = self;
        loop {
            let UnbufferedStatus { mut discard, state } = conn.process_tls_records(incoming);
            let state = match state {
                Ok(state) => state,
                Err(e) => {
                    incoming.drain(..discard);
                    return Err(e);
                }
            };
            let mut more = true;
            match state {
                ConnectionState::ReadTraffic(mut data) => {
                    while let Some(record) = data.next_record() {
                        let record = record?;
                        discard += record.discard;
                        plaintext.extend_from_slice(record.payload);
                    }
                }
                ConnectionState::ReadEarlyData(mut data) => {
                    while let Some(record) = data.next_record() {
                        let record = record?;
                        discard += record.discard;
                        match early.as_deref_mut() {
                            Some(early) => early.extend_from_slice(record.payload),
                            None => plaintext.extend_from_slice(record.payload),
                        }
                    }
                }
                ConnectionState::EncodeTlsData(mut data) => {
                    append_encoded(outgoing, |buf| data.encode(buf))
                        .map_err(|e| rustls::Error::General(e.to_string()))?;
                }
                // The records encoded so far are in `outgoing`, for the caller to send.
                ConnectionState::TransmitTlsData(data) => data.done(),
                ConnectionState::WriteTraffic(mut data) => {
                    if !pending.is_empty() {
                        append_encrypted(outgoing, pending.len(), |buf| data.encrypt(pending, buf))
                            .map_err(|e| rustls::Error::General(e.to_string()))?;
                        *pending = Vec::new();
                    }
                    if *closing && !*close_sent {
                        *close_sent = true;
                        append_encrypted(outgoing, 0, |buf| data.queue_close_notify(buf))
                            .map_err(|e| rustls::Error::General(e.to_string()))?;
                    }
                    more = false;
                }
                // Edge-triggered: what follows is WriteTraffic or Closed.
                ConnectionState::PeerClosed => {}
                // BlockedHandshake (more input needed), Closed, or a state this
                // version does not know.
                _ => more = false,
            }
            if discard > 0 {
                incoming.drain(..discard);
            }
            if !more {
                return Ok(());
            }
        }
    }
}

/// Runs `encode` on room at the end of `out`, growing it to the size rustls asks.
fn append_encoded(
    out: &mut Vec<u8>,
    mut encode: impl FnMut(&mut [u8]) -> Result<usize, EncodeError>,
) -> Result<(), EncodeError> {
    let start = out.len();
    let written = match encode(&mut []) {
        Ok(n) => n,
        Err(EncodeError::InsufficientSize(size)) => {
            out.resize(start + size.required_size, 0);
            encode(&mut out[start..]).inspect_err(|_| out.truncate(start))?
        }
        Err(e) => return Err(e),
    };
    out.truncate(start + written);
    Ok(())
}

/// Runs `encrypt` for `len` bytes of plaintext on room at the end of `out`, growing it
/// to the size rustls asks when the estimate falls short.
fn append_encrypted(
    out: &mut Vec<u8>,
    len: usize,
    mut encrypt: impl FnMut(&mut [u8]) -> Result<usize, EncryptError>,
) -> Result<(), EncryptError> {
    // Records carry at most 16 KiB each, with under 32 bytes of header, content type,
    // explicit nonce and tag (TLS 1.2 or 1.3); a close_notify fits in 32 too.
    let start = out.len();
    out.resize(start + len + 32 * (len / 16_384 + 1), 0);
    let written = match encrypt(&mut out[start..]) {
        Ok(n) => n,
        Err(EncryptError::InsufficientSize(size)) => {
            out.resize(start + size.required_size, 0);
            encrypt(&mut out[start..]).inspect_err(|_| out.truncate(start))?
        }
        Err(e) => {
            out.truncate(start);
            return Err(e);
        }
    };
    out.truncate(start + written);
    Ok(())
}

#[cfg(test)]
mod tests;
