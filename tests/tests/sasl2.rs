//! SASL2 (XEP-0388), Bind 2 (XEP-0386), stream management (XEP-0198), carbons
//! (XEP-0280), CSI (XEP-0352) and FAST (XEP-0484) in simulations with a rustls
//! client over direct TLS and a simulated clock.

use std::sync::Arc;
use std::time::Duration;

use meerkat_engine::hub::HubConfig;
use meerkat_engine::sasl::{ScramClient, ScramHash};
use meerkat_engine::stream::c2s::{C2sConfig, CsiConfig, FastConfig, SmConfig, TlsMode};
use meerkat_engine::tls::Resumption;
use meerkat_tests::driver::{element_text, Driver, STREAM_OPEN};
use meerkat_tests::sasl2::{attr_of, Authenticate};
use meerkat_tests::tls::TestCert;
use meerkat_tests::Simulation;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

const JULIET: (&str, &str) = ("juliet", "r0m30myr0m30");
const ROMEO: (&str, &str) = ("romeo", "jul13tjul13t");
/// A second client installation of the same user.
const OTHER_AGENT: &str = "6a1e40d2-1111-4c3b-9a55-0123456789ab";

/// SM and FAST as configured by default, plus carbons and CSI (buffer of 5).
fn config(cert: &TestCert, early_data: bool) -> C2sConfig {
    let mut config = C2sConfig::new(vec!["localhost".into()]);
    config.tls_mode = TlsMode::Tls;
    let identity = cert
        .identity(&[b"xmpp-client"])
        .with_resumption(Resumption::SingleUse { early_data })
        .expect("resumption");
    config.tls = Some(Arc::new(identity));
    config.sm = Some(SmConfig {
        resume_timeout: Duration::from_secs(60),
        ..SmConfig::default()
    });
    config.carbons = true;
    config.csi = Some(CsiConfig { buffer_max: 5 });
    config.fast = Some(FastConfig::default());
    config
}

fn sim(cert: &TestCert, early_data: bool, seed: u64) -> Simulation {
    let hub = HubConfig {
        carbons_enabled: true,
        ..HubConfig::default()
    };
    let mut sim = Simulation::new(config(cert, early_data), hub, seed);
    sim.add_user("juliet@localhost", JULIET.1);
    sim.add_user("romeo@localhost", ROMEO.1);
    sim
}

/// Opens a direct-TLS stream and reads the features.
fn open(sim: &mut Simulation, cert: &TestCert) -> (Driver, String) {
    let mut d = Driver::connect_tls(sim, cert.client_config());
    d.send(sim, STREAM_OPEN);
    let features = d.recv(sim);
    (d, features)
}

/// Logs in with PLAIN through SASL2 in one round trip, with Bind 2, SM, carbons and
/// a FAST token request; returns the driver and the `<success/>`.
fn login(sim: &mut Simulation, cert: &TestCert, user: (&str, &str), extra: &str) -> (Driver, String) {
    login_as(sim, cert, user, meerkat_tests::sasl2::AGENT, extra)
}

/// [`login`] from the client installation `agent`.
fn login_as(
    sim: &mut Simulation,
    cert: &TestCert,
    user: (&str, &str),
    agent: &str,
    extra: &str,
) -> (Driver, String) {
    let (mut d, _) = open(sim, cert);
    let mut auth = Authenticate::plain(user.0, user.1);
    auth.agent = Some(agent.into());
    let mut auth = auth.bind(
        "Sim",
        &format!("<enable xmlns='urn:xmpp:sm:3' resume='true'/><enable xmlns='urn:xmpp:carbons:2'/>{extra}"),
    );
    auth.request_token = Some("HT-SHA-256-NONE".into());
    d.send(sim, &auth.to_xml());
    let success = d.recv(sim);
    assert!(success.contains("<success xmlns='urn:xmpp:sasl:2'>"), "{success}");
    (d, success)
}

