//! Client side of SASL SCRAM-SHA-1 / SCRAM-SHA-256 (RFC 5802, RFC 7677) without channel
//! binding (`n,,`), and SASL PLAIN (RFC 4616). Sans-IO: the session code moves the messages.
//!
//! The expensive step, PBKDF2 ([`salted_password`]), is a free function so the caller can run
//! it on a blocking pool and cache its result per (mechanism, password, salt, iterations).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScramHash {
    Sha1,
    Sha256,
}

impl ScramHash {
    fn hmac(self, key: &[u8], data: &[&[u8]]) -> Vec<u8> {
        match self {
            ScramHash::Sha1 => {
                let mut m = <Hmac<Sha1> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
                for d in data {
                    m.update(d);
                }
                m.finalize().into_bytes().to_vec()
            }
            ScramHash::Sha256 => {
                let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
                for d in data {
                    m.update(d);
                }
                m.finalize().into_bytes().to_vec()
            }
        }
    }

    fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramHash::Sha1 => Sha1::digest(data).to_vec(),
            ScramHash::Sha256 => Sha256::digest(data).to_vec(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramError(pub &'static str);

impl fmt::Display for ScramError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// Hi(password, salt, i) from RFC 5802, i.e. PBKDF2 with HMAC-H. Costs `iterations` HMACs.
pub fn salted_password(hash: ScramHash, password: &str, salt: &[u8], iterations: u32) -> Vec<u8> {
    match hash {
        ScramHash::Sha1 => {
            let mut out = [0u8; 20];
            pbkdf2::pbkdf2_hmac::<Sha1>(password.as_bytes(), salt, iterations, &mut out);
            out.to_vec()
        }
        ScramHash::Sha256 => {
            let mut out = [0u8; 32];
            pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, iterations, &mut out);
            out.to_vec()
        }
    }
}

/// The parsed server-first-message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFirst {
    pub nonce: String,
    pub salt: Vec<u8>,
    pub iterations: u32,
    raw: String,
}

/// Upper bound on the iteration count we accept, so a hostile server cannot make us spin.
pub const MAX_ITERATIONS: u32 = 1_000_000;

/// One SCRAM exchange from the client's side.
pub struct ScramClient {
    hash: ScramHash,
    client_first_bare: String,
    client_nonce: String,
    expected_server_signature: Option<Vec<u8>>,
}

/// The GS2 header for "no channel binding, client does not support it".
const GS2_HEADER: &str = "n,,";

/// SASLprep is not applied (load-test user names are ASCII); `=` and `,` are escaped as RFC
/// 5802 requires.
fn escape_username(u: &str) -> String {
    u.replace('=', "=3D").replace(',', "=2C")
}

impl ScramClient {
    pub fn new(hash: ScramHash, username: &str, client_nonce: &str) -> Self {
        let client_first_bare = format!("n={},r={}", escape_username(username), client_nonce);
        ScramClient {
            hash,
            client_first_bare,
            client_nonce: client_nonce.to_string(),
            expected_server_signature: None,
        }
    }

    /// A fresh printable nonce (24 random bytes, base64: no `,`).
    pub fn random_nonce() -> String {
        let bytes: [u8; 18] = rand::random();
        B64.encode(bytes)
    }

    /// client-first-message (before base64 for the `<auth>` element).
    pub fn client_first(&self) -> String {
        format!("{GS2_HEADER}{}", self.client_first_bare)
    }

