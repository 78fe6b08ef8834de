//! SASL server mechanisms (RFC 6120 §6, RFC 4422): PLAIN (RFC 4616), SCRAM-SHA-1,
//! SCRAM-SHA-256, SCRAM-SHA-512 (RFC 5802, RFC 7677) and their `-PLUS` variants with
//! the `tls-exporter` (RFC 9266) and `tls-server-end-point` (RFC 5929) channel
//! bindings, plus XEP-0474 downgrade protection.
//!
//! A [`SaslServer`] is one authentication exchange. It never reads storage: when it
//! needs the user's credentials it answers [`SaslStep::NeedCredentials`] and the caller
//! comes back with [`SaslServer::credentials`]. The same type serves the legacy SASL
//! profile and SASL2 (XEP-0388), which differ only in their wire wrapping.

pub mod backoff;
mod client;
mod credentials;
mod hash;
pub mod ht;
mod mechanism;
mod plain;
mod scram;
mod scram_message;
pub mod ssdp;
#[cfg(test)]
mod tests;

pub use client::{ScramClient, ScramClientError};
pub use credentials::{
    prepare_password, PasswordError, ScramCredential, StoredCredentials, DEFAULT_ITERATIONS, SALT_LEN,
};
pub use mechanism::{ChannelBindingType, Mechanism, ScramHash};
pub use scram_message::ScramError;

use rand_core::RngCore;

use crate::jid::{prepare_domainpart, prepare_localpart, Jid};

/// Channel-binding data of the TLS connection the exchange runs over.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelBindings {
    /// RFC 9266 `tls-exporter` data (32 bytes), only on TLS 1.3.
    pub tls_exporter: Option<Vec<u8>>,
    /// RFC 5929 `tls-server-end-point` data: the hash of our certificate.
    pub tls_server_end_point: Option<Vec<u8>>,
}

impl ChannelBindings {
    /// The binding data of type `t`, if this connection offers it.
    pub fn get(&self, t: ChannelBindingType) -> Option<&[u8]> {
        match t {
            ChannelBindingType::TlsExporter => self.tls_exporter.as_deref(),
            ChannelBindingType::TlsServerEndPoint => self.tls_server_end_point.as_deref(),
        }
    }

    /// The types offered, in the order we advertise them (XEP-0440).
    pub fn types(&self) -> Vec<ChannelBindingType> {
        let mut v = Vec::new();
        if self.tls_exporter.is_some() {
            v.push(ChannelBindingType::TlsExporter);
        }
        if self.tls_server_end_point.is_some() {
            v.push(ChannelBindingType::TlsServerEndPoint);
        }
        v
    }
}

/// What the server advertised and what the connection offers; SCRAM needs it for
/// channel binding, for the `y`/`n` flag check of RFC 5802 §6, and for XEP-0474.
///
/// `advertised` must be exactly the `<mechanism/>` list of the SASL profile the
/// client is using (SASL1 or SASL2, not both), and the caller must advertise XEP-0440
/// `<sasl-channel-binding/>` with exactly `channel_bindings.types()` (and not at all
/// when that is empty): the XEP-0474 hash in the server-first-message is computed
/// from these, and a client compares it with what it saw. With an empty `advertised`
/// no hash is sent and the `y` downgrade check cannot fire.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SaslContext {
    /// The domain the user authenticates against (the stream's `to`); usernames of
    /// the form `local@domain` and authzids must name it.
    pub domain: String,
    /// Mechanisms advertised on this stream, in advertised order.
    pub advertised: Vec<Mechanism>,
    /// Channel bindings of this connection (empty without TLS).
    pub channel_bindings: ChannelBindings,
}

/// RFC 6120 §6.5: SASL failure conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SaslFailure {
    /// §6.5.1 the client aborted.
    #[error("aborted")]
    Aborted,
    /// §6.5.2 the account is disabled.
    #[error("account-disabled")]
    AccountDisabled,
    /// §6.5.3 credentials expired.
    #[error("credentials-expired")]
    CredentialsExpired,
    /// §6.5.4 the mechanism requires TLS.
    #[error("encryption-required")]
    EncryptionRequired,
    /// §6.5.5 bad base64.
    #[error("incorrect-encoding")]
    IncorrectEncoding,
    /// §6.5.6 the authzid is not one the user may act as.
    #[error("invalid-authzid")]
    InvalidAuthzid,
    /// §6.5.7 unknown or unadvertised mechanism.
    #[error("invalid-mechanism")]
    InvalidMechanism,
    /// §6.5.8 the request is malformed.
    #[error("malformed-request")]
    MalformedRequest,
    /// §6.5.9 the mechanism is weaker than policy allows.
    #[error("mechanism-too-weak")]
    MechanismTooWeak,
    /// §6.5.10 wrong credentials (also: unknown user, so as not to leak existence).
    #[error("not-authorized")]
    NotAuthorized,
    /// §6.5.11 a temporary server-side problem.
    #[error("temporary-auth-failure")]
    TemporaryAuthFailure,
}

