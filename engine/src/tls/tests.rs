//! The server side against rustls' own client, in memory.

use std::io::{Read, Write};
use std::sync::Arc;

use super::*;

/// A throw-away self-signed P-256 certificate for `localhost`, for these tests only.
const CERT: &[u8] = include_bytes!("testdata/localhost-cert.pem");
const KEY: &[u8] = include_bytes!("testdata/localhost-key.pem");

fn identity() -> TlsIdentity {
    TlsIdentity::from_pem(CERT, KEY, &[]).expect("identity")
}

fn client_config(
    suites: Option<Vec<rustls::SupportedCipherSuite>>,
    version: &'static rustls::SupportedProtocolVersion,
) -> Arc<rustls::ClientConfig> {
    let mut provider = rustls::crypto::ring::default_provider();
    if let Some(suites) = suites {
        provider.cipher_suites = suites;
    }
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(CERT).expect("pem"))
        .expect("root");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[version])
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

fn client(config: Arc<rustls::ClientConfig>) -> rustls::ClientConnection {
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    rustls::ClientConnection::new(config, name).expect("client")
}

fn ciphertext_of(client: &mut rustls::ClientConnection) -> Vec<u8> {
    let mut out = Vec::new();
    while client.wants_write() {
        client.write_tls(&mut out).expect("write_tls");
    }
    out
}

/// Gives the client what the server wrote; returns the plaintext it carried.
fn deliver(server: &mut TlsSession, client: &mut rustls::ClientConnection) -> Vec<u8> {
    let mut bytes = Vec::new();
    server.take_output(&mut bytes);
    let mut input = &bytes[..];
    while !input.is_empty() {
        client.read_tls(&mut input).expect("read_tls");
        client.process_new_packets().expect("server records");
    }
    let mut plain = Vec::new();
    let _ = client.reader().read_to_end(&mut plain);
    plain
}

/// Runs the handshake to its end; returns the plaintext the client got on the way.
fn handshake(server: &mut TlsSession, client: &mut rustls::ClientConnection) -> Vec<u8> {
    let mut got = Vec::new();
    for _ in 0..10 {
        let mut plain = Vec::new();
        server
            .read(&ciphertext_of(client), &mut plain)
            .expect("client records");
        assert!(plain.is_empty());
        got.extend(deliver(server, client));
        if !client.is_handshaking() && !server.is_handshaking() {
            return got;
        }
    }
    panic!("the handshake did not complete");
}

fn buffered(server: &TlsSession) -> usize {
    match &server.side {
        Side::Server(s) => s.incoming.capacity() + s.outgoing.capacity() + s.pending.capacity(),
        Side::Client(_) => unreachable!(),
    }
}

/// A client offering rustls' default order (AES-256 first) gets AES-128-GCM-SHA256:
/// the server's preference decides (see [`crypto_provider`]).
#[test]
fn the_server_prefers_aes_128_gcm_sha256() {
    let identity = identity();
    let mut server = TlsSession::new(&identity).unwrap();
    let mut client = client(client_config(None, &rustls::version::TLS13));
    handshake(&mut server, &mut client);
    assert_eq!(
        client.negotiated_cipher_suite().map(|s| s.suite()),
        Some(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256)
    );
}

/// RFC 9266: both ends compute the same `tls-exporter` data, whatever the TLS 1.3
/// suite (and so the hash, SHA-256 or SHA-384) negotiated.
#[test]
fn exporter_matches_the_client_for_every_tls13_suite() {
    let identity = identity();
    let suites: Vec<_> = rustls::crypto::ring::default_provider()
        .cipher_suites
        .into_iter()
        .filter(|s| matches!(s, rustls::SupportedCipherSuite::Tls13(_)))
        .collect();
    assert_eq!(suites.len(), 3);
    for suite in suites {
        let mut server = TlsSession::new(&identity).unwrap();
        let mut client = client(client_config(Some(vec![suite]), &rustls::version::TLS13));
        assert_eq!(server.channel_bindings(), ChannelBindings::default());
        handshake(&mut server, &mut client);
        let mut expected = [0u8; 32];
        client
            .export_keying_material(&mut expected, EXPORTER_LABEL, None)
            .unwrap();
        let bindings = server.channel_bindings();
        assert_eq!(bindings.tls_exporter.as_deref(), Some(&expected[..]), "{suite:?}");
        assert_eq!(
            bindings.tls_server_end_point.as_deref(),
            Some(&*identity.end_point_hash)
        );
    }
}

