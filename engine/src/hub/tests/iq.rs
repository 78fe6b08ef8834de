//! Iqs answered by the server: disco (XEP-0030), ping (XEP-0199), version
//! (XEP-0092); errors (RFC 6120 §8.2.3, §8.3).

use super::*;

const SU: &str =
    "<error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>";

fn one() -> Harness {
    let mut h = Harness::with_users(&["a@localhost"]);
    h.login(1, "a@localhost/pc");
    h
}

#[test]
fn disco_info_on_the_domain() {
    let mut h = one();
    h.send(
        1,
        iq(
            "get",
            "d1",
            Some("localhost"),
            Element::new("query", ns::DISCO_INFO),
        ),
    );
    assert_eq!(
        h.take(1),
        vec![
            "<iq from='localhost' id='d1' to='a@localhost/pc' type='result'>\
             <query xmlns='http://jabber.org/protocol/disco#info'>\
             <identity category='server' type='im'/>\
             <feature var='http://jabber.org/protocol/disco#info'/>\
             <feature var='http://jabber.org/protocol/disco#items'/>\
             <feature var='urn:xmpp:ping'/>\
             <feature var='jabber:iq:version'/>\
             <feature var='msgoffline'/>\
             <feature var='urn:xmpp:features:pre-approval'/>\
             </query></iq>"
        ]
    );
}

#[test]
fn disco_items_on_the_domain_is_empty() {
    let mut h = one();
    h.send(
        1,
        iq(
            "get",
            "d2",
            Some("localhost"),
            Element::new("query", ns::DISCO_ITEMS),
        ),
    );
    assert_eq!(
        h.take(1),
        vec![
            "<iq from='localhost' id='d2' to='a@localhost/pc' type='result'>\
             <query xmlns='http://jabber.org/protocol/disco#items'/></iq>"
        ]
    );
}

#[test]
fn disco_info_on_an_account_needs_a_subscription() {
    let mut h = Harness::friends();
    h.storage.add_user(&jid("c@localhost"));
    h.login(3, "c@localhost/x");
    let info = || Element::new("query", ns::DISCO_INFO);
    let account = "<query xmlns='http://jabber.org/protocol/disco#info'>\
                   <identity category='account' type='registered'/>\
                   <feature var='http://jabber.org/protocol/disco#info'/></query>";
    // A subscriber (b has 'from' on a's side) ...
    h.send(2, iq("get", "i1", Some("a@localhost"), info()));
    assert_eq!(
        h.take(2),
        vec![format!(
            "<iq from='a@localhost' id='i1' to='b@localhost/phone' type='result'>{account}</iq>"
        )]
    );
    // ... the account itself ...
    h.send(1, iq("get", "i2", Some("a@localhost"), info()));
    assert_eq!(h.take(1).len(), 1);
    // ... but not a stranger.
    h.send(3, iq("get", "i3", Some("a@localhost"), info()));
    assert_eq!(
        h.take(3),
        vec![format!(
            "<iq from='a@localhost' id='i3' to='c@localhost/x' type='error'>\
             <query xmlns='http://jabber.org/protocol/disco#info'/>{SU}</iq>"
        )]
    );
    h.assert_quiet();
}

#[test]
fn ping_to_the_server_with_or_without_to() {
    let mut h = one();
    h.send(
        1,
        iq("get", "p1", Some("localhost"), Element::new("ping", ns::PING)),
    );
    assert_eq!(
        h.take(1),
        vec!["<iq from='localhost' id='p1' to='a@localhost/pc' type='result'/>"]
    );
    h.send(1, iq("get", "p2", None, Element::new("ping", ns::PING)));
    assert_eq!(h.take(1), vec!["<iq id='p2' to='a@localhost/pc' type='result'/>"]);
}

#[test]
fn software_version() {
    let mut h = Harness::with_config(HubConfig {
        software_version: Some(("Meerkat".into(), "0.1.0".into())),
        version_os: Some("Linux".into()),
        ..HubConfig::default()
    });
    h.storage.add_user(&jid("a@localhost"));
    h.login(1, "a@localhost/pc");
    h.send(
        1,
        iq("get", "v", Some("localhost"), Element::new("query", ns::VERSION)),
    );
    assert_eq!(
        h.take(1),
        vec![
            "<iq from='localhost' id='v' to='a@localhost/pc' type='result'>\
             <query xmlns='jabber:iq:version'><name>Meerkat</name><version>0.1.0</version>\
             <os>Linux</os></query></iq>"
        ]
    );
}

