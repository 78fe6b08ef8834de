//! RFC 6121 §3: subscription handshakes between two local users, with the roster
//! pushes and presence each session sees.

use super::*;

fn push(id: &str, to: &str, item: &str) -> String {
    format!("<iq id='{id}' to='{to}' type='set'><query xmlns='jabber:iq:roster'>{item}</query></iq>")
}

fn stored(h: &Harness, owner: &str, contact: &str) -> Option<RosterItem> {
    h.storage
        .roster(&jid(owner))
        .unwrap()
        .into_iter()
        .find(|i| i.jid == jid(contact))
}

#[test]
fn full_subscription_handshake_both_ways() {
    let mut h = Harness::with_users(&["a@localhost", "b@localhost"]);
    h.login(1, "a@localhost/pc");
    h.login(2, "b@localhost/phone");

    // §3.1.1–3.1.3: a asks; a's roster gets ask='subscribe', b sees the request
    // (and b's roster shows nothing yet).
    h.send(1, presence(Some("b@localhost"), Some("subscribe")));
    assert_eq!(
        h.take(1),
        vec![push(
            "push1",
            "a@localhost/pc",
            "<item ask='subscribe' jid='b@localhost' subscription='none'/>"
        )]
    );
    assert_eq!(
        h.take(2),
        vec!["<presence from='a@localhost' to='b@localhost' type='subscribe'/>"]
    );

    // §3.1.5–3.1.6: b approves; b's roster shows 'from', a's shows 'to', a gets the
    // approval and then b's current presence.
    h.send(2, presence(Some("a@localhost"), Some("subscribed")));
    assert_eq!(
        h.take(2),
        vec![push(
            "push2",
            "b@localhost/phone",
            "<item jid='a@localhost' subscription='from'/>"
        )]
    );
    assert_eq!(
        h.take(1),
        vec![
            push(
                "push3",
                "a@localhost/pc",
                "<item jid='b@localhost' subscription='to'/>"
            ),
            "<presence from='b@localhost' to='a@localhost' type='subscribed'/>".to_string(),
            "<presence from='b@localhost/phone' to='a@localhost'/>".to_string(),
        ]
    );

    // The other way round.
    h.send(2, presence(Some("a@localhost"), Some("subscribe")));
    assert_eq!(
        h.take(2),
        vec![push(
            "push4",
            "b@localhost/phone",
            "<item ask='subscribe' jid='a@localhost' subscription='from'/>"
        )]
    );
    assert_eq!(
        h.take(1),
        vec!["<presence from='b@localhost' to='a@localhost' type='subscribe'/>"]
    );
    h.send(1, presence(Some("b@localhost"), Some("subscribed")));
    assert_eq!(
        h.take(1),
        vec![push(
            "push5",
            "a@localhost/pc",
            "<item jid='b@localhost' subscription='both'/>"
        )]
    );
    assert_eq!(
        h.take(2),
        vec![
            push(
                "push6",
                "b@localhost/phone",
                "<item jid='a@localhost' subscription='both'/>"
            ),
            "<presence from='a@localhost' to='b@localhost' type='subscribed'/>".to_string(),
            "<presence from='a@localhost/pc' to='b@localhost'/>".to_string(),
        ]
    );
    h.assert_quiet();

    for (owner, contact) in [("a@localhost", "b@localhost"), ("b@localhost", "a@localhost")] {
        let item = stored(&h, owner, contact).unwrap();
        assert_eq!(item.subscription, Subscription::Both);
        assert!(!item.ask_out && !item.pending_in);
    }

    // Presence now flows both ways.
    h.send(1, presence(None, Some("unavailable")));
    assert_eq!(
        h.take(2),
        vec!["<presence from='a@localhost/pc' to='b@localhost' type='unavailable'/>"]
    );
}

#[test]
fn unsubscribe_sends_unavailable_from_the_contact() {
    let mut h = Harness::friends();

    // §3.3: a no longer wants b's presence.
    h.send(1, presence(Some("b@localhost"), Some("unsubscribe")));
    assert_eq!(
        h.take(2),
        vec![
            push(
                "push2",
                "b@localhost/phone",
                "<item jid='a@localhost' subscription='to'/>"
            ),
            "<presence from='a@localhost' to='b@localhost' type='unsubscribe'/>".to_string(),
        ]
    );
    assert_eq!(
        h.take(1),
        vec![
            push(
                "push1",
                "a@localhost/pc",
                "<item jid='b@localhost' subscription='from'/>"
            ),
            // §3.3.3: b's server tells a that b is gone for a.
            "<presence from='b@localhost/phone' to='a@localhost' type='unavailable'/>".to_string(),
        ]
    );
    // b still gets a's presence, a no longer gets b's.
    h.send(2, presence(None, Some("unavailable")));
    assert!(h.take(1).is_empty());
}

