//! Whole exchanges through the public [`SaslServer`] API, against a small client-side
//! SCRAM written here, plus PLAIN and a no-panic property over every mechanism.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use proptest::prelude::*;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::*;

const DOMAIN: &str = "example.com";
const EXPORTER: &[u8] = &[0xE5; 32];
const END_POINT: &[u8] = &[0xE9; 32];

fn rng() -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(5802)
}

fn scram(hash: ScramHash, plus: bool) -> Mechanism {
    Mechanism::Scram { hash, plus }
}

/// A TLS 1.3 connection that advertised everything.
fn context() -> SaslContext {
    SaslContext {
        domain: DOMAIN.into(),
        advertised: Mechanism::ALL.to_vec(),
        channel_bindings: ChannelBindings {
            tls_exporter: Some(EXPORTER.to_vec()),
            tls_server_end_point: Some(END_POINT.to_vec()),
        },
    }
}

/// A connection without TLS (or whose operator offers no -PLUS).
fn context_without_plus() -> SaslContext {
    SaslContext {
        domain: DOMAIN.into(),
        advertised: Mechanism::ALL.into_iter().filter(|m| !m.is_plus()).collect(),
        channel_bindings: ChannelBindings::default(),
    }
}

fn creds(password: &str) -> StoredCredentials {
    StoredCredentials::derive(password, 64, &mut rng())
}

/// A client with the RFC 5802 §5 nonce.
fn client(hash: ScramHash, user: &str, password: &str, gs2_header: &str, cb_data: &[u8]) -> ScramClient {
    ScramClient::new(
        hash,
        user,
        password,
        "fyko+d2lbbFgONRv9qkxdawL",
        gs2_header,
        cb_data.to_vec(),
    )
}

/// Runs a SCRAM exchange to the end; returns the last step, the server's
/// server-final expectation and the server (for `scram_error`).
fn run_scram(
    mechanism: Mechanism,
    ctx: SaslContext,
    c: &mut ScramClient,
    stored: Option<StoredCredentials>,
    initial_response: bool,
) -> (SaslStep, Vec<u8>, SaslServer) {
    let mut rng = rng();
    let first = c.first();
    let (mut server, mut step) = if initial_response {
        SaslServer::start(mechanism, Some(&first), ctx, &mut rng)
    } else {
        let (mut server, step) = SaslServer::start(mechanism, None, ctx, &mut rng);
        assert_eq!(step, SaslStep::Challenge(vec![]));
        let step = server.response(&first, &mut rng);
        (server, step)
    };
    assert_eq!(server.mechanism(), mechanism);
    let SaslStep::NeedCredentials { .. } = step else {
        return (step, vec![], server);
    };
    step = server.credentials(stored, &mut rng);
    let SaslStep::Challenge(server_first) = step else {
        return (step, vec![], server);
    };
    let last = c.finish(&server_first).expect("server-first");
    let expected_v = c.expected_server_final().expect("after finish");
    let step = server.response(&last, &mut rng);
    (step, expected_v, server)
}

fn success(v: Vec<u8>) -> SaslStep {
    SaslStep::Success {
        username: "user".into(),
        additional_data: Some(v),
    }
}

#[test]
fn scram_succeeds_for_every_hash_without_channel_binding() {
    for hash in ScramHash::ALL {
        for initial in [true, false] {
            let mut c = client(hash, "user", "pencil", "n,,", b"");
            let (step, v, server) = run_scram(
                scram(hash, false),
                context_without_plus(),
                &mut c,
                Some(creds("pencil")),
                initial,
            );
            assert_eq!(step, success(v), "{hash:?} initial={initial}");
            assert_eq!(server.scram_error(), None);
        }
    }
}

#[test]
fn scram_plus_succeeds_for_every_hash_and_binding_type() {
    for hash in ScramHash::ALL {
        for (t, data) in [
            (ChannelBindingType::TlsExporter, EXPORTER),
            (ChannelBindingType::TlsServerEndPoint, END_POINT),
        ] {
            let header = format!("p={},,", t.as_str());
            let mut c = client(hash, "user", "pencil", &header, data);
            let (step, v, _) = run_scram(scram(hash, true), context(), &mut c, Some(creds("pencil")), true);
            assert_eq!(step, success(v), "{hash:?} {t:?}");
        }
    }
}

#[test]
fn scram_plain_n_flag_is_fine_when_plus_is_advertised() {
    // A client without channel-binding support picks SCRAM-SHA-256 with `n`.
    let mut c = client(ScramHash::Sha256, "user", "pencil", "n,,", b"");
    let (step, v, _) = run_scram(
        scram(ScramHash::Sha256, false),
        context(),
        &mut c,
        Some(creds("pencil")),
        true,
    );
    assert_eq!(step, success(v));
}

