//! Two in-memory servers federating (`a.test` and `b.test`), and a third party
//! feeding arbitrary bytes to `b.test` on an incoming S2S stream, with or without a
//! valid stream header first: the engine never panics, and the users on both sides
//! still reach each other over the real S2S stream.

use crate::driver::Driver;
use crate::federation::{Network, Side, A, B};

const S2S_OPEN: &str =
    "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' \
    xmlns:db='jabber:server:dialback' from='a.test' to='b.test' version='1.0'>";

/// Panics if the engine panics or if federation or a local session broke.
pub fn s2s_stream(data: &[u8]) {
    let Some((&flags, input)) = data.split_first() else {
        return;
    };
    let mut net = Network::new(None, 71);
    net.a.add_user_with_iterations("alice@a.test", "pw", 1);
    net.b.add_user_with_iterations("bob@b.test", "pw", 1);
    let mut alice = Driver::login_to(&mut net.a, A, "alice", "pw", "r");
    let mut bob = Driver::login_to(&mut net.b, B, "bob", "pw", "r");
    let attacker = net.b.accept_s2s(net.listener(Side::B));
    if flags & 1 == 1 {
        net.b.client_bytes(attacker, S2S_OPEN.as_bytes());
    }
    // Bytes 0xFE split the input into pieces fed one after the other.
    for piece in input.split(|&b| b == 0xFE) {
        net.b.client_bytes(attacker, piece);
        let _ = net.b.take_output(attacker);
        net.pump();
    }
    if flags & 2 == 2 {
        net.b.disconnect(attacker);
        net.pump();
    }
    bob.send(
        &mut net.b,
        "<iq type='get' id='alive' to='b.test'><ping xmlns='urn:xmpp:ping'/></iq>",
    );
    let answer = bob.recv(&mut net.b);
    assert!(
        answer.contains("id='alive'") && answer.contains("type='result'"),
        "a local user lost its session: {answer}"
    );
    alice.send(
        &mut net.a,
        "<message to='bob@b.test/r' type='chat'><body>federation works</body></message>",
    );
    net.pump();
    let got = bob.recv(&mut net.b);
    assert!(got.contains("federation works"), "federation broke: {got}");
}
