//! The Hashed Token SASL mechanism family (draft-ietf-kitten-sasl-ht), which FAST
//! (XEP-0484) uses to authenticate with a server-issued token in one round trip.
//!
//! A mechanism name is `HT-<hash>-<cb>`: the hash of the HMAC and the channel
//! binding mixed into it. The client sends `authcid NUL HMAC(token, "Initiator" ||
//! cb-data)`; the server answers with `HMAC(token, "Responder" || cb-data)` as the
//! additional data of its success, which proves it knew the token too (mutual
//! authentication).
//!
//! # Tokens are kept hashed
//!
//! RFC 2104 §2: HMAC first hashes a key longer than the hash's block size and uses
//! the digest as the key. The server issues tokens of [`TOKEN_LEN`] characters,
//! longer than the block of every hash of the family (SHA3-256's 136 bytes is the
//! largest), so `HMAC(token, m) == HMAC(H(token), m)`: the server stores only
//! `H(token)` ([`HtMechanism::token_key`]) and can still verify, while someone who
//! reads the database cannot log in with what they read.

use hmac::{Hmac, Mac};
use sha2::Digest as _;

use super::hash::constant_time_eq;
use super::{ChannelBindingType, ChannelBindings};

/// Characters in a token this server issues: longer than any hash block of the
/// family (see the module docs), so that storing `H(token)` is enough.
pub const TOKEN_LEN: usize = 144;

/// The hash of an HT mechanism (the IANA "Hash Function Textual Names").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HtHash {
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
    /// SHA3-256.
    Sha3_256,
    /// SHA3-384.
    Sha3_384,
    /// SHA3-512.
    Sha3_512,
}

impl HtHash {
    /// Every hash, in the order mechanisms are advertised.
    pub const ALL: [HtHash; 6] = [
        HtHash::Sha256,
        HtHash::Sha384,
        HtHash::Sha512,
        HtHash::Sha3_256,
        HtHash::Sha3_384,
        HtHash::Sha3_512,
    ];

    fn name(self) -> &'static str {
        match self {
            HtHash::Sha256 => "SHA-256",
            HtHash::Sha384 => "SHA-384",
            HtHash::Sha512 => "SHA-512",
            HtHash::Sha3_256 => "SHA3-256",
            HtHash::Sha3_384 => "SHA3-384",
            HtHash::Sha3_512 => "SHA3-512",
        }
    }

    /// `H(data)`.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            HtHash::Sha256 => sha2::Sha256::digest(data).to_vec(),
            HtHash::Sha384 => sha2::Sha384::digest(data).to_vec(),
            HtHash::Sha512 => sha2::Sha512::digest(data).to_vec(),
            HtHash::Sha3_256 => sha3::Sha3_256::digest(data).to_vec(),
            HtHash::Sha3_384 => sha3::Sha3_384::digest(data).to_vec(),
            HtHash::Sha3_512 => sha3::Sha3_512::digest(data).to_vec(),
        }
    }

    /// `HMAC(key, a || b)`.
    pub fn hmac(self, key: &[u8], a: &[u8], b: &[u8]) -> Vec<u8> {
        fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], a: &[u8], b: &[u8]) -> Vec<u8> {
            let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(key)
                .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
            mac.update(a);
            mac.update(b);
            mac.finalize().into_bytes().to_vec()
        }
        match self {
            HtHash::Sha256 => run::<Hmac<sha2::Sha256>>(key, a, b),
            HtHash::Sha384 => run::<Hmac<sha2::Sha384>>(key, a, b),
            HtHash::Sha512 => run::<Hmac<sha2::Sha512>>(key, a, b),
            HtHash::Sha3_256 => run::<Hmac<sha3::Sha3_256>>(key, a, b),
            HtHash::Sha3_384 => run::<Hmac<sha3::Sha3_384>>(key, a, b),
            HtHash::Sha3_512 => run::<Hmac<sha3::Sha3_512>>(key, a, b),
        }
    }
}