/// SASL2 + Bind 2 + SM + carbons + a FAST token in a single round trip after the
/// stream header, as a transcript.
#[test]
fn sasl2_bind2_sm_carbons_in_one_round_trip() {
    let cert = TestCert::localhost();
    let mut sim = sim(&cert, false, 21);
    let (mut d, features) = open(&mut sim, &cert);
    for needle in [
        "<authentication xmlns='urn:xmpp:sasl:2'>",
        "<bind xmlns='urn:xmpp:bind:0'><inline><feature var='urn:xmpp:carbons:2'/><feature var='urn:xmpp:csi:0'/><feature var='urn:xmpp:sm:3'/></inline></bind>",
        "<sm xmlns='urn:xmpp:sm:3'/>",
        "<mechanism>HT-SHA-256-NONE</mechanism>",
        "<mechanism>HT-SHA3-512-EXPR</mechanism>",
    ] {
        assert!(features.contains(needle), "{needle} missing from {features}");
    }
    let mut auth = Authenticate::plain("juliet", JULIET.1).bind(
        "Sim",
        "<enable xmlns='urn:xmpp:sm:3' resume='true'/><enable xmlns='urn:xmpp:carbons:2'/><inactive xmlns='urn:xmpp:csi:0'/>",
    );
    auth.request_token = Some("HT-SHA-256-NONE".into());
    d.send(&mut sim, &auth.to_xml());
    let success = d.recv(&mut sim);
    // One answer: success with the full JID, the bound session with SM enabled, a
    // token, then the features of the bound stream (no restart).
    let jid = element_text(&success, "authorization-identifier").unwrap();
    assert!(jid.starts_with("juliet@localhost/Sim/"), "{success}");
    assert!(
        success.contains("<bound xmlns='urn:xmpp:bind:0'><enabled xmlns='urn:xmpp:sm:3' id='"),
        "{success}"
    );
    assert_eq!(
        attr_of(&success, "token", "token").map(|t| t.len()),
        Some(144),
        "{success}"
    );
    assert!(
        success.ends_with("<stream:features><csi xmlns='urn:xmpp:csi:0'/></stream:features>"),
        "{success}"
    );
    // The session is live: a ping is answered.
    d.send(
        &mut sim,
        "<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>",
    );
    let pong = d.recv(&mut sim);
    assert!(
        pong.contains("type='result'") && pong.contains("<r xmlns='urn:xmpp:sm:3'/>"),
        "{pong}"
    );
    d.send(&mut sim, "<a xmlns='urn:xmpp:sm:3' h='1'/></stream:stream>");
    d.recv(&mut sim);
    assert!(sim.is_closed(d.id));
    insta::assert_snapshot!(d.transcript.render());
}

/// Every mechanism of the legacy profile works through SASL2, the -PLUS ones with
/// tls-exporter channel binding, SCRAM's server signature included.
#[test]
fn every_mechanism_works_through_sasl2() {
    let cert = TestCert::localhost();
    let mut sim = sim(&cert, false, 22);
    for (name, hash) in [
        ("SCRAM-SHA-1", ScramHash::Sha1),
        ("SCRAM-SHA-256", ScramHash::Sha256),
        ("SCRAM-SHA-512", ScramHash::Sha512),
        ("SCRAM-SHA-1-PLUS", ScramHash::Sha1),
        ("SCRAM-SHA-256-PLUS", ScramHash::Sha256),
        ("SCRAM-SHA-512-PLUS", ScramHash::Sha512),
    ] {
        let (mut d, _) = open(&mut sim, &cert);
        let (gs2, cb) = if name.ends_with("-PLUS") {
            ("p=tls-exporter,,", d.exporter().unwrap())
        } else {
            ("n,,", Vec::new())
        };
        let mut client = ScramClient::new(hash, "juliet", JULIET.1, "n0nc3", gs2, cb);
        let auth = Authenticate {
            mechanism: name.into(),
            initial: Some(client.first()),
            agent: Some("00000000-0000-4000-8000-000000000000".into()),
            ..Authenticate::default()
        };
        d.send(&mut sim, &auth.to_xml());
        let challenge = d.recv(&mut sim);
        let server_first = B64
            .decode(element_text(&challenge, "challenge").expect(&challenge))
            .unwrap();
        let fin = client.finish(&server_first).unwrap();
        d.send(
            &mut sim,
            &format!("<response xmlns='urn:xmpp:sasl:2'>{}</response>", B64.encode(fin)),
        );
        let success = d.recv(&mut sim);
        let data = B64
            .decode(element_text(&success, "additional-data").expect(&success))
            .unwrap();
        assert!(client.verify(&data), "{name}: server signature");
        assert!(success.contains("<authorization-identifier>juliet@localhost</authorization-identifier>"));
        // Not bound: legacy binding is offered in the features that follow.
        assert!(
            success.contains("<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"),
            "{success}"
        );
        d.send(
            &mut sim,
            "<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>",
        );
        assert!(d.recv(&mut sim).contains("<jid>juliet@localhost/"), "{name}");
    }
    // PLAIN, and a wrong password, which is a SASL2 failure with the RFC 6120 condition.
    let (mut d, _) = open(&mut sim, &cert);
    d.send(&mut sim, &Authenticate::plain("juliet", "wrong").to_xml());
    assert_eq!(
        d.recv(&mut sim),
        "<failure xmlns='urn:xmpp:sasl:2'><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/></failure>"
    );
    d.send(&mut sim, &Authenticate::plain("juliet", JULIET.1).to_xml());
    assert!(d.recv(&mut sim).contains("<success"));
    // An unknown mechanism.
    let (mut d, _) = open(&mut sim, &cert);
    let auth = Authenticate {
        mechanism: "DIGEST-MD5".into(),
        ..Authenticate::default()
    };
    d.send(&mut sim, &auth.to_xml());
    assert!(d.recv(&mut sim).contains("<invalid-mechanism"));
}

