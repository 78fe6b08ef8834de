//! XEP-0198 in the hub: detached sessions, resumption, takeover, and the end of a
//! session nobody resumed.

use super::*;
use crate::stream::c2s::SmSnapshot;

fn snapshot(id: &str, timeout: u64) -> Box<SmSnapshot> {
    Box::new(SmSnapshot {
        id: id.into(),
        inbound: 4,
        acked: 2,
        unacked: Vec::new(),
        resume_timeout: Duration::from_secs(timeout),
        buffer_max: None,
    })
}

fn detach(h: &mut Harness, session: SessionId, full: &str, timeout: u64) {
    h.input(HubInput::Detach {
        session,
        jid: jid(full),
        snapshot: snapshot("sm-a", timeout),
    });
}

/// A detached session stays online for its contacts, keeps what arrives for it,
/// and a new connection of the same user takes it over with all of it.
#[test]
fn a_detached_session_keeps_its_stanzas_for_the_resumption() {
    let mut h = Harness::friends();
    h.input(HubInput::SmEnabled {
        session: 1,
        id: "sm-a".into(),
    });
    detach(&mut h, 1, "a@localhost/pc", 60);
    // b sees no unavailable presence: the session may come back.
    h.assert_quiet();
    h.send(2, message("a@localhost/pc", "chat", "while-away"));
    h.assert_quiet();
    // Another user cannot resume it; a wrong id fails.
    h.input(HubInput::Resume {
        session: 7,
        user: jid("b@localhost"),
        previd: "sm-a".into(),
    });
    assert_eq!(h.take(7), vec!["RESUME-FAILED"]);
    h.input(HubInput::Resume {
        session: 8,
        user: jid("a@localhost"),
        previd: "sm-x".into(),
    });
    assert_eq!(h.take(8), vec!["RESUME-FAILED"]);
    h.input(HubInput::Resume {
        session: 9,
        user: jid("a@localhost"),
        previd: "sm-a".into(),
    });
    let resumed = h.take(9);
    assert_eq!(resumed.len(), 1);
    assert!(
        resumed[0].starts_with("RESUMED a@localhost/pc [Stanza("),
        "{resumed:?}"
    );
    assert!(resumed[0].contains("while-away"), "{resumed:?}");
    // The session now lives on connection 9.
    h.send(2, message("a@localhost/pc", "chat", "after"));
    assert_eq!(
        h.take(9),
        vec![
            "<message from='b@localhost/phone' to='a@localhost/pc' type='chat'><body>after</body></message>"
        ]
    );
    h.assert_quiet();
}

/// A resumption of a session whose connection still looks alive asks that
/// connection to hand over; its Detach completes the resumption.
#[test]
fn a_live_session_is_taken_over() {
    let mut h = Harness::friends();
    h.input(HubInput::SmEnabled {
        session: 1,
        id: "sm-a".into(),
    });
    h.input(HubInput::Resume {
        session: 9,
        user: jid("a@localhost"),
        previd: "sm-a".into(),
    });
    assert_eq!(h.take(1), vec!["TAKEOVER"]);
    h.assert_quiet();
    detach(&mut h, 1, "a@localhost/pc", 60);
    assert_eq!(h.take(9), vec!["RESUMED a@localhost/pc []"]);
}

/// Nobody resumed in time: the session ends (b learns it went away) and its
/// unacknowledged message goes to offline storage.
#[test]
fn at_the_deadline_the_session_ends_and_messages_go_offline() {
    let mut h = Harness::friends();
    h.input(HubInput::SmEnabled {
        session: 1,
        id: "sm-a".into(),
    });
    let mut snap = snapshot("sm-a", 60);
    snap.unacked.push(crate::stream::c2s::Outbound::Stanza(message(
        "a@localhost/pc",
        "chat",
        "unacked",
    )));
    h.input(HubInput::Detach {
        session: 1,
        jid: jid("a@localhost/pc"),
        snapshot: snap,
    });
    assert_eq!(h.hub.next_deadline(), Some(h.now + Duration::from_secs(60)));
    h.hub.handle_timeout(h.now + Duration::from_secs(59));
    h.pump();
    h.assert_quiet();
    h.hub.handle_timeout(h.now + Duration::from_secs(60));
    h.pump();
    assert_eq!(
        h.take(2),
        vec!["<presence from='a@localhost/pc' to='b@localhost' type='unavailable'/>"]
    );
    assert_eq!(h.storage.offline(&jid("a@localhost")).len(), 1);
    assert!(h.storage.offline(&jid("a@localhost"))[0].contains("unacked"));
    assert_eq!(h.hub.next_deadline(), None);
}
