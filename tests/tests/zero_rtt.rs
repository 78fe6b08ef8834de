//! TLS 1.3 0-RTT with FAST (XEP-0484 §3.4): a returning client puts the stream
//! header and a SASL2 `<authenticate/>` with its token and Bind 2 into early data,
//! and has a bound session when the server's first flight arrives. Replays are
//! refused: by rustls (single-use tickets) and by the server-checked `count`.

use std::sync::Arc;
use std::time::Duration;

use meerkat_engine::hub::HubConfig;
use meerkat_engine::instrument::Event;
use meerkat_engine::stream::c2s::{C2sConfig, FastConfig, SmConfig, TlsMode};
use meerkat_engine::tls::Resumption;
use meerkat_tests::driver::{Driver, STREAM_OPEN};
use meerkat_tests::sasl2::{attr_of, Authenticate};
use meerkat_tests::tls::{TestCert, TlsClient};
use meerkat_tests::Simulation;

fn sim(cert: &TestCert, seed: u64) -> Simulation {
    let mut config = C2sConfig::new(vec!["localhost".into()]);
    config.tls_mode = TlsMode::Tls;
    let identity = cert
        .identity(&[b"xmpp-client"])
        .with_resumption(Resumption::SingleUse { early_data: true })
        .expect("resumption");
    config.tls = Some(Arc::new(identity));
    config.sm = Some(SmConfig {
        resume_timeout: Duration::from_secs(60),
        ..SmConfig::default()
    });
    config.fast = Some(FastConfig::default());
    let mut sim = Simulation::new(config, HubConfig::default(), seed);
    sim.add_user("juliet@localhost", "r0m30myr0m30");
    sim
}

/// A password login that asks for a token; the client config keeps the TLS
/// tickets the server sends.
fn first_login(sim: &mut Simulation, client: &Arc<rustls::ClientConfig>) -> String {
    let mut d = Driver::connect_tls(sim, client.clone());
    d.send(sim, STREAM_OPEN);
    let features = d.recv(sim);
    assert!(
        features.contains("<fast xmlns='urn:xmpp:fast:0' tls-0rtt='true'>"),
        "{features}"
    );
    let mut auth = Authenticate::plain("juliet", "r0m30myr0m30").bind("Sim", "");
    auth.request_token = Some("HT-SHA-256-NONE".into());
    d.send(sim, &auth.to_xml());
    let success = d.recv(sim);
    d.send(sim, "</stream:stream>");
    d.recv(sim);
    attr_of(&success, "token", "token").expect(&success)
}

/// One 0-RTT attempt: ClientHello with `early` as early data, in one flight.
/// Returns the client, the flight (for replays) and what the server's first flight
/// decrypts to.
fn zero_rtt(
    sim: &mut Simulation,
    client: &Arc<rustls::ClientConfig>,
    early: &str,
) -> (u64, TlsClient, Vec<u8>, String) {
    let id = sim.connect();
    let mut tls = TlsClient::new(client.clone());
    assert!(
        tls.send_early(early.as_bytes()),
        "the client has a ticket allowing early data"
    );
    let flight = tls.take_ciphertext();
    sim.client_bytes(id, &flight);
    let answer = sim.take_output(id);
    let plain = String::from_utf8(tls.receive(&answer)).unwrap();
    // The client's Finished (and nothing else) completes the handshake.
    let fin = tls.take_ciphertext();
    sim.client_bytes(id, &fin);
    // New tickets for the next connection.
    let tickets = sim.take_output(id);
    let after = String::from_utf8(tls.receive(&tickets)).unwrap();
    assert!(after.is_empty(), "everything came in the first flight: {after}");
    (id, tls, flight, plain)
}

fn successes(sim: &Simulation) -> usize {
    sim.events()
        .iter()
        .filter(|e| matches!(e, Event::Auth { success: true, .. }))
        .count()
}

