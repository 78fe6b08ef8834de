//! Stored SCRAM credentials (RFC 5802 §3): salt, iteration count, StoredKey and
//! ServerKey per hash. Passwords are never stored; PLAIN is verified against these.

use rand_core::RngCore;

use super::ScramHash;

/// Iteration count for newly derived credentials.
pub const DEFAULT_ITERATIONS: u32 = 4096;

/// Credentials for one SCRAM hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramCredential {
    /// The hash these keys are for.
    pub hash: ScramHash,
    /// The salt.
    pub salt: Vec<u8>,
    /// The PBKDF2 iteration count.
    pub iterations: u32,
    /// H(ClientKey).
    pub stored_key: Vec<u8>,
    /// HMAC(SaltedPassword, "Server Key").
    pub server_key: Vec<u8>,
}

/// A user's credentials: one [`ScramCredential`] per supported hash.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoredCredentials {
    /// One entry per hash.
    pub scram: Vec<ScramCredential>,
}

impl StoredCredentials {
    /// Derives credentials for SHA-1, SHA-256 and SHA-512 from `password` (already
    /// prepared with the OpaqueString profile by [`StoredCredentials::derive`]), with a
    /// fresh 16-byte salt per hash.
    pub fn derive(password: &str, iterations: u32, rng: &mut dyn RngCore) -> Self {
        let _ = (password, iterations, rng);
        todo!("sasl helper")
    }

    /// The credential for `hash`.
    pub fn for_hash(&self, hash: ScramHash) -> Option<&ScramCredential> {
        self.scram.iter().find(|c| c.hash == hash)
    }

    /// Checks a plaintext password (PLAIN) against the stored keys.
    pub fn verify_password(&self, password: &str) -> bool {
        let _ = password;
        todo!("sasl helper")
    }
}
