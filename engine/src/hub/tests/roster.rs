//! RFC 6121 §2: roster get, set, remove, pushes and errors.

use super::*;

fn query(items: &str) -> String {
    if items.is_empty() {
        "<query xmlns='jabber:iq:roster'/>".into()
    } else {
        format!("<query xmlns='jabber:iq:roster'>{items}</query>")
    }
}

fn push(id: &str, to: &str, item: &str) -> String {
    format!("<iq id='{id}' to='{to}' type='set'>{}</iq>", query(item))
}

fn result(id: &str, to: &str) -> String {
    format!("<iq id='{id}' to='{to}' type='result'/>")
}

#[test]
fn roster_set_pushes_to_interested_resources_and_get_returns_it() {
    let mut h = Harness::with_users(&["a@localhost"]);
    h.login(1, "a@localhost/pc");
    // Session 2 never asked for the roster: no pushes for it (§2.1.6).
    h.bind(2, "a@localhost/quiet");
    h.send(
        1,
        roster_set(
            "s1",
            roster_item("b@localhost")
                .with_attr("name", "Bob")
                .with_child(Element::new("group", ns::ROSTER).with_text("Friends")),
        ),
    );
    let item = "<item jid='b@localhost' name='Bob' subscription='none'><group>Friends</group></item>";
    assert_eq!(
        h.take(1),
        vec![
            push("push1", "a@localhost/pc", item),
            result("s1", "a@localhost/pc")
        ]
    );
    h.assert_quiet();

    // §2.1.3, also addressed to the own bare JID.
    h.send(
        2,
        iq(
            "get",
            "g1",
            Some("a@localhost"),
            Element::new("query", ns::ROSTER),
        ),
    );
    assert_eq!(
        h.take(2),
        vec![format!(
            "<iq from='a@localhost' id='g1' to='a@localhost/quiet' type='result'>{}</iq>",
            query(item)
        )]
    );
    // Now session 2 is interested too; an update keeps the subscription state.
    h.send(1, roster_set("s2", roster_item("b@localhost")));
    let bare = "<item jid='b@localhost' subscription='none'/>";
    assert_eq!(h.take(2), vec![push("push2", "a@localhost/quiet", bare)]);
    assert_eq!(
        h.take(1),
        vec![
            push("push2", "a@localhost/pc", bare),
            result("s2", "a@localhost/pc")
        ]
    );
}

#[test]
fn roster_set_keeps_the_subscription_state() {
    let mut h = Harness::friends();
    h.send(
        1,
        roster_set(
            "s",
            roster_item("b@localhost")
                .with_attr("name", "B")
                .with_attr("subscription", "none"),
        ),
    );
    assert_eq!(
        h.take(1),
        vec![
            push(
                "push1",
                "a@localhost/pc",
                "<item jid='b@localhost' name='B' subscription='both'/>"
            ),
            result("s", "a@localhost/pc"),
        ]
    );
    h.assert_quiet();
}

#[test]
fn roster_remove_cancels_subscriptions_both_ways() {
    let mut h = Harness::friends();
    h.send(
        1,
        roster_set(
            "rm",
            roster_item("b@localhost").with_attr("subscription", "remove"),
        ),
    );
    // §2.5.2: the item is gone for a ...
    assert_eq!(
        h.take(1),
        vec![
            push(
                "push1",
                "a@localhost/pc",
                "<item jid='b@localhost' subscription='remove'/>"
            ),
            result("rm", "a@localhost/pc"),
            // ... and b, no longer subscribed to by a, says goodbye (§3.3.3).
            "<presence from='b@localhost/phone' to='a@localhost' type='unavailable'/>".into(),
        ]
    );
    // b sees the unsubscribe, then the unsubscribed, then a going away for b.
    assert_eq!(
        h.take(2),
        vec![
            push(
                "push2",
                "b@localhost/phone",
                "<item jid='a@localhost' subscription='to'/>"
            ),
            "<presence from='a@localhost' to='b@localhost' type='unsubscribe'/>".into(),
            push(
                "push3",
                "b@localhost/phone",
                "<item jid='a@localhost' subscription='none'/>"
            ),
            "<presence from='a@localhost' to='b@localhost' type='unsubscribed'/>".into(),
            "<presence from='a@localhost/pc' to='b@localhost' type='unavailable'/>".into(),
        ]
    );
    assert_eq!(h.storage.roster(&jid("a@localhost")), Some(vec![]));
    let b = h.storage.roster(&jid("b@localhost")).unwrap();
    assert_eq!(b[0].subscription, Subscription::None);
    h.assert_quiet();
}

#[test]
fn roster_remove_of_a_missing_item_is_item_not_found() {
    let mut h = Harness::with_users(&["a@localhost"]);
    h.login(1, "a@localhost/pc");
    h.send(
        1,
        roster_set(
            "rm",
            roster_item("x@localhost").with_attr("subscription", "remove"),
        ),
    );
    assert_eq!(
        h.take(1),
        vec![
            "<iq id='rm' to='a@localhost/pc' type='error'><query xmlns='jabber:iq:roster'>\
             <item jid='x@localhost' subscription='remove'/></query><error type='cancel'>\
             <item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
        ]
    );
}

#[test]
fn roster_set_validation_errors() {
    let mut h = Harness::with_users(&["a@localhost"]);
    h.login(1, "a@localhost/pc");
    let cases = [
        (
            iq(
                "set",
                "two",
                None,
                Element::new("query", ns::ROSTER)
                    .with_child(roster_item("b@localhost"))
                    .with_child(roster_item("c@localhost")),
            ),
            "bad-request",
        ),
        (
            roster_set(
                "empty-group",
                roster_item("b@localhost").with_child(Element::new("group", ns::ROSTER)),
            ),
            "not-acceptable",
        ),
        (roster_set("full", roster_item("b@localhost/res")), "bad-request"),
    ];
    for (stanza, condition) in cases {
        h.send(1, stanza);
        let got = h.take(1);
        assert_eq!(got.len(), 1);
        assert!(got[0].contains(&format!("<{condition} ")), "{got:?}");
        assert!(got[0].contains("type='error'"));
    }
    assert_eq!(h.storage.roster(&jid("a@localhost")), Some(vec![]));
}

#[test]
fn another_users_roster_is_not_available() {
    let mut h = Harness::friends();
    h.send(
        1,
        iq(
            "get",
            "peek",
            Some("b@localhost"),
            Element::new("query", ns::ROSTER),
        ),
    );
    let got = h.take(1);
    assert_eq!(got.len(), 1);
    assert!(got[0].contains("<service-unavailable "), "{got:?}");
    h.assert_quiet();
}