#[test]
fn scram_wrong_password_is_not_authorized() {
    for hash in ScramHash::ALL {
        let mut c = client(hash, "user", "pencil2", "p=tls-exporter,,", EXPORTER);
        let (step, _, server) = run_scram(scram(hash, true), context(), &mut c, Some(creds("pencil")), true);
        assert_eq!(step, SaslStep::Failure(SaslFailure::NotAuthorized));
        assert_eq!(server.scram_error(), Some(ScramError::InvalidProof));
        assert_eq!(ScramError::InvalidProof.server_error(), "invalid-proof");
    }
}

#[test]
fn scram_unknown_user_looks_like_wrong_password() {
    let mut c = client(ScramHash::Sha256, "nobody", "pencil", "n,,", b"");
    let (step, _, server) = run_scram(scram(ScramHash::Sha256, false), context(), &mut c, None, true);
    assert_eq!(step, SaslStep::Failure(SaslFailure::NotAuthorized));
    assert_eq!(server.scram_error(), Some(ScramError::InvalidProof));
}

/// The server-first-message for `user` with a server secret and a fresh rng.
fn server_first_with_secret(user: &str, stored: Option<StoredCredentials>, seed: u64) -> String {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let first = format!("n,,n={user},r=abc");
    let (mut server, _) = SaslServer::start_with_server_secret(
        scram(ScramHash::Sha256, false),
        Some(first.as_bytes()),
        context(),
        b"server secret",
        &mut rng,
    );
    let SaslStep::Challenge(sf) = server.credentials(stored, &mut rng) else {
        panic!("expected server-first");
    };
    String::from_utf8(sf).unwrap()
}

fn salt_and_iterations(server_first: &str) -> Vec<&str> {
    server_first
        .split(',')
        .filter(|a| a.starts_with("s=") || a.starts_with("i="))
        .collect()
}

#[test]
fn scram_unknown_user_salt_is_stable_with_a_server_secret() {
    let a = server_first_with_secret("nobody", None, 1);
    let b = server_first_with_secret("nobody", None, 2);
    assert_ne!(a, b, "nonces differ");
    assert_eq!(salt_and_iterations(&a), salt_and_iterations(&b));
    assert_ne!(
        salt_and_iterations(&a),
        salt_and_iterations(&server_first_with_secret("somebody", None, 1))
    );
    // Same shape as a real user's: 16-byte salt, default iterations.
    let real = StoredCredentials::derive("pw", DEFAULT_ITERATIONS, &mut rng());
    let r = server_first_with_secret("user", Some(real), 1);
    let (fake, real) = (salt_and_iterations(&a), salt_and_iterations(&r));
    assert_eq!(fake[0].len(), real[0].len());
    assert_eq!(fake[1], real[1]);
}

#[test]
fn scram_rejects_wrong_channel_binding_data() {
    let mut c = client(ScramHash::Sha256, "user", "pencil", "p=tls-exporter,,", b"other");
    let (step, _, server) = run_scram(
        scram(ScramHash::Sha256, true),
        context(),
        &mut c,
        Some(creds("pencil")),
        true,
    );
    assert_eq!(step, SaslStep::Failure(SaslFailure::NotAuthorized));
    assert_eq!(server.scram_error(), Some(ScramError::ChannelBindingsDontMatch));
    // A `c=` that drops the binding data but keeps the header fails the same way.
    let mut c = c.with_forged_binding(b"p=tls-exporter,,".to_vec());
    let (step, _, _) = run_scram(
        scram(ScramHash::Sha256, true),
        context(),
        &mut c,
        Some(creds("pencil")),
        true,
    );
    assert_eq!(step, SaslStep::Failure(SaslFailure::NotAuthorized));
}

#[test]
fn scram_c_must_echo_the_gs2_header() {
    let mut c = client(ScramHash::Sha1, "user", "pencil", "n,a=user@example.com,", b"")
        .with_forged_binding(b"n,,".to_vec());
    let (step, _, server) = run_scram(
        scram(ScramHash::Sha1, false),
        context(),
        &mut c,
        Some(creds("pencil")),
        true,
    );
    assert_eq!(step, SaslStep::Failure(SaslFailure::NotAuthorized));
    assert_eq!(server.scram_error(), Some(ScramError::ChannelBindingsDontMatch));
}

