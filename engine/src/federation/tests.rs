//! The router's decisions, input by input.

use std::time::{Duration, Instant};

use super::*;
use crate::ns;

fn message(from: &str, to: &str) -> Element {
    Element::new("message", ns::CLIENT)
        .with_attr("from", from)
        .with_attr("to", to)
        .with_attr("type", "chat")
        .with_child(Element::new("body", ns::CLIENT).with_text("hi"))
}

fn drain(f: &mut Federation) -> Vec<FederationAction> {
    std::iter::from_fn(|| f.poll_action()).collect()
}

fn s2s() -> Federation {
    Federation::new(FederationConfig {
        s2s: true,
        ..FederationConfig::new(vec!["localhost".into()])
    })
}

fn bounced_with(actions: &[FederationAction], condition: &str) -> bool {
    actions.iter().any(|a| match a {
        FederationAction::Hub(HubInput::External(e)) => {
            e.attr("type") == Some("error") && e.to_xml().contains(&format!("<{condition} "))
        }
        _ => false,
    })
}

#[test]
fn components_get_their_domain_and_conflicts_follow_the_behaviour() {
    let t = Instant::now();
    let mut f = Federation::new(FederationConfig::new(vec!["localhost".into()]));
    let up = |conn, kick_old| FederationInput::ComponentUp {
        conn,
        domain: "echo.localhost".into(),
        hidden: false,
        kick_old,
    };
    f.handle(up(1, false), t);
    let a = drain(&mut f);
    assert!(a.contains(&FederationAction::ComponentAnswer {
        conn: 1,
        accepted: true
    }));
    assert!(a.contains(&FederationAction::Hub(HubInput::Components(vec![
        "echo.localhost".into()
    ]))));
    // disconnect: the newcomer is refused.
    f.handle(up(2, false), t);
    assert_eq!(
        drain(&mut f),
        vec![FederationAction::ComponentAnswer {
            conn: 2,
            accepted: false
        }]
    );
    // kick_old: the old one goes.
    f.handle(up(3, true), t);
    let a = drain(&mut f);
    assert!(a.contains(&FederationAction::Replaced { conn: 1 }));
    assert!(a.contains(&FederationAction::ComponentAnswer {
        conn: 3,
        accepted: true
    }));
    f.handle(
        FederationInput::Outbound(message("a@localhost/r", "bot@echo.localhost")),
        t,
    );
    assert_eq!(
        drain(&mut f),
        vec![FederationAction::Deliver {
            conn: 3,
            stanza: message("a@localhost/r", "bot@echo.localhost")
        }]
    );
    // A served host is never a component's.
    f.handle(
        FederationInput::ComponentUp {
            conn: 4,
            domain: "localhost".into(),
            hidden: false,
            kick_old: true,
        },
        t,
    );
    assert_eq!(
        drain(&mut f),
        vec![FederationAction::ComponentAnswer {
            conn: 4,
            accepted: false
        }]
    );
}

#[test]
fn unknown_subdomain_bounces_without_a_connection_attempt() {
    let t = Instant::now();
    let mut f = s2s();
    f.handle(
        FederationInput::Outbound(message("a@localhost/r", "x@nothere.localhost")),
        t,
    );
    let a = drain(&mut f);
    assert!(bounced_with(&a, "remote-server-not-found"), "{a:?}");
    assert!(!a.iter().any(|a| matches!(a, FederationAction::Open { .. })));
}

#[test]
fn stanzas_wait_for_the_stream_then_flow() {
    let t = Instant::now();
    let mut f = s2s();
    f.handle(
        FederationInput::Outbound(message("a@localhost/r", "b@remote.example")),
        t,
    );
    let a = drain(&mut f);
    let conn = match &a[..] {
        [FederationAction::Open { conn, pair }] => {
            assert_eq!(pair.remote, "remote.example");
            *conn
        }
        other => panic!("{other:?}"),
    };
    f.handle(
        FederationInput::Outbound(message("a@localhost/r", "c@remote.example")),
        t,
    );
    assert!(drain(&mut f).is_empty(), "queued while connecting");
    f.handle(FederationInput::OutEstablished { conn }, t);
    assert_eq!(drain(&mut f).len(), 2);
    f.handle(
        FederationInput::Outbound(message("a@localhost/r", "b@remote.example")),
        t,
    );
    assert!(matches!(&drain(&mut f)[..], [FederationAction::Deliver { conn: c, .. }] if *c == conn));
}