/// A FAST token from a password login authenticates the next connection in one
/// round trip, and messages flow.
#[test]
fn fast_reconnect_and_chat() {
    let cert = TestCert::localhost();
    let mut sim = sim(&cert, false, 23);
    let (mut j, success) = login(&mut sim, &cert, JULIET, "");
    let token = attr_of(&success, "token", "token").unwrap();
    j.send(&mut sim, "</stream:stream>");
    j.recv(&mut sim);

    let (mut j2, _) = open(&mut sim, &cert);
    j2.send(
        &mut sim,
        &Authenticate::fast("juliet", &token, Some(1))
            .bind("Sim", "")
            .to_xml(),
    );
    let success = j2.recv(&mut sim);
    assert!(
        success.contains("<authorization-identifier>juliet@localhost/Sim/"),
        "{success}"
    );
    // HT mutual authentication: the server proves it knows the token too.
    let data = B64
        .decode(element_text(&success, "additional-data").unwrap())
        .unwrap();
    let m = meerkat_engine::sasl::ht::HtMechanism::parse("HT-SHA-256-NONE").unwrap();
    assert_eq!(data, m.hash.hmac(token.as_bytes(), b"Responder", b""));
    // Not due for rotation: no new token.
    assert!(!success.contains("<token"), "{success}");
    j2.send(&mut sim, "<presence/>");
    j2.recv(&mut sim);

    let (mut r, _) = login(&mut sim, &cert, ROMEO, "");
    r.send(
        &mut sim,
        "<message to='juliet@localhost' type='chat'><body>hi</body></message>",
    );
    assert!(j2.recv(&mut sim).contains("<body>hi</body>"));
    // A token is bound to its mechanism (§3.4).
    let (mut j3, _) = open(&mut sim, &cert);
    let mut wrong = Authenticate::fast("juliet", &token, Some(2));
    wrong.mechanism = "HT-SHA-512-NONE".into();
    j3.send(&mut sim, &wrong.to_xml());
    assert!(j3.recv(&mut sim).contains("<not-authorized"));
}

