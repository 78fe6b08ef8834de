//! Criterion micro-benchmarks of Meerkat's hot paths, server side only where the
//! client's work can be set aside. Benchmarks, not tests: nothing here asserts a
//! speed. Run with:
//!
//! ```text
//! cargo bench -p meerkat-tests --bench hot_paths
//! ```
//!
//! - `server/chat_message`: one 280-byte chat message from one logged-in client to
//!   another through a whole in-memory server: C2S parse, `from` stamp, hub route,
//!   serialise for the recipient (no TLS);
//! - `hub/route_message`: the hub alone routing a parsed message to a bound session;
//! - `tls/record_280B`: one 280-byte application-data record decrypted by the server
//!   (the engine's `TlsSession`) and one encrypted back, TLS 1.3 AES-128-GCM or
//!   ChaCha20 as rustls negotiates (the client's half is measured with it);
//! - `sasl/scram_sha256_server`: the server's side of a whole SCRAM-SHA-256 exchange
//!   with stored credentials: parse, nonce, client proof check, server signature.
//!   The client's PBKDF2 is done once outside the loop.

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use meerkat_engine::hub::{Hub, HubConfig, HubInput};
use meerkat_engine::sasl::{
    ChannelBindings, Mechanism, SaslContext, SaslServer, SaslStep, ScramClient, ScramHash, StoredCredentials,
    DEFAULT_ITERATIONS,
};
use meerkat_engine::tls::TlsSession;
use meerkat_engine::xml::{ParseLimits, StreamEvent, StreamParser};
use meerkat_engine::{Element, Jid};
use meerkat_tests::driver::Driver;
use meerkat_tests::tls::{TestCert, TlsClient};
use meerkat_tests::Simulation;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// A 280-byte chat message as clients send it (the parser benchmark's message).
const MESSAGE: &str = "<message to='bob@localhost/r' type='chat' id='m-0000001' xml:lang='en'><body>Art thou \
    not Romeo, and a Montague? Neither, fair saint, if either thee dislike &amp; so, and more, said the boy, and she smiled...</body><active \
    xmlns='http://jabber.org/protocol/chatstates'/></message>";

fn server_chat_message(c: &mut Criterion) {
    let mut sim = Simulation::plain(1);
    sim.add_user_with_iterations("alice@localhost", "pw", 1);
    sim.add_user_with_iterations("bob@localhost", "pw", 1);
    let alice = Driver::login(&mut sim, "alice", "pw", "a");
    let bob = Driver::login(&mut sim, "bob", "pw", "r");
    let mut group = c.benchmark_group("server");
    group.throughput(Throughput::Elements(1));
    group.bench_function("chat_message", |b| {
        b.iter(|| {
            sim.client_bytes(alice.id, MESSAGE.as_bytes());
            black_box(sim.take_output(bob.id));
        })
    });
    group.finish();
}

fn parsed_message() -> Element {
    let mut parser = StreamParser::new(ParseLimits::default());
    parser.feed(
        b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' \
          version='1.0'>",
    );
    parser.feed(MESSAGE.as_bytes());
    loop {
        match parser.next_event().expect("valid") {
            Some(StreamEvent::Element(el, _)) => {
                return el.with_attr("from", "alice@localhost/a");
            }
            Some(_) => continue,
            None => panic!("no element"),
        }
    }
}

