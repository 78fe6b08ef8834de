//! Two Meerkat servers federating in memory, all through the engine: users on
//! `a.test` and `b.test` exchange messages and presence subscriptions over Server
//! Dialback in clear and over STARTTLS with SASL EXTERNAL; a forged `from` ends the
//! stream; failed connections bounce what waited for them.

use std::time::Duration;

use meerkat_engine::federation::FederationInput;
use meerkat_engine::instrument::{ConnectionType, Direction, ElementKind, Event};
use meerkat_tests::driver::Driver;
use meerkat_tests::federation::{Connects, Network, Side, TestCa, A, B};

fn with_users(net: &mut Network) -> (Driver, Driver) {
    net.a.add_user("alice@a.test", "alice-pw");
    net.b.add_user("bob@b.test", "bob-pw");
    let alice = Driver::login_to(&mut net.a, A, "alice", "alice-pw", "phone");
    let bob = Driver::login_to(&mut net.b, B, "bob", "bob-pw", "laptop");
    (alice, bob)
}

fn dialback_used(net: &Network, side: Side) -> bool {
    let sim = match side {
        Side::A => &net.a,
        Side::B => &net.b,
    };
    sim.federation_log()
        .iter()
        .any(|i| matches!(i, FederationInput::DialbackVerify(_)))
}

/// Messages both ways, then the RFC 6121 subscription handshake both ways, each
/// user seeing the other's presence at the end.
fn converse(net: &mut Network, alice: &mut Driver, bob: &mut Driver) {
    for (d, side) in [(&mut *alice, Side::A), (&mut *bob, Side::B)] {
        let sim = net.sim(side);
        d.send(
            sim,
            "<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>",
        );
        d.send(sim, "<presence/>");
        d.recv(sim);
    }
    alice.send(
        &mut net.a,
        "<message to='bob@b.test/laptop' type='chat' id='m1'><body>hello from a</body></message>",
    );
    net.pump();
    let got = bob.recv(&mut net.b);
    assert!(
        got.contains("from='alice@a.test/phone'") && got.contains("hello from a"),
        "bob got: {got}"
    );
    bob.send(
        &mut net.b,
        "<message to='alice@a.test/phone' type='chat' id='m2'><body>hello from b</body></message>",
    );
    net.pump();
    let got = alice.recv(&mut net.a);
    assert!(
        got.contains("from='bob@b.test/laptop'") && got.contains("hello from b"),
        "alice got: {got}"
    );

    // Alice subscribes to Bob; Bob approves and subscribes back; Alice approves.
    alice.send(&mut net.a, "<presence to='bob@b.test' type='subscribe'/>");
    net.pump();
    let got = bob.recv(&mut net.b);
    assert!(
        got.contains("type='subscribe'") && got.contains("from='alice@a.test'"),
        "{got}"
    );
    bob.send(&mut net.b, "<presence to='alice@a.test' type='subscribed'/>");
    bob.send(&mut net.b, "<presence to='alice@a.test' type='subscribe'/>");
    net.pump();
    let got = alice.recv(&mut net.a);
    assert!(got.contains("subscription='to'"), "alice's roster push: {got}");
    assert!(
        got.contains("type='subscribe'") && got.contains("from='bob@b.test'"),
        "{got}"
    );
    assert!(
        got.contains("from='bob@b.test/laptop'"),
        "bob's presence reaches alice: {got}"
    );
    alice.send(&mut net.a, "<presence to='bob@b.test' type='subscribed'/>");
    net.pump();
    let got = bob.recv(&mut net.b);
    assert!(got.contains("subscription='both'"), "bob's roster push: {got}");
    assert!(
        got.contains("from='alice@a.test/phone'"),
        "alice's presence reaches bob: {got}"
    );
    let got = alice.recv(&mut net.a);
    assert!(got.contains("subscription='both'"), "alice's roster push: {got}");
}

#[test]
fn dialback_in_clear_carries_messages_and_subscriptions_both_ways() {
    let mut net = Network::new(None, 5);
    let (mut alice, mut bob) = with_users(&mut net);
    converse(&mut net, &mut alice, &mut bob);
    assert!(dialback_used(&net, Side::A) && dialback_used(&net, Side::B));
    // xmpp_element_in/out cover S2S, labelled s2s and the local domain: a's streams
    // carried alice's message out and bob's message in.
    let s2s = |dir: Direction, kind: ElementKind| {
        net.a
            .events()
            .iter()
            .filter(|e| {
                matches!(e, Event::Element { connection_type: ConnectionType::S2s, direction, kind: k, host_type, .. }
                    if *direction == dir && *k == kind && host_type == A)
            })
            .count()
    };
    assert_eq!(s2s(Direction::Out, ElementKind::Message), 1);
    assert_eq!(s2s(Direction::In, ElementKind::Message), 1);
    assert!(
        s2s(Direction::Out, ElementKind::Presence) >= 3,
        "subscription stanzas went out"
    );
}

#[test]
fn starttls_and_sasl_external_carry_messages_and_subscriptions_both_ways() {
    let ca = TestCa::new(&[A, B]);
    let mut net = Network::new(Some(&ca), 6);
    let (mut alice, mut bob) = with_users(&mut net);
    converse(&mut net, &mut alice, &mut bob);
    // Certificates authenticated both directions: no dialback anywhere.
    assert!(!dialback_used(&net, Side::A) && !dialback_used(&net, Side::B));
}