/// Rotation and expiry on a simulated clock: near expiry a new token comes with the
/// success; the old one works until the new one is used, then never again; an
/// expired token is credentials-expired.
#[test]
fn fast_rotation_and_expiry() {
    let cert = TestCert::localhost();
    let mut sim = sim(&cert, false, 24);
    let (_, success) = login(&mut sim, &cert, JULIET, "");
    let first = attr_of(&success, "token", "token").unwrap();
    let fast = |sim: &mut Simulation, token: &str, count: u64| {
        let (mut d, _) = open(sim, &cert);
        d.send(sim, &Authenticate::fast("juliet", token, Some(count)).to_xml());
        d.recv(sim)
    };
    // 3 days of validity, rotated in the last 6 hours.
    sim.advance(Duration::from_secs(3 * 86_400 - 5 * 3600));
    let rotated = fast(&mut sim, &first, 1);
    let second = attr_of(&rotated, "token", "token").expect(&rotated);
    assert_ne!(second, first);
    // The client may not have got the new token: the old one still works (and,
    // still due, brings a newer one, which replaces the unused second).
    let again = fast(&mut sim, &first, 2);
    let third = attr_of(&again, "token", "token").expect(&again);
    // Using the newest token retires the old one.
    let used = fast(&mut sim, &third, 1);
    assert!(used.contains("<success") && !used.contains("<token"), "{used}");
    let old = fast(&mut sim, &first, 3);
    assert!(old.contains("<not-authorized"), "{old}");
    assert!(fast(&mut sim, &second, 2).contains("<not-authorized"));
    let second = third;
    // Past its expiry the token fails with credentials-expired.
    sim.advance(Duration::from_secs(3 * 86_400 + 1));
    assert!(fast(&mut sim, &second, 2).contains("<credentials-expired"));
}

/// §3.5: invalidation, without and with a new token.
#[test]
fn fast_invalidation() {
    let cert = TestCert::localhost();
    let mut sim = sim(&cert, false, 25);
    let (_, success) = login(&mut sim, &cert, JULIET, "");
    let token = attr_of(&success, "token", "token").unwrap();
    let (mut d, _) = open(&mut sim, &cert);
    let mut auth = Authenticate::fast("juliet", &token, Some(1));
    auth.fast = Some((Some(1), true));
    auth.request_token = Some("HT-SHA-256-NONE".into());
    d.send(&mut sim, &auth.to_xml());
    let answer = d.recv(&mut sim);
    let fresh = attr_of(&answer, "token", "token").expect(&answer);
    let (mut d, _) = open(&mut sim, &cert);
    d.send(&mut sim, &Authenticate::fast("juliet", &token, Some(2)).to_xml());
    assert!(d.recv(&mut sim).contains("<not-authorized"));
    let (mut d, _) = open(&mut sim, &cert);
    let mut auth = Authenticate::fast("juliet", &fresh, Some(1));
    auth.fast = Some((Some(1), true));
    d.send(&mut sim, &auth.to_xml());
    let answer = d.recv(&mut sim);
    assert!(
        answer.contains("<success") && !answer.contains("<token"),
        "{answer}"
    );
    let (mut d, _) = open(&mut sim, &cert);
    d.send(&mut sim, &Authenticate::fast("juliet", &fresh, Some(2)).to_xml());
    assert!(d.recv(&mut sim).contains("<not-authorized"));
}

/// The server keeps the last count of each token and refuses one not greater.
#[test]
fn fast_count_is_checked_by_the_server() {
    let cert = TestCert::localhost();
    let mut sim = sim(&cert, false, 26);
    let (_, success) = login(&mut sim, &cert, JULIET, "");
    let token = attr_of(&success, "token", "token").unwrap();
    let try_count = |sim: &mut Simulation, count: Option<u64>| {
        let (mut d, _) = open(sim, &cert);
        d.send(sim, &Authenticate::fast("juliet", &token, count).to_xml());
        d.recv(sim)
    };
    assert!(try_count(&mut sim, Some(5)).contains("<success"));
    assert!(try_count(&mut sim, Some(5)).contains("<not-authorized"));
    assert!(try_count(&mut sim, Some(4)).contains("<not-authorized"));
    assert!(try_count(&mut sim, Some(6)).contains("<success"));
    // Outside 0-RTT the count is optional (@xmpp/client sends none).
    assert!(try_count(&mut sim, None).contains("<success"));
}

/// The `<enabled id=.../>` of a success.
fn sm_id(success: &str) -> String {
    attr_of(success, "enabled", "id").expect(success)
}

/// Bodies of the messages in `xml`, in order.
fn bodies(xml: &str) -> Vec<String> {
    xml.split("<body>")
        .skip(1)
        .map(|s| s[..s.find("</body>").unwrap()].to_string())
        .collect()
}