/// The channel binding of an HT mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HtBinding {
    /// `NONE`: no channel binding.
    None,
    /// `EXPR`: RFC 9266 `tls-exporter`.
    Exporter,
    /// `ENDP`: RFC 5929 `tls-server-end-point`.
    EndPoint,
}

impl HtBinding {
    fn suffix(self) -> &'static str {
        match self {
            HtBinding::None => "NONE",
            HtBinding::Exporter => "EXPR",
            HtBinding::EndPoint => "ENDP",
        }
    }

    fn channel_binding_type(self) -> Option<ChannelBindingType> {
        match self {
            HtBinding::None => None,
            HtBinding::Exporter => Some(ChannelBindingType::TlsExporter),
            HtBinding::EndPoint => Some(ChannelBindingType::TlsServerEndPoint),
        }
    }
}

/// One HT mechanism: a hash and a channel binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HtMechanism {
    /// The HMAC's hash.
    pub hash: HtHash,
    /// The channel binding.
    pub binding: HtBinding,
}

/// Why an HT initial response was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HtError {
    /// Not `authcid NUL hmac`, or the authcid is not UTF-8.
    #[error("malformed initial response")]
    Malformed,
    /// The connection cannot give the channel binding the mechanism needs.
    #[error("channel binding unavailable")]
    NoChannelBinding,
}

impl HtMechanism {
    /// The mechanism name, e.g. `HT-SHA-256-NONE`.
    pub fn name(self) -> String {
        format!("HT-{}-{}", self.hash.name(), self.binding.suffix())
    }

    /// Parses a mechanism name (exact, upper case).
    ///
    /// ```
    /// use meerkat_engine::sasl::ht::{HtBinding, HtHash, HtMechanism};
    /// let m = HtMechanism::parse("HT-SHA3-512-EXPR").unwrap();
    /// assert_eq!((m.hash, m.binding), (HtHash::Sha3_512, HtBinding::Exporter));
    /// assert_eq!(m.name(), "HT-SHA3-512-EXPR");
    /// assert!(HtMechanism::parse("HT-MD5-NONE").is_none());
    /// ```
    pub fn parse(name: &str) -> Option<Self> {
        Self::all().into_iter().find(|m| m.name() == name)
    }

    /// Every mechanism, hashes in [`HtHash::ALL`] order, each with the bindings
    /// EXPR, ENDP, NONE (strongest first).
    pub fn all() -> Vec<Self> {
        let mut v = Vec::new();
        for hash in HtHash::ALL {
            for binding in [HtBinding::Exporter, HtBinding::EndPoint, HtBinding::None] {
                v.push(HtMechanism { hash, binding });
            }
        }
        v
    }

    /// Whether this connection can serve the mechanism (its channel binding exists).
    pub fn available(self, cb: &ChannelBindings) -> bool {
        match self.binding.channel_binding_type() {
            None => true,
            Some(t) => cb.get(t).is_some(),
        }
    }

    /// What the server stores for `token`: `H(token)`, usable as the HMAC key
    /// instead of the token itself (see the module docs).
    pub fn token_key(self, token: &str) -> Vec<u8> {
        debug_assert!(token.len() > 136, "tokens must outgrow every hash block");
        self.hash.digest(token.as_bytes())
    }

    /// Splits the initial response into the authcid and the initiator's HMAC.
    pub fn parse_initial_response(data: &[u8]) -> Result<(String, Vec<u8>), HtError> {
        let nul = data.iter().position(|b| *b == 0).ok_or(HtError::Malformed)?;
        let authcid = std::str::from_utf8(&data[..nul]).map_err(|_| HtError::Malformed)?;
        let mac = &data[nul + 1..];
        if authcid.is_empty() || mac.is_empty() {
            return Err(HtError::Malformed);
        }
        Ok((authcid.to_string(), mac.to_vec()))
    }