#[test]
fn software_version_disabled_is_service_unavailable() {
    let mut h = Harness::with_config(HubConfig {
        software_version: None,
        ..HubConfig::default()
    });
    h.storage.add_user(&jid("a@localhost"));
    h.login(1, "a@localhost/pc");
    h.send(
        1,
        iq("get", "v", Some("localhost"), Element::new("query", ns::VERSION)),
    );
    assert_eq!(
        h.take(1),
        vec![format!(
            "<iq from='localhost' id='v' to='a@localhost/pc' type='error'>\
             <query xmlns='jabber:iq:version'/>{SU}</iq>"
        )]
    );
}

#[test]
fn unknown_namespace_is_service_unavailable_with_id_kept_and_addresses_swapped() {
    let mut h = one();
    h.send(
        1,
        iq(
            "get",
            "u1",
            Some("localhost"),
            Element::new("query", "urn:example:unknown"),
        ),
    );
    assert_eq!(
        h.take(1),
        vec![format!(
            "<iq from='localhost' id='u1' to='a@localhost/pc' type='error'>\
             <query xmlns='urn:example:unknown'/>{SU}</iq>"
        )]
    );
    // Same for a set, and for an unknown iq to the own bare JID.
    h.send(
        1,
        iq(
            "set",
            "u2",
            Some("a@localhost"),
            Element::new("x", "urn:example:unknown"),
        ),
    );
    assert_eq!(
        h.take(1),
        vec![format!(
            "<iq from='a@localhost' id='u2' to='a@localhost/pc' type='error'>\
             <x xmlns='urn:example:unknown'/>{SU}</iq>"
        )]
    );
}

#[test]
fn malformed_iqs_are_bad_request() {
    let mut h = one();
    let bad = |id: &str| {
        format!("<error type='modify'><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>{id}")
    };
    // No payload.
    h.send(
        1,
        Element::new("iq", ns::CLIENT)
            .with_attr("type", "get")
            .with_attr("id", "e1")
            .with_attr("to", "localhost"),
    );
    assert_eq!(
        h.take(1),
        vec![format!(
            "<iq from='localhost' id='e1' to='a@localhost/pc' type='error'>{}</iq>",
            bad("")
        )]
    );
    // Two payloads.
    h.send(
        1,
        iq("get", "e2", Some("localhost"), Element::new("ping", ns::PING))
            .with_child(Element::new("ping", ns::PING)),
    );
    assert!(h.take(1)[0].contains("<bad-request "));
    // No type.
    h.send(
        1,
        Element::new("iq", ns::CLIENT)
            .with_attr("id", "e3")
            .with_child(Element::new("ping", ns::PING)),
    );
    assert!(h.take(1)[0].contains("<bad-request "));
}

#[test]
fn results_and_errors_addressed_to_the_server_are_dropped() {
    let mut h = one();
    h.send(
        1,
        Element::new("iq", ns::CLIENT)
            .with_attr("type", "result")
            .with_attr("id", "push1"),
    );
    h.send(
        1,
        Element::new("iq", ns::CLIENT)
            .with_attr("type", "result")
            .with_attr("id", "x")
            .with_attr("to", "localhost"),
    );
    let mut err = iq("error", "y", Some("localhost"), Element::new("ping", ns::PING));
    err.set_attr("type", "error");
    h.send(1, err);
    h.assert_quiet();
}

#[test]
fn iq_error_from_a_user_is_delivered_untouched() {
    let mut h = Harness::friends();
    h.send(
        2,
        iq(
            "error",
            "q",
            Some("a@localhost/pc"),
            Element::new("ping", ns::PING),
        ),
    );
    assert_eq!(
        h.take(1),
        vec![
            "<iq from='b@localhost/phone' id='q' to='a@localhost/pc' type='error'>\
             <ping xmlns='urn:xmpp:ping'/></iq>"
        ]
    );
}
