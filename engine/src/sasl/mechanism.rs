//! Mechanism names and the dispatch of one exchange to its implementation.

use rand_core::RngCore;

use super::{SaslContext, SaslStep, StoredCredentials};

/// The hash of a SCRAM family member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ScramHash {
    /// SHA-1 (RFC 5802).
    Sha1,
    /// SHA-256 (RFC 7677).
    Sha256,
    /// SHA-512.
    Sha512,
}

/// Channel-binding types (XEP-0440 names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelBindingType {
    /// RFC 9266.
    TlsExporter,
    /// RFC 5929.
    TlsServerEndPoint,
}

impl ChannelBindingType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelBindingType::TlsExporter => "tls-exporter",
            ChannelBindingType::TlsServerEndPoint => "tls-server-end-point",
        }
    }
}

/// A SASL mechanism the server implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mechanism {
    /// RFC 4616 PLAIN (only offered over TLS).
    Plain,
    /// SCRAM-SHA-*, with `plus` for the channel-binding variant.
    Scram {
        /// The hash.
        hash: ScramHash,
        /// `-PLUS`.
        plus: bool,
    },
}

impl Mechanism {
    /// The IANA name (`SCRAM-SHA-256-PLUS`, ...).
    pub fn name(self) -> &'static str {
        todo!("sasl helper")
    }

    /// Parses an IANA name.
    pub fn parse(name: &str) -> Option<Self> {
        let _ = name;
        todo!("sasl helper")
    }
}

/// The per-mechanism state of one exchange.
pub(crate) struct Exchange {}

impl Exchange {
    pub(crate) fn start(
        mechanism: Mechanism,
        initial_response: Option<&[u8]>,
        context: SaslContext,
        rng: &mut dyn RngCore,
    ) -> (Self, SaslStep) {
        let _ = (mechanism, initial_response, context, rng);
        todo!("sasl helper")
    }

    pub(crate) fn response(&mut self, data: &[u8], rng: &mut dyn RngCore) -> SaslStep {
        let _ = (data, rng);
        todo!("sasl helper")
    }

    pub(crate) fn credentials(
        &mut self,
        creds: Option<StoredCredentials>,
        rng: &mut dyn RngCore,
    ) -> SaslStep {
        let _ = (creds, rng);
        todo!("sasl helper")
    }

    pub(crate) fn mechanism(&self) -> Mechanism {
        todo!("sasl helper")
    }
}
