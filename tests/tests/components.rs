//! XEP-0114 components attached to an in-memory server, through the engine: the
//! handshake, stanzas both ways with a user, disco#items, and each wrong move's
//! error (wrong password, a served domain, a second component, a forged `from`, a
//! subdomain nobody serves).

use std::sync::Arc;

use meerkat_engine::federation::FederationConfig;
use meerkat_engine::hub::{HubConfig, SessionId};
use meerkat_engine::instrument::{ConnectionType, Direction, ElementKind, Event};
use meerkat_engine::stream::c2s::C2sConfig;
use meerkat_engine::stream::component::{handshake_digest, ComponentConfig, ConflictBehaviour};
use meerkat_tests::driver::Driver;
use meerkat_tests::Simulation;

const PASSWORD: &str = "s3cr3t";

fn server() -> Simulation {
    let mut sim = Simulation::new(C2sConfig::new(vec!["localhost".into()]), HubConfig::default(), 21)
        .with_federation(FederationConfig::new(vec!["localhost".into()]), None);
    sim.add_user("alice@localhost", "alice-pw");
    sim
}

fn listener(configure: impl FnOnce(&mut ComponentConfig)) -> Arc<ComponentConfig> {
    let mut c = ComponentConfig::new(vec!["localhost".into()], PASSWORD);
    configure(&mut c);
    Arc::new(c)
}

/// Opens a component stream for `domain` and sends the handshake with `password`;
/// returns the connection and what the server answered to the handshake.
fn attach(
    sim: &mut Simulation,
    config: Arc<ComponentConfig>,
    domain: &str,
    password: &str,
) -> (SessionId, String) {
    let c = sim.connect_component(config);
    sim.client_bytes(
        c,
        format!(
            "<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='{domain}'>"
        )
        .as_bytes(),
    );
    let header = sim.output_string(c);
    if header.contains("<stream:error") {
        return (c, header);
    }
    let start = header.find(" id='").expect("a stream id");
    let id = &header[start + 5..];
    let id = &id[..id.find('\'').unwrap()];
    assert!(header.contains(&format!("from='{domain}'")), "{header}");
    sim.client_bytes(
        c,
        format!("<handshake>{}</handshake>", handshake_digest(id, password)).as_bytes(),
    );
    (c, sim.output_string(c))
}

#[test]
fn a_component_answers_a_users_message_and_is_listed_in_disco() {
    let mut sim = server();
    let (c, answer) = attach(&mut sim, listener(|_| {}), "echo.localhost", PASSWORD);
    assert_eq!(answer, "<handshake/>");
    let mut alice = Driver::login(&mut sim, "alice", "alice-pw", "phone");
    alice.send(
        &mut sim,
        "<message to='bot@echo.localhost' type='chat' id='e1'><body>ping</body></message>",
    );
    let got = sim.output_string(c);
    assert_eq!(
        got,
        "<message to='bot@echo.localhost' type='chat' id='e1' from='alice@localhost/phone'><body>ping</body></message>"
    );
    sim.client_bytes(
        c,
        b"<message from='bot@echo.localhost' to='alice@localhost/phone' type='chat' id='e1'><body>pong</body></message>",
    );
    let got = alice.recv(&mut sim);
    assert!(
        got.contains("from='bot@echo.localhost'") && got.contains("<body>pong</body>"),
        "{got}"
    );

    alice.send(
        &mut sim,
        "<iq type='get' id='d1' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>",
    );
    let got = alice.recv(&mut sim);
    assert!(got.contains("<item jid='echo.localhost'/>"), "{got}");

    // One xmpp_element_in and one xmpp_element_out per element, labelled component.
    let component_events: Vec<&Event> = sim
        .events()
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::Element {
                    connection_type: ConnectionType::Component,
                    ..
                }
            )
        })
        .collect();
    let count = |dir: Direction, kind: ElementKind| {
        component_events
            .iter()
            .filter(
                |e| matches!(e, Event::Element { direction, kind: k, .. } if *direction == dir && *k == kind),
            )
            .count()
    };
    assert_eq!(count(Direction::In, ElementKind::Message), 1);
    assert_eq!(count(Direction::Out, ElementKind::Message), 1);
    assert_eq!(count(Direction::In, ElementKind::Other), 1, "the handshake");
    assert!(component_events
        .iter()
        .all(|e| matches!(e, Event::Element { host_type, .. } if host_type == "echo.localhost")));

    // Leaving takes it out of disco.
    sim.disconnect(c);
    alice.send(
        &mut sim,
        "<iq type='get' id='d2' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>",
    );
    assert!(!alice.recv(&mut sim).contains("echo.localhost"));
}

#[test]
fn hidden_components_are_not_listed() {
    let mut sim = server();
    let (_, answer) = attach(
        &mut sim,
        listener(|c| c.hidden = true),
        "secret.localhost",
        PASSWORD,
    );
    assert_eq!(answer, "<handshake/>");
    let mut alice = Driver::login(&mut sim, "alice", "alice-pw", "phone");
    alice.send(
        &mut sim,
        "<iq type='get' id='d1' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>",
    );
    assert!(!alice.recv(&mut sim).contains("secret.localhost"));
}

/// XEP-0114 §3.2: a wrong handshake is not-authorized, and the stream closes.
#[test]
fn wrong_password_is_not_authorized() {
    let mut sim = server();
    let (c, answer) = attach(&mut sim, listener(|_| {}), "echo.localhost", "wrong");
    assert!(
        answer.contains("<not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"),
        "{answer}"
    );
    assert!(answer.ends_with("</stream:stream>"));
    assert!(sim.is_closed(c));
}

