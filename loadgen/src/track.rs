//! Accounting of the stanzas the tool sends to itself through the server (chat messages and
//! presence updates): the tag they carry, and per receiver, which (sender, sequence) pairs
//! arrived, so that each is counted once and repeats, reordering and strays are told apart.

use std::fmt::Write as _;

/// What a tagged stanza carries, in its `<body>` (chat) or `<status>` (presence):
/// `lg RUN(hex) SENDER SEQ SENT_US`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag {
    /// Random number of the run that sent it.
    pub run: u32,
    /// Index of the sending session.
    pub sender: usize,
    /// The sender's sequence number, from 0.
    pub seq: u64,
    /// Send time in µs since the run's epoch.
    pub sent_us: u64,
}

impl Tag {
    /// Appends the tag's text form.
    pub fn write(&self, out: &mut String) {
        let _ = write!(
            out,
            "lg {:x} {} {} {}",
            self.run, self.sender, self.seq, self.sent_us
        );
    }

    pub fn parse(text: &str) -> Option<Tag> {
        let mut it = text.trim().split(' ');
        if it.next()? != "lg" {
            return None;
        }
        let t = Tag {
            run: u32::from_str_radix(it.next()?, 16).ok()?,
            sender: it.next()?.parse().ok()?,
            seq: it.next()?.parse().ok()?,
            sent_us: it.next()?.parse().ok()?,
        };
        it.next().is_none().then_some(t)
    }
}

/// How one received tagged stanza counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receipt {
    /// First receipt of this (sender, seq); `reordered` when a higher seq from the same
    /// sender came before it.
    New { reordered: bool },
    /// Seen before.
    Duplicate,
    /// Another run's tag (offline storage or a late delivery from an earlier run).
    Stale,
    /// This run's tag from a session that is not one of the expected senders.
    Unexpected,
    /// This run's tag from the receiving session itself (a presence broadcast also goes to
    /// the sender's own resources, RFC 6121 §4.4.2).
    Own,
}

/// Upper bound on sequence numbers tracked for duplicates (a bitset of 2^24 bits = 2 MiB
/// per sender at most; runs stay far below).
const MAX_TRACKED_SEQ: u64 = 1 << 24;

#[derive(Debug, Default)]
struct Seen {
    bits: Vec<u64>,
    highest: Option<u64>,
}

/// The receiving side of one session: which senders it expects and what came from each.
#[derive(Debug, Default)]
pub struct Receiver {
    /// Index of this session.
    own: usize,
    /// Expected senders, sorted; `seen[i]` belongs to `senders[i]`.
    senders: Vec<usize>,
    seen: Vec<Seen>,
}

impl Receiver {
    /// A receiver for session `own` that expects tagged stanzas from `senders`.
    pub fn new(own: usize, mut senders: Vec<usize>) -> Self {
        senders.sort_unstable();
        senders.dedup();
        let seen = senders.iter().map(|_| Seen::default()).collect();
        Receiver { own, senders, seen }
    }

    /// The expected senders, sorted.
    pub fn senders(&self) -> &[usize] {
        &self.senders
    }

    /// Classifies one tagged stanza of run `run` and remembers it.
    pub fn accept(&mut self, run: u32, tag: &Tag) -> Receipt {
        if tag.run != run {
            return Receipt::Stale;
        }
        let Ok(i) = self.senders.binary_search(&tag.sender) else {
            return if tag.sender == self.own {
                Receipt::Own
            } else {
                Receipt::Unexpected
            };
        };
        let s = &mut self.seen[i];
        if tag.seq < MAX_TRACKED_SEQ {
            let (w, b) = ((tag.seq / 64) as usize, tag.seq % 64);
            if s.bits.len() <= w {
                s.bits.resize(w + 1, 0);
            }
            if s.bits[w] & (1 << b) != 0 {
                return Receipt::Duplicate;
            }
            s.bits[w] |= 1 << b;
        }
        let reordered = s.highest.is_some_and(|h| tag.seq < h);
        s.highest = Some(s.highest.map_or(tag.seq, |h| h.max(tag.seq)));
        Receipt::New { reordered }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(run: u32, sender: usize, seq: u64) -> Tag {
        Tag {
            run,
            sender,
            seq,
            sent_us: 5,
        }
    }

    #[test]
    fn tag_round_trip_and_rejects() {
        let t = Tag {
            run: 0xabc,
            sender: 7,
            seq: 42,
            sent_us: 123456,
        };
        let mut s = String::new();
        t.write(&mut s);
        assert_eq!(s, "lg abc 7 42 123456");
        assert_eq!(Tag::parse(&s), Some(t));
        assert_eq!(
            Tag::parse(&format!(" {s}\n")),
            Some(t),
            "whitespace around is fine"
        );
        assert_eq!(Tag::parse("hello"), None);
        assert_eq!(Tag::parse("lg zz 1 2 3"), None);
        assert_eq!(Tag::parse("lg abc 1 2"), None, "too short");
        assert_eq!(Tag::parse("lg abc 1 2 3 4"), None, "too long");
        assert_eq!(Tag::parse("lg abc -1 2 3"), None);
    }

    #[test]
    fn receiver_counts_each_sender_and_sequence_once() {
        let mut r = Receiver::new(5, vec![6, 4, 3, 6]);
        let new = Receipt::New { reordered: false };
        assert_eq!(r.accept(1, &tag(1, 4, 0)), new);
        assert_eq!(r.accept(1, &tag(1, 6, 0)), new, "senders are tracked apart");
        assert_eq!(r.accept(1, &tag(1, 4, 0)), Receipt::Duplicate);
        assert_eq!(r.accept(1, &tag(1, 4, 2)), new);
        assert_eq!(
            r.accept(1, &tag(1, 4, 1)),
            Receipt::New { reordered: true },
            "lower than one already seen"
        );
        assert_eq!(r.accept(1, &tag(1, 4, 1)), Receipt::Duplicate);
        assert_eq!(r.accept(1, &tag(1, 3, 200)), new, "bitset grows");
        assert_eq!(r.accept(1, &tag(1, 3, 200)), Receipt::Duplicate);
        assert_eq!(
            r.accept(2, &tag(2, 4, 9)),
            new,
            "run tag checked against the given run"
        );
        assert_eq!(r.accept(1, &tag(2, 4, 0)), Receipt::Stale);
        assert_eq!(r.accept(1, &tag(1, 5, 0)), Receipt::Own);
        assert_eq!(r.accept(1, &tag(1, 7, 0)), Receipt::Unexpected);
        // Beyond the tracked range: counted, not checked for repeats.
        assert_eq!(r.accept(1, &tag(1, 6, MAX_TRACKED_SEQ)), new);
        assert_eq!(r.accept(1, &tag(1, 6, MAX_TRACKED_SEQ)), new);
    }
}
