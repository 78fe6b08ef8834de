//! RFC 4616 PLAIN: `[authzid] NUL authcid NUL passwd` in one message, checked against
//! the stored SCRAM keys (the password itself is never stored). The caller offers
//! PLAIN only over TLS (RFC 6120 §13.8.3; `encryption-required` is its answer).

use super::credentials::prepare_password;
use super::{prepare_authcid, valid_authzid, SaslContext, SaslFailure, SaslStep};
use super::{ScramHash, StoredCredentials, DEFAULT_ITERATIONS, SALT_LEN};

/// One PLAIN exchange, server side.
pub(crate) struct PlainServer {
    context: SaslContext,
    state: State,
}

enum State {
    AwaitMessage,
    AwaitCredentials { username: String, password: String },
    Done,
}

impl PlainServer {
    /// A new exchange for `context.domain`.
    pub(crate) fn new(context: SaslContext) -> Self {
        Self {
            context,
            state: State::AwaitMessage,
        }
    }

    /// The `<auth/>` element: without an initial response the server sends an empty
    /// challenge and the message comes in the response (RFC 4616 §2, RFC 6120 §6.4.2).
    pub(crate) fn start(&mut self, initial_response: Option<&[u8]>) -> SaslStep {
        match initial_response {
            None => SaslStep::Challenge(Vec::new()),
            Some(data) => self.message(data),
        }
    }

    /// A `<response/>`: only valid as the message after the empty challenge.
    pub(crate) fn response(&mut self, data: &[u8]) -> SaslStep {
        match self.state {
            State::AwaitMessage => self.message(data),
            _ => self.fail(SaslFailure::MalformedRequest),
        }
    }

    /// The answer to [`SaslStep::NeedCredentials`].
    pub(crate) fn credentials(&mut self, creds: Option<&StoredCredentials>) -> SaslStep {
        let State::AwaitCredentials { username, password } = std::mem::replace(&mut self.state, State::Done)
        else {
            return self.fail(SaslFailure::MalformedRequest);
        };
        let ok = match creds {
            Some(c) => c.verify_password(&password),
            None => {
                // Spend the same PBKDF2 work as for a real user, so response time does
                // not tell whether the account exists.
                burn_like_verification(&password);
                false
            }
        };
        if ok {
            SaslStep::Success {
                username,
                additional_data: None,
            }
        } else {
            self.fail(SaslFailure::NotAuthorized)
        }
    }

    /// RFC 4616 §2: `message = [authzid] UTF8NUL authcid UTF8NUL passwd`, all UTF-8,
    /// authcid and passwd not empty. The authcid is a localpart (or `local@domain`
    /// of this domain), prepared like a JID localpart; an authzid must be the user's
    /// bare JID (RFC 6120 §6.3.8).
    fn message(&mut self, data: &[u8]) -> SaslStep {
        let Ok(text) = std::str::from_utf8(data) else {
            return self.fail(SaslFailure::MalformedRequest);
        };
        let mut parts = text.split('\0');
        let (Some(authzid), Some(authcid), Some(password), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return self.fail(SaslFailure::MalformedRequest);
        };
        if authcid.is_empty() || password.is_empty() {
            return self.fail(SaslFailure::MalformedRequest);
        }
        let Some(username) = prepare_authcid(authcid, &self.context.domain) else {
            return self.fail(SaslFailure::NotAuthorized);
        };
        if !authzid.is_empty() && !valid_authzid(authzid, &username, &self.context.domain) {
            return self.fail(SaslFailure::InvalidAuthzid);
        }
        self.state = State::AwaitCredentials {
            username: username.clone(),
            password: password.to_owned(),
        };
        SaslStep::NeedCredentials { username }
    }

    fn fail(&mut self, failure: SaslFailure) -> SaslStep {
        self.state = State::Done;
        SaslStep::Failure(failure)
    }
}

/// Verifies `password` against throw-away keys with the default iteration count.
fn burn_like_verification(password: &str) {
    let prepared = prepare_password(password)
        .map(|p| p.into_owned())
        .unwrap_or_default();
    let hash = ScramHash::Sha256;
    let salted = hash.salted_password(prepared.as_bytes(), &[0; SALT_LEN], DEFAULT_ITERATIONS);
    std::hint::black_box(hash.digest(&hash.client_key(&salted)));
}
