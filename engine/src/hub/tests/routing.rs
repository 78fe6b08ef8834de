//! RFC 6121 §8.5 and RFC 6120 §10: where messages go; offline storage (XEP-0160).

use super::*;

fn error(condition: &str, kind: &str) -> String {
    format!("<error type='{kind}'><{condition} xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>")
}

/// b@localhost with four resources: one and two at priority 5, three at 1, neg at -1;
/// a@localhost/pc is session 1.
fn many_resources() -> Harness {
    let mut h = Harness::with_users(&["a@localhost", "b@localhost"]);
    h.login(1, "a@localhost/pc");
    for (session, res, prio) in [(11, "one", 5), (12, "two", 5), (13, "three", 1), (14, "neg", -1)] {
        h.bind(session, &format!("b@localhost/{res}"));
        h.send(session, presence_with_priority(prio));
    }
    for s in 11..=14 {
        h.take(s);
    }
    h
}

#[test]
fn chat_to_bare_jid_goes_to_the_highest_priority_resources() {
    let mut h = many_resources();
    h.send(1, message("b@localhost", "chat", "hi"));
    let expected = "<message from='a@localhost/pc' to='b@localhost' type='chat'><body>hi</body></message>";
    assert_eq!(h.take(11), vec![expected]);
    assert_eq!(h.take(12), vec![expected]);
    h.assert_quiet();

    // Same for normal messages (RFC 6121 §8.5.2.1.1).
    h.send(1, message("b@localhost", "normal", "n"));
    assert_eq!(h.take(11).len(), 1);
    assert_eq!(h.take(12).len(), 1);
    h.assert_quiet();
}

#[test]
fn headline_to_bare_jid_goes_to_every_non_negative_resource() {
    let mut h = many_resources();
    h.send(1, message("b@localhost", "headline", "news"));
    for s in [11, 12, 13] {
        assert_eq!(h.take(s).len(), 1, "session {s}");
    }
    h.assert_quiet();
}

#[test]
fn full_jid_reaches_that_resource_even_with_negative_priority() {
    let mut h = many_resources();
    h.send(1, message("b@localhost/neg", "chat", "psst"));
    assert_eq!(
        h.take(14),
        vec!["<message from='a@localhost/pc' to='b@localhost/neg' type='chat'><body>psst</body></message>"]
    );
    h.assert_quiet();
}

#[test]
fn missing_resource_falls_back_to_the_bare_jid_for_chat_only() {
    let mut h = many_resources();
    // RFC 6121 §8.5.3.2.1.
    h.send(1, message("b@localhost/gone", "chat", "x"));
    assert_eq!(h.take(11).len(), 1);
    assert_eq!(h.take(12).len(), 1);
    h.assert_quiet();
    h.send(1, message("b@localhost/gone", "headline", "x"));
    h.assert_quiet();
    h.send(1, message("b@localhost/gone", "groupchat", "x"));
    assert_eq!(
        h.take(1),
        vec![format!(
            "<message from='b@localhost/gone' to='a@localhost/pc' type='error'><body>x</body>{}</message>",
            error("service-unavailable", "cancel")
        )]
    );
}

#[test]
fn groupchat_to_bare_jid_is_an_error() {
    let mut h = many_resources();
    h.send(1, message("b@localhost", "groupchat", "x"));
    assert_eq!(
        h.take(1),
        vec![format!(
            "<message from='b@localhost' to='a@localhost/pc' type='error'><body>x</body>{}</message>",
            error("service-unavailable", "cancel")
        )]
    );
    h.assert_quiet();
}

#[test]
fn offline_message_is_stored_and_delivered_with_delay_at_initial_presence() {
    let mut h = Harness::with_users(&["a@localhost", "b@localhost"]);
    h.login(1, "a@localhost/pc");
    h.send(1, message("b@localhost", "chat", "while you were out"));
    // Chat states alone are not stored (XEP-0160 §3).
    h.send(
        1,
        Element::new("message", ns::CLIENT)
            .with_attr("to", "b@localhost")
            .with_attr("type", "chat")
            .with_child(Element::new("active", "http://jabber.org/protocol/chatstates")),
    );
    h.assert_quiet();
    let stored = "<message xmlns='jabber:client' to='b@localhost' type='chat' from='a@localhost/pc'>\
                  <body>while you were out</body>\
                  <delay xmlns='urn:xmpp:delay' from='localhost' stamp='2026-11-25T12:00:00Z'/>\
                  </message>";
    assert_eq!(h.storage.offline(&jid("b@localhost")), vec![stored]);

    // A resource bound but not available does not get them...
    h.bind(2, "b@localhost/phone");
    h.assert_quiet();
    // ... nor one with negative priority (XEP-0160 §3) ...
    h.send(2, presence_with_priority(-1));
    assert!(!h.take(2).iter().any(|s| s.starts_with("RAW")));
    // ... until it becomes non-negative.
    h.send(2, presence_with_priority(0));
    let got = h.take(2);
    assert!(got.contains(&format!("RAW {stored}")), "{got:#?}");
    assert!(h.storage.offline(&jid("b@localhost")).is_empty());

    // A second login finds nothing more.
    h.bind(3, "b@localhost/pc");
    h.send(3, presence(None, None));
    assert!(!h.take(3).iter().any(|s| s.starts_with("RAW")));
}