#[test]
fn the_queue_of_a_connecting_stream_is_bounded_and_bounces_with_resource_constraint() {
    let t = Instant::now();
    let mut f = Federation::new(FederationConfig {
        s2s: true,
        max_queued_stanzas: 2,
        ..FederationConfig::new(vec!["localhost".into()])
    });
    let send = |f: &mut Federation, to: &str| {
        f.handle(FederationInput::Outbound(message("a@localhost/r", to)), t);
        drain(f)
    };
    let conn = match &send(&mut f, "b@remote.example")[..] {
        [FederationAction::Open { conn, .. }] => *conn,
        other => panic!("{other:?}"),
    };
    assert!(send(&mut f, "c@remote.example").is_empty(), "second one queued");
    let third = send(&mut f, "d@remote.example");
    assert!(bounced_with(&third, "resource-constraint"), "{third:?}");
    // Another domain has its own queue.
    assert!(matches!(
        &send(&mut f, "x@other.example")[..],
        [FederationAction::Open { .. }]
    ));
    // The queued two flow once the stream is up; the bounced one is not among them.
    f.handle(FederationInput::OutEstablished { conn }, t);
    let delivered: Vec<String> = drain(&mut f)
        .into_iter()
        .filter_map(|a| match a {
            FederationAction::Deliver { stanza, .. } => stanza.attr("to").map(str::to_string),
            _ => None,
        })
        .collect();
    assert_eq!(delivered, ["b@remote.example", "c@remote.example"]);
}

#[test]
fn a_failed_connection_bounces_its_queue_and_later_stanzas_until_the_retry() {
    let t = Instant::now();
    let mut f = s2s();
    f.handle(
        FederationInput::Outbound(message("a@localhost/r", "b@remote.example")),
        t,
    );
    let conn = match &drain(&mut f)[..] {
        [FederationAction::Open { conn, .. }] => *conn,
        other => panic!("{other:?}"),
    };
    f.handle(
        FederationInput::OutClosed {
            conn,
            failure: Some(OutFailure::Timeout),
            unsent: vec![],
        },
        t,
    );
    assert!(bounced_with(&drain(&mut f), "remote-server-timeout"));
    f.handle(
        FederationInput::Outbound(message("a@localhost/r", "b@remote.example")),
        t,
    );
    assert!(bounced_with(&drain(&mut f), "remote-server-timeout"));
    // After the retry delay, a new attempt.
    f.handle(
        FederationInput::Outbound(message("a@localhost/r", "b@remote.example")),
        t + Duration::from_secs(2),
    );
    assert!(matches!(&drain(&mut f)[..], [FederationAction::Open { .. }]));
}

#[test]
fn policy_denies_before_any_connection() {
    let t = Instant::now();
    let mut config = FederationConfig::new(vec!["localhost".into()]);
    config.s2s = true;
    config.policy.default_allow = false;
    config.policy.hosts.insert("friend.example".into(), true);
    let mut f = Federation::new(config);
    f.handle(
        FederationInput::Outbound(message("a@localhost/r", "b@other.example")),
        t,
    );
    assert!(bounced_with(&drain(&mut f), "remote-server-not-found"));
    f.handle(
        FederationInput::Outbound(message("a@localhost/r", "b@friend.example")),
        t,
    );
    assert!(matches!(&drain(&mut f)[..], [FederationAction::Open { .. }]));
}

#[test]
fn verifications_go_over_the_pairs_stream() {
    let t = Instant::now();
    let mut f = s2s();
    let request = DialbackRequest {
        in_conn: 7,
        local: "localhost".into(),
        remote: "remote.example".into(),
        stream_id: "abc".into(),
        key: "k".into(),
    };
    f.handle(FederationInput::DialbackVerify(request.clone()), t);
    let a = drain(&mut f);
    let conn = match &a[..] {
        [FederationAction::Open { conn, .. }, FederationAction::SendVerify { conn: c, request: r }] => {
            assert_eq!(conn, c);
            assert_eq!(*r, request);
            *conn
        }
        other => panic!("{other:?}"),
    };
    let _ = conn;
    f.handle(
        FederationInput::DialbackVerified {
            request: request.clone(),
            valid: true,
        },
        t,
    );
    assert_eq!(
        drain(&mut f),
        vec![FederationAction::Verified { request, valid: true }]
    );
}