fn chat(sim: &mut Simulation, from: &mut Driver, to: &str, body: &str) {
    from.send(
        sim,
        &format!("<message to='{to}' type='chat'><body>{body}</body></message>"),
    );
}

/// XEP-0198: a cut connection resumes inline in SASL2 with a FAST token; what the
/// client had not acknowledged and what came while it was away arrive, in order.
#[test]
fn sm_resume_after_a_cut_loses_nothing() {
    let cert = TestCert::localhost();
    let mut sim = sim(&cert, false, 31);
    let (mut j, success) = login(&mut sim, &cert, JULIET, "");
    let previd = sm_id(&success);
    let token = attr_of(&success, "token", "token").unwrap();
    j.send(&mut sim, "<presence/>");
    j.recv(&mut sim);
    let (mut r, _) = login(&mut sim, &cert, ROMEO, "");
    for b in ["one", "two", "three"] {
        chat(&mut sim, &mut r, "juliet@localhost", b);
    }
    assert_eq!(bodies(&j.recv(&mut sim)), ["one", "two", "three"]);
    // juliet's h: her own presence came back to her, then "one".
    j.send(&mut sim, "<a xmlns='urn:xmpp:sm:3' h='2'/>");
    sim.disconnect(j.id);
    for b in ["four", "five"] {
        chat(&mut sim, &mut r, "juliet@localhost", b);
    }
    assert!(!r.recv(&mut sim).contains("error"));
    let (mut j2, _) = open(&mut sim, &cert);
    let mut auth = Authenticate::fast("juliet", &token, Some(1));
    auth.resume = Some((previd.clone(), 2));
    auth.bind = Some("<tag>Sim</tag>".into());
    j2.send(&mut sim, &auth.to_xml());
    let answer = j2.recv(&mut sim);
    assert!(
        answer.contains(&format!(
            "<resumed xmlns='urn:xmpp:sm:3' h='1' previd='{previd}'/>"
        )),
        "{answer}"
    );
    assert!(
        !answer.contains("<bound"),
        "a resumed session is not bound again: {answer}"
    );
    assert_eq!(bodies(&answer), ["two", "three", "four", "five"]);
    // The resumed session is the same full JID and receives new messages.
    chat(&mut sim, &mut r, "juliet@localhost", "six");
    assert_eq!(bodies(&j2.recv(&mut sim)), ["six"]);
}

/// XEP-0198 §5 on the legacy path: `<resume/>` after authentication, instead of
/// binding; a second resumption of the same id fails once taken.
#[test]
fn sm_resume_with_the_resume_element() {
    let cert = TestCert::localhost();
    let mut sim = sim(&cert, false, 32);
    let (mut j, success) = login(&mut sim, &cert, JULIET, "");
    let previd = sm_id(&success);
    let (mut r, _) = login(&mut sim, &cert, ROMEO, "");
    let full = element_text(&success, "authorization-identifier")
        .unwrap()
        .to_string();
    chat(&mut sim, &mut r, &full, "to-the-resource");
    assert_eq!(bodies(&j.recv(&mut sim)), ["to-the-resource"]);
    sim.disconnect(j.id);
    let (mut j2, _) = open(&mut sim, &cert);
    j2.send(&mut sim, &Authenticate::plain("juliet", JULIET.1).to_xml());
    let features = j2.recv(&mut sim);
    assert!(features.contains("<sm xmlns='urn:xmpp:sm:3'/>"), "{features}");
    j2.send(
        &mut sim,
        &format!("<resume xmlns='urn:xmpp:sm:3' previd='{previd}' h='0'/>"),
    );
    let resumed = j2.recv(&mut sim);
    assert!(
        resumed.starts_with("<resumed xmlns='urn:xmpp:sm:3' h='0'"),
        "{resumed}"
    );
    assert_eq!(bodies(&resumed), ["to-the-resource"]);
    // Unknown id.
    let (mut j3, _) = open(&mut sim, &cert);
    j3.send(&mut sim, &Authenticate::plain("juliet", JULIET.1).to_xml());
    j3.recv(&mut sim);
    j3.send(&mut sim, "<resume xmlns='urn:xmpp:sm:3' previd='nope' h='0'/>");
    assert!(j3
        .recv(&mut sim)
        .contains("<failed xmlns='urn:xmpp:sm:3'><item-not-found"));
}