#[test]
fn offline_messages_come_after_initial_presence_in_order() {
    let mut h = Harness::with_users(&["a@localhost", "b@localhost"]);
    h.login(1, "a@localhost/pc");
    for body in ["1", "2", "3"] {
        h.send(1, message("b@localhost", "chat", body));
    }
    h.bind(2, "b@localhost/phone");
    h.send(2, presence(None, None));
    let raw: Vec<String> = h.take(2).into_iter().filter(|s| s.starts_with("RAW")).collect();
    assert_eq!(raw.len(), 3);
    for (i, body) in ["1", "2", "3"].iter().enumerate() {
        assert!(raw[i].contains(&format!("<body>{body}</body>")));
    }
}

#[test]
fn offline_limit_bounces_with_service_unavailable() {
    let mut h = Harness::with_config(HubConfig {
        offline_limit: 1,
        ..HubConfig::default()
    });
    h.storage.add_user(&jid("a@localhost"));
    h.storage.add_user(&jid("b@localhost"));
    h.login(1, "a@localhost/pc");
    h.send(1, message("b@localhost", "chat", "one"));
    h.assert_quiet();
    h.send(1, message("b@localhost", "chat", "two"));
    assert_eq!(
        h.take(1),
        vec![format!(
            "<message from='b@localhost' to='a@localhost/pc' type='error'><body>two</body>{}</message>",
            error("service-unavailable", "cancel")
        )]
    );
    assert_eq!(h.storage.offline(&jid("b@localhost")).len(), 1);
}

#[test]
fn without_offline_storage_messages_bounce() {
    let mut h = Harness::with_config(HubConfig {
        offline_enabled: false,
        ..HubConfig::default()
    });
    h.storage.add_user(&jid("a@localhost"));
    h.storage.add_user(&jid("b@localhost"));
    h.login(1, "a@localhost/pc");
    h.send(1, message("b@localhost", "chat", "x"));
    assert_eq!(h.take(1).len(), 1);
    assert!(h.storage.offline(&jid("b@localhost")).is_empty());
}

#[test]
fn message_and_iq_to_an_unknown_user_are_service_unavailable() {
    let mut h = Harness::with_users(&["a@localhost"]);
    h.login(1, "a@localhost/pc");
    h.send(1, message("nobody@localhost", "chat", "hello?"));
    assert_eq!(
        h.take(1),
        vec![format!(
            "<message from='nobody@localhost' to='a@localhost/pc' type='error'><body>hello?</body>{}</message>",
            error("service-unavailable", "cancel")
        )]
    );
    h.send(
        1,
        iq(
            "get",
            "v1",
            Some("nobody@localhost"),
            Element::new("query", ns::VERSION),
        ),
    );
    assert_eq!(
        h.take(1),
        vec![format!(
            "<iq from='nobody@localhost' id='v1' to='a@localhost/pc' type='error'><query xmlns='jabber:iq:version'/>{}</iq>",
            error("service-unavailable", "cancel")
        )]
    );
    // No error for an error, and presence is silently ignored (RFC 6121 §8.5.1).
    let mut err = message("nobody@localhost", "error", "x");
    err.set_attr("type", "error");
    h.send(1, err);
    h.send(1, presence(Some("nobody@localhost"), None));
    h.assert_quiet();
    assert_eq!(h.users_in_memory(), 1);
}

#[test]
fn remote_domains_are_remote_server_not_found() {
    let mut h = Harness::with_users(&["a@localhost"]);
    h.login(1, "a@localhost/pc");
    h.send(1, message("juliet@example.net", "chat", "x"));
    assert_eq!(
        h.take(1),
        vec![format!(
            "<message from='juliet@example.net' to='a@localhost/pc' type='error'><body>x</body>{}</message>",
            error("remote-server-not-found", "cancel")
        )]
    );
    h.send(
        1,
        iq("get", "p", Some("example.net"), Element::new("ping", ns::PING)),
    );
    assert_eq!(
        h.take(1),
        vec![format!(
            "<iq from='example.net' id='p' to='a@localhost/pc' type='error'><ping xmlns='urn:xmpp:ping'/>{}</iq>",
            error("remote-server-not-found", "cancel")
        )]
    );
    h.send(1, presence(Some("juliet@example.net"), None));
    h.assert_quiet();
}

