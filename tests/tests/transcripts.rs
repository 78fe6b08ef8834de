//! Snapshot tests of whole negotiations, readable as XMPP conversations.
//! Everything non-deterministic is seeded, so each transcript is byte-for-byte stable.

use std::sync::Arc;

use meerkat_engine::hub::HubConfig;
use meerkat_engine::sasl::ScramHash;
use meerkat_engine::stream::c2s::{C2sConfig, TlsMode};
use meerkat_tests::driver::{Driver, STREAM_OPEN};
use meerkat_tests::tls::TestCert;
use meerkat_tests::Simulation;

fn tls_sim(mode: TlsMode, cert: &TestCert) -> Simulation {
    let mut config = C2sConfig::new(vec!["localhost".into()]);
    config.tls_mode = mode;
    let alpn: &[&[u8]] = if mode == TlsMode::Tls {
        &[b"xmpp-client"]
    } else {
        &[]
    };
    config.tls = Some(Arc::new(cert.identity(alpn)));
    let mut sim = Simulation::new(config, HubConfig::default(), 1);
    sim.add_user("juliet@localhost", "r0m30myr0m30");
    sim
}

fn bind_and_chat(d: &mut Driver, sim: &mut Simulation) {
    d.send(sim, STREAM_OPEN);
    d.recv(sim);
    d.send(
        sim,
        "<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>balcony</resource></bind></iq>",
    );
    d.recv(sim);
    d.send(sim, "<presence/>");
    d.recv(sim);
    d.send(
        sim,
        "<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>",
    );
    d.recv(sim);
    d.send(sim, "</stream:stream>");
    d.recv(sim);
    assert!(sim.is_closed(d.id));
}

#[test]
fn starttls_scram_sha256_bind() {
    let cert = TestCert::localhost();
    let mut sim = tls_sim(TlsMode::StartTls, &cert);
    let mut d = Driver::connect(&mut sim);
    d.send(&mut sim, STREAM_OPEN);
    let features = d.recv(&mut sim);
    assert!(features.contains("<starttls"), "{features}");
    assert!(
        !features.contains("PLAIN"),
        "PLAIN must not be offered before TLS: {features}"
    );
    d.send(&mut sim, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    d.recv(&mut sim);
    d.handshake(&mut sim, cert.client_config());
    d.send(&mut sim, STREAM_OPEN);
    let features = d.recv(&mut sim);
    assert!(
        features.contains("SCRAM-SHA-256-PLUS") && features.contains("PLAIN"),
        "{features}"
    );
    let answer = d.scram(
        &mut sim,
        "SCRAM-SHA-256",
        ScramHash::Sha256,
        "juliet",
        "r0m30myr0m30",
    );
    assert!(answer.contains("<success"), "{answer}");
    bind_and_chat(&mut d, &mut sim);
    insta::assert_snapshot!(d.transcript.render());
}

#[test]
fn direct_tls_scram_sha1_bind() {
    let cert = TestCert::localhost();
    let mut sim = tls_sim(TlsMode::Tls, &cert);
    let mut d = Driver::connect_tls(&mut sim, cert.client_config());
    d.send(&mut sim, STREAM_OPEN);
    let features = d.recv(&mut sim);
    assert!(!features.contains("<starttls"), "{features}");
    let answer = d.scram(&mut sim, "SCRAM-SHA-1", ScramHash::Sha1, "juliet", "r0m30myr0m30");
    assert!(answer.contains("<success"), "{answer}");
    bind_and_chat(&mut d, &mut sim);
    insta::assert_snapshot!(d.transcript.render());
}

#[test]
fn starttls_required_refuses_auth_in_clear() {
    let cert = TestCert::localhost();
    let mut sim = tls_sim(TlsMode::StartTlsRequired, &cert);
    let mut d = Driver::connect(&mut sim);
    d.send(&mut sim, STREAM_OPEN);
    d.recv(&mut sim);
    d.send(&mut sim, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-1'>biwsbj1qdWxpZXQscj1hYmM=</auth>");
    d.recv(&mut sim);
    insta::assert_snapshot!(d.transcript.render());
}

#[test]
fn wrong_password_is_not_authorized() {
    let mut sim = Simulation::plain(3);
    sim.add_user("juliet@localhost", "r0m30myr0m30");
    let mut d = Driver::connect(&mut sim);
    d.send(&mut sim, STREAM_OPEN);
    d.recv(&mut sim);
    let answer = d.scram(&mut sim, "SCRAM-SHA-256", ScramHash::Sha256, "juliet", "wrong");
    assert!(answer.contains("<not-authorized/>"), "{answer}");
    // Unknown users get the same answer, so accounts cannot be probed.
    let answer = d.scram(&mut sim, "SCRAM-SHA-256", ScramHash::Sha256, "nobody", "wrong");
    assert!(answer.contains("<not-authorized/>"), "{answer}");
    assert!(!sim.is_closed(d.id));
    insta::assert_snapshot!(d.transcript.render());
}

#[test]
fn malformed_xml_is_a_stream_error() {
    let mut sim = Simulation::plain(4);
    let mut d = Driver::connect(&mut sim);
    d.send(&mut sim, STREAM_OPEN);
    d.recv(&mut sim);
    d.send(&mut sim, "<message><body>hi</mesage>");
    d.recv(&mut sim);
    assert!(sim.is_closed(d.id));
    insta::assert_snapshot!(d.transcript.render());
}

#[test]
fn restricted_xml_is_refused() {
    let mut sim = Simulation::plain(5);
    let mut d = Driver::connect(&mut sim);
    d.send(&mut sim, STREAM_OPEN);
    d.recv(&mut sim);
    d.send(&mut sim, "<!-- a comment -->");
    d.recv(&mut sim);
    assert!(sim.is_closed(d.id));
    insta::assert_snapshot!(d.transcript.render());
}

#[test]
fn oversized_stanza_is_a_policy_violation() {
    let mut config = C2sConfig::new(vec!["localhost".into()]);
    config.max_stanza_size = 1024;
    let mut sim = Simulation::new(config, HubConfig::default(), 6);
    sim.add_user("juliet@localhost", "r0m30myr0m30");
    let mut d = Driver::login(&mut sim, "juliet", "r0m30myr0m30", "balcony");
    let big = format!(
        "<message to='romeo@localhost'><body>{}</body></message>",
        "x".repeat(2000)
    );
    d.transcript
        .client("<message to='romeo@localhost'><body>xxxx… (2000 bytes)</body></message>");
    d.send_quiet(&mut sim, big.as_bytes());
    d.recv(&mut sim);
    assert!(sim.is_closed(d.id));
    insta::assert_snapshot!(d.transcript.render());
}

#[test]
fn wrong_host_and_namespace_are_stream_errors() {
    let mut sim = Simulation::plain(8);
    let mut d = Driver::connect(&mut sim);
    d.send(
        &mut sim,
        "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.org' version='1.0'>",
    );
    d.recv(&mut sim);
    assert!(sim.is_closed(d.id));
    let mut e = Driver::connect(&mut sim);
    e.send(
        &mut sim,
        "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>",
    );
    e.recv(&mut sim);
    assert!(sim.is_closed(e.id));
    insta::assert_snapshot!(format!("{}{}", d.transcript.render(), e.transcript.render()));
}
