//! A rustls client wired to a C2S connection in memory, and a throw-away certificate.

use std::io::{Read, Write};
use std::sync::Arc;

use meerkat_engine::tls::TlsIdentity;
use rustls::pki_types::{CertificateDer, ServerName};

/// A self-signed certificate for `localhost` and the identity built from it.
pub struct TestCert {
    /// PEM of the certificate.
    pub cert_pem: String,
    /// PEM of the private key.
    pub key_pem: String,
}

impl TestCert {
    /// Generates a fresh P-256 certificate for `localhost`.
    pub fn localhost() -> Self {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("rcgen");
        Self {
            cert_pem: ck.cert.pem(),
            key_pem: ck.key_pair.serialize_pem(),
        }
    }

    /// The server identity (ALPN as given).
    pub fn identity(&self, alpn: &[&[u8]]) -> TlsIdentity {
        TlsIdentity::from_pem(self.cert_pem.as_bytes(), self.key_pem.as_bytes(), alpn).expect("identity")
    }

    /// [`TestCert::client_config`] with TLS 1.3 early data (0-RTT) on resumption.
    /// Keep the `Arc`: its session cache holds the tickets for the next connection.
    pub fn client_config_early(&self) -> Arc<rustls::ClientConfig> {
        let mut config = (*self.client_config()).clone();
        config.enable_early_data = true;
        Arc::new(config)
    }

    /// A client configuration that trusts only this certificate.
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        let der = rustls::pki_types::pem::PemObject::from_pem_slice(self.cert_pem.as_bytes()).expect("pem");
        let der: CertificateDer<'static> = der;
        roots.add(der).expect("root");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(config)
    }
}

/// The client end of a TLS session whose ciphertext the test carries by hand.
pub struct TlsClient {
    conn: rustls::ClientConnection,
}

impl TlsClient {
    /// Starts a handshake towards `localhost`.
    pub fn new(config: Arc<rustls::ClientConfig>) -> Self {
        let name = ServerName::try_from("localhost").expect("name");
        Self {
            conn: rustls::ClientConnection::new(config, name).expect("client"),
        }
    }

    /// Ciphertext to send to the server.
    pub fn take_ciphertext(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        while self.conn.wants_write() {
            self.conn.write_tls(&mut out).expect("write_tls");
        }
        out
    }

    /// Ciphertext received from the server; returns the plaintext it carried.
    pub fn receive(&mut self, mut ciphertext: &[u8]) -> Vec<u8> {
        let mut plain = Vec::new();
        while !ciphertext.is_empty() {
            self.conn.read_tls(&mut ciphertext).expect("read_tls");
            self.conn.process_new_packets().expect("tls from server");
        }
        let mut buf = [0u8; 4096];
        loop {
            match self.conn.reader().read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => plain.extend_from_slice(&buf[..n]),
            }
        }
        plain
    }

    /// Queues plaintext for the server.
    pub fn send(&mut self, plain: &[u8]) {
        self.conn.writer().write_all(plain).expect("write");
    }

    /// Writes `plain` as TLS 1.3 early data; false when the session cannot carry
    /// any (no resumable ticket allowing it) or it does not fit.
    pub fn send_early(&mut self, plain: &[u8]) -> bool {
        match self.conn.early_data() {
            Some(mut early) => early.write(plain).is_ok_and(|n| n == plain.len()),
            None => false,
        }
    }

    /// Whether the server accepted the early data (known once the handshake ends).
    pub fn early_data_accepted(&self) -> bool {
        self.conn.is_early_data_accepted()
    }

    /// True until the handshake is done.
    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// RFC 9266 `tls-exporter` data as the client sees it.
    pub fn exporter(&self) -> Vec<u8> {
        let mut out = [0u8; 32];
        self.conn
            .export_keying_material(&mut out, b"EXPORTER-Channel-Binding", None)
            .expect("exporter");
        out.to_vec()
    }
}