#[test]
fn messages_to_the_server_are_not_delivered() {
    let mut h = Harness::with_users(&["a@localhost"]);
    h.login(1, "a@localhost/pc");
    h.send(1, message("localhost", "chat", "hi server"));
    assert_eq!(
        h.take(1),
        vec![format!(
            "<message from='localhost' to='a@localhost/pc' type='error'><body>hi server</body>{}</message>",
            error("service-unavailable", "cancel")
        )]
    );
    h.send(1, presence(Some("localhost"), None));
    h.assert_quiet();
}

#[test]
fn message_without_to_goes_to_own_bare_jid() {
    let mut h = Harness::with_users(&["a@localhost"]);
    h.login(1, "a@localhost/pc");
    h.login(2, "a@localhost/phone");
    h.take(1);
    h.send(
        1,
        Element::new("message", ns::CLIENT)
            .with_attr("type", "chat")
            .with_child(Element::new("body", ns::CLIENT).with_text("note")),
    );
    let expected = "<message from='a@localhost/pc' to='a@localhost' type='chat'><body>note</body></message>";
    assert_eq!(h.take(1), vec![expected]);
    assert_eq!(h.take(2), vec![expected]);
}

#[test]
fn iq_and_presence_to_an_unknown_resource() {
    let mut h = Harness::with_users(&["a@localhost", "b@localhost"]);
    h.login(1, "a@localhost/pc");
    h.login(2, "b@localhost/phone");
    h.take(1);
    // RFC 6121 §8.5.3.2.2: iq → service-unavailable; presence silently dropped.
    h.send(
        1,
        iq(
            "get",
            "q",
            Some("b@localhost/gone"),
            Element::new("ping", ns::PING),
        ),
    );
    assert_eq!(
        h.take(1),
        vec![format!(
            "<iq from='b@localhost/gone' id='q' to='a@localhost/pc' type='error'><ping xmlns='urn:xmpp:ping'/>{}</iq>",
            error("service-unavailable", "cancel")
        )]
    );
    h.send(1, presence(Some("b@localhost/gone"), None));
    h.assert_quiet();
    // And to a resource that exists, both are delivered.
    h.send(
        1,
        iq(
            "get",
            "q2",
            Some("b@localhost/phone"),
            Element::new("ping", ns::PING),
        ),
    );
    assert_eq!(
        h.take(2),
        vec!["<iq from='a@localhost/pc' id='q2' to='b@localhost/phone' type='get'><ping xmlns='urn:xmpp:ping'/></iq>"]
    );
}

#[test]
fn malformed_to_is_jid_malformed() {
    let mut h = Harness::with_users(&["a@localhost"]);
    h.login(1, "a@localhost/pc");
    h.send(1, message("@@", "chat", "x"));
    let got = h.take(1);
    assert_eq!(got.len(), 1);
    assert!(got[0].contains("<jid-malformed"), "{got:?}");
}

/// With a federation router, a stanza for another domain leaves the hub for it, and a
/// stanza arriving from it (a component, a remote server) is routed like any other.
#[test]
fn other_domains_go_to_the_federation_and_come_back_in() {
    let mut h = Harness::with_config(HubConfig {
        federation: true,
        ..HubConfig::default()
    });
    h.storage.add_user(&jid("a@localhost"));
    h.login(1, "a@localhost/pc");
    h.take(1);
    h.send(1, message("bot@echo.localhost", "chat", "ping"));
    assert_eq!(
        h.external,
        vec![
            "<message from='a@localhost/pc' to='bot@echo.localhost' type='chat'><body>ping</body></message>"
        ]
    );
    let mut reply = message("a@localhost/pc", "chat", "pong");
    reply.set_attr("from", "bot@echo.localhost");
    h.input(HubInput::External(reply));
    assert_eq!(
        h.take(1),
        vec![
            "<message from='bot@echo.localhost' to='a@localhost/pc' type='chat'><body>pong</body></message>"
        ]
    );
}

/// XEP-0030: disco#items of the server lists the components the router announced.
#[test]
fn disco_items_list_announced_components() {
    let mut h = Harness::with_users(&["a@localhost"]);
    h.login(1, "a@localhost/pc");
    h.take(1);
    h.input(HubInput::Components(vec!["echo.localhost".into()]));
    let iq = Element::new("iq", ns::CLIENT)
        .with_attr("type", "get")
        .with_attr("id", "i1")
        .with_attr("to", "localhost")
        .with_child(Element::new("query", ns::DISCO_ITEMS));
    h.send(1, iq);
    let got = h.take(1);
    assert_eq!(got.len(), 1);
    assert!(got[0].contains("<item jid='echo.localhost'/>"), "{got:?}");
}
