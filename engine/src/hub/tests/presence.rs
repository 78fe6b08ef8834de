//! RFC 6121 §4: initial presence, probes, updates, unavailable presence.

use super::*;

#[test]
fn initial_presence_is_broadcast_and_probes_are_answered() {
    let mut h = Harness::with_users(&["a@localhost", "b@localhost", "c@localhost"]);
    h.seed("a@localhost", "b@localhost", Subscription::Both);
    h.seed("b@localhost", "a@localhost", Subscription::Both);
    // a only receives c's presence; c does not receive a's.
    h.seed("a@localhost", "c@localhost", Subscription::To);
    h.seed("c@localhost", "a@localhost", Subscription::From);
    h.bind(2, "b@localhost/phone");
    h.send(
        2,
        presence(None, None).with_child(Element::new("show", ns::CLIENT).with_text("away")),
    );
    h.login(3, "c@localhost/desk");
    h.take(2);

    h.bind(1, "a@localhost/pc");
    h.send(1, presence(None, None));
    // §4.2.2: to a's own resources, then the answers to a's probes (§4.3.2), each
    // addressed to the new resource.
    assert_eq!(
        h.take(1),
        vec![
            "<presence from='a@localhost/pc' to='a@localhost'/>",
            "<presence from='b@localhost/phone' to='a@localhost/pc'><show>away</show></presence>",
            "<presence from='c@localhost/desk' to='a@localhost/pc'/>",
        ]
    );
    // Only b (subscription from/both on a's side) gets a's presence.
    assert_eq!(
        h.take(2),
        vec!["<presence from='a@localhost/pc' to='b@localhost'/>"]
    );
    h.assert_quiet();
}

#[test]
fn a_new_resource_learns_about_the_users_other_resources() {
    let mut h = Harness::with_users(&["a@localhost"]);
    h.login(1, "a@localhost/one");
    h.bind(2, "a@localhost/two");
    h.send(2, presence(None, None));
    assert_eq!(
        h.take(2),
        vec![
            "<presence from='a@localhost/one' to='a@localhost/two'/>",
            "<presence from='a@localhost/two' to='a@localhost'/>",
        ]
    );
    assert_eq!(
        h.take(1),
        vec!["<presence from='a@localhost/two' to='a@localhost'/>"]
    );
}

#[test]
fn presence_updates_go_to_the_same_set_without_new_probes() {
    let mut h = Harness::friends();
    let update = presence(None, None).with_child(Element::new("status", ns::CLIENT).with_text("lunch"));
    h.send(1, update);
    assert_eq!(
        h.take(2),
        vec!["<presence from='a@localhost/pc' to='b@localhost'><status>lunch</status></presence>"]
    );
    assert_eq!(
        h.take(1),
        vec!["<presence from='a@localhost/pc' to='a@localhost'><status>lunch</status></presence>"]
    );
    h.assert_quiet();
}

#[test]
fn unavailable_presence_goes_to_contacts_and_other_resources() {
    let mut h = Harness::friends();
    h.login(3, "a@localhost/phone");
    h.take(1);
    h.take(2);
    h.send(
        1,
        presence(None, Some("unavailable")).with_child(Element::new("status", ns::CLIENT).with_text("bye")),
    );
    let expected = |to: &str| {
        format!(
            "<presence from='a@localhost/pc' to='{to}' type='unavailable'><status>bye</status></presence>"
        )
    };
    assert_eq!(h.take(2), vec![expected("b@localhost")]);
    assert_eq!(h.take(3), vec![expected("a@localhost")]);
    // The resource that went unavailable is still bound but gets no more broadcasts.
    h.send(2, presence(None, None));
    assert!(h.take(1).is_empty());
    assert_eq!(h.take(3).len(), 1);
}

#[test]
fn probe_from_a_non_subscriber_is_answered_with_unsubscribed() {
    let mut h = Harness::with_users(&["a@localhost", "b@localhost"]);
    // a believes it is subscribed to b; b's roster disagrees.
    h.seed("a@localhost", "b@localhost", Subscription::To);
    h.login(2, "b@localhost/phone");
    h.login(1, "a@localhost/pc");
    // The login consumed the correction; check its effect.
    let a_roster = h.storage.roster(&jid("a@localhost")).unwrap();
    assert_eq!(a_roster[0].subscription, Subscription::None);
    h.assert_quiet();
}

#[test]
fn probe_correction_is_pushed_and_delivered() {
    let mut h = Harness::with_users(&["a@localhost", "b@localhost"]);
    h.seed("a@localhost", "b@localhost", Subscription::To);
    h.bind(1, "a@localhost/pc");
    h.send(1, iq("get", "r", None, Element::new("query", ns::ROSTER)));
    h.take(1);
    h.send(1, presence(None, None));
    assert_eq!(
        h.take(1),
        vec![
            "<presence from='a@localhost/pc' to='a@localhost'/>",
            "<iq id='push1' to='a@localhost/pc' type='set'><query xmlns='jabber:iq:roster'>\
             <item jid='b@localhost' subscription='none'/></query></iq>",
            "<presence from='b@localhost' to='a@localhost' type='unsubscribed'/>",
        ]
    );
}

#[test]
fn presence_with_an_invalid_type_is_bad_request() {
    let mut h = Harness::with_users(&["a@localhost"]);
    h.login(1, "a@localhost/pc");
    h.send(1, presence(Some("a@localhost"), Some("invisible")));
    let got = h.take(1);
    assert_eq!(got.len(), 1);
    assert!(got[0].contains("<bad-request"), "{got:?}");
}

#[test]
fn presence_error_from_a_client_is_routed_as_is() {
    let mut h = Harness::friends();
    h.send(2, presence(Some("a@localhost/pc"), Some("error")));
    assert_eq!(
        h.take(1),
        vec!["<presence from='b@localhost/phone' to='a@localhost/pc' type='error'/>"]
    );
}