/// A 0-RTT reconnect: the session is bound when the server's first flight, the
/// TLS handshake's only round trip, arrives.
#[test]
fn zero_rtt_reconnect_is_ready_within_the_handshake() {
    let cert = TestCert::localhost();
    let mut sim = sim(&cert, 41);
    let client = cert.client_config_early();
    let token = first_login(&mut sim, &client);
    let early = format!(
        "{STREAM_OPEN}{}",
        Authenticate::fast("juliet", &token, Some(1))
            .bind("Sim", "<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
            .to_xml()
    );
    let (id, tls, _, plain) = zero_rtt(&mut sim, &client, &early);
    assert!(tls.early_data_accepted());
    assert!(
        plain.contains("<authorization-identifier>juliet@localhost/Sim/"),
        "{plain}"
    );
    assert!(plain.contains("<enabled xmlns='urn:xmpp:sm:3'"), "{plain}");
    assert!(!sim.is_closed(id));
}

/// Early data replayed on a new connection gets nowhere: the ticket was single
/// use, so rustls refuses the early data and no authentication happens.
#[test]
fn replayed_early_data_is_refused() {
    let cert = TestCert::localhost();
    let mut sim = sim(&cert, 42);
    let client = cert.client_config_early();
    let token = first_login(&mut sim, &client);
    let early = format!(
        "{STREAM_OPEN}{}",
        Authenticate::fast("juliet", &token, Some(1)).to_xml()
    );
    let (_, _, flight, plain) = zero_rtt(&mut sim, &client, &early);
    assert!(plain.contains("<success"), "{plain}");
    let before = successes(&sim);
    let replay = sim.connect();
    sim.client_bytes(replay, &flight);
    let _ = sim.take_output(replay);
    assert_eq!(successes(&sim), before, "the replay authenticated");
}

/// A fresh ticket with a stale count: rustls accepts the early data, the server
/// refuses the authentication with a SASL2 failure, and the client goes on in
/// 1-RTT on the same stream.
#[test]
fn stale_count_in_early_data_fails_cleanly_and_the_client_goes_on() {
    let cert = TestCert::localhost();
    let mut sim = sim(&cert, 43);
    let client = cert.client_config_early();
    let token = first_login(&mut sim, &client);
    let early = |count| {
        format!(
            "{STREAM_OPEN}{}",
            Authenticate::fast("juliet", &token, count).to_xml()
        )
    };
    let (_, _, _, plain) = zero_rtt(&mut sim, &client, &early(Some(7)));
    assert!(plain.contains("<success"), "{plain}");
    let (id, mut tls, _, plain) = zero_rtt(&mut sim, &client, &early(Some(7)));
    assert!(tls.early_data_accepted());
    assert!(
        plain.contains("<failure xmlns='urn:xmpp:sasl:2'><not-authorized"),
        "{plain}"
    );
    // No count at all in early data is refused too.
    let (_, _, _, plain) = zero_rtt(&mut sim, &client, &early(None));
    assert!(
        plain.contains("<failure xmlns='urn:xmpp:sasl:2'><not-authorized"),
        "{plain}"
    );
    // The first stream goes on after the handshake (1-RTT).
    tls.send(Authenticate::fast("juliet", &token, Some(8)).to_xml().as_bytes());
    let bytes = tls.take_ciphertext();
    sim.client_bytes(id, &bytes);
    let answer = String::from_utf8(tls.receive(&sim.take_output(id))).unwrap();
    assert!(answer.contains("<success"), "{answer}");
}

/// Early data carries the stream header and a FAST authentication, nothing else:
/// a password mechanism is refused, a stanza ends the stream.
#[test]
fn early_data_carries_only_fast_authentication() {
    let cert = TestCert::localhost();
    let mut sim = sim(&cert, 44);
    let client = cert.client_config_early();
    first_login(&mut sim, &client);
    let plain_auth = format!(
        "{STREAM_OPEN}{}",
        Authenticate::plain("juliet", "r0m30myr0m30").to_xml()
    );
    let (_, _, _, plain) = zero_rtt(&mut sim, &client, &plain_auth);
    assert!(
        plain.contains("<failure xmlns='urn:xmpp:sasl:2'><not-authorized"),
        "{plain}"
    );
    let stanza = format!("{STREAM_OPEN}<message to='romeo@localhost'><body>x</body></message>");
    let (id, _, _, plain) = zero_rtt(&mut sim, &client, &stanza);
    assert!(plain.contains("<policy-violation"), "{plain}");
    assert!(sim.is_closed(id));
    // Not even after a good FAST authentication: a stanza in early data could be
    // replayed, so it ends the stream instead of reaching anyone.
    let token = first_login(&mut sim, &client);
    let after_auth = format!(
        "{STREAM_OPEN}{}<message to='romeo@localhost'><body>x</body></message>",
        Authenticate::fast("juliet", &token, Some(1))
            .bind("Sim", "")
            .to_xml()
    );
    let (id, _, _, plain) = zero_rtt(&mut sim, &client, &after_auth);
    assert!(plain.contains("<policy-violation"), "{plain}");
    assert!(sim.is_closed(id));
}
