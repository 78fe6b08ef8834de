//! SCRAM (RFC 5802, RFC 7677) server side: SCRAM-SHA-1, -SHA-256, -SHA-512 and their
//! `-PLUS` variants with `tls-exporter` (RFC 9266) and `tls-server-end-point`
//! (RFC 5929) channel bindings, the downgrade checks of RFC 5802 §6, and the
//! XEP-0474 downgrade protection hash in the server-first-message.
//!
//! The exchange, in the server's words:
//!
//! 1. client-first-message (`gs2-header n=user,r=cnonce`): checked, then the
//!    caller is asked for the user's credentials ([`SaslStep::NeedCredentials`]);
//! 2. credentials arrive: the server-first-message (`r=cnonce+snonce,s=salt,i=n,h=...`)
//!    is the challenge. Unknown users get one too, with a salt derived from the
//!    server secret and the username, so that they look like real users;
//! 3. client-final-message (`c=...,r=...,p=proof`): checked, and the
//!    server-final-message (`v=signature`) goes out as additional data of success.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

use super::hash::constant_time_eq;
use super::scram_message::{parse_client_final, parse_client_first, CbFlag, ScramError};
use super::{
    prepare_authcid, ssdp, valid_authzid, Mechanism, SaslContext, SaslStep, ScramCredential, ScramHash,
    DEFAULT_ITERATIONS,
};

/// Length of the salt given to unknown users (the same as for real users).
const MOCK_SALT_LEN: usize = super::SALT_LEN;

/// One SCRAM exchange, server side.
pub(crate) struct ScramServer {
    hash: ScramHash,
    plus: bool,
    context: SaslContext,
    /// Secret from which unknown users' salts and keys are derived.
    server_secret: Vec<u8>,
    /// Our part of the nonce (RFC 5802 §5.1 `r`), printable, without commas.
    server_nonce: String,
    state: State,
    error: Option<ScramError>,
}

enum State {
    AwaitClientFirst,
    AwaitCredentials(ClientFirstFacts),
    AwaitClientFinal {
        facts: ClientFirstFacts,
        credential: ScramCredential,
        /// False for the mock credential of an unknown user: never succeeds.
        known: bool,
        server_first: String,
    },
    Done,
}

/// What the client-first-message established, owned.
struct ClientFirstFacts {
    username: String,
    bare: String,
    client_nonce: String,
    /// What `c=` must decode to: GS2 header, then channel-binding data for `p`.
    expected_cbind_input: Vec<u8>,
}

impl ScramServer {
    /// A new exchange for `hash` (`plus`: the `-PLUS` variant). `server_secret` keys
    /// the mock credentials of unknown users; `server_nonce` must be printable ASCII
    /// without commas (RFC 5802 §7 `printable`).
    pub(crate) fn new(
        hash: ScramHash,
        plus: bool,
        context: SaslContext,
        server_secret: Vec<u8>,
        server_nonce: String,
    ) -> Self {
        Self {
            hash,
            plus,
            context,
            server_secret,
            server_nonce,
            state: State::AwaitClientFirst,
            error: None,
        }
    }

    /// The mechanism of this exchange.
    pub(crate) fn mechanism(&self) -> Mechanism {
        Mechanism::Scram {
            hash: self.hash,
            plus: self.plus,
        }
    }

    /// The hash of this exchange.
    pub(crate) fn hash(&self) -> ScramHash {
        self.hash
    }

    /// Why the exchange failed, once it has.
    pub(crate) fn error(&self) -> Option<ScramError> {
        self.error
    }

    /// The `<auth/>` element: SCRAM is client-first (RFC 5802 §5), so without an
    /// initial response the server sends an empty challenge (RFC 6120 §6.4.2).
    pub(crate) fn start(&mut self, initial_response: Option<&[u8]>) -> SaslStep {
        match initial_response {
            None => SaslStep::Challenge(Vec::new()),
            Some(data) => self.client_first(data),
        }
    }

    /// A `<response/>`: the client-first-message after an empty challenge, or the
    /// client-final-message.
    pub(crate) fn response(&mut self, data: &[u8]) -> SaslStep {
        match std::mem::replace(&mut self.state, State::Done) {
            State::AwaitClientFirst => self.client_first(data),
            State::AwaitClientFinal {
                facts,
                credential,
                known,
                server_first,
            } => self.client_final(data, &facts, &credential, known, &server_first),
            State::AwaitCredentials(_) | State::Done => self.fail(ScramError::UnexpectedMessage),
        }
    }