/// A resumption while the old connection still looks alive: the old stream ends
/// with `conflict`, the new one gets the session and its unacknowledged stanzas.
#[test]
fn sm_takes_over_a_live_session() {
    let cert = TestCert::localhost();
    let mut sim = sim(&cert, false, 33);
    let (mut j, success) = login(&mut sim, &cert, JULIET, "");
    let previd = sm_id(&success);
    j.send(&mut sim, "<presence/>");
    j.recv(&mut sim);
    let (mut r, _) = login(&mut sim, &cert, ROMEO, "");
    chat(&mut sim, &mut r, "juliet@localhost", "pending");
    assert_eq!(bodies(&j.recv(&mut sim)), ["pending"]);
    let (mut j2, _) = open(&mut sim, &cert);
    let mut auth = Authenticate::plain("juliet", JULIET.1);
    auth.resume = Some((previd, 1));
    j2.send(&mut sim, &auth.to_xml());
    let answer = j2.recv(&mut sim);
    assert!(answer.contains("<resumed"), "{answer}");
    assert_eq!(bodies(&answer), ["pending"]);
    assert!(j.recv(&mut sim).contains("<conflict"));
    assert!(sim.is_closed(j.id));
}

/// At the resumption timeout the session ends: unacknowledged messages go to
/// offline storage and reach the next login; the sender gets no error.
#[test]
fn sm_timeout_moves_unacked_messages_offline() {
    let cert = TestCert::localhost();
    let mut sim = sim(&cert, false, 34);
    let (mut j, _) = login(&mut sim, &cert, JULIET, "");
    j.send(&mut sim, "<presence/>");
    j.recv(&mut sim);
    let (mut r, _) = login(&mut sim, &cert, ROMEO, "");
    chat(&mut sim, &mut r, "juliet@localhost", "unacked");
    assert_eq!(bodies(&j.recv(&mut sim)), ["unacked"]);
    sim.disconnect(j.id);
    chat(&mut sim, &mut r, "juliet@localhost", "while-detached");
    sim.advance(Duration::from_secs(61));
    assert!(!r.recv(&mut sim).contains("type='error'"));
    let (mut j2, _) = login(&mut sim, &cert, JULIET, "");
    j2.send(&mut sim, "<presence/>");
    let got = j2.recv(&mut sim);
    assert_eq!(bodies(&got), ["unacked", "while-detached"]);
    assert!(got.contains("<delay xmlns='urn:xmpp:delay'"), "{got}");
}

/// Past `buffer_max` unacknowledged stanzas the stream ends with
/// resource-constraint, and the stanzas are kept for the user, not lost.
#[test]
fn sm_buffer_limit() {
    let cert = TestCert::localhost();
    let mut config = config(&cert, false);
    config.sm = Some(SmConfig {
        buffer_max: Some(3),
        ..SmConfig::default()
    });
    let mut sim = Simulation::new(config, HubConfig::default(), 35);
    sim.add_user("juliet@localhost", JULIET.1);
    sim.add_user("romeo@localhost", ROMEO.1);
    let (mut j, _) = login(&mut sim, &cert, JULIET, "");
    let (mut r, _) = login(&mut sim, &cert, ROMEO, "");
    j.send(&mut sim, "<presence/>");
    for b in ["1", "2", "3"] {
        chat(&mut sim, &mut r, "juliet@localhost", b);
    }
    let got = j.recv(&mut sim);
    assert!(got.contains("<resource-constraint"), "{got}");
    assert!(sim.is_closed(j.id));
    let (mut j2, _) = login(&mut sim, &cert, JULIET, "");
    j2.send(&mut sim, "<presence/>");
    assert_eq!(bodies(&j2.recv(&mut sim)), ["1", "2", "3"]);
}

