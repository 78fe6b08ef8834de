//! Throughput of the XMPP stream parser: a benchmark, not a test; it asserts nothing
//! about speed. Run it (always optimised) with:
//!
//! ```text
//! cargo bench -p meerkat-engine --bench parser
//! ```
//!
//! It parses a stream of 280-byte chat messages fed whole and fed one byte at a time,
//! and prints the best of a few rounds in MB/s of input.

use std::time::{Duration, Instant};

use meerkat_engine::xml::{ParseLimits, StreamEvent, StreamParser};

const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0'>";

/// A chat message as clients send it: addresses, an id, `xml:lang`, a body with an
/// escape, and a chat-state notification in its own namespace.
fn message(i: usize) -> String {
    let m = format!(
        "<message to='juliet@example.com/balcony' from='romeo@example.net/orchard' \
         type='chat' id='m-{i:06}' xml:lang='en'><body>Art thou not Romeo, and a \
         Montague? Neither, fair saint, if either thee dislike &amp; so</body>\
         <active xmlns='http://jabber.org/protocol/chatstates'/></message>"
    );
    assert_eq!(m.len(), 280, "{m}");
    m
}

/// The header and then `count` messages.
fn stream(count: usize) -> Vec<u8> {
    let mut input = String::from(HEADER);
    for i in 0..count {
        input.push_str(&message(i));
    }
    input.into_bytes()
}

/// Parses `input` fed in pieces of `piece` bytes, draining after each, and returns the
/// number of elements.
fn run(input: &[u8], piece: usize) -> usize {
    let mut p = StreamParser::new(ParseLimits::default());
    let mut elements = 0;
    for chunk in input.chunks(piece) {
        p.feed(chunk);
        while let Some(event) = p.next_event().expect("valid stream") {
            if let StreamEvent::Element(e, _) = event {
                elements += usize::from(e.name() == "message");
            }
        }
    }
    elements
}

/// Best time of `rounds` runs.
fn best(rounds: usize, f: impl Fn() -> usize, expected: usize) -> Duration {
    (0..rounds)
        .map(|_| {
            let start = Instant::now();
            assert_eq!(std::hint::black_box(f()), expected);
            start.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn main() {
    const MESSAGES: usize = 20_000;
    let input = stream(MESSAGES);
    let mb = input.len() as f64 / 1e6;
    for (label, piece) in [("whole", input.len()), ("byte at a time", 1)] {
        let time = best(7, || run(&input, piece), MESSAGES);
        println!(
            "{label:>15}: {:7.1} MB/s ({:.2} MB in {:.1} ms)",
            mb / time.as_secs_f64(),
            mb,
            time.as_secs_f64() * 1e3
        );
    }
}
