//! TLS for streams, on rustls used sans-IO: ciphertext in, plaintext out, no socket.
//!
//! Serves STARTTLS (RFC 6120 §5) and direct TLS (XEP-0368) alike, and gives the SASL
//! layer its channel bindings: `tls-exporter` (RFC 9266, TLS 1.3 only, as the RFC
//! requires without extended master secret guarantees) and `tls-server-end-point`
//! (RFC 5929 §4, hash of our certificate, computed once per identity).

use std::io::{Read, Write};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::Digest;

use crate::sasl::ChannelBindings;

/// RFC 9266 §2: the exporter label for `tls-exporter` channel binding.
const EXPORTER_LABEL: &[u8] = b"EXPORTER-Channel-Binding";

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
    /// The rustls server configuration.
    pub server_config: Arc<rustls::ServerConfig>,
    /// RFC 5929 §4.1 hash of the end-entity certificate.
    pub end_point_hash: Vec<u8>,
    /// TLS 1.3 early data (0-RTT) is accepted (see [`TlsIdentity::with_early_data`]).
    pub early_data: bool,
}

impl TlsIdentity {
    /// Builds an identity from a PEM certificate chain (end-entity first) and a PEM
    /// private key. `alpn` is announced for direct TLS (XEP-0368: `xmpp-client`).
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8], alpn: &[&[u8]]) -> Result<Self, TlsError> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<_, _>>()
            .map_err(|e| TlsError::Certificate(e.to_string()))?;
        let leaf = chain
            .first()
            .ok_or_else(|| TlsError::Certificate("no CERTIFICATE block".into()))?;
        let end_point_hash = end_point_hash(leaf.as_ref());
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::PrivateKey(e.to_string()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Self {
            server_config: Arc::new(config),
            end_point_hash,
            early_data: false,
        })
    }
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
pub(crate) fn end_point_hash(der: &[u8]) -> Vec<u8> {
    use x509_parser::oid_registry as oids;
    let alg = x509_parser::parse_x509_certificate(der)
        .ok()
        .map(|(_, c)| c.signature_algorithm.algorithm.clone());
    match alg {
        Some(a) if a == oids::OID_PKCS1_SHA384WITHRSA || a == oids::OID_SIG_ECDSA_WITH_SHA384 => {
            sha2::Sha384::digest(der).to_vec()
        }
        Some(a) if a == oids::OID_PKCS1_SHA512WITHRSA || a == oids::OID_SIG_ECDSA_WITH_SHA512 => {
            sha2::Sha512::digest(der).to_vec()
        }
        _ => sha2::Sha256::digest(der).to_vec(),
    }
}

/// The TLS layer of one connection: the server side of a C2S, S2S or component
/// stream, or the client side of an outgoing S2S stream.
pub struct TlsSession {
    conn: rustls::Connection,
    end_point_hash: Vec<u8>,
}

impl TlsSession {
    /// A server-side TLS session for `identity`.
    pub fn new(identity: &TlsIdentity) -> Result<Self, TlsError> {
        Ok(Self {
            conn: rustls::ServerConnection::new(identity.server_config.clone())?.into(),
            end_point_hash: identity.end_point_hash.clone(),
        })
    }

    /// A client-side TLS session towards `server_name` (an outgoing S2S stream,
    /// RFC 6120 §5.4.3.1: the certificate is checked against the peer's domain).
    pub fn client(config: Arc<rustls::ClientConfig>, server_name: &str) -> Result<Self, TlsError> {
        let name = rustls::pki_types::ServerName::try_from(server_name.to_string())
            .map_err(|e| TlsError::Rustls(rustls::Error::General(e.to_string())))?;
        Ok(Self {
            conn: rustls::ClientConnection::new(config, name)?.into(),
            end_point_hash: Vec::new(),
        })
    }

    /// The certificate chain the peer presented (end-entity first), once the
    /// handshake is done. For a server session, only when client certificates were
    /// asked for and verified (XEP-0178).
    pub fn peer_certificates(&self) -> Option<&[CertificateDer<'static>]> {
        self.conn.peer_certificates()
    }

