//! The XML stream parser, fed arbitrary bytes in arbitrary pieces: it never panics,
//! and how the input is split never changes what it reports (the same events and
//! the same first error as when fed whole).

use meerkat_engine::xml::{ParseLimits, StreamParser};

/// Small limits, so that the fuzzer reaches them.
fn limits() -> ParseLimits {
    ParseLimits {
        max_stanza_size: 4096,
    }
}

/// Everything the parser reports for `input` fed in `pieces`, up to its first error.
fn events(input: &[u8], pieces: impl Iterator<Item = usize>) -> Vec<String> {
    let mut parser = StreamParser::new(limits());
    let mut out = Vec::new();
    let mut at = 0;
    for len in pieces {
        let end = (at + len).min(input.len());
        parser.feed(&input[at..end]);
        at = end;
        loop {
            match parser.next_event() {
                Ok(Some(event)) => out.push(format!("{event:?}")),
                Ok(None) => break,
                Err(e) => {
                    out.push(format!("error: {e:?}"));
                    return out;
                }
            }
        }
        if at == input.len() {
            break;
        }
    }
    out
}

/// Panics if the parser panics or if a split of the input changes what it reports.
pub fn xml_stream(data: &[u8]) {
    // The first byte chooses the piece sizes (1 to 16 bytes, cycling).
    let Some((&seed, input)) = data.split_first() else {
        return;
    };
    let whole = events(input, std::iter::once(input.len().max(1)));
    let sizes = (0..).map(move |i: usize| 1 + (seed as usize).wrapping_mul(i + 7) % 16);
    let split = events(input, sizes);
    assert_eq!(whole, split, "splitting the input changed the parse");
}
