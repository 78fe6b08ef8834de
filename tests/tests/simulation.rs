//! Whole scenarios in memory: two users subscribe to each other, see presence, chat,
//! and get messages sent while they were offline; channel binding end to end.

use std::sync::Arc;

use meerkat_engine::hub::{shard_of, HubConfig};
use meerkat_engine::instrument::{ConnectionType, Direction, ElementKind, Event};
use meerkat_engine::sasl::{ScramClient, ScramHash};
use meerkat_engine::stream::c2s::{C2sConfig, TlsMode};
use meerkat_engine::Jid;
use meerkat_tests::driver::{Driver, STREAM_OPEN};
use meerkat_tests::tls::TestCert;
use meerkat_tests::Simulation;
use sha2::Digest;

fn two_users() -> Simulation {
    two_users_on(1)
}

/// Alice and Bob on a hub of `shards` shards.
fn two_users_on(shards: usize) -> Simulation {
    let hub = HubConfig {
        shards,
        ..HubConfig::default()
    };
    let mut sim = Simulation::new(C2sConfig::new(vec!["localhost".into()]), hub, 11);
    sim.add_user("alice@localhost", "alice-pw");
    sim.add_user("bob@localhost", "bob-pw");
    sim
}

#[test]
fn subscription_handshake_presence_and_chat() {
    subscription_handshake_presence_and_chat_on(1);
}

/// The same conversation when Alice and Bob live on different hub shards: every
/// stanza between them crosses shards as forwarded work.
#[test]
fn subscription_handshake_presence_and_chat_across_shards() {
    let (alice, bob) = (
        Jid::parse("alice@localhost").unwrap(),
        Jid::parse("bob@localhost").unwrap(),
    );
    for shards in [2, 3] {
        assert_ne!(
            shard_of(&alice, shards),
            shard_of(&bob, shards),
            "premise: different shards"
        );
        subscription_handshake_presence_and_chat_on(shards);
    }
}

fn subscription_handshake_presence_and_chat_on(shards: usize) {
    let mut sim = two_users_on(shards);
    let mut alice = Driver::login(&mut sim, "alice", "alice-pw", "phone");
    let mut bob = Driver::login(&mut sim, "bob", "bob-pw", "laptop");
    for d in [&mut alice, &mut bob] {
        d.send(
            &mut sim,
            "<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>",
        );
        let roster = d.recv(&mut sim);
        assert!(
            roster.contains("type='result'") && roster.contains("jabber:iq:roster"),
            "{roster}"
        );
        d.send(&mut sim, "<presence/>");
        d.recv(&mut sim);
    }

    // Alice asks, Bob approves and asks back, Alice approves.
    alice.send(&mut sim, "<presence to='bob@localhost' type='subscribe'/>");
    let a = alice.recv(&mut sim);
    assert!(
        a.contains("ask='subscribe'"),
        "alice's roster push shows the pending request: {a}"
    );
    let b = bob.recv(&mut sim);
    assert!(
        b.contains("type='subscribe'") && b.contains("from='alice@localhost'"),
        "{b}"
    );
    bob.send(&mut sim, "<presence to='alice@localhost' type='subscribed'/>");
    bob.send(&mut sim, "<presence to='alice@localhost' type='subscribe'/>");
    let a = alice.recv(&mut sim);
    assert!(a.contains("type='subscribed'"), "{a}");
    assert!(a.contains("subscription='to'"), "{a}");
    assert!(
        a.contains("from='bob@localhost/laptop'"),
        "alice gets bob's presence after approval: {a}"
    );
    alice.send(&mut sim, "<presence to='bob@localhost' type='subscribed'/>");
    let b = bob.recv(&mut sim);
    assert!(b.contains("subscription='both'"), "{b}");
    assert!(
        b.contains("from='alice@localhost/phone'"),
        "bob gets alice's presence: {b}"
    );
    alice.recv(&mut sim);

    // Presence updates now reach the contact.
    alice.send(&mut sim, "<presence><show>away</show></presence>");
    let b = bob.recv(&mut sim);
    assert!(
        b.contains("<show>away</show>") && b.contains("from='alice@localhost/phone'"),
        "{b}"
    );

    // Messages flow both ways, with the sender stamped by the server.
    alice.send(
        &mut sim,
        "<message to='bob@localhost' type='chat' id='m1'><body>hi bob</body></message>",
    );
    let b = bob.recv(&mut sim);
    assert!(
        b.contains("<body>hi bob</body>") && b.contains("from='alice@localhost/phone'"),
        "{b}"
    );
    bob.send(
        &mut sim,
        "<message to='alice@localhost/phone' type='chat'><body>hi alice</body></message>",
    );
    let a = alice.recv(&mut sim);
    assert!(
        a.contains("<body>hi alice</body>") && a.contains("from='bob@localhost/laptop'"),
        "{a}"
    );

    // Bob leaves: Alice sees him go.
    bob.send(&mut sim, "</stream:stream>");
    let a = alice.recv(&mut sim);
    assert!(
        a.contains("type='unavailable'") && a.contains("from='bob@localhost/laptop'"),
        "{a}"
    );

    // A message while Bob is offline waits for him, stamped with a delay.
    alice.send(
        &mut sim,
        "<message to='bob@localhost' type='chat'><body>while you were out</body></message>",
    );
    let mut bob = Driver::login(&mut sim, "bob", "bob-pw", "laptop");
    assert!(
        !bob.recv(&mut sim).contains("while you were out"),
        "offline messages wait for initial presence"
    );
    bob.send(&mut sim, "<presence/>");
    let b = bob.recv(&mut sim);
    assert!(b.contains("<body>while you were out</body>"), "{b}");
    assert!(b.contains("urn:xmpp:delay"), "{b}");
}