    /// Feeds ciphertext; decrypted application data is appended to `plaintext`.
    /// An error means the TLS session is broken: send what [`TlsSession::take_output`]
    /// has (an alert) and close.
    pub fn read(&mut self, ciphertext: &[u8], plaintext: &mut Vec<u8>) -> Result<(), TlsError> {
        let mut early = Vec::new();
        self.read_with_early(ciphertext, &mut early, plaintext)?;
        // Without early data enabled there is none; keep it in order regardless.
        early.extend_from_slice(plaintext);
        *plaintext = early;
        Ok(())
    }

    /// [`TlsSession::read`], keeping TLS 1.3 early (0-RTT) data apart: it comes
    /// first, into `early`; everything after the handshake into `plaintext`.
    /// Early data may be a replay (RFC 8446 §8), so the caller treats it apart.
    pub fn read_with_early(
        &mut self,
        mut ciphertext: &[u8],
        early: &mut Vec<u8>,
        plaintext: &mut Vec<u8>,
    ) -> Result<(), TlsError> {
        while !ciphertext.is_empty() {
            // rustls takes records at its own pace; loop until all input is consumed.
            match self.conn.read_tls(&mut ciphertext) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => return Err(TlsError::Rustls(rustls::Error::General(e.to_string()))),
            }
            self.conn.process_new_packets()?;
            self.drain_early(early);
            self.drain_plaintext(plaintext);
        }
        self.conn.process_new_packets()?;
        self.drain_early(early);
        self.drain_plaintext(plaintext);
        Ok(())
    }

    fn drain_early(&mut self, early: &mut Vec<u8>) {
        // Only a server receives early data.
        if let rustls::Connection::Server(conn) = &mut self.conn {
            if let Some(mut data) = conn.early_data() {
                let _ = data.read_to_end(early);
            }
        }
    }

    fn drain_plaintext(&mut self, plaintext: &mut Vec<u8>) {
        let mut buf = [0u8; 8192];
        loop {
            match self.conn.reader().read(&mut buf) {
                Ok(0) => break,
                Ok(n) => plaintext.extend_from_slice(&buf[..n]),
                // WouldBlock: no more plaintext now; other errors: peer closed uncleanly,
                // which the runtime sees as EOF anyway.
                Err(_) => break,
            }
        }
    }

    /// Encrypts application data (queued until the handshake is done).
    pub fn write(&mut self, plaintext: &[u8]) {
        // Writing into rustls' buffer cannot fail except when the connection is closed.
        let _ = self.conn.writer().write_all(plaintext);
    }

    /// Appends pending ciphertext (handshake records, alerts, application data) to `out`.
    pub fn take_output(&mut self, out: &mut Vec<u8>) {
        while self.conn.wants_write() {
            if self.conn.write_tls(out).is_err() {
                break;
            }
        }
    }

    /// Queues a `close_notify` alert.
    pub fn close(&mut self) {
        self.conn.send_close_notify();
    }

    /// True until the handshake has completed.
    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// The negotiated protocol version, once known.
    pub fn protocol_version(&self) -> Option<rustls::ProtocolVersion> {
        self.conn.protocol_version()
    }

    /// The SNI name the client asked for (server sessions only).
    pub fn server_name(&self) -> Option<&str> {
        match &self.conn {
            rustls::Connection::Server(c) => c.server_name(),
            rustls::Connection::Client(_) => None,
        }
    }

    /// Channel bindings of this connection (empty before the handshake completes).
    pub fn channel_bindings(&self) -> ChannelBindings {
        if self.conn.is_handshaking() {
            return ChannelBindings::default();
        }
        let tls_exporter = if self.conn.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3) {
            let mut out = [0u8; 32];
            self.conn
                .export_keying_material(&mut out, EXPORTER_LABEL, None)
                .ok()
                .map(|o| o.to_vec())
        } else {
            None
        };
        ChannelBindings {
            tls_exporter,
            tls_server_end_point: Some(self.end_point_hash.clone()),
        }
    }
}