    /// The answer to [`SaslStep::NeedCredentials`]: the credential of our hash, or
    /// `None` when the user (or their credential for this hash) does not exist.
    pub(crate) fn credentials(&mut self, credential: Option<&ScramCredential>) -> SaslStep {
        let State::AwaitCredentials(facts) = std::mem::replace(&mut self.state, State::Done) else {
            return self.fail(ScramError::UnexpectedMessage);
        };
        let usable = credential.filter(|c| {
            c.hash == self.hash
                && c.iterations > 0
                && c.stored_key.len() == self.hash.output_len()
                && c.server_key.len() == self.hash.output_len()
        });
        let (credential, known) = match usable {
            Some(c) => (c.clone(), true),
            None => (self.mock_credential(&facts.username), false),
        };
        let mut server_first = format!(
            "r={}{},s={},i={}",
            facts.client_nonce,
            self.server_nonce,
            BASE64.encode(&credential.salt),
            credential.iterations
        );
        if let Some(h) = self.downgrade_protection_hash() {
            server_first.push_str(&format!(",{}={h}", ssdp::ATTRIBUTE));
        }
        let step = SaslStep::Challenge(server_first.clone().into_bytes());
        self.state = State::AwaitClientFinal {
            facts,
            credential,
            known,
            server_first,
        };
        step
    }

    fn client_first(&mut self, data: &[u8]) -> SaslStep {
        match self.check_client_first(data) {
            Ok(facts) => {
                let username = facts.username.clone();
                self.state = State::AwaitCredentials(facts);
                SaslStep::NeedCredentials { username }
            }
            Err(e) => self.fail(e),
        }
    }

    /// RFC 5802 §5.1 and §6: grammar, channel-binding flag against the mechanism and
    /// what was advertised, binding type against this connection, username, authzid.
    fn check_client_first(&self, data: &[u8]) -> Result<ClientFirstFacts, ScramError> {
        let msg = parse_client_first(data)?;
        let cb_data: &[u8] = match (self.plus, msg.flag) {
            (true, CbFlag::Required(name)) => {
                let t = CbFlag::binding_type(name).ok_or(ScramError::UnsupportedChannelBindingType)?;
                self.context
                    .channel_bindings
                    .get(t)
                    .ok_or(ScramError::ChannelBindingUnavailable)?
            }
            (true, CbFlag::None | CbFlag::ClientOnly) | (false, CbFlag::Required(_)) => {
                return Err(ScramError::FlagMismatch)
            }
            (false, CbFlag::ClientOnly) => {
                let plus_advertised = self
                    .context
                    .advertised
                    .iter()
                    .any(|m| matches!(m, Mechanism::Scram { plus: true, .. }));
                if plus_advertised {
                    return Err(ScramError::Downgrade);
                }
                &[]
            }
            (false, CbFlag::None) => &[],
        };
        let username = prepare_authcid(&msg.username, &self.context.domain).ok_or(ScramError::BadUsername)?;
        if let Some(authzid) = &msg.authzid {
            if !valid_authzid(authzid, &username, &self.context.domain) {
                return Err(ScramError::InvalidAuthzid);
            }
        }
        let mut expected_cbind_input = msg.gs2_header.as_bytes().to_vec();
        expected_cbind_input.extend_from_slice(cb_data);
        Ok(ClientFirstFacts {
            username,
            bare: msg.bare.to_owned(),
            client_nonce: msg.nonce.to_owned(),
            expected_cbind_input,
        })
    }