/// RFC 6120 §4.9.3.9: a stanza whose `from` is not an authenticated domain ends the
/// incoming stream with `invalid-from`; the addressee gets nothing.
#[test]
fn forged_from_on_s2s_gets_invalid_from() {
    let mut net = Network::new(None, 7);
    let (mut alice, mut bob) = with_users(&mut net);
    alice.send(
        &mut net.a,
        "<message to='bob@b.test/laptop' type='chat'><body>real</body></message>",
    );
    net.pump();
    assert!(bob.recv(&mut net.b).contains("real"));
    let inc = *net.incoming(Side::B).first().expect("b accepted a's stream");
    net.b.client_bytes(
        inc,
        b"<message from='mallory@evil.test' to='bob@b.test/laptop' type='chat'><body>forged</body></message>",
    );
    let answer = net.b.output_string(inc);
    assert!(answer.contains("<invalid-from"), "{answer}");
    assert!(net.b.is_closed(inc));
    assert!(!bob.recv(&mut net.b).contains("forged"));
}

/// XEP-0220 §2.4: a dialback key that is not the originating server's own is
/// found invalid by its authoritative server, and the claimed pair stays closed.
#[test]
fn wrong_dialback_key_is_invalid() {
    let mut net = Network::new(None, 9);
    let (mut alice, mut bob) = with_users(&mut net);
    // A real stream a.test -> b.test first, so that b can ask a.
    alice.send(
        &mut net.a,
        "<message to='bob@b.test/laptop' type='chat'><body>x</body></message>",
    );
    net.pump();
    assert!(bob.recv(&mut net.b).contains(">x<"));
    // Someone else claims to be a.test with a made-up key.
    let forger = net.b.accept_s2s(net.listener(Side::B));
    net.b.client_bytes(
        forger,
        b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' \
          xmlns:db='jabber:server:dialback' from='a.test' to='b.test' version='1.0'>\
          <db:result from='a.test' to='b.test'>0000</db:result>",
    );
    net.pump();
    let answer = net.b.output_string(forger);
    assert!(
        answer.contains("from='b.test' to='a.test' type='invalid'"),
        "{answer}"
    );
    net.b.client_bytes(
        forger,
        b"<message from='alice@a.test/x' to='bob@b.test/laptop'><body>forged</body></message>",
    );
    assert!(net.b.output_string(forger).contains("<not-authorized"));
    assert!(!bob.recv(&mut net.b).contains("forged"));
}

/// Nothing listens: queued stanzas bounce with remote-server-not-found.
#[test]
fn refused_connection_bounces_remote_server_not_found() {
    let mut net = Network::new(None, 10);
    net.connects = Connects::Refuse;
    let (mut alice, _bob) = with_users(&mut net);
    alice.send(
        &mut net.a,
        "<message to='bob@b.test' type='chat' id='q1'><body>anyone?</body></message>",
    );
    net.pump();
    let got = alice.recv(&mut net.a);
    assert!(
        got.contains("type='error'") && got.contains("<remote-server-not-found"),
        "{got}"
    );
}

/// A black hole: after the connection timeout, remote-server-timeout.
#[test]
fn silent_peer_bounces_remote_server_timeout() {
    let mut net = Network::new(None, 11);
    net.connects = Connects::Hold;
    let (mut alice, _bob) = with_users(&mut net);
    alice.send(
        &mut net.a,
        "<message to='bob@b.test' type='chat' id='q1'><body>anyone?</body></message>",
    );
    net.pump();
    assert!(
        !alice.recv(&mut net.a).contains("error"),
        "nothing before the timeout"
    );
    net.a.advance(Duration::from_secs(11));
    net.pump();
    let got = alice.recv(&mut net.a);
    assert!(
        got.contains("type='error'") && got.contains("<remote-server-timeout"),
        "{got}"
    );
}

/// RFC 6120 §13 / XEP-0220 §2.4: several domain pairs may share one incoming stream.
/// A peer serving a.test and a2.test authenticates both on one stream to b.test
/// (b checks each key with the authoritative server, a), and may then send from
/// either; a third domain on that stream is invalid-from.
#[test]
fn several_domain_pairs_share_one_incoming_stream() {
    let mut net = Network::with_a_hosts(&[A, "a2.test"], None, 12);
    net.b.add_user("bob@b.test", "bob-pw");
    let mut bob = Driver::login_to(&mut net.b, B, "bob", "bob-pw", "laptop");
    let peer = net.b.accept_s2s(net.listener(Side::B));
    net.b.client_bytes(
        peer,
        b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' \
          xmlns:db='jabber:server:dialback' from='a.test' to='b.test' version='1.0'>",
    );
    let header = net.b.output_string(peer);
    let start = header.find(" id='").unwrap() + 5;
    let id = header[start..start + header[start..].find('\'').unwrap()].to_string();
    // The keys a's servers would send: a's secret, for each of its domains.
    let a = meerkat_engine::stream::s2s::S2sConfig::new(Vec::new(), "secret of a.test");
    for domain in [A, "a2.test"] {
        let key = a.dialback_key(B, domain, &id);
        net.b.client_bytes(
            peer,
            format!("<db:result from='{domain}' to='b.test'>{key}</db:result>").as_bytes(),
        );
    }
    net.pump();
    let verdicts = net.b.output_string(peer);
    assert!(
        verdicts.contains("from='b.test' to='a.test' type='valid'"),
        "{verdicts}"
    );
    assert!(
        verdicts.contains("from='b.test' to='a2.test' type='valid'"),
        "{verdicts}"
    );
    for from in ["alice@a.test/x", "carol@a2.test/y"] {
        net.b.client_bytes(
            peer,
            format!("<message from='{from}' to='bob@b.test/laptop' type='chat'><body>hi from {from}</body></message>")
                .as_bytes(),
        );
        assert!(bob.recv(&mut net.b).contains(&format!("hi from {from}")));
    }
    net.b.client_bytes(
        peer,
        b"<message from='eve@a3.test' to='bob@b.test/laptop' type='chat'><body>x</body></message>",
    );
    assert!(net.b.output_string(peer).contains("<invalid-from"));
}
