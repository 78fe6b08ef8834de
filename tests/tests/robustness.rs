//! Bad input is normal input: arbitrary bytes, before and after login, never panic
//! the engine, and whatever one connection sends, another keeps working.

use meerkat_tests::driver::{Driver, STREAM_OPEN};
use meerkat_tests::Simulation;
use proptest::prelude::*;

/// Fragments that steer random input towards the interesting parts of the parser and
/// the state machine.
fn fragment() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64),
        Just(b"<message to='bob@localhost'><body>x</body></message>".to_vec()),
        Just(b"<iq type='get' id='1'><query xmlns='jabber:iq:roster'/></iq>".to_vec()),
        Just(b"<presence/>".to_vec()),
        Just(b"<presence to='bob@localhost' type='subscribe'/>".to_vec()),
        Just(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGEAYg==</auth>".to_vec()),
        Just(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>".to_vec()),
        Just(b"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>".to_vec()),
        Just(b"</stream:stream>".to_vec()),
        Just(b"<![CDATA[".to_vec()),
        Just(b"&amp;&#0;&#x110000;".to_vec()),
        Just(b"<a xmlns:p='u'><p:b/></a>".to_vec()),
        Just(STREAM_OPEN.as_bytes().to_vec()),
    ]
}

fn check_bystander(sim: &mut Simulation, bob: &mut Driver) {
    bob.send(
        sim,
        "<iq type='get' id='alive' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>",
    );
    let answer = bob.recv(sim);
    assert!(
        answer.contains("id='alive'") && answer.contains("type='result'"),
        "{answer}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn random_input_before_login_never_breaks_anyone_else(pieces in proptest::collection::vec(fragment(), 1..12)) {
        let mut sim = Simulation::plain(51);
        sim.add_user("bob@localhost", "pw");
        let mut bob = Driver::login(&mut sim, "bob", "pw", "r");
        let attacker = sim.connect();
        sim.client_bytes(attacker, STREAM_OPEN.as_bytes());
        for p in &pieces {
            sim.client_bytes(attacker, p);
        }
        check_bystander(&mut sim, &mut bob);
    }

    #[test]
    fn random_input_after_login_never_breaks_anyone_else(pieces in proptest::collection::vec(fragment(), 1..12)) {
        let mut sim = Simulation::plain(52);
        sim.add_user("alice@localhost", "pw");
        sim.add_user("bob@localhost", "pw");
        let mut bob = Driver::login(&mut sim, "bob", "pw", "r");
        let alice = Driver::login(&mut sim, "alice", "pw", "r");
        for p in &pieces {
            sim.client_bytes(alice.id, p);
        }
        sim.disconnect(alice.id);
        check_bystander(&mut sim, &mut bob);
    }
}