    fn cb_data(self, cb: &ChannelBindings) -> Result<&[u8], HtError> {
        match self.binding.channel_binding_type() {
            None => Ok(&[]),
            Some(t) => cb.get(t).ok_or(HtError::NoChannelBinding),
        }
    }

    /// Whether `mac` is the initiator's HMAC for the token whose key is `key`,
    /// compared in constant time (XEP-0484 §7).
    pub fn verify_initiator(self, key: &[u8], mac: &[u8], cb: &ChannelBindings) -> Result<bool, HtError> {
        let expected = self.hash.hmac(key, b"Initiator", self.cb_data(cb)?);
        Ok(constant_time_eq(&expected, mac))
    }

    /// The responder's HMAC, the additional data of the server's success.
    pub fn responder(self, key: &[u8], cb: &ChannelBindings) -> Result<Vec<u8>, HtError> {
        Ok(self.hash.hmac(key, b"Responder", self.cb_data(cb)?))
    }

    /// The client side's initial response for `token` (for tests and simulations).
    pub fn client_initial_response(
        self,
        authcid: &str,
        token: &str,
        cb: &ChannelBindings,
    ) -> Result<Vec<u8>, HtError> {
        let mut out = authcid.as_bytes().to_vec();
        out.push(0);
        out.extend(self.hash.hmac(token.as_bytes(), b"Initiator", self.cb_data(cb)?));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> String {
        "t".repeat(TOKEN_LEN)
    }

    #[test]
    fn hashed_key_verifies_like_the_token() {
        let cb = ChannelBindings {
            tls_exporter: Some(vec![7; 32]),
            tls_server_end_point: Some(vec![9; 32]),
        };
        for m in HtMechanism::all() {
            let t = token();
            let key = m.token_key(&t);
            let ir = m.client_initial_response("juliet", &t, &cb).unwrap();
            let (authcid, mac) = HtMechanism::parse_initial_response(&ir).unwrap();
            assert_eq!(authcid, "juliet");
            assert!(m.verify_initiator(&key, &mac, &cb).unwrap(), "{}", m.name());
            assert_eq!(
                m.responder(&key, &cb).unwrap(),
                m.hash.hmac(t.as_bytes(), b"Responder", m.cb_data(&cb).unwrap()),
                "{}",
                m.name()
            );
            let other = m.token_key(&"u".repeat(TOKEN_LEN));
            assert!(!m.verify_initiator(&other, &mac, &cb).unwrap());
        }
    }

    #[test]
    fn channel_binding_is_part_of_the_proof() {
        let m = HtMechanism::parse("HT-SHA-256-EXPR").unwrap();
        let t = token();
        let a = ChannelBindings {
            tls_exporter: Some(vec![1; 32]),
            tls_server_end_point: None,
        };
        let b = ChannelBindings {
            tls_exporter: Some(vec![2; 32]),
            tls_server_end_point: None,
        };
        let ir = m.client_initial_response("j", &t, &a).unwrap();
        let (_, mac) = HtMechanism::parse_initial_response(&ir).unwrap();
        assert!(!m.verify_initiator(&m.token_key(&t), &mac, &b).unwrap());
        assert_eq!(
            m.verify_initiator(&m.token_key(&t), &mac, &ChannelBindings::default()),
            Err(HtError::NoChannelBinding)
        );
    }

    #[test]
    fn names_round_trip_and_malformed_responses() {
        assert_eq!(HtMechanism::all().len(), 18);
        for m in HtMechanism::all() {
            assert_eq!(HtMechanism::parse(&m.name()), Some(m));
        }
        assert_eq!(
            HtMechanism::parse_initial_response(b"no-nul"),
            Err(HtError::Malformed)
        );
        assert_eq!(
            HtMechanism::parse_initial_response(b"\0mac"),
            Err(HtError::Malformed)
        );
        assert_eq!(
            HtMechanism::parse_initial_response(b"user\0"),
            Err(HtError::Malformed)
        );
    }
}