#[test]
fn unsubscribed_cancels_and_sends_unavailable() {
    let mut h = Harness::friends();

    // §3.2: b cancels a's subscription to b.
    h.send(2, presence(Some("a@localhost"), Some("unsubscribed")));
    assert_eq!(
        h.take(2),
        vec![push(
            "push1",
            "b@localhost/phone",
            "<item jid='a@localhost' subscription='to'/>"
        )]
    );
    assert_eq!(
        h.take(1),
        vec![
            push(
                "push2",
                "a@localhost/pc",
                "<item jid='b@localhost' subscription='from'/>"
            ),
            "<presence from='b@localhost' to='a@localhost' type='unsubscribed'/>".to_string(),
            "<presence from='b@localhost/phone' to='a@localhost' type='unavailable'/>".to_string(),
        ]
    );
    assert_eq!(
        stored(&h, "a@localhost", "b@localhost").unwrap().subscription,
        Subscription::From
    );
}

#[test]
fn denied_request_leaves_no_trace_in_the_contacts_roster() {
    let mut h = Harness::with_users(&["a@localhost", "b@localhost"]);
    h.login(1, "a@localhost/pc");
    h.login(2, "b@localhost/phone");
    h.send(1, presence(Some("b@localhost"), Some("subscribe")));
    h.take(1);
    h.take(2);
    // Pending In is stored, but invisible.
    assert!(stored(&h, "b@localhost", "a@localhost").unwrap().pending_in);
    h.send(2, iq("get", "r1", None, Element::new("query", ns::ROSTER)));
    assert_eq!(
        h.take(2),
        vec!["<iq id='r1' to='b@localhost/phone' type='result'><query xmlns='jabber:iq:roster'/></iq>"]
    );

    // §3.2.1: denial; a's pending request is cleared, b's record forgotten.
    h.send(2, presence(Some("a@localhost"), Some("unsubscribed")));
    assert!(h.take(2).is_empty());
    assert_eq!(
        h.take(1),
        vec![
            push(
                "push2",
                "a@localhost/pc",
                "<item jid='b@localhost' subscription='none'/>"
            ),
            "<presence from='b@localhost' to='a@localhost' type='unsubscribed'/>".to_string(),
        ]
    );
    assert_eq!(stored(&h, "b@localhost", "a@localhost"), None);
}

#[test]
fn pending_request_is_redelivered_at_login() {
    let mut h = Harness::with_users(&["a@localhost", "b@localhost"]);
    h.login(1, "a@localhost/pc");
    // b is offline: the request is stored (§3.1.3).
    h.send(1, presence(Some("b@localhost"), Some("subscribe")));
    h.take(1);
    h.bind(2, "b@localhost/phone");
    h.send(2, presence(None, None));
    assert_eq!(
        h.take(2),
        vec![
            "<presence from='a@localhost' to='b@localhost' type='subscribe'/>",
            "<presence from='b@localhost/phone' to='b@localhost'/>",
        ]
    );
    // ... and again at the next login while unanswered.
    h.unbind(2);
    h.bind(3, "b@localhost/phone");
    h.send(3, presence(None, None));
    assert_eq!(
        h.take(3)[0],
        "<presence from='a@localhost' to='b@localhost' type='subscribe'/>"
    );
}

#[test]
fn subscribe_to_an_unknown_user_is_refused() {
    let mut h = Harness::with_users(&["a@localhost"]);
    h.login(1, "a@localhost/pc");
    h.send(1, presence(Some("nobody@localhost"), Some("subscribe")));
    // RFC 6121 §8.5.1: the answer is unsubscribed, which clears the pending request.
    assert_eq!(
        h.take(1),
        vec![
            push(
                "push1",
                "a@localhost/pc",
                "<item ask='subscribe' jid='nobody@localhost' subscription='none'/>"
            ),
            push(
                "push2",
                "a@localhost/pc",
                "<item jid='nobody@localhost' subscription='none'/>"
            ),
            "<presence from='nobody@localhost' to='a@localhost' type='unsubscribed'/>".to_string(),
        ]
    );
}

#[test]
fn pre_approval_answers_the_request_automatically() {
    let mut h = Harness::with_users(&["a@localhost", "b@localhost"]);
    h.login(1, "a@localhost/pc");
    h.login(2, "b@localhost/phone");
    // RFC 6121 §3.4: b pre-approves a; nothing is routed.
    h.send(2, presence(Some("a@localhost"), Some("subscribed")));
    assert_eq!(
        h.take(2),
        vec![push(
            "push1",
            "b@localhost/phone",
            "<item approved='true' jid='a@localhost' subscription='none'/>"
        )]
    );
    assert!(h.take(1).is_empty());
    // a's request is approved by b's server without asking b.
    h.send(1, presence(Some("b@localhost"), Some("subscribe")));
    assert_eq!(
        h.take(2),
        vec![push(
            "push3",
            "b@localhost/phone",
            "<item jid='a@localhost' subscription='from'/>"
        )]
    );
    assert_eq!(
        h.take(1),
        vec![
            push(
                "push2",
                "a@localhost/pc",
                "<item ask='subscribe' jid='b@localhost' subscription='none'/>"
            ),
            push(
                "push4",
                "a@localhost/pc",
                "<item jid='b@localhost' subscription='to'/>"
            ),
            "<presence from='b@localhost' to='a@localhost' type='subscribed'/>".to_string(),
            "<presence from='b@localhost/phone' to='a@localhost'/>".to_string(),
        ]
    );
}