#[test]
fn forged_from_is_an_invalid_from_stream_error_and_others_are_untouched() {
    let mut sim = two_users();
    let mut alice = Driver::login(&mut sim, "alice", "alice-pw", "phone");
    let mut bob = Driver::login(&mut sim, "bob", "bob-pw", "laptop");
    bob.send(&mut sim, "<presence/>");
    bob.recv(&mut sim);
    alice.send(
        &mut sim,
        "<message from='bob@localhost/laptop' to='bob@localhost'><body>forged</body></message>",
    );
    let a = alice.recv(&mut sim);
    assert!(a.contains("<invalid-from"), "{a}");
    assert!(sim.is_closed(alice.id));
    assert!(!bob.recv(&mut sim).contains("forged"));
    bob.send(
        &mut sim,
        "<iq type='get' id='p' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>",
    );
    assert!(bob.recv(&mut sim).contains("type='result'"));
}

#[test]
fn same_resource_replaces_the_old_session() {
    let mut sim = two_users();
    let mut first = Driver::login(&mut sim, "alice", "alice-pw", "phone");
    let _second = Driver::login(&mut sim, "alice", "alice-pw", "phone");
    let out = first.recv(&mut sim);
    assert!(out.contains("<conflict"), "{out}");
    assert!(sim.is_closed(first.id));
}

#[test]
fn unauthenticated_connections_time_out() {
    let mut sim = Simulation::plain(12);
    let mut d = Driver::connect(&mut sim);
    d.send(&mut sim, STREAM_OPEN);
    d.recv(&mut sim);
    sim.advance(std::time::Duration::from_secs(31));
    assert!(d.recv(&mut sim).contains("<connection-timeout"));
    assert!(sim.is_closed(d.id));
}

#[test]
fn bound_sessions_get_whitespace_keepalives() {
    let mut sim = two_users();
    let mut alice = Driver::login(&mut sim, "alice", "alice-pw", "phone");
    sim.advance(std::time::Duration::from_secs(61));
    assert_eq!(alice.recv(&mut sim), " ");
    assert!(!sim.is_closed(alice.id));
}

#[test]
fn every_element_is_instrumented_with_its_labels() {
    let mut sim = two_users();
    let mut alice = Driver::login(&mut sim, "alice", "alice-pw", "phone");
    alice.send(
        &mut sim,
        "<message to='bob@localhost' type='chat'><body>x</body></message>",
    );
    let messages_in = sim
        .events()
        .iter()
        .filter(|e| {
            matches!(e, Event::Element { direction: Direction::In, connection_type: ConnectionType::C2s,
                kind: ElementKind::Message, host_type, .. } if host_type == "localhost")
        })
        .count();
    assert_eq!(messages_in, 1);
    let out = sim
        .events()
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::Element {
                    direction: Direction::Out,
                    ..
                }
            )
        })
        .count();
    assert_eq!(out, 5, "features, challenge, success, features, bind result");
}

fn direct_tls(cert: &TestCert) -> Simulation {
    let mut config = C2sConfig::new(vec!["localhost".into()]);
    config.tls_mode = TlsMode::Tls;
    config.tls = Some(Arc::new(cert.identity(&[b"xmpp-client"])));
    let mut sim = Simulation::new(config, HubConfig::default(), 21);
    sim.add_user("juliet@localhost", "pw");
    sim
}