#[test]
fn scram_rejects_unavailable_and_unknown_binding_types() {
    let mut ctx = context();
    ctx.channel_bindings.tls_exporter = None; // TLS 1.2: no exporter binding
    let mut c = client(ScramHash::Sha256, "user", "pencil", "p=tls-exporter,,", EXPORTER);
    let (step, _, server) = run_scram(
        scram(ScramHash::Sha256, true),
        ctx,
        &mut c,
        Some(creds("pencil")),
        true,
    );
    assert_eq!(step, SaslStep::Failure(SaslFailure::NotAuthorized));
    assert_eq!(server.scram_error(), Some(ScramError::ChannelBindingUnavailable));

    let mut c = client(ScramHash::Sha256, "user", "pencil", "p=tls-unique,,", b"x");
    let (step, _, server) = run_scram(
        scram(ScramHash::Sha256, true),
        context(),
        &mut c,
        Some(creds("pencil")),
        true,
    );
    assert_eq!(step, SaslStep::Failure(SaslFailure::NotAuthorized));
    assert_eq!(
        server.scram_error(),
        Some(ScramError::UnsupportedChannelBindingType)
    );
}

#[test]
fn scram_y_flag_is_a_downgrade_when_plus_was_advertised() {
    let mut c = client(ScramHash::Sha256, "user", "pencil", "y,,", b"");
    let (step, _, server) = run_scram(
        scram(ScramHash::Sha256, false),
        context(),
        &mut c,
        Some(creds("pencil")),
        true,
    );
    assert_eq!(step, SaslStep::Failure(SaslFailure::NotAuthorized));
    assert_eq!(server.scram_error(), Some(ScramError::Downgrade));
    assert_eq!(
        ScramError::Downgrade.server_error(),
        "server-does-support-channel-binding"
    );
    // Without -PLUS advertised, `y` is what a binding-capable client must send.
    let (step, v, _) = run_scram(
        scram(ScramHash::Sha256, false),
        context_without_plus(),
        &mut c,
        Some(creds("pencil")),
        true,
    );
    assert_eq!(step, success(v));
}

#[test]
fn scram_flag_must_match_plus() {
    let mut c = client(ScramHash::Sha256, "user", "pencil", "p=tls-exporter,,", EXPORTER);
    let (step, _, server) = run_scram(
        scram(ScramHash::Sha256, false),
        context(),
        &mut c,
        Some(creds("pencil")),
        true,
    );
    assert_eq!(step, SaslStep::Failure(SaslFailure::MalformedRequest));
    assert_eq!(server.scram_error(), Some(ScramError::FlagMismatch));
    for header in ["n,,", "y,,"] {
        let mut c = client(ScramHash::Sha256, "user", "pencil", header, b"");
        let (step, _, _) = run_scram(
            scram(ScramHash::Sha256, true),
            context(),
            &mut c,
            Some(creds("pencil")),
            true,
        );
        assert_eq!(step, SaslStep::Failure(SaslFailure::MalformedRequest), "{header}");
    }
}

#[test]
fn scram_authzid_must_be_the_users_bare_jid() {
    for (authzid, ok) in [
        ("user@example.com", true),
        ("USER@Example.COM", true),
        ("other@example.com", false),
        ("user@example.org", false),
        ("user@example.com/res", false),
        ("example.com", false),
    ] {
        let header = format!("n,a={authzid},");
        let mut c = client(ScramHash::Sha1, "user", "pencil", &header, b"");
        let (step, v, _) = run_scram(
            scram(ScramHash::Sha1, false),
            context_without_plus(),
            &mut c,
            Some(creds("pencil")),
            true,
        );
        if ok {
            assert_eq!(step, success(v), "{authzid}");
        } else {
            assert_eq!(step, SaslStep::Failure(SaslFailure::InvalidAuthzid), "{authzid}");
        }
    }
}

#[test]
fn scram_username_is_prepared_like_a_localpart() {
    let mut rng = rng();
    for (sent, expected) in [
        ("USER", Some("user")),
        ("user@example.com", Some("user")),
        ("user@EXAMPLE.com", Some("user")),
        ("user@example.org", None),
        ("us er", None),
        ("us=2Cer", Some("us,er")),
        ("us=3Der", Some("us=er")),
    ] {
        let first = format!("n,,n={sent},r=abc");
        let (_, step) = SaslServer::start(
            scram(ScramHash::Sha256, false),
            Some(first.as_bytes()),
            context(),
            &mut rng,
        );
        match expected {
            Some(u) => assert_eq!(step, SaslStep::NeedCredentials { username: u.into() }),
            None => assert_eq!(step, SaslStep::Failure(SaslFailure::NotAuthorized), "{sent}"),
        }
    }
    let (_, step) = SaslServer::start(
        scram(ScramHash::Sha256, false),
        Some(b"n,,n=us=41er,r=abc"),
        context(),
        &mut rng,
    );
    assert_eq!(step, SaslStep::Failure(SaslFailure::MalformedRequest));
}