impl SaslFailure {
    /// The element name of the condition.
    pub fn condition(self) -> &'static str {
        match self {
            SaslFailure::Aborted => "aborted",
            SaslFailure::AccountDisabled => "account-disabled",
            SaslFailure::CredentialsExpired => "credentials-expired",
            SaslFailure::EncryptionRequired => "encryption-required",
            SaslFailure::IncorrectEncoding => "incorrect-encoding",
            SaslFailure::InvalidAuthzid => "invalid-authzid",
            SaslFailure::InvalidMechanism => "invalid-mechanism",
            SaslFailure::MalformedRequest => "malformed-request",
            SaslFailure::MechanismTooWeak => "mechanism-too-weak",
            SaslFailure::NotAuthorized => "not-authorized",
            SaslFailure::TemporaryAuthFailure => "temporary-auth-failure",
        }
    }
}

/// The next step of an exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaslStep {
    /// Look up the credentials of `username` (a prepared localpart) and call
    /// [`SaslServer::credentials`].
    NeedCredentials {
        /// The prepared localpart.
        username: String,
    },
    /// Send a challenge with this (raw, not base64) data.
    Challenge(Vec<u8>),
    /// Authenticated as `username`; send success with `additional_data` if any
    /// (SCRAM's server-final-message).
    Success {
        /// The prepared localpart.
        username: String,
        /// Raw additional data for `<success/>`.
        additional_data: Option<Vec<u8>>,
    },
    /// Send a failure with this condition.
    Failure(SaslFailure),
}

/// One server-side SASL exchange.
pub struct SaslServer {
    inner: mechanism::Exchange,
}

impl SaslServer {
    /// Starts `mechanism` with the client's initial response (raw bytes, `None` when
    /// absent; `Some(vec![])` for the `=` empty response; RFC 6120 §6.4.2).
    ///
    /// The caller has already checked that `mechanism` was advertised on this stream
    /// (else `invalid-mechanism`, RFC 6120 §6.5.7) and that PLAIN runs over TLS.
    /// SCRAM takes its server nonce (24 random bytes) and a per-exchange secret for
    /// unknown users' salts from `rng`; see [`SaslServer::start_with_server_secret`]
    /// for a secret that lasts longer than one exchange.
    pub fn start(
        mechanism: Mechanism,
        initial_response: Option<&[u8]>,
        context: SaslContext,
        rng: &mut dyn RngCore,
    ) -> (Self, SaslStep) {
        let (inner, step) = mechanism::Exchange::start(mechanism, initial_response, context, None, rng);
        (Self { inner }, step)
    }

    /// [`SaslServer::start`] with a server-wide secret (any length, 32 random bytes
    /// made once at startup are right). SCRAM derives the salt it shows for a
    /// nonexistent user from this secret and the username (RFC 5802 §9, account
    /// enumeration), so that asking twice gives the same salt, as for a real user.
    /// With [`SaslServer::start`] the salt changes between attempts, which a patient
    /// client could notice.
    pub fn start_with_server_secret(
        mechanism: Mechanism,
        initial_response: Option<&[u8]>,
        context: SaslContext,
        server_secret: &[u8],
        rng: &mut dyn RngCore,
    ) -> (Self, SaslStep) {
        let (inner, step) =
            mechanism::Exchange::start(mechanism, initial_response, context, Some(server_secret), rng);
        (Self { inner }, step)
    }

    /// The client's response to a challenge (raw bytes, after base64 decoding).
    /// `rng` is unused by the current mechanisms and kept for ones that need it.
    pub fn response(&mut self, data: &[u8], rng: &mut dyn RngCore) -> SaslStep {
        let _ = rng;
        self.inner.response(data)
    }

    /// The credentials asked for by [`SaslStep::NeedCredentials`] (`None`: no such
    /// user; the exchange goes on as for a wrong password, RFC 6120 §6.5.10).
    pub fn credentials(&mut self, creds: Option<StoredCredentials>, rng: &mut dyn RngCore) -> SaslStep {
        let _ = rng;
        self.inner.credentials(creds)
    }

    /// The mechanism of this exchange.
    pub fn mechanism(&self) -> Mechanism {
        self.inner.mechanism()
    }

    /// Why a SCRAM exchange failed, for logs and `<text/>`: the reason behind the
    /// [`SaslFailure`] sent, with its RFC 5802 §7 `e=` value
    /// ([`ScramError::server_error`]). `None` for PLAIN and before any failure.
    pub fn scram_error(&self) -> Option<ScramError> {
        self.inner.scram_error()
    }
}

/// RFC 4616 §2 authcid and RFC 5802 §5.1 `n`: the localpart of the user, prepared like
/// a JID localpart (RFC 7622 §3.3). `local@domain` is also accepted when the domain
/// is the stream's. `None` when no account could have this name.
pub(crate) fn prepare_authcid(authcid: &str, domain: &str) -> Option<String> {
    let local = match authcid.split_once('@') {
        Some((local, d)) => {
            if !same_domain(d, domain) {
                return None;
            }
            local
        }
        None => authcid,
    };
    prepare_localpart(local).ok()
}

/// RFC 6120 §6.3.8: the only authzid we accept is the user's own bare JID.
pub(crate) fn valid_authzid(authzid: &str, username: &str, domain: &str) -> bool {
    match Jid::parse(authzid) {
        Ok(jid) => jid.is_bare() && jid.local() == Some(username) && same_domain(jid.domain(), domain),
        Err(_) => false,
    }
}

/// Domain equality after RFC 7622 §3.2 preparation of both sides.
fn same_domain(a: &str, b: &str) -> bool {
    match (prepare_domainpart(a), prepare_domainpart(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
