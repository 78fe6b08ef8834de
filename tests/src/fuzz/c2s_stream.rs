//! A whole in-memory server (C2S engine, hub, storage) fed arbitrary bytes on one
//! connection, before or after that connection logged in, with or without time
//! passing: the engine never panics, and another logged-in user still gets answers.

use std::time::Duration;

use crate::driver::{Driver, STREAM_OPEN};
use crate::Simulation;
use meerkat_engine::hub::HubConfig;
use meerkat_engine::stream::c2s::C2sConfig;

/// Panics if the engine panics or if the bystander loses its session.
pub fn c2s_stream(data: &[u8]) {
    let Some((&flags, input)) = data.split_first() else {
        return;
    };
    let mut config = C2sConfig::new(vec!["localhost".into()]);
    config.registration = true;
    config.max_stanza_size = 4096;
    let mut sim = Simulation::new(config, HubConfig::default(), 7);
    // One PBKDF2 iteration: logins cost microseconds, the protocol is the same.
    sim.add_user_with_iterations("alice@localhost", "pw", 1);
    sim.add_user_with_iterations("bob@localhost", "pw", 1);
    let mut bob = Driver::login(&mut sim, "bob", "pw", "r");

    let attacker = if flags & 1 == 1 {
        Driver::login(&mut sim, "alice", "pw", "a").id
    } else {
        let id = sim.connect();
        if flags & 2 == 2 {
            sim.client_bytes(id, STREAM_OPEN.as_bytes());
        }
        id
    };
    // Bytes 0xFE split the input into pieces fed one after the other.
    for piece in input.split(|&b| b == 0xFE) {
        sim.client_bytes(attacker, piece);
        let _ = sim.take_output(attacker);
    }
    if flags & 4 == 4 {
        sim.advance(Duration::from_secs(45));
    }
    if flags & 8 == 8 {
        sim.disconnect(attacker);
    }

    bob.send(
        &mut sim,
        "<iq type='get' id='alive' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>",
    );
    let answer = bob.recv(&mut sim);
    assert!(
        answer.contains("id='alive'") && answer.contains("type='result'"),
        "a bystander lost its session: {answer}"
    );
}
