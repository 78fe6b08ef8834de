//! Every SASL server mechanism fed arbitrary client messages (RFC 4422 exchanges as
//! the C2S stream and SASL2 run them): no panic, every exchange ends in success or a
//! RFC 6120 §6.5 failure, and nothing but the right password authenticates.

use meerkat_engine::sasl::{
    ChannelBindings, Mechanism, SaslContext, SaslServer, SaslStep, StoredCredentials,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const PASSWORD: &str = "pencil";

/// Panics if a mechanism panics, loops, or authenticates without the password. For
/// SCRAM that means never: a fuzzer cannot compute a client proof, so a SCRAM
/// success would be a forged proof accepted.
pub fn sasl_server(data: &[u8]) {
    let Some((&flags, input)) = data.split_first() else {
        return;
    };
    let mechanism = Mechanism::ALL[flags as usize % Mechanism::ALL.len()];
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let context = SaslContext {
        domain: "localhost".into(),
        advertised: Mechanism::ALL.to_vec(),
        channel_bindings: ChannelBindings {
            tls_exporter: Some(vec![7; 32]),
            tls_server_end_point: Some(vec![9; 32]),
        },
    };
    let user_exists = flags & 0x80 == 0;
    // Messages are separated by 0xFE; an empty first message with bit 6 set means
    // "no initial response".
    let mut messages = input.split(|&b| b == 0xFE);
    let first = messages.next().unwrap_or_default();
    let initial = if first.is_empty() && flags & 0x40 != 0 {
        None
    } else {
        Some(first)
    };
    let (mut server, mut step) =
        SaslServer::start_with_server_secret(mechanism, initial, context, b"fuzz", &mut rng);
    let mut rounds = 0;
    loop {
        rounds += 1;
        assert!(rounds < 64, "the exchange does not end");
        step = match step {
            SaslStep::NeedCredentials { ref username } => {
                let creds = (user_exists && username == "user")
                    .then(|| StoredCredentials::derive(PASSWORD, 1, &mut rng));
                server.credentials(creds, &mut rng)
            }
            SaslStep::Challenge(_) => match messages.next() {
                Some(m) => server.response(m, &mut rng),
                None => return,
            },
            SaslStep::Success { username, .. } => {
                assert!(
                    user_exists && username == "user",
                    "authenticated {username} with no account"
                );
                let said_password = input.windows(PASSWORD.len()).any(|w| w == PASSWORD.as_bytes());
                assert!(
                    matches!(mechanism, Mechanism::Plain) && said_password,
                    "{mechanism:?} authenticated without the password"
                );
                return;
            }
            SaslStep::Failure(condition) => {
                assert!(!condition.condition().is_empty());
                return;
            }
        };
    }
}
