//! The client side of SCRAM (RFC 5802), for driving the server in tests.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};

/// Which hash the exchange uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    /// SCRAM-SHA-1.
    Sha1,
    /// SCRAM-SHA-256.
    Sha256,
    /// SCRAM-SHA-512.
    Sha512,
}

/// A client exchange with a fixed nonce, so that transcripts are repeatable.
pub struct ScramClient {
    hash: Hash,
    password: String,
    nonce: String,
    gs2_header: String,
    cb_data: Vec<u8>,
    client_first_bare: String,
    server_signature: Option<Vec<u8>>,
}

impl ScramClient {
    /// A client without channel binding (`n,,`).
    pub fn new(hash: Hash, username: &str, password: &str, nonce: &str) -> Self {
        Self::with_binding(hash, username, password, nonce, "n,,", Vec::new())
    }

    /// A client with an explicit GS2 header (`p=tls-exporter,,`, `y,,`) and binding data.
    pub fn with_binding(
        hash: Hash,
        username: &str,
        password: &str,
        nonce: &str,
        gs2_header: &str,
        cb_data: Vec<u8>,
    ) -> Self {
        Self {
            hash,
            password: password.into(),
            nonce: nonce.into(),
            gs2_header: gs2_header.into(),
            cb_data,
            client_first_bare: format!("n={username},r={nonce}"),
            server_signature: None,
        }
    }

    /// client-first-message.
    pub fn first(&self) -> String {
        format!("{}{}", self.gs2_header, self.client_first_bare)
    }

    /// client-final-message for `server_first`.
    pub fn finish(&mut self, server_first: &str) -> Result<String, String> {
        let mut nonce = None;
        let mut salt = None;
        let mut iterations = None;
        for part in server_first.split(',') {
            match part.split_at_checked(2) {
                Some(("r=", v)) => nonce = Some(v.to_string()),
                Some(("s=", v)) => salt = Some(B64.decode(v).map_err(|e| e.to_string())?),
                Some(("i=", v)) => iterations = Some(v.parse::<u32>().map_err(|e| e.to_string())?),
                _ => {}
            }
        }
        let (nonce, salt, iterations) = match (nonce, salt, iterations) {
            (Some(n), Some(s), Some(i)) => (n, s, i),
            _ => return Err(format!("bad server-first: {server_first}")),
        };
        if !nonce.starts_with(&self.nonce) {
            return Err("server nonce does not extend ours".into());
        }
        let mut cbind = self.gs2_header.as_bytes().to_vec();
        cbind.extend_from_slice(&self.cb_data);
        let without_proof = format!("c={},r={nonce}", B64.encode(cbind));
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let salted = self.salted_password(&salt, iterations);
        let client_key = self.hmac(&salted, b"Client Key");
        let stored_key = self.digest(&client_key);
        let signature = self.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&signature).map(|(a, b)| a ^ b).collect();
        let server_key = self.hmac(&salted, b"Server Key");
        self.server_signature = Some(self.hmac(&server_key, auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", B64.encode(proof)))
    }

    /// Checks server-final-message (`v=...`).
    pub fn verify(&self, server_final: &str) -> bool {
        let expected = self
            .server_signature
            .as_ref()
            .map(|s| format!("v={}", B64.encode(s)));
        expected.as_deref() == Some(server_final)
    }

    fn salted_password(&self, salt: &[u8], i: u32) -> Vec<u8> {
        let p = self.password.as_bytes();
        match self.hash {
            Hash::Sha1 => pbkdf2::pbkdf2_hmac_array::<Sha1, 20>(p, salt, i).to_vec(),
            Hash::Sha256 => pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(p, salt, i).to_vec(),
            Hash::Sha512 => pbkdf2::pbkdf2_hmac_array::<Sha512, 64>(p, salt, i).to_vec(),
        }
    }

    fn hmac(&self, key: &[u8], data: &[u8]) -> Vec<u8> {
        macro_rules! mac {
            ($h:ty) => {{
                let mut m = <Hmac<$h>>::new_from_slice(key).expect("any key length");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }};
        }
        match self.hash {
            Hash::Sha1 => mac!(Sha1),
            Hash::Sha256 => mac!(Sha256),
            Hash::Sha512 => mac!(Sha512),
        }
    }

    fn digest(&self, data: &[u8]) -> Vec<u8> {
        match self.hash {
            Hash::Sha1 => Sha1::digest(data).to_vec(),
            Hash::Sha256 => Sha256::digest(data).to_vec(),
            Hash::Sha512 => Sha512::digest(data).to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 5802 §5.
    #[test]
    fn rfc5802_example() {
        let mut c = ScramClient::new(Hash::Sha1, "user", "pencil", "fyko+d2lbbFgONRv9qkxdawL");
        assert_eq!(c.first(), "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL");
        let fin = c
            .finish("r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096")
            .unwrap();
        assert_eq!(
            fin,
            "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
        );
        assert!(c.verify("v=rmF9pqV8S7suAoZWja4dJRkFsKQ="));
    }
}