/// XEP-0114 §3.1: a domain the server will not give a component is host-unknown.
#[test]
fn a_served_domain_is_host_unknown() {
    let mut sim = server();
    let (c, answer) = attach(&mut sim, listener(|_| {}), "localhost", PASSWORD);
    assert!(answer.contains("<host-unknown"), "{answer}");
    assert!(sim.is_closed(c));
}

#[test]
fn a_second_component_is_refused_or_replaces_the_first() {
    let mut sim = server();
    let (first, answer) = attach(&mut sim, listener(|_| {}), "echo.localhost", PASSWORD);
    assert_eq!(answer, "<handshake/>");
    let (second, answer) = attach(&mut sim, listener(|_| {}), "echo.localhost", PASSWORD);
    assert!(
        answer.contains("<conflict"),
        "disconnect: the newcomer goes: {answer}"
    );
    assert!(sim.is_closed(second) && !sim.is_closed(first));

    let kick = listener(|c| c.conflict = ConflictBehaviour::KickOld);
    let (third, answer) = attach(&mut sim, kick, "echo.localhost", PASSWORD);
    assert_eq!(answer, "<handshake/>");
    assert!(
        sim.output_string(first).contains("<conflict"),
        "kick_old: the old one goes"
    );
    assert!(sim.is_closed(first) && !sim.is_closed(third));
    let mut alice = Driver::login(&mut sim, "alice", "alice-pw", "phone");
    alice.send(
        &mut sim,
        "<message to='bot@echo.localhost'><body>who?</body></message>",
    );
    assert!(sim.output_string(third).contains("who?"));
}

/// check_from: a component may only send from its own domain.
#[test]
fn forged_from_on_a_component_is_invalid_from() {
    let mut sim = server();
    let (c, _) = attach(&mut sim, listener(|_| {}), "echo.localhost", PASSWORD);
    let mut alice = Driver::login(&mut sim, "alice", "alice-pw", "phone");
    sim.client_bytes(
        c,
        b"<message from='admin@localhost' to='alice@localhost/phone'><body>trust me</body></message>",
    );
    assert!(sim.output_string(c).contains("<invalid-from"));
    assert!(sim.is_closed(c));
    assert!(!alice.recv(&mut sim).contains("trust me"));
}

/// A subdomain of ours that no component serves: remote-server-not-found.
#[test]
fn unknown_component_domain_is_remote_server_not_found() {
    let mut sim = server();
    let mut alice = Driver::login(&mut sim, "alice", "alice-pw", "phone");
    alice.send(
        &mut sim,
        "<message to='bot@nothere.localhost' id='n1'><body>hello?</body></message>",
    );
    let got = alice.recv(&mut sim);
    assert!(
        got.contains("type='error'") && got.contains("<remote-server-not-found"),
        "{got}"
    );
}

/// Components get TLS too: STARTTLS offered to a version 1.0 stream, required
/// before the handshake with `starttls_required`.
#[test]
fn starttls_then_handshake() {
    use meerkat_engine::stream::c2s::TlsMode;
    use meerkat_tests::tls::{TestCert, TlsClient};
    let cert = TestCert::localhost();
    let mut sim = server();
    let config = listener(|c| {
        c.tls_mode = TlsMode::StartTlsRequired;
        c.tls = Some(Arc::new(cert.identity(&[])));
    });
    let header = "<stream:stream xmlns='jabber:component:accept' \
                  xmlns:stream='http://etherx.jabber.org/streams' to='echo.localhost' version='1.0'>";
    // In clear, the handshake is refused.
    let c = sim.connect_component(config.clone());
    sim.client_bytes(c, header.as_bytes());
    let got = sim.output_string(c);
    assert!(
        got.contains("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>"),
        "{got}"
    );
    sim.client_bytes(c, b"<handshake>00</handshake>");
    assert!(sim.output_string(c).contains("<policy-violation"));

    let c = sim.connect_component(config);
    sim.client_bytes(c, header.as_bytes());
    sim.output_string(c);
    sim.client_bytes(c, b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    assert!(sim.output_string(c).contains("<proceed"));
    let mut tls = TlsClient::new(cert.client_config());
    for _ in 0..10 {
        let out = tls.take_ciphertext();
        if !out.is_empty() {
            sim.client_bytes(c, &out);
        }
        let back = sim.take_output(c);
        let _ = tls.receive(&back);
        if !tls.is_handshaking() && back.is_empty() {
            break;
        }
    }
    assert!(!tls.is_handshaking());
    tls.send(header.as_bytes());
    sim.client_bytes(c, &tls.take_ciphertext());
    let got = String::from_utf8(tls.receive(&sim.take_output(c))).unwrap();
    assert!(!got.contains("starttls"), "no STARTTLS offered twice: {got}");
    let start = got.find(" id='").unwrap() + 5;
    let id = &got[start..start + got[start..].find('\'').unwrap()];
    tls.send(format!("<handshake>{}</handshake>", handshake_digest(id, PASSWORD)).as_bytes());
    sim.client_bytes(c, &tls.take_ciphertext());
    let got = String::from_utf8(tls.receive(&sim.take_output(c))).unwrap();
    assert_eq!(got, "<handshake/>");
}