    pub fn parse_server_first(&self, msg: &[u8]) -> Result<ServerFirst, ScramError> {
        let raw = std::str::from_utf8(msg).map_err(|_| ScramError("server-first is not UTF-8"))?;
        let mut nonce = None;
        let mut salt = None;
        let mut iterations = None;
        for part in raw.split(',') {
            if let Some(v) = part.strip_prefix("r=") {
                nonce = Some(v);
            } else if let Some(v) = part.strip_prefix("s=") {
                salt = Some(B64.decode(v).map_err(|_| ScramError("bad salt encoding"))?);
            } else if let Some(v) = part.strip_prefix("i=") {
                iterations = Some(v.parse::<u32>().map_err(|_| ScramError("bad iteration count"))?);
            } else if part.starts_with("m=") {
                return Err(ScramError("mandatory extension not supported"));
            } else if part.starts_with("e=") {
                return Err(ScramError("server reported an error"));
            }
        }
        let nonce = nonce.ok_or(ScramError("server-first has no nonce"))?;
        let salt = salt.ok_or(ScramError("server-first has no salt"))?;
        let iterations = iterations.ok_or(ScramError("server-first has no iteration count"))?;
        if !nonce.starts_with(&self.client_nonce) || nonce.len() == self.client_nonce.len() {
            return Err(ScramError("server nonce does not extend the client nonce"));
        }
        if iterations == 0 || iterations > MAX_ITERATIONS {
            return Err(ScramError("iteration count out of range"));
        }
        Ok(ServerFirst {
            nonce: nonce.to_string(),
            salt,
            iterations,
            raw: raw.to_string(),
        })
    }

    /// client-final-message, given the server-first and Hi(password, salt, i). Remembers the
    /// server signature to expect.
    pub fn client_final(&mut self, sf: &ServerFirst, salted: &[u8]) -> String {
        let h = self.hash;
        let channel_binding = B64.encode(GS2_HEADER);
        let without_proof = format!("c={channel_binding},r={}", sf.nonce);
        let auth_message = [
            self.client_first_bare.as_bytes(),
            b",",
            sf.raw.as_bytes(),
            b",",
            without_proof.as_bytes(),
        ];
        let client_key = h.hmac(salted, &[b"Client Key"]);
        let stored_key = h.digest(&client_key);
        let client_signature = h.hmac(&stored_key, &auth_message);
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&client_signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = h.hmac(salted, &[b"Server Key"]);
        self.expected_server_signature = Some(h.hmac(&server_key, &auth_message));
        format!("{without_proof},p={}", B64.encode(proof))
    }

    /// Check the server-final-message (`v=...`).
    pub fn verify_server_final(&self, msg: &[u8]) -> Result<(), ScramError> {
        let raw = std::str::from_utf8(msg).map_err(|_| ScramError("server-final is not UTF-8"))?;
        if raw.starts_with("e=") {
            return Err(ScramError("server-final reported an error"));
        }
        let v = raw
            .split(',')
            .find_map(|p| p.strip_prefix("v="))
            .ok_or(ScramError("server-final has no verifier"))?;
        let v = B64.decode(v).map_err(|_| ScramError("bad verifier encoding"))?;
        match &self.expected_server_signature {
            Some(exp) if *exp == v => Ok(()),
            Some(_) => Err(ScramError("server signature mismatch")),
            None => Err(ScramError("server-final before client-final")),
        }
    }
}

/// SASL PLAIN initial response, without authorization identity.
pub fn plain_message(username: &str, password: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(2 + username.len() + password.len());
    m.push(0);
    m.extend_from_slice(username.as_bytes());
    m.push(0);
    m.extend_from_slice(password.as_bytes());
    m
}

/// Remembers Hi(password, salt, i) so a user who logs in again (reconnect scenario) with
/// the same salt costs no PBKDF2. Bounded: cleared when full.
type SaltKey = (ScramHash, String, Vec<u8>, u32);

pub struct SaltCache {
    map: Mutex<HashMap<SaltKey, Vec<u8>>>,
    max: usize,
}

impl SaltCache {
    pub fn new(max: usize) -> Self {
        SaltCache {
            map: Mutex::new(HashMap::new()),
            max,
        }
    }

    pub fn get(&self, h: ScramHash, password: &str, salt: &[u8], i: u32) -> Option<Vec<u8>> {
        if self.max == 0 {
            return None;
        }
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&(h, password.to_string(), salt.to_vec(), i)).cloned()
    }