    /// RFC 5802 §5.1 `c`, `r`, `p` and §3: ClientKey = proof XOR
    /// HMAC(StoredKey, AuthMessage) must hash to StoredKey.
    fn client_final(
        &mut self,
        data: &[u8],
        facts: &ClientFirstFacts,
        credential: &ScramCredential,
        known: bool,
        server_first: &str,
    ) -> SaslStep {
        let msg = match parse_client_final(data) {
            Ok(m) => m,
            Err(e) => return self.fail(e),
        };
        if !constant_time_eq(&msg.channel_binding, &facts.expected_cbind_input) {
            return self.fail(ScramError::ChannelBindingsDontMatch);
        }
        let expected_nonce_len = facts.client_nonce.len() + self.server_nonce.len();
        let nonce_ok = msg.nonce.len() == expected_nonce_len
            && msg.nonce.starts_with(facts.client_nonce.as_str())
            && msg.nonce.ends_with(self.server_nonce.as_str());
        if !nonce_ok {
            return self.fail(ScramError::NonceMismatch);
        }
        let auth_message: [&[u8]; 5] = [
            facts.bare.as_bytes(),
            b",",
            server_first.as_bytes(),
            b",",
            msg.without_proof.as_bytes(),
        ];
        let client_signature = self.hash.hmac(&credential.stored_key, &auth_message);
        if msg.proof.len() != client_signature.len() {
            return self.fail(ScramError::InvalidProof);
        }
        let client_key: Vec<u8> = msg
            .proof
            .iter()
            .zip(&client_signature)
            .map(|(p, s)| p ^ s)
            .collect();
        let proof_ok = constant_time_eq(&self.hash.digest(&client_key), &credential.stored_key);
        if !(proof_ok && known) {
            return self.fail(ScramError::InvalidProof);
        }
        let server_signature = self.hash.hmac(&credential.server_key, &auth_message);
        SaslStep::Success {
            username: facts.username.clone(),
            additional_data: Some(format!("v={}", BASE64.encode(server_signature)).into_bytes()),
        }
    }

    /// XEP-0474 §3.1 over what this stream advertised; `None` when the caller did not
    /// say what it advertised (then the hash would describe nothing).
    fn downgrade_protection_hash(&self) -> Option<String> {
        if self.context.advertised.is_empty() {
            return None;
        }
        let mechanisms: Vec<&str> = self.context.advertised.iter().map(|m| m.name()).collect();
        let types = self.context.channel_bindings.types();
        let type_names: Vec<&str> = types.iter().map(|t| t.as_str()).collect();
        let bindings = (!type_names.is_empty()).then_some(type_names.as_slice());
        Some(ssdp::downgrade_protection_hash(self.hash, &mechanisms, bindings))
    }

    /// Credentials for a user that does not exist, derived from the server secret and
    /// the username so that repeated attempts see the same salt, as for a real user
    /// (RFC 5802 §9 on account enumeration). They never verify (`known` is false).
    fn mock_credential(&self, username: &str) -> ScramCredential {
        // Keyed by the hash, not the mechanism: a real user has one salt for
        // SCRAM-SHA-256 and SCRAM-SHA-256-PLUS, so an unknown one must too.
        let family = Mechanism::Scram {
            hash: self.hash,
            plus: false,
        }
        .name();
        let derive = |label: &[u8]| {
            let parts: [&[u8]; 5] = [label, b"\0", family.as_bytes(), b"\0", username.as_bytes()];
            self.hash.hmac(&self.server_secret, &parts)
        };
        let mut salt = derive(b"salt");
        salt.truncate(MOCK_SALT_LEN);
        ScramCredential {
            hash: self.hash,
            salt,
            iterations: DEFAULT_ITERATIONS,
            stored_key: derive(b"stored key"),
            server_key: derive(b"server key"),
        }
    }