/// XEP-0280: the other carbons-enabled resource gets `<received/>` and `<sent/>`
/// copies; a `<private/>` message is not copied.
#[test]
fn carbons_copy_to_the_other_resource() {
    let cert = TestCert::localhost();
    let mut sim = sim(&cert, false, 36);
    let (mut a, sa) = login(&mut sim, &cert, JULIET, "");
    let (mut b, _) = login_as(&mut sim, &cert, JULIET, OTHER_AGENT, "");
    let full_a = element_text(&sa, "authorization-identifier").unwrap().to_string();
    for d in [&mut a, &mut b] {
        d.send(&mut sim, "<presence/>");
    }
    a.recv(&mut sim);
    b.recv(&mut sim);
    let (mut r, _) = login(&mut sim, &cert, ROMEO, "");
    chat(&mut sim, &mut r, &full_a, "to-a");
    assert_eq!(bodies(&a.recv(&mut sim)), ["to-a"]);
    let copy = b.recv(&mut sim);
    assert!(
        copy.contains("<received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message"),
        "{copy}"
    );
    chat(&mut sim, &mut a, "romeo@localhost", "from-a");
    let sent = b.recv(&mut sim);
    assert!(
        sent.contains("<sent xmlns='urn:xmpp:carbons:2'>") && sent.contains("from-a"),
        "{sent}"
    );
    a.send(
        &mut sim,
        "<message to='romeo@localhost' type='chat'><body>secret</body><private xmlns='urn:xmpp:carbons:2'/></message>",
    );
    assert!(!b.recv(&mut sim).contains("secret"));
}

/// XEP-0352: an inactive client gets messages at once but presence only when it
/// becomes active again.
#[test]
fn csi_holds_presence_while_inactive() {
    let cert = TestCert::localhost();
    let mut sim = sim(&cert, false, 37);
    let (mut j, _) = login(&mut sim, &cert, JULIET, "<inactive xmlns='urn:xmpp:csi:0'/>");
    j.send(&mut sim, "<presence/>");
    let own = j.recv(&mut sim);
    assert!(!own.contains("<presence"), "own presence held: {own}");
    let (mut r, _) = login(&mut sim, &cert, ROMEO, "");
    r.send(&mut sim, "<presence type='subscribe' to='juliet@localhost'/>");
    r.recv(&mut sim);
    chat(&mut sim, &mut r, "juliet@localhost", "now");
    let got = j.recv(&mut sim);
    assert_eq!(bodies(&got), ["now"]);
    assert!(!got.contains("<presence"), "{got}");
    j.send(&mut sim, "<active xmlns='urn:xmpp:csi:0'/>");
    let flushed = j.recv(&mut sim);
    assert!(
        flushed.contains("type='subscribe'") && flushed.contains("<presence"),
        "{flushed}"
    );
}

/// A new session binding the same full JID replaces a stream-managed one: what the
/// old one had not acknowledged goes to the new one, nothing is lost.
#[test]
fn sm_replaced_session_hands_its_unacked_stanzas_on() {
    let cert = TestCert::localhost();
    let mut sim = sim(&cert, false, 38);
    let bind = |sim: &mut Simulation, sm: bool| {
        let (mut d, _) = open(sim, &cert);
        d.send(sim, &Authenticate::plain("juliet", JULIET.1).to_xml());
        d.recv(sim);
        d.send(
            sim,
            "<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>balcony</resource></bind></iq>",
        );
        let bound = d.recv(sim);
        assert!(bound.contains("<jid>juliet@localhost/balcony</jid>"), "{bound}");
        if sm {
            d.send(sim, "<enable xmlns='urn:xmpp:sm:3' resume='true'/>");
            assert!(d.recv(sim).contains("<enabled"));
        }
        (d, bound)
    };
    let (mut old, _) = bind(&mut sim, true);
    let (mut r, _) = login(&mut sim, &cert, ROMEO, "");
    chat(&mut sim, &mut r, "juliet@localhost/balcony", "kept");
    assert_eq!(bodies(&old.recv(&mut sim)), ["kept"]);
    // The old session's unacknowledged message goes to the full JID again, now
    // the new session's: it arrives right after the bind result.
    let (_new, bound) = bind(&mut sim, false);
    assert!(old.recv(&mut sim).contains("<conflict"));
    assert_eq!(bodies(&bound), ["kept"]);
}