    pub fn put(&self, h: ScramHash, password: &str, salt: &[u8], i: u32, salted: Vec<u8>) {
        if self.max == 0 {
            return;
        }
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= self.max {
            map.clear();
        }
        map.insert((h, password.to_string(), salt.to_vec(), i), salted);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 5802 section 5.
    #[test]
    fn scram_sha1_rfc5802_vector() {
        let mut c = ScramClient::new(ScramHash::Sha1, "user", "fyko+d2lbbFgONRv9qkxdawL");
        assert_eq!(c.client_first(), "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL");
        let sf = c
            .parse_server_first(b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096")
            .unwrap();
        assert_eq!(sf.iterations, 4096);
        let salted = salted_password(ScramHash::Sha1, "pencil", &sf.salt, sf.iterations);
        let fin = c.client_final(&sf, &salted);
        assert_eq!(
            fin,
            "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
        );
        c.verify_server_final(b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=").unwrap();
        assert_eq!(
            c.verify_server_final(b"v=AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
            Err(ScramError("server signature mismatch"))
        );
    }

    /// RFC 7677 section 3.
    #[test]
    fn scram_sha256_rfc7677_vector() {
        let mut c = ScramClient::new(ScramHash::Sha256, "user", "rOprNGfwEbeRWgbNEkqO");
        let sf = c
            .parse_server_first(
                b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            )
            .unwrap();
        let salted = salted_password(ScramHash::Sha256, "pencil", &sf.salt, sf.iterations);
        let fin = c.client_final(&sf, &salted);
        assert_eq!(
            fin,
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
             p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        c.verify_server_final(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap();
    }

    #[test]
    fn scram_rejects_bad_server_first() {
        let c = ScramClient::new(ScramHash::Sha1, "user", "abc");
        assert!(c
            .parse_server_first(b"r=xyz123,s=QSXCR+Q6sek8bf92,i=4096")
            .is_err());
        assert!(c.parse_server_first(b"r=abc,s=QSXCR+Q6sek8bf92,i=4096").is_err());
        assert!(c.parse_server_first(b"r=abcd,s=QSXCR+Q6sek8bf92,i=0").is_err());
        assert!(c
            .parse_server_first(b"r=abcd,s=QSXCR+Q6sek8bf92,i=99999999")
            .is_err());
        assert!(c.parse_server_first(b"r=abcd,i=4096").is_err());
        assert!(c
            .parse_server_first(b"m=ext,r=abcd,s=QSXCR+Q6sek8bf92,i=4096")
            .is_err());
        assert!(c.parse_server_first(b"r=abcd,s=QSXCR+Q6sek8bf92,i=4096").is_ok());
        assert!(c.verify_server_final(b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=").is_err());
    }

    #[test]
    fn scram_username_escaping_and_nonce() {
        let c = ScramClient::new(ScramHash::Sha1, "a=b,c", "n");
        assert_eq!(c.client_first(), "n,,n=a=3Db=2Cc,r=n");
        let n = ScramClient::random_nonce();
        assert_eq!(n.len(), 24);
        assert!(!n.contains(','));
        assert_ne!(n, ScramClient::random_nonce());
    }

    #[test]
    fn plain_and_cache() {
        assert_eq!(plain_message("u", "p"), b"\0u\0p");
        let cache = SaltCache::new(2);
        assert_eq!(cache.get(ScramHash::Sha1, "p", b"s", 1), None);
        cache.put(ScramHash::Sha1, "p", b"s", 1, vec![1]);
        assert_eq!(cache.get(ScramHash::Sha1, "p", b"s", 1), Some(vec![1]));
        assert_eq!(cache.get(ScramHash::Sha256, "p", b"s", 1), None);
        cache.put(ScramHash::Sha1, "p", b"t", 1, vec![2]);
        cache.put(ScramHash::Sha1, "p", b"u", 1, vec![3]);
        assert_eq!(cache.get(ScramHash::Sha1, "p", b"u", 1), Some(vec![3]));
    }
}
