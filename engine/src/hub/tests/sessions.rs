//! Binding, replacement, unbinding, eviction, and ordering while storage answers
//! later.

use super::*;

#[test]
fn conflict_replaces_the_old_session_and_its_late_unbind_is_a_no_op() {
    let mut h = Harness::friends();
    // RFC 6120 §7.7.2.2: same full JID bound again; the new session wins.
    h.bind(3, "a@localhost/pc");
    assert_eq!(h.replaced, vec![1]);
    // The old session was available, so b learns it went away.
    assert_eq!(
        h.take(2),
        vec!["<presence from='a@localhost/pc' to='b@localhost' type='unavailable'/>"]
    );
    h.unbind(1);
    h.assert_quiet();
    // Stanzas from the old session are ignored, the new one works.
    h.send(1, message("b@localhost", "chat", "old"));
    h.assert_quiet();
    h.send(3, presence(None, None));
    assert_eq!(
        h.take(2),
        vec!["<presence from='a@localhost/pc' to='b@localhost'/>"]
    );
    h.send(2, message("a@localhost/pc", "chat", "hi"));
    assert_eq!(
        h.take(3),
        vec![
            "<presence from='a@localhost/pc' to='a@localhost'/>",
            "<presence from='b@localhost/phone' to='a@localhost/pc'/>",
            "<message from='b@localhost/phone' to='a@localhost/pc' type='chat'><body>hi</body></message>",
        ]
    );
}

#[test]
fn unbind_broadcasts_unavailable_to_contacts_and_own_resources() {
    let mut h = Harness::friends();
    h.login(3, "a@localhost/laptop");
    h.take(1);
    h.take(2);
    h.unbind(3);
    assert_eq!(
        h.take(2),
        vec!["<presence from='a@localhost/laptop' to='b@localhost' type='unavailable'/>"]
    );
    assert_eq!(
        h.take(1),
        vec!["<presence from='a@localhost/laptop' to='a@localhost' type='unavailable'/>"]
    );
    h.assert_quiet();
}

#[test]
fn unbind_of_a_session_that_never_sent_presence_is_silent() {
    let mut h = Harness::friends();
    h.bind(3, "a@localhost/quiet");
    h.unbind(3);
    h.assert_quiet();
}

#[test]
fn directed_presence_recipients_get_unavailable_at_logout() {
    let mut h = Harness::with_users(&["a@localhost", "c@localhost"]);
    h.login(1, "a@localhost/pc");
    h.login(3, "c@localhost/x");
    // RFC 6121 §4.6: c is not in a's roster.
    h.send(1, presence(Some("c@localhost/x"), None));
    assert_eq!(
        h.take(3),
        vec!["<presence from='a@localhost/pc' to='c@localhost/x'/>"]
    );
    h.unbind(1);
    assert_eq!(
        h.take(3),
        vec!["<presence from='a@localhost/pc' to='c@localhost/x' type='unavailable'/>"]
    );
    // Directed unavailable presence ends the tracking.
    h.login(2, "a@localhost/phone");
    h.send(2, presence(Some("c@localhost"), None));
    h.send(2, presence(Some("c@localhost"), Some("unavailable")));
    assert_eq!(h.take(3).len(), 2);
    h.unbind(2);
    h.assert_quiet();
}

#[test]
fn from_is_always_the_sessions_full_jid() {
    let mut h = Harness::friends();
    let mut forged = message("b@localhost", "chat", "trust me");
    forged.set_attr("from", "admin@localhost/console");
    h.send(1, forged);
    assert_eq!(
        h.take(2),
        vec!["<message from='a@localhost/pc' to='b@localhost' type='chat'><body>trust me</body></message>"]
    );
}

#[test]
fn idle_users_are_forgotten() {
    let mut h = Harness::friends();
    assert_eq!(h.users_in_memory(), 2);
    h.send(1, message("c@localhost", "chat", "nobody home"));
    h.take(1);
    h.unbind(1);
    h.unbind(2);
    assert_eq!(h.users_in_memory(), 0);
    // Coming back loads the roster again, with the same contacts.
    h.login(1, "a@localhost/pc");
    h.send(1, presence(Some("b@localhost"), Some("unsubscribe")));
    assert_eq!(
        h.storage.roster(&jid("a@localhost")).unwrap()[0].subscription,
        Subscription::From
    );
}

