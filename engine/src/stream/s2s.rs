//! What the incoming and outgoing S2S streams share (RFC 6120 §13, XEP-0178,
//! XEP-0220): the settings common to both (`[s2s]`), the Server Dialback key, and the
//! certificate checks that decide whether SASL EXTERNAL can authenticate a peer.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};

use super::wire::hex;
use crate::federation::S2sPolicy;

/// `tls.verify_mode` of `[[listen.s2s]]` and `[s2s.outgoing]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyMode {
    /// `"peer"`: certificates are checked against the trusted CAs. Outgoing, a
    /// certificate that does not verify for the remote domain fails the connection;
    /// incoming, a client certificate that verifies allows SASL EXTERNAL (XEP-0178),
    /// and dialback remains for peers without one.
    Peer,
    /// `"none"`: certificates are not checked; peers authenticate with Server
    /// Dialback (XEP-0220), TLS only encrypts.
    None,
}

/// Settings shared by incoming and outgoing S2S (`[s2s]`).
#[derive(Clone)]
pub struct S2sConfig {
    /// Served domains.
    pub hosts: Vec<String>,
    /// `s2s.shared`: the dialback secret (XEP-0185).
    pub secret: Vec<u8>,
    /// `default_policy` and `host_policy`.
    pub policy: S2sPolicy,
    /// Trusted CAs (the OS store plus `tls.cacertfile`).
    pub roots: Arc<RootCertStore>,
    /// Wall-clock source for certificate validity; rustls' own by default, fixed in
    /// simulations.
    pub time: Arc<dyn rustls::time_provider::TimeProvider>,
    /// Time allowed for each negotiation step (`state_timeout`).
    pub state_timeout: Duration,
    /// An idle stream is closed after this long (`stream_timeout`).
    pub stream_timeout: Duration,
}

impl std::fmt::Debug for S2sConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S2sConfig")
            .field("hosts", &self.hosts)
            .field("policy", &self.policy)
            .field("roots", &self.roots.len())
            .finish_non_exhaustive()
    }
}

impl S2sConfig {
    /// Settings for `hosts` with dialback `secret`, no trusted CA and MongooseIM's
    /// timeouts.
    pub fn new(hosts: Vec<String>, secret: impl Into<Vec<u8>>) -> Self {
        Self {
            hosts,
            secret: secret.into(),
            policy: S2sPolicy::default(),
            roots: Arc::new(RootCertStore::empty()),
            time: Arc::new(rustls::time_provider::DefaultTimeProvider),
            state_timeout: Duration::from_secs(5),
            stream_timeout: Duration::from_secs(600),
        }
    }

    /// True when `domain` is served here.
    pub fn serves(&self, domain: &str) -> bool {
        self.hosts.iter().any(|h| h == domain)
    }

    /// XEP-0185 §3: the dialback key the originating server sends to the receiving
    /// server for stream `stream_id`: hex HMAC-SHA256 keyed with SHA-256 of the secret
    /// over "receiving originating stream-id". Stateless, so the authoritative server
    /// checks a key by computing it again.
    pub fn dialback_key(&self, receiving: &str, originating: &str, stream_id: &str) -> String {
        let key = Sha256::digest(&self.secret);
        let mut mac = Hmac::<Sha256>::new_from_slice(hex(&key).as_bytes()).expect("HMAC takes any key");
        mac.update(receiving.as_bytes());
        mac.update(b" ");
        mac.update(originating.as_bytes());
        mac.update(b" ");
        mac.update(stream_id.as_bytes());
        hex(&mac.finalize().into_bytes())
    }