#[test]
fn scram_plus_with_both_channel_bindings() {
    let cert = TestCert::localhost();
    let der: rustls::pki_types::CertificateDer =
        rustls::pki_types::pem::PemObject::from_pem_slice(cert.cert_pem.as_bytes()).unwrap();
    let end_point = sha2::Sha256::digest(der.as_ref()).to_vec();
    for (header, kind) in [
        ("p=tls-exporter,,", "exporter"),
        ("p=tls-server-end-point,,", "end-point"),
    ] {
        let mut sim = direct_tls(&cert);
        let mut d = Driver::connect_tls(&mut sim, cert.client_config());
        d.send(&mut sim, STREAM_OPEN);
        let features = d.recv(&mut sim);
        assert!(
            features.contains("<channel-binding type='tls-exporter'/>"),
            "{features}"
        );
        let data = if kind == "exporter" {
            d.exporter().unwrap()
        } else {
            end_point.clone()
        };
        let mut client = ScramClient::new(ScramHash::Sha256, "juliet", "pw", "n0nc3", header, data);
        let answer = d.scram_with(&mut sim, "SCRAM-SHA-256-PLUS", &mut client);
        assert!(answer.contains("<success"), "{kind}: {answer}");
    }
}

#[test]
fn scram_plus_with_wrong_binding_data_fails() {
    let cert = TestCert::localhost();
    let mut sim = direct_tls(&cert);
    let mut d = Driver::connect_tls(&mut sim, cert.client_config());
    d.send(&mut sim, STREAM_OPEN);
    d.recv(&mut sim);
    let mut client = ScramClient::new(
        ScramHash::Sha256,
        "juliet",
        "pw",
        "n0nc3",
        "p=tls-exporter,,",
        vec![0; 32],
    );
    let answer = d.scram_with(&mut sim, "SCRAM-SHA-256-PLUS", &mut client);
    assert!(answer.contains("<failure"), "{answer}");
}

#[test]
fn downgrade_to_non_plus_is_detected() {
    // RFC 5802 §6: `y` says "I could bind but you did not offer it", which is a lie
    // when we offered -PLUS: someone stripped it.
    let cert = TestCert::localhost();
    let mut sim = direct_tls(&cert);
    let mut d = Driver::connect_tls(&mut sim, cert.client_config());
    d.send(&mut sim, STREAM_OPEN);
    d.recv(&mut sim);
    let mut client = ScramClient::new(ScramHash::Sha256, "juliet", "pw", "n0nc3", "y,,", vec![]);
    let answer = d.scram_with(&mut sim, "SCRAM-SHA-256", &mut client);
    assert!(answer.contains("<failure"), "{answer}");
}

#[test]
fn in_band_registration_then_login() {
    let mut config = C2sConfig::new(vec!["localhost".into()]);
    config.registration = true;
    let mut sim = Simulation::new(
        config,
        HubConfig {
            registration_enabled: true,
            ..HubConfig::default()
        },
        31,
    );
    let mut d = Driver::connect(&mut sim);
    d.send(&mut sim, STREAM_OPEN);
    assert!(d
        .recv(&mut sim)
        .contains("http://jabber.org/features/iq-register"));
    d.send(
        &mut sim,
        "<iq type='get' id='g'><query xmlns='jabber:iq:register'/></iq>",
    );
    assert!(d.recv(&mut sim).contains("<username/>"));
    d.send(&mut sim, "<iq type='set' id='s'><query xmlns='jabber:iq:register'><username>newbie</username><password>pw1</password></query></iq>");
    let r = d.recv(&mut sim);
    assert!(r.contains("type='result'") && r.contains("id='s'"), "{r}");
    d.send(&mut sim, "<iq type='set' id='s2'><query xmlns='jabber:iq:register'><username>newbie</username><password>pw2</password></query></iq>");
    assert!(
        d.recv(&mut sim).contains("<conflict"),
        "a taken name is a conflict"
    );
    let _ = Driver::login(&mut sim, "newbie", "pw1", "r");
}

#[test]
fn plain_over_tls_succeeds_with_an_empty_success() {
    // RFC 6120 §6.4.6: PLAIN has no additional data, so <success/> is empty (`=`
    // would mean additional data of zero length).
    let cert = TestCert::localhost();
    let mut sim = direct_tls(&cert);
    let mut d = Driver::connect_tls(&mut sim, cert.client_config());
    d.send(&mut sim, STREAM_OPEN);
    assert!(d.recv(&mut sim).contains("<mechanism>PLAIN</mechanism>"));
    // base64("\0juliet\0pw")
    d.send(
        &mut sim,
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGp1bGlldABwdw==</auth>",
    );
    assert_eq!(
        d.recv(&mut sim),
        "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"
    );
}

#[test]
fn plain_is_not_offered_without_tls() {
    let mut sim = two_users();
    let mut d = Driver::connect(&mut sim);
    d.send(&mut sim, STREAM_OPEN);
    assert!(!d.recv(&mut sim).contains("PLAIN"));
    d.send(
        &mut sim,
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAGFsaWNlLXB3</auth>",
    );
    assert!(d.recv(&mut sim).contains("<invalid-mechanism/>"));
}
