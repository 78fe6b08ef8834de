//! Mechanism names and the dispatch of one exchange to its implementation.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use rand_core::RngCore;

use super::plain::PlainServer;
use super::scram::ScramServer;
use super::scram_message::ScramError;
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

/// Channel-binding types (XEP-0440 names, from the IANA channel-binding registry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelBindingType {
    /// RFC 9266.
    TlsExporter,
    /// RFC 5929.
    TlsServerEndPoint,
}

impl ChannelBindingType {
    /// The wire name: the `type` of XEP-0440 `<channel-binding/>` and the `cb-name`
    /// after `p=` in a SCRAM GS2 header (RFC 5802 §7).
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
    /// Every mechanism this server implements, strongest first: a sensible default
    /// order to advertise (RFC 6120 §6.3.3 leaves the order to the server).
    pub const ALL: [Mechanism; 7] = [
        Mechanism::Scram {
            hash: ScramHash::Sha512,
            plus: true,
        },
        Mechanism::Scram {
            hash: ScramHash::Sha256,
            plus: true,
        },
        Mechanism::Scram {
            hash: ScramHash::Sha1,
            plus: true,
        },
        Mechanism::Scram {
            hash: ScramHash::Sha512,
            plus: false,
        },
        Mechanism::Scram {
            hash: ScramHash::Sha256,
            plus: false,
        },
        Mechanism::Scram {
            hash: ScramHash::Sha1,
            plus: false,
        },
        Mechanism::Plain,
    ];

    /// The IANA SASL mechanism name (RFC 4616 §1, RFC 5802 §4, RFC 7677 §2;
    /// SCRAM-SHA-512 follows the same pattern).
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Scram { hash, plus } => match (hash, plus) {
                (ScramHash::Sha1, false) => "SCRAM-SHA-1",
                (ScramHash::Sha1, true) => "SCRAM-SHA-1-PLUS",
                (ScramHash::Sha256, false) => "SCRAM-SHA-256",
                (ScramHash::Sha256, true) => "SCRAM-SHA-256-PLUS",
                (ScramHash::Sha512, false) => "SCRAM-SHA-512",
                (ScramHash::Sha512, true) => "SCRAM-SHA-512-PLUS",
            },
        }
    }

    /// Parses an IANA name. Names are compared exactly: RFC 4422 §3.1 mechanism names
    /// are upper case, and the XMPP `<mechanism/>` carries them as registered.
    pub fn parse(name: &str) -> Option<Self> {
        Mechanism::ALL.into_iter().find(|m| m.name() == name)
    }

    /// True for the `-PLUS` (channel-binding) variants (RFC 5802 §4).
    pub fn is_plus(self) -> bool {
        matches!(self, Mechanism::Scram { plus: true, .. })
    }
}

impl std::fmt::Display for Mechanism {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Bytes of entropy in a server nonce (RFC 5802 §5.1 asks for a fresh random value).
const SERVER_NONCE_BYTES: usize = 24;

/// Bytes of the per-exchange secret used when the caller gives none.
const SECRET_BYTES: usize = 32;

/// The per-mechanism state of one exchange.
pub(crate) enum Exchange {
    Plain(PlainServer),
    Scram(Box<ScramServer>),
}

impl Exchange {
    pub(crate) fn start(
        mechanism: Mechanism,
        initial_response: Option<&[u8]>,
        context: SaslContext,
        server_secret: Option<&[u8]>,
        rng: &mut dyn RngCore,
    ) -> (Self, SaslStep) {
        match mechanism {
            Mechanism::Plain => {
                let mut plain = PlainServer::new(context);
                let step = plain.start(initial_response);
                (Exchange::Plain(plain), step)
            }
            Mechanism::Scram { hash, plus } => {
                let secret = match server_secret {
                    Some(s) => s.to_vec(),
                    None => {
                        let mut s = vec![0u8; SECRET_BYTES];
                        rng.fill_bytes(&mut s);
                        s
                    }
                };
                let mut nonce = [0u8; SERVER_NONCE_BYTES];
                rng.fill_bytes(&mut nonce);
                // Standard base64 is printable and has no comma (RFC 5802 §7).
                let nonce = BASE64.encode(nonce);
                let mut scram = ScramServer::new(hash, plus, context, secret, nonce);
                let step = scram.start(initial_response);
                (Exchange::Scram(Box::new(scram)), step)
            }
        }
    }

    pub(crate) fn response(&mut self, data: &[u8]) -> SaslStep {
        match self {
            Exchange::Plain(p) => p.response(data),
            Exchange::Scram(s) => s.response(data),
        }
    }

    pub(crate) fn credentials(&mut self, creds: Option<StoredCredentials>) -> SaslStep {
        match self {
            Exchange::Plain(p) => p.credentials(creds.as_ref()),
            Exchange::Scram(s) => {
                let hash = s.hash();
                s.credentials(creds.as_ref().and_then(|c| c.for_hash(hash)))
            }
        }
    }

    pub(crate) fn mechanism(&self) -> Mechanism {
        match self {
            Exchange::Plain(_) => Mechanism::Plain,
            Exchange::Scram(s) => s.mechanism(),
        }
    }

    pub(crate) fn scram_error(&self) -> Option<ScramError> {
        match self {
            Exchange::Plain(_) => None,
            Exchange::Scram(s) => s.error(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for m in Mechanism::ALL {
            assert_eq!(Mechanism::parse(m.name()), Some(m));
        }
        assert_eq!(
            Mechanism::parse("SCRAM-SHA-256-PLUS").map(Mechanism::is_plus),
            Some(true)
        );
        assert_eq!(Mechanism::parse("PLAIN"), Some(Mechanism::Plain));
        assert_eq!(Mechanism::parse("scram-sha-1"), None);
        assert_eq!(Mechanism::parse("SCRAM-SHA-384"), None);
        assert_eq!(Mechanism::parse("EXTERNAL"), None);
        assert_eq!(Mechanism::parse(""), None);
    }
}
