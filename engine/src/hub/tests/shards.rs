//! A sharded hub keeps its own users and forwards inbound work for the others.

use super::*;
use crate::hub::shard_of;

/// The shard of a@localhost among two, as a harness for that shard.
fn shard_of_a() -> (Harness, usize, usize) {
    let (a, b) = (jid("a@localhost"), jid("b@localhost"));
    let (sa, sb) = (shard_of(&a, 2), shard_of(&b, 2));
    assert_ne!(sa, sb, "premise: a and b live on different shards of two");
    let h = Harness::with_config(HubConfig {
        shard: sa,
        shards: 2,
        ..HubConfig::default()
    });
    h.storage.add_user(&a);
    h.storage.add_user(&b);
    (h, sa, sb)
}

#[test]
fn a_message_to_a_user_of_another_shard_is_forwarded_untouched() {
    let (mut h, _, sb) = shard_of_a();
    h.login(1, "a@localhost/pc");
    h.send(1, message("b@localhost", "chat", "hi"));
    assert_eq!(h.forwarded.len(), 1);
    let (shard, work) = &h.forwarded[0];
    assert_eq!(*shard, sb);
    assert_eq!(work.user(), &jid("b@localhost"));
    assert_eq!(
        canon(work.stanza()),
        "<message from='a@localhost/pc' to='b@localhost' type='chat'><body>hi</body></message>"
    );
    // The owning shard never loaded b: b is not its user.
    assert!(!h
        .log
        .iter()
        .any(|r| matches!(r, StorageRequest::LoadUser { user } if user == &jid("b@localhost"))));
}

#[test]
fn forwarded_work_is_delivered_by_the_owning_shard() {
    let (mut h, _, _) = shard_of_a();
    h.login(1, "a@localhost/pc");
    // What b's shard would forward: b's message to a.
    let mut other = Harness::with_config(HubConfig {
        shard: shard_of(&jid("b@localhost"), 2),
        shards: 2,
        ..HubConfig::default()
    });
    other.storage.add_user(&jid("b@localhost"));
    other.login(2, "b@localhost/phone");
    other.send(2, message("a@localhost/pc", "chat", "hello"));
    let (_, work) = other.forwarded.pop().expect("forwarded to a's shard");
    h.input(HubInput::Forwarded(work));
    assert_eq!(
        h.take(1),
        vec![
            "<message from='b@localhost/phone' to='a@localhost/pc' type='chat'><body>hello</body></message>"
        ]
    );
}
