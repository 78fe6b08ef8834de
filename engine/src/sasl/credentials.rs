//! Stored SCRAM credentials (RFC 5802 §3, §5.1 "the server stores"): salt, iteration
//! count, StoredKey and ServerKey per hash. Passwords are never stored; PLAIN is
//! verified against these keys too.

use std::borrow::Cow;

use precis_core::profile::Profile;
use rand_core::RngCore;

use super::hash::constant_time_eq;
use super::ScramHash;

/// Iteration count for newly derived credentials (RFC 7677 §4 recommends at least
/// 4096 for SCRAM-SHA-256).
pub const DEFAULT_ITERATIONS: u32 = 4096;

/// Length of the salt generated for each hash. RFC 5802 does not fix one; 16 random
/// bytes make precomputation useless.
pub const SALT_LEN: usize = 16;

/// Why a password cannot be used (RFC 8265 §4.2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// The password is empty or contains characters the OpaqueString profile
    /// (RFC 8265 §4.2) disallows, such as control characters.
    #[error("password not allowed by the PRECIS OpaqueString profile")]
    Disallowed,
}

/// Credentials for one SCRAM hash (RFC 5802 §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramCredential {
    /// The hash these keys are for.
    pub hash: ScramHash,
    /// The salt, sent to the client in the server-first-message (`s=`).
    pub salt: Vec<u8>,
    /// The PBKDF2 iteration count, sent in the server-first-message (`i=`).
    pub iterations: u32,
    /// `StoredKey = H(ClientKey)`; verifies the client proof.
    pub stored_key: Vec<u8>,
    /// `ServerKey = HMAC(SaltedPassword, "Server Key")`; signs the server-final-message.
    pub server_key: Vec<u8>,
}

impl ScramCredential {
    /// Derives the credential for `hash` from an already prepared password.
    pub(crate) fn derive(hash: ScramHash, prepared: &[u8], salt: Vec<u8>, iterations: u32) -> Self {
        let salted = hash.salted_password(prepared, &salt, iterations);
        let stored_key = hash.digest(&hash.client_key(&salted));
        let server_key = hash.server_key(&salted);
        Self {
            hash,
            salt,
            iterations,
            stored_key,
            server_key,
        }
    }

    /// True when `prepared` (an OpaqueString-prepared password) yields this StoredKey.
    fn matches(&self, prepared: &[u8]) -> bool {
        let salted = self.hash.salted_password(prepared, &self.salt, self.iterations);
        let stored_key = self.hash.digest(&self.hash.client_key(&salted));
        constant_time_eq(&stored_key, &self.stored_key)
    }
}

/// A user's credentials: one [`ScramCredential`] per supported hash.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoredCredentials {
    /// One entry per hash.
    pub scram: Vec<ScramCredential>,
}

impl StoredCredentials {
    /// Derives credentials for SHA-1, SHA-256 and SHA-512 from a plaintext
    /// `password`, with a fresh [`SALT_LEN`]-byte salt per hash drawn from `rng`.
    ///
    /// The password is first prepared with the PRECIS OpaqueString profile
    /// (RFC 8265 §4.2), as RFC 7622-era SCRAM clients do before hashing. A password
    /// that profile rejects (empty, control characters) is used as given, so this
    /// never fails; callers that create accounts should prefer
    /// [`StoredCredentials::try_derive`], which refuses it. `iterations` below 1 is
    /// raised to 1 (RFC 5802 §5.1: `i` is a positive number).
    pub fn derive(password: &str, iterations: u32, rng: &mut dyn RngCore) -> Self {
        Self::derive_prepared(&prepare_password_lenient(password), iterations, rng)
    }

    /// Like [`StoredCredentials::derive`], but fails when `password` is not allowed
    /// by the OpaqueString profile (RFC 8265 §4.2).
    pub fn try_derive(password: &str, iterations: u32, rng: &mut dyn RngCore) -> Result<Self, PasswordError> {
        let prepared = prepare_password(password)?;
        Ok(Self::derive_prepared(&prepared, iterations, rng))
    }

    fn derive_prepared(prepared: &str, iterations: u32, rng: &mut dyn RngCore) -> Self {
        let iterations = iterations.max(1);
        let scram = ScramHash::ALL
            .iter()
            .map(|&hash| {
                let mut salt = vec![0u8; SALT_LEN];
                rng.fill_bytes(&mut salt);
                ScramCredential::derive(hash, prepared.as_bytes(), salt, iterations)
            })
            .collect();
        Self { scram }
    }

    /// The credential for `hash`.
    pub fn for_hash(&self, hash: ScramHash) -> Option<&ScramCredential> {
        self.scram.iter().find(|c| c.hash == hash)
    }