    fn fail(&mut self, error: ScramError) -> SaslStep {
        self.state = State::Done;
        self.error = Some(error);
        SaslStep::Failure(error.failure())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sasl::{ChannelBindings, SaslFailure};

    fn b64(s: &str) -> Vec<u8> {
        BASE64.decode(s).unwrap()
    }

    /// Runs the server through the three messages of a published example and checks
    /// every server message byte for byte.
    #[allow(clippy::too_many_arguments)]
    fn replay(
        hash: ScramHash,
        plus: bool,
        context: SaslContext,
        server_nonce: &str,
        salt: &str,
        client_first: &str,
        server_first: &str,
        client_final: &str,
        server_final: &str,
    ) {
        let credential = ScramCredential::derive(hash, b"pencil", b64(salt), 4096);
        let mut s = ScramServer::new(hash, plus, context, vec![7; 32], server_nonce.to_owned());
        assert_eq!(
            s.start(Some(client_first.as_bytes())),
            SaslStep::NeedCredentials {
                username: "user".into()
            }
        );
        assert_eq!(
            s.credentials(Some(&credential)),
            SaslStep::Challenge(server_first.as_bytes().to_vec())
        );
        assert_eq!(
            s.response(client_final.as_bytes()),
            SaslStep::Success {
                username: "user".into(),
                additional_data: Some(server_final.as_bytes().to_vec()),
            }
        );
        assert_eq!(s.error(), None);
    }

    #[test]
    fn rfc5802_section5_example() {
        replay(
            ScramHash::Sha1,
            false,
            SaslContext::default(),
            "3rfcNHYJY1ZVvWVs7j",
            "QSXCR+Q6sek8bf92",
            "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
            "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
            "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
            "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
        );
    }

    #[test]
    fn rfc7677_section3_example() {
        replay(
            ScramHash::Sha256,
            false,
            SaslContext::default(),
            "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
            "W22ZaJ0SNY7soEsUEjb6gQ==",
            "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
             p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
            "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
        );
    }

    #[test]
    fn xep0474_example_with_plus_and_downgrade_hash() {
        // XEP-0474 §3.3: SCRAM-SHA-1-PLUS over tls-exporter, with an `x=` extension in
        // the client-final-message and `h=` in the server-first-message.
        let context = SaslContext {
            domain: "example.org".into(),
            advertised: vec![
                Mechanism::Scram {
                    hash: ScramHash::Sha1,
                    plus: false,
                },
                Mechanism::Scram {
                    hash: ScramHash::Sha1,
                    plus: true,
                },
            ],
            channel_bindings: ChannelBindings {
                tls_exporter: Some(b"THIS IS FAKE CB DATA".to_vec()),
                tls_server_end_point: Some(vec![1; 32]),
            },
        };
        replay(
            ScramHash::Sha1,
            true,
            context,
            "a09117a6-ac50-4f2f-93f1-93799c2bddf6",
            "QSXCR+Q6sek8bf92",
            "p=tls-exporter,,n=user,r=12C4CD5C-E38E-4A98-8F6D-15C38F51CCC6",
            "r=12C4CD5C-E38E-4A98-8F6D-15C38F51CCC6a09117a6-ac50-4f2f-93f1-93799c2bddf6,\
             s=QSXCR+Q6sek8bf92,i=4096,h=G6k/rBLDqgOhRRaCuuatSDFkJ08=",
            "c=cD10bHMtZXhwb3J0ZXIsLFRISVMgSVMgRkFLRSBDQiBEQVRB,\
             r=12C4CD5C-E38E-4A98-8F6D-15C38F51CCC6a09117a6-ac50-4f2f-93f1-93799c2bddf6,\
             x=19C6532F-1CF4-4A27-A18D-DC9CEA41BBB3,p=M/SIDjT+dfcxUh89jZEypRvFxB4=",
            "v=MQrMPvv7yv4x4Cq4W4Ih25EqS2c=",
        );
    }

    #[test]
    fn rfc5802_example_with_wrong_proof_fails() {
        let credential = ScramCredential::derive(ScramHash::Sha1, b"pencil", b64("QSXCR+Q6sek8bf92"), 4096);
        let mut s = ScramServer::new(
            ScramHash::Sha1,
            false,
            SaslContext::default(),
            vec![],
            "3rfcNHYJY1ZVvWVs7j".into(),
        );
        s.start(Some(b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL"));
        s.credentials(Some(&credential));
        let step =
            s.response(b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI5Ts=");
        assert_eq!(step, SaslStep::Failure(SaslFailure::NotAuthorized));
        assert_eq!(s.error(), Some(ScramError::InvalidProof));
        // The exchange is over: anything more is unexpected, not a panic.
        assert_eq!(s.response(b"x"), SaslStep::Failure(SaslFailure::MalformedRequest));
        assert_eq!(
            s.credentials(None),
            SaslStep::Failure(SaslFailure::MalformedRequest)
        );
    }

    #[test]
    fn credential_for_another_hash_is_treated_as_unknown() {
        let credential = ScramCredential::derive(ScramHash::Sha256, b"pencil", vec![1; 16], 16);
        let mut s = ScramServer::new(ScramHash::Sha1, false, SaslContext::default(), vec![], "n".into());
        s.start(Some(b"n,,n=user,r=c"));
        let SaslStep::Challenge(first) = s.credentials(Some(&credential)) else {
            panic!("expected a server-first-message");
        };
        assert!(String::from_utf8(first).unwrap().ends_with(",i=4096"));
    }
}