#[test]
fn scram_rejects_nonce_mismatch_and_malformed_final() {
    let mut rng = rng();
    let mut c = client(ScramHash::Sha256, "user", "pencil", "n,,", b"");
    let first = c.first();
    let start = |rng: &mut ChaCha8Rng| {
        let (mut s, _) = SaslServer::start(
            scram(ScramHash::Sha256, false),
            Some(&first),
            context_without_plus(),
            rng,
        );
        let SaslStep::Challenge(sf) = s.credentials(Some(creds("pencil")), rng) else {
            panic!()
        };
        (s, sf)
    };
    let (mut s, sf) = start(&mut rng);
    let last = c.finish(&sf).expect("server-first");
    let tampered = String::from_utf8(last).unwrap().replacen("r=fyko", "r=fykO", 1);
    assert_eq!(
        s.response(tampered.as_bytes(), &mut rng),
        SaslStep::Failure(SaslFailure::NotAuthorized)
    );
    assert_eq!(s.scram_error(), Some(ScramError::NonceMismatch));

    let (mut s, _) = start(&mut rng);
    assert_eq!(
        s.response(b"c=biws,p=AAAA", &mut rng),
        SaslStep::Failure(SaslFailure::MalformedRequest)
    );

    // A proof of the wrong length is a wrong proof.
    let (mut s, sf) = start(&mut rng);
    let last = c.finish(&sf).expect("server-first");
    let last = String::from_utf8(last).unwrap();
    let short = format!("{},p=AAAA", last.rsplit_once(",p=").unwrap().0);
    assert_eq!(
        s.response(short.as_bytes(), &mut rng),
        SaslStep::Failure(SaslFailure::NotAuthorized)
    );
}

#[test]
fn scram_server_first_carries_the_xep0474_hash() {
    let mut rng = rng();
    let ctx = context();
    let (mut s, _) = SaslServer::start(
        scram(ScramHash::Sha512, true),
        Some(b"p=tls-exporter,,n=user,r=abc"),
        ctx.clone(),
        &mut rng,
    );
    let SaslStep::Challenge(sf) = s.credentials(Some(creds("pencil")), &mut rng) else {
        panic!()
    };
    let sf = String::from_utf8(sf).unwrap();
    let names: Vec<&str> = ctx.advertised.iter().map(|m| m.name()).collect();
    let expected = ssdp::downgrade_protection_hash(
        ScramHash::Sha512,
        &names,
        Some(&["tls-exporter", "tls-server-end-point"]),
    );
    assert!(sf.ends_with(&format!(",h={expected}")), "{sf}");
    // The nonce: client part then at least 24 random bytes, printable, no comma.
    let nonce = sf.split(',').next().unwrap().strip_prefix("r=abc").unwrap();
    assert!(BASE64.decode(nonce).unwrap().len() >= 24);
}

#[test]
fn scram_messages_out_of_order_fail_cleanly() {
    let mut rng = rng();
    let (mut s, step) = SaslServer::start(
        scram(ScramHash::Sha1, false),
        Some(b"n,,n=user,r=abc"),
        context(),
        &mut rng,
    );
    assert!(matches!(step, SaslStep::NeedCredentials { .. }));
    assert_eq!(
        s.response(b"c=biws,r=abc,p=AAAA", &mut rng),
        SaslStep::Failure(SaslFailure::MalformedRequest)
    );
    assert_eq!(
        s.credentials(None, &mut rng),
        SaslStep::Failure(SaslFailure::MalformedRequest)
    );
    let (mut s, _) = SaslServer::start(scram(ScramHash::Sha1, false), None, context(), &mut rng);
    assert_eq!(
        s.credentials(None, &mut rng),
        SaslStep::Failure(SaslFailure::MalformedRequest)
    );
}

fn plain(message: &[u8], stored: Option<StoredCredentials>) -> SaslStep {
    let mut rng = rng();
    let (mut s, step) = SaslServer::start(Mechanism::Plain, Some(message), context(), &mut rng);
    match step {
        SaslStep::NeedCredentials { .. } => s.credentials(stored, &mut rng),
        other => other,
    }
}

fn plain_success() -> SaslStep {
    SaslStep::Success {
        username: "user".into(),
        additional_data: None,
    }
}