    /// Checks a plaintext password (RFC 4616 PLAIN) against the stored keys: the
    /// password is prepared as in [`StoredCredentials::derive`], then SHA-256's
    /// StoredKey is recomputed from its salt and iteration count (or, if there is no
    /// SHA-256 entry, the strongest hash stored) and compared in constant time.
    /// Returns false when there are no credentials at all.
    pub fn verify_password(&self, password: &str) -> bool {
        let preferred = self
            .for_hash(ScramHash::Sha256)
            .or_else(|| self.scram.iter().max_by_key(|c| c.hash));
        match preferred {
            Some(c) => c.matches(prepare_password_lenient(password).as_bytes()),
            None => false,
        }
    }
}

/// RFC 8265 §4.2: prepares and enforces `password` with the OpaqueString profile.
pub fn prepare_password(password: &str) -> Result<Cow<'_, str>, PasswordError> {
    precis_profiles::OpaqueString::new()
        .enforce(password)
        .map_err(|_| PasswordError::Disallowed)
}

/// [`prepare_password`], falling back to the password as given when the profile
/// rejects it, so that derivation and verification agree on such passwords.
fn prepare_password_lenient(password: &str) -> Cow<'_, str> {
    prepare_password(password).unwrap_or(Cow::Borrowed(password))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;

    fn rng() -> rand_chacha::ChaCha8Rng {
        rand_chacha::ChaCha8Rng::seed_from_u64(7)
    }

    #[test]
    fn derive_makes_one_credential_per_hash_with_fresh_salts() {
        let c = StoredCredentials::derive("pencil", 4096, &mut rng());
        assert_eq!(c.scram.len(), 3);
        for h in ScramHash::ALL {
            let e = c.for_hash(h).unwrap();
            assert_eq!(e.salt.len(), SALT_LEN);
            assert_eq!(e.iterations, 4096);
            assert_eq!(e.stored_key.len(), h.output_len());
            assert_eq!(e.server_key.len(), h.output_len());
        }
        assert_ne!(c.scram[0].salt, c.scram[1].salt);
    }

    #[test]
    fn derive_matches_rfc5802_example_keys() {
        // RFC 5802 §5: password "pencil", salt QSXCR+Q6sek8bf92, i=4096. The expected
        // keys were computed independently (Python hashlib/hmac).
        use base64::engine::general_purpose::STANDARD;
        use base64::Engine;
        let salt = STANDARD.decode("QSXCR+Q6sek8bf92").unwrap();
        let c = ScramCredential::derive(ScramHash::Sha1, b"pencil", salt, 4096);
        assert_eq!(STANDARD.encode(&c.stored_key), "6dlGYMOdZcOPutkcNY8U2g7vK9Y=");
        assert_eq!(STANDARD.encode(&c.server_key), "D+CSWLOshSulAsxiupA+qs2/fTE=");
        assert!(c.matches(b"pencil"));
        assert!(!c.matches(b"pencil2"));
    }

    #[test]
    fn verify_password_accepts_right_and_rejects_wrong() {
        let c = StoredCredentials::derive("correct horse", 16, &mut rng());
        assert!(c.verify_password("correct horse"));
        assert!(!c.verify_password("correct  horse"));
        assert!(!c.verify_password(""));
        assert!(!StoredCredentials::default().verify_password("x"));
    }

    #[test]
    fn verify_password_falls_back_to_strongest_hash() {
        let mut c = StoredCredentials::derive("pw", 16, &mut rng());
        c.scram.retain(|e| e.hash != ScramHash::Sha256);
        assert!(c.verify_password("pw"));
        assert!(!c.verify_password("pW"));
    }

    #[test]
    fn password_is_prepared_with_opaque_string() {
        // RFC 8265 §4.2.1: non-ASCII spaces map to U+0020 and the result is NFC.
        let c = StoredCredentials::derive("a\u{00A0}b\u{0065}\u{0301}", 16, &mut rng());
        assert!(c.verify_password("a b\u{00E9}"));
    }

    #[test]
    fn try_derive_refuses_disallowed_passwords() {
        assert_eq!(
            StoredCredentials::try_derive("", 16, &mut rng()),
            Err(PasswordError::Disallowed)
        );
        assert_eq!(
            StoredCredentials::try_derive("a\u{0007}", 16, &mut rng()),
            Err(PasswordError::Disallowed)
        );
        assert!(StoredCredentials::try_derive("ok", 16, &mut rng()).is_ok());
    }

    #[test]
    fn zero_iterations_are_raised_to_one() {
        let c = StoredCredentials::derive("pw", 0, &mut rng());
        assert!(c.scram.iter().all(|e| e.iterations == 1));
        assert!(c.verify_password("pw"));
    }
}