fn hub_route_message(c: &mut Criterion) {
    let mut hub = Hub::new(HubConfig::default());
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    for (session, jid) in [(1, "alice@localhost/a"), (2, "bob@localhost/r")] {
        let jid = Jid::parse(jid).expect("jid");
        hub.handle(HubInput::Bind { session, jid }, now);
    }
    while hub.poll_action().is_some() {}
    let message = parsed_message();
    let mut group = c.benchmark_group("hub");
    group.throughput(Throughput::Elements(1));
    group.bench_function("route_message", |b| {
        b.iter_batched(
            || message.clone(),
            |stanza| {
                hub.handle(HubInput::Stanza { session: 1, stanza }, now);
                while let Some(action) = hub.poll_action() {
                    black_box(action);
                }
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn tls_record(c: &mut Criterion) {
    let cert = TestCert::localhost();
    let identity = cert.identity(&[]);
    let mut server = TlsSession::new(&identity).expect("server");
    let mut client = TlsClient::new(cert.client_config());
    let mut to_client = Vec::new();
    while client.is_handshaking() || server.is_handshaking() {
        let mut plain = Vec::new();
        server
            .read(&client.take_ciphertext(), &mut plain)
            .expect("handshake");
        server.take_output(&mut to_client);
        client.receive(&std::mem::take(&mut to_client));
    }
    let mut group = c.benchmark_group("tls");
    group.throughput(Throughput::Bytes(2 * MESSAGE.len() as u64));
    group.bench_function("record_280B", |b| {
        let mut plain = Vec::with_capacity(1024);
        let mut out = Vec::with_capacity(1024);
        b.iter(|| {
            client.send(MESSAGE.as_bytes());
            plain.clear();
            server
                .read(&client.take_ciphertext(), &mut plain)
                .expect("record");
            server.write(&plain);
            out.clear();
            server.take_output(&mut out);
            black_box(client.receive(&out));
        })
    });
    group.finish();
}

fn scram_server(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let stored = StoredCredentials::derive("pencil", DEFAULT_ITERATIONS, &mut rng);
    let mechanism = Mechanism::Scram {
        hash: ScramHash::Sha256,
        plus: false,
    };
    let context = SaslContext {
        domain: "localhost".into(),
        advertised: vec![mechanism],
        channel_bindings: ChannelBindings::default(),
    };
    let secret = [5u8; 32];
    // The server's nonce comes from a generator seeded the same way each time, so
    // the client's final message, PBKDF2 included, is computed once.
    let server_rng = || ChaCha20Rng::seed_from_u64(9);
    let mut client = ScramClient::new(
        ScramHash::Sha256,
        "user",
        "pencil",
        "cl13ntn0nc3",
        "n,,",
        Vec::new(),
    );
    let first = client.first();
    let (mut server, step) = SaslServer::start_with_server_secret(
        mechanism,
        Some(&first),
        context.clone(),
        &secret,
        &mut server_rng(),
    );
    assert!(matches!(step, SaslStep::NeedCredentials { .. }));
    let SaslStep::Challenge(server_first) = server.credentials(Some(stored.clone()), &mut server_rng())
    else {
        panic!("no server-first");
    };
    let client_final = client.finish(&server_first).expect("server-first");

    let mut group = c.benchmark_group("sasl");
    group.throughput(Throughput::Elements(1));
    group.bench_function("scram_sha256_server", |b| {
        b.iter(|| {
            let mut rng = server_rng();
            let (mut server, _) = SaslServer::start_with_server_secret(
                mechanism,
                Some(&first),
                context.clone(),
                &secret,
                &mut rng,
            );
            server.credentials(Some(stored.clone()), &mut rng);
            let step = server.response(&client_final, &mut rng);
            assert!(matches!(step, SaslStep::Success { .. }));
            black_box(step);
        })
    });
    group.finish();
}

/// The server side of a FAST login (XEP-0484, HT-SHA-256-EXPR): the initial
/// response parsed, the initiator's HMAC checked against the stored token key
/// (constant time), the responder's HMAC made. Storage lookups are not included.
fn ht_verify(c: &mut Criterion) {
    use meerkat_engine::sasl::ht::{HtBinding, HtHash, HtMechanism};
    use meerkat_engine::sasl::ChannelBindings;
    let mechanism = HtMechanism {
        hash: HtHash::Sha256,
        binding: HtBinding::Exporter,
    };
    let cb = ChannelBindings {
        tls_exporter: Some(vec![7; 32]),
        tls_server_end_point: None,
    };
    let token = "t".repeat(160);
    let key = mechanism.token_key(&token);
    let response = mechanism
        .client_initial_response("alice", &token, &cb)
        .expect("EXPR binding present");

    let mut group = c.benchmark_group("sasl");
    group.throughput(Throughput::Elements(1));
    group.bench_function("ht_sha256_expr_server", |b| {
        b.iter(|| {
            let (authcid, mac) =
                HtMechanism::parse_initial_response(black_box(&response)).expect("well formed");
            assert!(mechanism.verify_initiator(&key, &mac, &cb).expect("binding"));
            black_box((authcid, mechanism.responder(&key, &cb).expect("binding")));
        })
    });
    group.finish();
}

criterion_group! {
    name = hot_paths;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = server_chat_message, hub_route_message, tls_record, scram_server, ht_verify
}
criterion_main!(hot_paths);