#[test]
fn plain_accepts_the_right_password() {
    assert_eq!(plain(b"\0user\0pencil", Some(creds("pencil"))), plain_success());
    assert_eq!(
        plain(b"\0User@Example.com\0pencil", Some(creds("pencil"))),
        plain_success()
    );
    assert_eq!(
        plain(b"user@example.com\0user\0pencil", Some(creds("pencil"))),
        plain_success()
    );
}

#[test]
fn plain_after_an_empty_challenge() {
    let mut rng = rng();
    let (mut s, step) = SaslServer::start(Mechanism::Plain, None, context(), &mut rng);
    assert_eq!(step, SaslStep::Challenge(vec![]));
    assert_eq!(
        s.response(b"\0user\0pencil", &mut rng),
        SaslStep::NeedCredentials {
            username: "user".into()
        }
    );
    assert_eq!(s.credentials(Some(creds("pencil")), &mut rng), plain_success());
    assert_eq!(s.mechanism(), Mechanism::Plain);
    assert_eq!(s.scram_error(), None);
}

#[test]
fn plain_rejects_wrong_password_and_unknown_user() {
    let wrong = SaslStep::Failure(SaslFailure::NotAuthorized);
    assert_eq!(plain(b"\0user\0pencil2", Some(creds("pencil"))), wrong);
    assert_eq!(plain(b"\0user\0pencil", None), wrong);
    assert_eq!(plain(b"\0user@example.org\0pencil", Some(creds("pencil"))), wrong);
    assert_eq!(plain(b"\0us er\0pencil", Some(creds("pencil"))), wrong);
}

#[test]
fn plain_rejects_a_foreign_authzid() {
    for authzid in [
        "other@example.com",
        "user@example.org",
        "user@example.com/r",
        "user",
        "@@",
    ] {
        let msg = format!("{authzid}\0user\0pencil");
        assert_eq!(
            plain(msg.as_bytes(), Some(creds("pencil"))),
            SaslStep::Failure(SaslFailure::InvalidAuthzid),
            "{authzid}"
        );
    }
}

#[test]
fn plain_rejects_malformed_messages() {
    for bad in [
        &b""[..],
        b"user",
        b"\0user",
        b"\0user\0",
        b"\0\0pencil",
        b"\0user\0pencil\0",
        b"a\0b\0c\0d",
        b"\0us\xffer\0pencil",
    ] {
        assert_eq!(
            plain(bad, Some(creds("pencil"))),
            SaslStep::Failure(SaslFailure::MalformedRequest),
            "{bad:?}"
        );
    }
}

#[test]
fn plain_second_response_fails_cleanly() {
    let mut rng = rng();
    let (mut s, _) = SaslServer::start(Mechanism::Plain, Some(b"\0user\0pencil"), context(), &mut rng);
    assert_eq!(
        s.response(b"\0user\0pencil", &mut rng),
        SaslStep::Failure(SaslFailure::MalformedRequest)
    );
}

proptest! {
    /// Random bytes at every step of every mechanism, with or without credentials,
    /// never panic.
    #[test]
    fn random_input_never_panics(
        mechanism in prop::sample::select(Mechanism::ALL.to_vec()),
        initial in prop::option::of(prop::collection::vec(any::<u8>(), 0..120)),
        responses in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..120), 0..4),
        with_creds in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (mut s, mut step) = SaslServer::start(mechanism, initial.as_deref(), context(), &mut rng);
        for r in &responses {
            step = match step {
                SaslStep::NeedCredentials { .. } => s.credentials(with_creds.then(|| creds("pencil")), &mut rng),
                _ => s.response(r, &mut rng),
            };
        }
        let _ = s.credentials(None, &mut rng);
        let _ = s.scram_error();
    }

    /// Near-valid SCRAM messages (valid prefixes with random tails) never panic.
    #[test]
    fn mutated_scram_messages_never_panic(
        plus in any::<bool>(),
        first_tail in "[a-zA-Z0-9=,@.+/-]{0,40}",
        final_tail in "[a-zA-Z0-9=,@.+/-]{0,60}",
    ) {
        let mut rng = rng();
        let header = if plus { "p=tls-exporter," } else { "n," };
        let first = format!("{header}{first_tail}");
        let (mut s, step) = SaslServer::start(scram(ScramHash::Sha1, plus), Some(first.as_bytes()), context(), &mut rng);
        if let SaslStep::NeedCredentials { .. } = step {
            let _ = s.credentials(Some(creds("pencil")), &mut rng);
            let _ = s.response(format!("c=biws,{final_tail}").as_bytes(), &mut rng);
        }
    }
}
