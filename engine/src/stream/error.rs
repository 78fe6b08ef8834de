//! Stream errors (RFC 6120 §4.9) and stanza errors (RFC 6120 §8.3), each a typed
//! condition that renders to exactly one wire element.

use crate::ns;
use crate::xml::{Element, XmlError};

/// RFC 6120 §4.9.3 stream error conditions that Meerkat sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamError {
    /// §4.9.3.1
    BadFormat,
    /// §4.9.3.2
    BadNamespacePrefix,
    /// §4.9.3.3 a new session replaced this one.
    Conflict,
    /// §4.9.3.4
    ConnectionTimeout,
    /// §4.9.3.6
    HostUnknown,
    /// §4.9.3.7
    ImproperAddressing,
    /// §4.9.3.8
    InternalServerError,
    /// §4.9.3.9
    InvalidFrom,
    /// §4.9.3.10
    InvalidNamespace,
    /// §4.9.3.11
    InvalidXml,
    /// §4.9.3.12
    NotAuthorized,
    /// §4.9.3.13
    NotWellFormed,
    /// §4.9.3.14
    PolicyViolation,
    /// §4.9.3.16 the server lacks the resources to serve the stream (XEP-0198 §5:
    /// too many unacknowledged stanzas).
    ResourceConstraint,
    /// §4.9.3.17
    ResetCheckFailed,
    /// §4.9.3.18
    RestrictedXml,
    /// §4.9.3.19
    SeeOtherHost,
    /// §4.9.3.20
    SystemShutdown,
    /// §4.9.3.21
    UndefinedCondition,
    /// §4.9.3.22
    UnsupportedEncoding,
    /// §4.9.3.23
    UnsupportedFeature,
    /// §4.9.3.24
    UnsupportedStanzaType,
    /// §4.9.3.25
    UnsupportedVersion,
}

impl StreamError {
    /// The condition element's name.
    pub fn condition(self) -> &'static str {
        match self {
            StreamError::BadFormat => "bad-format",
            StreamError::BadNamespacePrefix => "bad-namespace-prefix",
            StreamError::Conflict => "conflict",
            StreamError::ConnectionTimeout => "connection-timeout",
            StreamError::HostUnknown => "host-unknown",
            StreamError::ImproperAddressing => "improper-addressing",
            StreamError::InternalServerError => "internal-server-error",
            StreamError::InvalidFrom => "invalid-from",
            StreamError::InvalidNamespace => "invalid-namespace",
            StreamError::InvalidXml => "invalid-xml",
            StreamError::NotAuthorized => "not-authorized",
            StreamError::NotWellFormed => "not-well-formed",
            StreamError::PolicyViolation => "policy-violation",
            StreamError::ResourceConstraint => "resource-constraint",
            StreamError::ResetCheckFailed => "reset",
            StreamError::RestrictedXml => "restricted-xml",
            StreamError::SeeOtherHost => "see-other-host",
            StreamError::SystemShutdown => "system-shutdown",
            StreamError::UndefinedCondition => "undefined-condition",
            StreamError::UnsupportedEncoding => "unsupported-encoding",
            StreamError::UnsupportedFeature => "unsupported-feature",
            StreamError::UnsupportedStanzaType => "unsupported-stanza-type",
            StreamError::UnsupportedVersion => "unsupported-version",
        }
    }

    /// The `<stream:error/>` element, with an optional human-readable text.
    pub fn to_element(self, text: Option<&str>) -> Element {
        let mut e =
            Element::new("error", ns::STREAMS).with_child(Element::new(self.condition(), ns::STREAM_ERRORS));
        if let Some(t) = text {
            e.push_child(
                Element::new("text", ns::STREAM_ERRORS)
                    .with_attr("xml:lang", "en")
                    .with_text(t),
            );
        }
        e
    }
}

impl From<&XmlError> for StreamError {
    /// The one place where a parse error becomes a stream error condition.
    fn from(e: &XmlError) -> Self {
        match e {
            XmlError::NotWellFormed(_) => StreamError::NotWellFormed,
            XmlError::RestrictedXml(_) => StreamError::RestrictedXml,
            XmlError::UnsupportedEncoding(_) => StreamError::UnsupportedEncoding,
            XmlError::PolicyViolation { .. } => StreamError::PolicyViolation,
        }
    }
}

