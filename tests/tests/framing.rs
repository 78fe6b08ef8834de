//! The framing seam: the same C2S machine serves a client whose transport frames
//! messages (RFC 7395 WebSocket, XEP-0206 BOSH) and one on a TCP stream, and they
//! talk to each other. Each message in is one element; each `Transmit` out is one
//! standalone element, namespaces declared.

use meerkat_engine::sasl::{ChannelBindings, ScramHash};
use meerkat_engine::stream::c2s::TransportSecurity;
use meerkat_tests::driver::Driver;
use meerkat_tests::Simulation;

const OPEN: &str = "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>";

/// RFC 7395 §3.4: `<open/>` is answered by `<open/>` and the features, each its own
/// message; SCRAM, the restart with a new `<open/>`, binding; then a chat with a
/// TCP client, stanzas carrying `xmlns='jabber:client'`; `<close/>` ends it.
#[test]
fn framed_client_logs_in_and_chats_with_a_tcp_client() {
    let mut sim = Simulation::plain(21);
    sim.add_user("alice@localhost", "alice-pw");
    sim.add_user("bob@localhost", "bob-pw");
    let mut bob = Driver::login(&mut sim, "bob", "bob-pw", "tcp");

    let mut alice = Driver::connect_framed(&mut sim, None);
    alice.send(&mut sim, OPEN);
    let opened = sim.take_messages(alice.id);
    assert_eq!(opened.len(), 2, "{opened:?}");
    assert!(opened[0].starts_with("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' id='"));
    assert!(opened[0].ends_with("from='localhost' version='1.0' xml:lang='en'/>"));
    assert!(opened[1].starts_with("<stream:features xmlns:stream='http://etherx.jabber.org/streams'>"));
    // Plain HTTP: not encrypted, so no PLAIN and no channel binding.
    assert!(!opened[1].contains("PLAIN") && !opened[1].contains("-PLUS"));

    let answer = alice.scram(&mut sim, "SCRAM-SHA-256", ScramHash::Sha256, "alice", "alice-pw");
    assert!(
        answer.starts_with("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"),
        "{answer}"
    );
    alice.send(&mut sim, OPEN);
    let restarted = sim.take_messages(alice.id);
    assert_eq!(restarted.len(), 2);
    assert!(restarted[1].contains("<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"));
    alice.send(
        &mut sim,
        "<iq xmlns='jabber:client' type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>ws</resource></bind></iq>",
    );
    let bound = sim.take_messages(alice.id);
    assert_eq!(
        bound,
        vec!["<iq xmlns='jabber:client' type='result' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>alice@localhost/ws</jid></bind></iq>"]
    );

    alice.send(
        &mut sim,
        "<message xmlns='jabber:client' to='bob@localhost/tcp' type='chat'><body>hi over WebSocket</body></message>",
    );
    let at_bob = bob.recv(&mut sim);
    assert_eq!(
        at_bob,
        "<message to='bob@localhost/tcp' type='chat' from='alice@localhost/ws'><body>hi over WebSocket</body></message>"
    );
    bob.send(
        &mut sim,
        "<message to='alice@localhost/ws' type='chat'><body>hi over TCP</body></message>",
    );
    assert_eq!(
        sim.take_messages(alice.id),
        vec!["<message xmlns='jabber:client' to='alice@localhost/ws' type='chat' from='bob@localhost/tcp'><body>hi over TCP</body></message>"]
    );

    // No whitespace keepalives on a framed stream (RFC 7395 §3.6): the transport
    // pings. The TCP stream gets its spaces.
    sim.advance(std::time::Duration::from_secs(120));
    assert!(sim.take_messages(alice.id).is_empty());
    let keepalives = bob.recv(&mut sim);
    assert!(
        !keepalives.is_empty() && keepalives.trim().is_empty(),
        "{keepalives:?}"
    );

    alice.send(&mut sim, "<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>");
    assert_eq!(
        sim.take_messages(alice.id),
        vec!["<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>"]
    );
    assert!(sim.is_closed(alice.id));
}

/// Over HTTPS the stream is encrypted for SASL's purposes: PLAIN is offered, and
/// with the TLS connection's channel binding, the -PLUS mechanisms (XEP-0440).
#[test]
fn framed_client_over_tls_gets_plain_and_channel_binding() {
    let mut sim = Simulation::plain(22);
    let security = TransportSecurity {
        channel_bindings: ChannelBindings {
            tls_exporter: None,
            tls_server_end_point: Some(vec![7; 32]),
        },
    };
    let mut alice = Driver::connect_framed(&mut sim, Some(security));
    alice.send(&mut sim, OPEN);
    let features = &sim.take_messages(alice.id)[1];
    assert!(
        features.contains("<mechanism>SCRAM-SHA-256-PLUS</mechanism>"),
        "{features}"
    );
    assert!(features.contains("<mechanism>PLAIN</mechanism>"));
    assert!(features.contains("<channel-binding type='tls-server-end-point'/>"));
}

/// A second `<open/>` inside an open stream, an unknown framing element, and an
/// element before `<open/>` each end the stream with a framed stream error.
#[test]
fn framing_errors_are_stream_errors() {
    let mut sim = Simulation::plain(23);
    let mut a = Driver::connect_framed(&mut sim, None);
    a.send(&mut sim, OPEN);
    sim.take_messages(a.id);
    a.send(&mut sim, OPEN);
    let out = sim.take_messages(a.id);
    assert_eq!(
        out,
        vec![
            "<stream:error xmlns:stream='http://etherx.jabber.org/streams'><not-well-formed xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text xmlns='urn:ietf:params:xml:ns:xmpp-streams' xml:lang='en'>unexpected stream header</text></stream:error>",
            "<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>"
        ]
    );
    let mut b = Driver::connect_framed(&mut sim, None);
    b.send(&mut sim, "<opened xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>");
    let out = sim.take_messages(b.id);
    assert!(
        out[0].starts_with("<open "),
        "a header precedes the error: {out:?}"
    );
    assert!(out[1].contains("<unsupported-stanza-type"), "{out:?}");
    assert!(sim.is_closed(b.id));
}
