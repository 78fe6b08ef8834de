//! Throughput of S2S through the engine, without sockets: two in-memory servers
//! (tests/src/federation.rs) federating with dialback in clear and with STARTTLS +
//! SASL EXTERNAL; alice@a.test sends chat messages to bob@b.test and the time from
//! the first send to the last delivery is measured. Run with
//! `cargo bench -p meerkat-tests --bench federation`.

use std::time::Instant;

use meerkat_tests::driver::Driver;
use meerkat_tests::federation::{Network, TestCa, A, B};

const MESSAGES: usize = 20_000;
const BATCH: usize = 100;

fn run(label: &str, mut net: Network) {
    net.a.add_user("alice@a.test", "alice-pw");
    net.b.add_user("bob@b.test", "bob-pw");
    let mut alice = Driver::login_to(&mut net.a, A, "alice", "alice-pw", "phone");
    let mut bob = Driver::login_to(&mut net.b, B, "bob", "bob-pw", "laptop");
    // The streams are set up by the first message, outside the measurement.
    alice.send(
        &mut net.a,
        "<message to='bob@b.test/laptop' type='chat'><body>warm-up</body></message>",
    );
    net.pump();
    bob.recv(&mut net.b);
    let started = Instant::now();
    let mut delivered = 0;
    for batch in 0..MESSAGES / BATCH {
        let mut text = String::new();
        for i in 0..BATCH {
            text.push_str(&format!(
                "<message to='bob@b.test/laptop' type='chat' id='m{batch}-{i}'><body>message {i} of batch {batch}</body></message>"
            ));
        }
        alice.send(&mut net.a, &text);
        net.pump();
        delivered += bob.recv(&mut net.b).matches("<message ").count();
    }
    let elapsed = started.elapsed();
    assert_eq!(delivered, MESSAGES, "every message arrives");
    println!(
        "{label}: {MESSAGES} messages a.test -> b.test in {:.2}s: {:.0} messages/s",
        elapsed.as_secs_f64(),
        MESSAGES as f64 / elapsed.as_secs_f64()
    );
}

fn main() {
    run("dialback, clear", Network::new(None, 1));
    let ca = TestCa::new(&[A, B]);
    run("STARTTLS + SASL EXTERNAL", Network::new(Some(&ca), 2));
}