#[test]
fn subscription_stanzas_to_a_full_jid_use_bare_jids() {
    let mut h = Harness::with_users(&["a@localhost", "b@localhost"]);
    h.login(1, "a@localhost/pc");
    h.login(2, "b@localhost/phone");
    h.send(1, presence(Some("b@localhost/phone"), Some("subscribe")));
    assert_eq!(
        h.take(2),
        vec!["<presence from='a@localhost' to='b@localhost' type='subscribe'/>"]
    );
}

fn roster_get(h: &mut Harness, session: SessionId, id: &str) -> Vec<String> {
    h.send(session, iq("get", id, None, Element::new("query", ns::ROSTER)));
    h.take(session)
}

/// A contact added with neither handle nor groups looks like a stored request
/// alone; their request must not take them out of the roster (RFC 6121 §3.1.3:
/// Pending In is no change to the item, and §2.1.3: a roster get returns it).
#[test]
fn a_request_from_a_contact_added_without_name_or_groups_keeps_the_item() {
    let mut h = Harness::with_users(&["a@localhost", "b@localhost"]);
    h.login(1, "a@localhost/pc");
    h.login(2, "b@localhost/phone");
    let bare = "<item jid='b@localhost' subscription='none'/>";
    h.send(1, roster_set("add", roster_item("b@localhost")));
    assert_eq!(
        h.take(1),
        vec![
            push("push1", "a@localhost/pc", bare),
            "<iq id='add' to='a@localhost/pc' type='result'/>".to_string(),
        ]
    );

    h.send(2, presence(Some("a@localhost"), Some("subscribe")));
    h.take(2);
    // The request reaches a, and no push says anything changed in a's roster.
    assert_eq!(
        h.take(1),
        vec!["<presence from='b@localhost' to='a@localhost' type='subscribe'/>"]
    );
    let listed = format!(
        "<iq id='g1' to='a@localhost/pc' type='result'><query xmlns='jabber:iq:roster'>{bare}</query></iq>"
    );
    assert_eq!(roster_get(&mut h, 1, "g1"), vec![listed.clone()]);
    let item = stored(&h, "a@localhost", "b@localhost").unwrap();
    assert!(item.in_roster && item.pending_in);

    // A new session sees b in the roster and gets the request again.
    h.bind(3, "a@localhost/phone");
    assert_eq!(
        roster_get(&mut h, 3, "g1"),
        vec![listed.replace("a@localhost/pc", "a@localhost/phone")]
    );
    h.send(3, presence(None, None));
    assert!(h
        .take(3)
        .contains(&"<presence from='b@localhost' to='a@localhost' type='subscribe'/>".to_string()));
    h.take(1);

    // §3.2.1: denying the request leaves b in a's roster.
    h.send(1, presence(Some("b@localhost"), Some("unsubscribed")));
    assert!(h.take(1).is_empty());
    assert_eq!(roster_get(&mut h, 1, "g1"), vec![listed]);
    let item = stored(&h, "a@localhost", "b@localhost").unwrap();
    assert!(item.in_roster && !item.pending_in);
}

/// RFC 6121 §2.5.3: a contact whose request is all a roster remembers is not in
/// the roster, so removing it is `item-not-found`, and the request still waits.
#[test]
fn removing_a_contact_known_only_by_their_request_is_item_not_found() {
    let mut h = Harness::with_users(&["a@localhost", "b@localhost"]);
    h.login(1, "a@localhost/pc");
    h.login(2, "b@localhost/phone");
    h.send(2, presence(Some("a@localhost"), Some("subscribe")));
    h.take(1);
    h.take(2);
    h.send(
        1,
        roster_set(
            "rm",
            roster_item("b@localhost").with_attr("subscription", "remove"),
        ),
    );
    let got = h.take(1);
    assert_eq!(got.len(), 1);
    assert!(got[0].contains("<item-not-found "), "{got:?}");
    h.assert_quiet();
    let item = stored(&h, "a@localhost", "b@localhost").unwrap();
    assert!(!item.in_roster && item.pending_in);

    // Approving it adds b to the roster, announced by a push (§3.1.5).
    h.send(1, presence(Some("b@localhost"), Some("subscribed")));
    assert_eq!(
        h.take(1),
        vec![push(
            "push2",
            "a@localhost/pc",
            "<item jid='b@localhost' subscription='from'/>"
        )]
    );
    assert!(stored(&h, "a@localhost", "b@localhost").unwrap().in_roster);
}