/// A detached session holds at most `buffer_max` stanzas: past that it ends at
/// once and everything goes to offline storage for the next login.
#[test]
fn sm_detached_session_past_its_buffer_ends_and_keeps_everything() {
    let cert = TestCert::localhost();
    let mut config = config(&cert, false);
    config.sm = Some(SmConfig {
        buffer_max: Some(2),
        ack_freq: None,
        resume_timeout: Duration::from_secs(600),
    });
    let mut sim = Simulation::new(config, HubConfig::default(), 39);
    sim.add_user("juliet@localhost", JULIET.1);
    sim.add_user("romeo@localhost", ROMEO.1);
    let (mut j, success) = login(&mut sim, &cert, JULIET, "");
    let previd = sm_id(&success);
    j.send(&mut sim, "<presence/>");
    j.recv(&mut sim);
    j.send(&mut sim, "<a xmlns='urn:xmpp:sm:3' h='1'/>");
    sim.disconnect(j.id);
    let (mut r, _) = login(&mut sim, &cert, ROMEO, "");
    for b in ["1", "2", "3"] {
        chat(&mut sim, &mut r, "juliet@localhost", b);
    }
    sim.advance(Duration::ZERO);
    // Not resumable any more.
    let (mut j2, _) = open(&mut sim, &cert);
    let mut auth = Authenticate::plain("juliet", JULIET.1);
    auth.resume = Some((previd, 1));
    j2.send(&mut sim, &auth.to_xml());
    let answer = j2.recv(&mut sim);
    assert!(answer.contains("<failed xmlns='urn:xmpp:sm:3'>"), "{answer}");
    // A login without stream management (its buffer of 2 would end it too).
    let (mut j3, _) = open(&mut sim, &cert);
    j3.send(
        &mut sim,
        &Authenticate::plain("juliet", JULIET.1).bind("Sim", "").to_xml(),
    );
    j3.recv(&mut sim);
    j3.send(&mut sim, "<presence/>");
    assert_eq!(bodies(&j3.recv(&mut sim)), ["1", "2", "3"]);
}

/// XEP-0388 §2.3: a stream `from` naming someone else fails the authentication.
#[test]
fn sasl2_stream_from_must_match_the_identity() {
    let cert = TestCert::localhost();
    let mut sim = sim(&cert, false, 40);
    let mut d = Driver::connect_tls(&mut sim, cert.client_config());
    d.send(
        &mut sim,
        &STREAM_OPEN.replace("to='localhost'", "to='localhost' from='romeo@localhost'"),
    );
    d.recv(&mut sim);
    d.send(&mut sim, &Authenticate::plain("juliet", JULIET.1).to_xml());
    assert!(d.recv(&mut sim).contains("<invalid-authzid"));
}

/// XEP-0386 §2.2: a new Bind 2 session of the same client installation ends the
/// earlier one (which gets `conflict`), and what that one had not acknowledged is
/// routed again (here to offline storage, then to the new session). Another
/// installation of the same user is left alone.
#[test]
fn bind2_ends_earlier_sessions_of_the_same_client() {
    let cert = TestCert::localhost();
    let mut sim = sim(&cert, false, 45);
    let (other, _) = login_as(&mut sim, &cert, JULIET, OTHER_AGENT, "");
    let (mut old, success) = login(&mut sim, &cert, JULIET, "");
    let full_old = element_text(&success, "authorization-identifier")
        .unwrap()
        .to_string();
    let (mut r, _) = login(&mut sim, &cert, ROMEO, "");
    chat(&mut sim, &mut r, &full_old, "unacked");
    assert_eq!(bodies(&old.recv(&mut sim)), ["unacked"]);
    let (mut new, _) = login(&mut sim, &cert, JULIET, "");
    assert!(old.recv(&mut sim).contains("<conflict"));
    assert!(sim.is_closed(old.id));
    assert!(!sim.is_closed(other.id));
    new.send(&mut sim, "<presence/>");
    assert_eq!(bodies(&new.recv(&mut sim)), ["unacked"]);
}
