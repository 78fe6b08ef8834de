//! SASL server mechanisms (RFC 6120 §6, RFC 4422): PLAIN (RFC 4616), SCRAM-SHA-1,
//! SCRAM-SHA-256, SCRAM-SHA-512 (RFC 5802, RFC 7677) and their `-PLUS` variants with
//! the `tls-exporter` (RFC 9266) and `tls-server-end-point` (RFC 5929) channel
//! bindings, plus XEP-0474 downgrade protection.
//!
//! A [`SaslServer`] is one authentication exchange. It never reads storage: when it
//! needs the user's credentials it answers [`SaslStep::NeedCredentials`] and the caller
//! comes back with [`SaslServer::credentials`]. The same type serves the legacy SASL
//! profile and SASL2 (XEP-0388), which differ only in their wire wrapping.

mod credentials;
mod hash;
mod mechanism;
mod plain;
mod scram;

pub use credentials::{
    prepare_password, PasswordError, ScramCredential, StoredCredentials, DEFAULT_ITERATIONS, SALT_LEN,
};
pub use mechanism::{ChannelBindingType, Mechanism, ScramHash};

use rand_core::RngCore;

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
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SaslContext {
    /// The domain the user authenticates against (the stream's `to`).
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
    /// absent; `Some(vec![])` for the `=` empty response).
    pub fn start(
        mechanism: Mechanism,
        initial_response: Option<&[u8]>,
        context: SaslContext,
        rng: &mut dyn RngCore,
    ) -> (Self, SaslStep) {
        let (inner, step) = mechanism::Exchange::start(mechanism, initial_response, context, rng);
        (Self { inner }, step)
    }

    /// The client's response to a challenge.
    pub fn response(&mut self, data: &[u8], rng: &mut dyn RngCore) -> SaslStep {
        self.inner.response(data, rng)
    }

    /// The credentials asked for by [`SaslStep::NeedCredentials`] (`None`: no such user).
    pub fn credentials(&mut self, creds: Option<StoredCredentials>, rng: &mut dyn RngCore) -> SaslStep {
        self.inner.credentials(creds, rng)
    }

    /// The mechanism of this exchange.
    pub fn mechanism(&self) -> Mechanism {
        self.inner.mechanism()
    }
}