/// RFC 6120 §8.3.2 error types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StanzaErrorType {
    /// Retry after providing credentials.
    Auth,
    /// Do not retry.
    Cancel,
    /// Proceed; the condition was only a warning.
    Continue,
    /// Retry after changing the data sent.
    Modify,
    /// Retry after waiting.
    Wait,
}

impl StanzaErrorType {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            StanzaErrorType::Auth => "auth",
            StanzaErrorType::Cancel => "cancel",
            StanzaErrorType::Continue => "continue",
            StanzaErrorType::Modify => "modify",
            StanzaErrorType::Wait => "wait",
        }
    }
}

/// RFC 6120 §8.3.3 stanza error conditions, each with its usual type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StanzaError {
    /// §8.3.3.1
    BadRequest,
    /// §8.3.3.2
    Conflict,
    /// §8.3.3.3
    FeatureNotImplemented,
    /// §8.3.3.4
    Forbidden,
    /// §8.3.3.6
    InternalServerError,
    /// §8.3.3.7
    ItemNotFound,
    /// §8.3.3.8
    JidMalformed,
    /// §8.3.3.9
    NotAcceptable,
    /// §8.3.3.10
    NotAllowed,
    /// §8.3.3.11
    NotAuthorized,
    /// §8.3.3.12
    PolicyViolation,
    /// §8.3.3.13
    RecipientUnavailable,
    /// §8.3.3.15
    RemoteServerNotFound,
    /// §8.3.3.16
    RemoteServerTimeout,
    /// §8.3.3.17
    ResourceConstraint,
    /// §8.3.3.18
    ServiceUnavailable,
    /// §8.3.3.21
    UnexpectedRequest,
}

impl StanzaError {
    /// The condition element's name.
    pub fn condition(self) -> &'static str {
        match self {
            StanzaError::BadRequest => "bad-request",
            StanzaError::Conflict => "conflict",
            StanzaError::FeatureNotImplemented => "feature-not-implemented",
            StanzaError::Forbidden => "forbidden",
            StanzaError::InternalServerError => "internal-server-error",
            StanzaError::ItemNotFound => "item-not-found",
            StanzaError::JidMalformed => "jid-malformed",
            StanzaError::NotAcceptable => "not-acceptable",
            StanzaError::NotAllowed => "not-allowed",
            StanzaError::NotAuthorized => "not-authorized",
            StanzaError::PolicyViolation => "policy-violation",
            StanzaError::RecipientUnavailable => "recipient-unavailable",
            StanzaError::RemoteServerNotFound => "remote-server-not-found",
            StanzaError::RemoteServerTimeout => "remote-server-timeout",
            StanzaError::ResourceConstraint => "resource-constraint",
            StanzaError::ServiceUnavailable => "service-unavailable",
            StanzaError::UnexpectedRequest => "unexpected-request",
        }
    }

    /// The type RFC 6120 §8.3.3 gives as usual for this condition.
    pub fn default_type(self) -> StanzaErrorType {
        match self {
            StanzaError::BadRequest
            | StanzaError::JidMalformed
            | StanzaError::NotAcceptable
            | StanzaError::PolicyViolation => StanzaErrorType::Modify,
            StanzaError::NotAuthorized | StanzaError::Forbidden => StanzaErrorType::Auth,
            StanzaError::InternalServerError
            | StanzaError::RecipientUnavailable
            | StanzaError::RemoteServerTimeout
            | StanzaError::ResourceConstraint
            | StanzaError::UnexpectedRequest => StanzaErrorType::Wait,
            _ => StanzaErrorType::Cancel,
        }
    }

    /// The `<error/>` child in namespace `content_ns` (the stream's).
    pub fn to_element(self, content_ns: &str) -> Element {
        Element::new("error", content_ns)
            .with_attr("type", self.default_type().as_str())
            .with_child(Element::new(self.condition(), ns::STANZAS))
    }

    /// RFC 6120 §8.3.1: the error reply to `stanza`: `from`/`to` swapped, type `error`,
    /// the original payload kept, and the `<error/>` appended.
    pub fn reply_to(self, stanza: &Element) -> Element {
        let mut reply = stanza.clone();
        let from = reply.remove_attr("from");
        let to = reply.remove_attr("to");
        if let Some(f) = from {
            reply.set_attr("to", f);
        }
        if let Some(t) = to {
            reply.set_attr("from", t);
        }
        reply.set_attr("type", "error");
        let ns = reply.ns().to_string();
        reply.push_child(self.to_element(&ns));
        reply
    }
}