/// RFC 9266 is for TLS 1.3 only; TLS 1.2 keeps `tls-server-end-point`.
#[test]
fn tls12_has_no_exporter_binding() {
    let identity = identity();
    let mut server = TlsSession::new(&identity).unwrap();
    let mut client = client(client_config(None, &rustls::version::TLS12));
    handshake(&mut server, &mut client);
    assert_eq!(server.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_2));
    let bindings = server.channel_bindings();
    assert_eq!(bindings.tls_exporter, None);
    assert_eq!(
        bindings.tls_server_end_point.as_deref(),
        Some(&*identity.end_point_hash)
    );
}

/// Records may arrive in any pieces: only the unfinished record is kept, and once
/// everything is consumed the session holds no buffer at all.
#[test]
fn records_split_anywhere_and_idle_sessions_hold_no_buffer() {
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let mut server = TlsSession::new(&identity()).unwrap();
        let mut client = client(client_config(None, version));
        handshake(&mut server, &mut client);
        assert_eq!(buffered(&server), 0);
        let message = b"<message to='juliet@localhost'><body>wherefore</body></message>".repeat(300);
        client.writer().write_all(&message).unwrap();
        let ciphertext = ciphertext_of(&mut client);
        assert!(ciphertext.len() > 16_384, "more than one record");
        let mut plain = Vec::new();
        for piece in ciphertext.chunks(777) {
            server.read(piece, &mut plain).unwrap();
        }
        assert_eq!(plain, message);
        assert_eq!(buffered(&server), 0);
        // And back: the answer is one piece of ciphertext for the socket.
        server.write(b"<r xmlns='urn:xmpp:sm:3'/>");
        assert_eq!(deliver(&mut server, &mut client), b"<r xmlns='urn:xmpp:sm:3'/>");
        assert_eq!(buffered(&server), 0);
    }
}

/// What the server writes before the handshake allows application data goes out,
/// in order, as soon as it does.
#[test]
fn plaintext_written_during_the_handshake_follows_it() {
    let mut server = TlsSession::new(&identity()).unwrap();
    let mut client = client(client_config(None, &rustls::version::TLS13));
    server.write(b"<stream:stream>");
    server.write(b"<stream:features/>");
    let got = handshake(&mut server, &mut client);
    assert_eq!(got, b"<stream:stream><stream:features/>");
}

/// A close sends what was written, then `close_notify`.
#[test]
fn close_notify_follows_pending_data() {
    let mut server = TlsSession::new(&identity()).unwrap();
    let mut client = client(client_config(None, &rustls::version::TLS13));
    handshake(&mut server, &mut client);
    server.write(b"</stream:stream>");
    server.close();
    assert_eq!(deliver(&mut server, &mut client), b"</stream:stream>");
    let mut rest = [0u8; 1];
    assert_eq!(client.reader().read(&mut rest).unwrap(), 0, "clean close");
}

/// Bytes that are not TLS break the session with an alert for the peer, and later
/// input is refused.
#[test]
fn garbage_is_answered_with_an_alert() {
    let mut server = TlsSession::new(&identity()).unwrap();
    let mut plain = Vec::new();
    assert!(server
        .read(b"<stream:stream to='localhost'>", &mut plain)
        .is_err());
    let mut alert = Vec::new();
    server.take_output(&mut alert);
    assert_eq!(alert.first(), Some(&0x15), "an alert record");
    assert!(server.read(b"more", &mut plain).is_err());
    assert!(plain.is_empty());
}
