//! Sharding the hub by bare JID.
//!
//! A hub shard owns the users whose bare JID hashes to it ([`shard_of`]): their
//! sessions, rosters and queues. Inputs from a session (bind, unbind, its stanzas) go
//! to the shard of the session's user; the runtime knows it from the bound JID. When
//! a shard routes a stanza to a user of another shard, it emits
//! [`HubAction::Forward`](super::HubAction::Forward) with a [`Forwarded`] item; the
//! runtime carries it, untouched, to that shard's
//! [`HubInput::Forwarded`](super::HubInput::Forwarded). Only inbound work crosses
//! shards: it is the part of RFC 6121 processing that happens at the recipient, so a
//! shard boundary is just like the boundary between two servers.
//!
//! The hash is FNV-1a over the bare JID's canonical text: stable across runs and
//! processes, so a recorded session shards the same way every time.

use crate::jid::Jid;
use crate::xml::Element;

/// The shard that owns `user` (a bare JID) among `count` shards (`count` ≥ 1).
///
/// ```
/// use meerkat_engine::hub::shard_of;
/// use meerkat_engine::jid::Jid;
///
/// let alice = Jid::parse("alice@localhost").unwrap();
/// assert!(shard_of(&alice, 4) < 4);
/// assert_eq!(shard_of(&alice, 4), shard_of(&alice, 4));
/// assert_eq!(shard_of(&alice, 1), 0);
/// ```
pub fn shard_of(user: &Jid, count: usize) -> usize {
    if count <= 1 {
        return 0;
    }
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(PRIME);
        }
    };
    if let Some(local) = user.local() {
        eat(local.as_bytes());
        eat(b"@");
    }
    eat(user.domain().as_bytes());
    (hash % count as u64) as usize
}

/// Work for a user of another shard: a stanza addressed to them, whose outbound
/// processing is done. Opaque to runtimes, which only carry it between shards.
#[derive(Debug, Clone, PartialEq)]
pub struct Forwarded {
    pub(super) user: Jid,
    pub(super) to: Option<Jid>,
    pub(super) stanza: Element,
}

impl Forwarded {
    /// The bare JID of the user it is for.
    pub fn user(&self) -> &Jid {
        &self.user
    }

    /// The stanza.
    pub fn stanza(&self) -> &Element {
        &self.stanza
    }
}
