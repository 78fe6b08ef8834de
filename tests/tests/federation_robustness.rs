//! Bad input is normal input on federation streams too: arbitrary bytes on an
//! external component stream or an incoming S2S stream, before and after they
//! authenticate, never panic the engine, and the users, components and S2S streams
//! around keep working.

use std::sync::Arc;

use meerkat_engine::federation::FederationConfig;
use meerkat_engine::hub::HubConfig;
use meerkat_engine::stream::c2s::C2sConfig;
use meerkat_engine::stream::component::{handshake_digest, ComponentConfig};
use meerkat_tests::driver::Driver;
use meerkat_tests::federation::{Network, Side, A, B};
use meerkat_tests::Simulation;
use proptest::prelude::*;

const COMPONENT_OPEN: &str = "<stream:stream xmlns='jabber:component:accept' \
    xmlns:stream='http://etherx.jabber.org/streams' to='echo.localhost'>";
const S2S_OPEN: &str =
    "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' \
    xmlns:db='jabber:server:dialback' from='a.test' to='b.test' version='1.0'>";

fn fragment() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64),
        Just(b"<handshake>0000</handshake>".to_vec()),
        Just(b"<handshake/>".to_vec()),
        Just(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>".to_vec()),
        Just(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>".to_vec()),
        Just(b"<db:result from='a.test' to='b.test'>00</db:result>".to_vec()),
        Just(b"<db:result from='evil.test' to='b.test'>00</db:result>".to_vec()),
        Just(b"<db:verify from='x.test' to='b.test' id='1'>00</db:verify>".to_vec()),
        Just(b"<db:result from='a.test' to='b.test' type='valid'/>".to_vec()),
        Just(b"<message from='bot@echo.localhost' to='alice@localhost/r'><body>x</body></message>".to_vec()),
        Just(b"<message from='admin@localhost' to='alice@localhost/r'><body>x</body></message>".to_vec()),
        Just(b"<message from='eve@a.test' to='bob@b.test/r'><body>x</body></message>".to_vec()),
        Just(
            b"<iq type='get' id='1' from='x@a.test' to='b.test'><ping xmlns='urn:xmpp:ping'/></iq>".to_vec()
        ),
        Just(b"<presence from='eve@a.test' to='bob@b.test' type='subscribe'/>".to_vec()),
        Just(b"</stream:stream>".to_vec()),
        Just(b"<a xmlns:p='u'><p:b/></a>".to_vec()),
        Just(COMPONENT_OPEN.as_bytes().to_vec()),
        Just(S2S_OPEN.as_bytes().to_vec()),
    ]
}

fn ping(sim: &mut Simulation, who: &mut Driver, server: &str) {
    who.send(
        sim,
        &format!("<iq type='get' id='alive' to='{server}'><ping xmlns='urn:xmpp:ping'/></iq>"),
    );
    let answer = who.recv(sim);
    assert!(
        answer.contains("id='alive'") && answer.contains("type='result'"),
        "{answer}"
    );
}

/// A component registered for echo.localhost; returns its connection.
fn echo_component(sim: &mut Simulation, config: Arc<ComponentConfig>) -> u64 {
    let c = sim.connect_component(config);
    sim.client_bytes(c, COMPONENT_OPEN.as_bytes());
    let header = sim.output_string(c);
    let start = header.find(" id='").unwrap() + 5;
    let id = &header[start..start + header[start..].find('\'').unwrap()];
    sim.client_bytes(
        c,
        format!("<handshake>{}</handshake>", handshake_digest(id, "pw")).as_bytes(),
    );
    assert_eq!(sim.output_string(c), "<handshake/>");
    c
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_input_on_a_component_stream_never_breaks_anyone_else(
        pieces in proptest::collection::vec(fragment(), 1..12),
        authenticated in any::<bool>(),
    ) {
        let mut sim = Simulation::new(C2sConfig::new(vec!["localhost".into()]), HubConfig::default(), 61)
            .with_federation(FederationConfig::new(vec!["localhost".into()]), None);
        sim.add_user("alice@localhost", "pw");
        let mut alice = Driver::login(&mut sim, "alice", "pw", "r");
        let config = Arc::new(ComponentConfig::new(vec!["localhost".into()], "pw"));
        let attacker = if authenticated {
            echo_component(&mut sim, config.clone())
        } else {
            let c = sim.connect_component(config.clone());
            sim.client_bytes(c, COMPONENT_OPEN.as_bytes());
            c
        };
        for p in &pieces {
            sim.client_bytes(attacker, p);
        }
        sim.disconnect(attacker);
        ping(&mut sim, &mut alice, "localhost");
        // The domain is free again for a well-behaved component, which gets messages.
        let good = echo_component(&mut sim, config);
        alice.send(&mut sim, "<message to='bot@echo.localhost'><body>still there?</body></message>");
        prop_assert!(sim.output_string(good).contains("still there?"));
    }

    #[test]
    fn random_input_on_an_incoming_s2s_stream_never_breaks_anyone_else(
        pieces in proptest::collection::vec(fragment(), 1..12),
    ) {
        let mut net = Network::new(None, 62);
        net.a.add_user("alice@a.test", "pw");
        net.b.add_user("bob@b.test", "pw");
        let mut alice = Driver::login_to(&mut net.a, A, "alice", "pw", "r");
        let mut bob = Driver::login_to(&mut net.b, B, "bob", "pw", "r");
        let attacker = net.b.accept_s2s(net.listener(Side::B));
        net.b.client_bytes(attacker, S2S_OPEN.as_bytes());
        for p in &pieces {
            net.b.client_bytes(attacker, p);
            net.pump();
        }
        net.b.disconnect(attacker);
        net.pump();
        ping(&mut net.b, &mut bob, B);
        alice.send(&mut net.a, "<message to='bob@b.test/r' type='chat'><body>federation works</body></message>");
        net.pump();
        prop_assert!(bob.recv(&mut net.b).contains("federation works"));
    }
}
