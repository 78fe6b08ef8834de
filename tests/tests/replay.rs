//! Recorded sessions replay byte for byte, and any split of their input gives the
//! same output (DESIGN.md, test layer 2).
//!
//! To re-record after an intended change of the server's bytes:
//! `MEERKAT_RECORD=1 cargo test -p meerkat-tests --test replay`, then review the diff.

use std::path::PathBuf;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use meerkat_engine::sasl::{ScramClient, ScramHash};
use meerkat_tests::driver::{element_text, STREAM_OPEN};
use meerkat_tests::recording::{Recording, Step};
use proptest::prelude::*;

fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("recordings")
        .join(name)
}

/// Plays the reference session against a fresh simulation and records it.
fn record_login_chat() -> Recording {
    let mut rec = Recording {
        seed: 41,
        users: vec![
            ("alice@localhost".into(), "alice-pw".into()),
            ("bob@localhost".into(), "bob-pw".into()),
        ],
        steps: Vec::new(),
    };
    let mut sim = rec.simulation();
    let id = sim.connect();
    let send = |sim: &mut meerkat_tests::Simulation, rec: &mut Recording, input: String| -> String {
        sim.client_bytes(id, input.as_bytes());
        let expect = sim.take_output(id);
        let text = String::from_utf8_lossy(&expect).into_owned();
        rec.steps.push(Step::Send {
            input: input.into_bytes(),
            expect,
        });
        text
    };
    send(&mut sim, &mut rec, STREAM_OPEN.into());
    let mut scram = ScramClient::new(
        ScramHash::Sha256,
        "alice",
        "alice-pw",
        "r3c0rd3dn0nc3",
        "n,,",
        Vec::new(),
    );
    let challenge = send(
        &mut sim,
        &mut rec,
        format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>{}</auth>",
            B64.encode(scram.first())
        ),
    );
    let server_first = B64
        .decode(element_text(&challenge, "challenge").unwrap())
        .unwrap();
    let fin = scram.finish(&server_first).unwrap();
    send(
        &mut sim,
        &mut rec,
        format!(
            "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</response>",
            B64.encode(fin)
        ),
    );
    send(&mut sim, &mut rec, STREAM_OPEN.into());
    send(
        &mut sim,
        &mut rec,
        "<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>".into(),
    );
    send(
        &mut sim,
        &mut rec,
        "<iq type='get' id='r'><query xmlns='jabber:iq:roster'/></iq>\n".into(),
    );
    send(
        &mut sim,
        &mut rec,
        "<presence><show>chat</show><status>&lt;here&gt; &amp; now</status></presence>".into(),
    );
    send(
        &mut sim,
        &mut rec,
        "<message to='bob@localhost' type='chat' id='m1'><body>Hi Bob! \u{1F994} <![CDATA[<raw>]]></body></message>".into(),
    );
    send(
        &mut sim,
        &mut rec,
        "<iq type='get' id='d' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
            .into(),
    );
    sim.advance(Duration::from_secs(61));
    rec.steps.push(Step::Advance {
        by: Duration::from_secs(61),
        expect: sim.take_output(id),
    });
    send(
        &mut sim,
        &mut rec,
        "<iq type='get' id='x' to='localhost'><query xmlns='urn:example:unknown'/></iq>".into(),
    );
    send(&mut sim, &mut rec, "</stream:stream>".into());
    rec
}

fn load(name: &str, record: fn() -> Recording) -> Recording {
    let p = path(name);
    if std::env::var_os("MEERKAT_RECORD").is_some() {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, record().render()).unwrap();
    }
    let text = std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{}: {e} (record it with MEERKAT_RECORD=1)", p.display()));
    Recording::parse(&text).unwrap()
}

#[test]
fn recorded_session_replays_identically() {
    let rec = load("login_chat.session", record_login_chat);
    let got = rec.replay(|_, len| vec![len]);
    let expected = rec.expected();
    assert_eq!(got.len(), expected.len());
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(String::from_utf8_lossy(g), String::from_utf8_lossy(e), "step {i}");
    }
}

#[test]
fn one_byte_at_a_time_gives_the_same_output() {
    let rec = load("login_chat.session", record_login_chat);
    assert_eq!(rec.replay(|_, len| vec![1; len]), rec.expected());
}

#[test]
fn a_sharded_hub_gives_the_same_output() {
    let rec = load("login_chat.session", record_login_chat);
    for shards in [2, 3, 4] {
        assert_eq!(
            rec.replay_sharded(shards, |_, len| vec![len]),
            rec.expected(),
            "{shards} shards"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn any_split_gives_the_same_output(cuts in proptest::collection::vec(proptest::collection::vec(1usize..40, 0..12), 16)) {
        let rec = load("login_chat.session", record_login_chat);
        let got = rec.replay(|step, _| cuts.get(step).cloned().unwrap_or_default());
        prop_assert_eq!(got, rec.expected());
    }
}