    /// XEP-0178 §3: does the chain `certs` (end-entity first), presented by a peer,
    /// chain to a trusted CA and name `domain` (RFC 6125 DNS-ID, wildcard allowed in
    /// the left-most label)?
    pub fn certificate_authenticates(&self, certs: &[CertificateDer<'static>], domain: &str) -> bool {
        let Some((end_entity, intermediates)) = certs.split_first() else {
            return false;
        };
        if self.roots.is_empty() {
            return false;
        }
        let Ok(name) = ServerName::try_from(domain.to_string()) else {
            return false;
        };
        let provider = crate::tls::crypto_provider();
        let verifier =
            match rustls::client::WebPkiServerVerifier::builder_with_provider(self.roots.clone(), provider)
                .build()
            {
                Ok(v) => v,
                Err(_) => return false,
            };
        let Some(now) = self.time.current_time() else {
            return false;
        };
        verifier
            .verify_server_cert(end_entity, intermediates, &name, &[], now)
            .is_ok()
    }
}

/// The TLS settings of an outgoing S2S stream: the client configurations (with our
/// certificate as client certificate, for SASL EXTERNAL), and whether the peer's
/// certificate was verified in the handshake.
#[derive(Debug, Clone)]
pub struct S2sClientTls {
    /// For STARTTLS.
    pub starttls: Arc<rustls::ClientConfig>,
    /// For direct TLS (XEP-0368: ALPN `xmpp-server`).
    pub direct: Arc<rustls::ClientConfig>,
    /// `VerifyMode::Peer`: the handshake refused a certificate that does not verify.
    pub verify: VerifyMode,
    /// A client certificate is presented.
    pub has_certificate: bool,
}

impl S2sClientTls {
    /// Client configurations trusting `roots` (checked only with `VerifyMode::Peer`),
    /// presenting `identity` (PEM certificate chain and key) if given.
    pub fn new(
        roots: Arc<RootCertStore>,
        verify: VerifyMode,
        identity: Option<(&[u8], &[u8])>,
    ) -> Result<Self, crate::tls::TlsError> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::PrivateKeyDer;
        let provider = crate::tls::crypto_provider();
        let build = |alpn: Option<&[u8]>| -> Result<Arc<rustls::ClientConfig>, crate::tls::TlsError> {
            let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
            let builder = match verify {
                VerifyMode::Peer => builder.with_root_certificates(roots.clone()),
                VerifyMode::None => builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider.clone()))),
            };
            let mut config = match identity {
                Some((cert, key)) => {
                    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert)
                        .collect::<Result<_, _>>()
                        .map_err(|e| crate::tls::TlsError::Certificate(e.to_string()))?;
                    let key = PrivateKeyDer::from_pem_slice(key)
                        .map_err(|e| crate::tls::TlsError::PrivateKey(e.to_string()))?;
                    builder.with_client_auth_cert(chain, key)?
                }
                None => builder.with_no_client_auth(),
            };
            if let Some(p) = alpn {
                config.alpn_protocols = vec![p.to_vec()];
            }
            Ok(Arc::new(config))
        };
        Ok(Self {
            starttls: build(None)?,
            direct: build(Some(b"xmpp-server"))?,
            verify,
            has_certificate: identity.is_some(),
        })
    }
}

/// The server side's request for a client certificate on incoming S2S streams: any
/// certificate is taken (its signature over the handshake is still checked), so that
/// a peer with a self-signed one can fall back to dialback; whether it authenticates
/// the peer is decided after the handshake ([`S2sConfig::certificate_authenticates`]).
pub fn server_config_asking_certificates(
    cert_pem: &[u8],
    key_pem: &[u8],
    alpn: &[&[u8]],
) -> Result<crate::tls::TlsIdentity, crate::tls::TlsError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::PrivateKeyDer;
    let chain = crate::tls::certificate_chain(cert_pem)?;
    let end_point_hash = crate::tls::end_point_hash(chain[0].as_ref());
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| crate::tls::TlsError::PrivateKey(e.to_string()))?;
    let provider = crate::tls::crypto_provider();
    let mut config = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_client_cert_verifier(Arc::new(AnyCertificate(provider)))
        .with_single_cert(chain, key)?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(crate::tls::TlsIdentity::from_config(config, end_point_hash))
}

/// Accepts any certificate chain, checking only the handshake signatures: for
/// `verify_mode = "none"` and for client certificates checked afterwards.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

/// The handshake signature checks, the same in both verifier roles.
macro_rules! signature_checks {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    };
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    signature_checks!();
}

impl ClientCertVerifier for AnyCertificate {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    signature_checks!();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// XEP-0220 §2.1.1's example (key generation of XEP-0185).
    #[test]
    fn dialback_key_matches_the_xep_example() {
        let config = S2sConfig::new(vec!["capulet.example".into()], "s3cr3tf0rd14lb4ck");
        assert_eq!(
            config.dialback_key("montague.example", "capulet.example", "D60000229F"),
            "b4835385f37fe2895af6c196b59097b16862406db80559900d96bf6fa7d23df3"
        );
    }
}