#[test]
fn stanzas_wait_behind_a_roster_load_in_order() {
    let mut h = Harness::with_users(&["a@localhost", "b@localhost"]);
    h.seed("a@localhost", "b@localhost", Subscription::Both);
    h.seed("b@localhost", "a@localhost", Subscription::Both);
    h.login(2, "b@localhost/phone");
    h.manual = true;
    h.bind(1, "a@localhost/pc");
    // Initial presence needs a's roster: LoadUser goes out and everything from a
    // waits, even what needs nothing.
    h.send(1, presence(None, None));
    h.send(1, message("b@localhost/phone", "chat", "after presence"));
    // b writes meanwhile; a's queue keeps the order of arrival.
    h.send(2, message("a@localhost/pc", "chat", "from b"));
    assert_eq!(h.requests.len(), 1);
    assert!(matches!(h.requests[0].1, StorageRequest::LoadUser { .. }));
    h.assert_quiet();
    h.manual = false;
    h.pump();
    assert_eq!(
        h.take(2),
        vec![
            "<presence from='a@localhost/pc' to='b@localhost'/>",
            "<message from='a@localhost/pc' to='b@localhost/phone' type='chat'><body>after presence</body></message>",
        ]
    );
    assert_eq!(
        h.take(1),
        vec![
            "<presence from='a@localhost/pc' to='a@localhost'/>",
            "<message from='b@localhost/phone' to='a@localhost/pc' type='chat'><body>from b</body></message>",
            "<presence from='b@localhost/phone' to='a@localhost/pc'/>",
        ]
    );
}

#[test]
fn a_message_that_arrived_before_the_bind_is_stored_offline() {
    let mut h = Harness::with_users(&["a@localhost", "b@localhost"]);
    h.login(1, "a@localhost/pc");
    h.manual = true;
    h.send(1, presence(Some("b@localhost"), Some("subscribe")));
    h.answer(); // a's PutRosterItem
    h.pump();
    // b's roster is loading; the message and the bind queue behind the request.
    h.send(1, message("b@localhost", "chat", "early"));
    h.bind(2, "b@localhost/phone");
    h.manual = false;
    h.pump();
    assert_eq!(h.storage.offline(&jid("b@localhost")).len(), 1);
    assert!(
        h.storage.roster(&jid("b@localhost")).unwrap()[0].pending_in,
        "the request is remembered"
    );
}

#[test]
fn a_failed_load_answers_waiting_requests_and_recovers() {
    let mut h = Harness::with_users(&["a@localhost"]);
    h.manual = true;
    h.bind(1, "a@localhost/pc");
    h.send(1, iq("get", "r1", None, Element::new("query", ns::ROSTER)));
    let (id, _) = h.requests.pop_front().unwrap();
    h.hub.handle(
        HubInput::Reply {
            id,
            reply: crate::storage::StorageReply::Failed("disk on fire".into()),
        },
        h.now,
    );
    h.manual = false;
    h.pump();
    let got = h.take(1);
    assert_eq!(got.len(), 1);
    assert!(got[0].contains("<internal-server-error"), "{got:?}");
    // The next roster request loads again.
    h.send(1, iq("get", "r2", None, Element::new("query", ns::ROSTER)));
    assert_eq!(
        h.take(1),
        vec!["<iq id='r2' to='a@localhost/pc' type='result'><query xmlns='jabber:iq:roster'/></iq>"]
    );
}

#[test]
fn offline_messages_survive_a_session_that_leaves_before_delivery() {
    let mut h = Harness::with_users(&["a@localhost", "b@localhost"]);
    h.login(1, "a@localhost/pc");
    h.send(1, message("b@localhost", "chat", "keep me"));
    h.manual = true;
    h.bind(2, "b@localhost/phone");
    h.send(2, presence(None, None));
    h.answer(); // LoadUser
    h.pump();
    h.unbind(2);
    while h.answer() {
        h.pump();
    }
    h.manual = false;
    h.pump();
    assert_eq!(h.storage.offline(&jid("b@localhost")).len(), 1);
    assert!(!h.take(2).iter().any(|s| s.starts_with("RAW")));
}
