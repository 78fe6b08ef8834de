//! The client side of SCRAM (RFC 5802 §3, §5), so that simulations and tests can play
//! clients against the server with the same hash code the server uses.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use super::ScramHash;

/// Why a server message could not be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramClientError {
    /// server-first-message lacks `r=`, `s=` or `i=`, or they do not parse.
    #[error("malformed server-first-message")]
    MalformedServerFirst,
    /// The server's nonce does not start with ours (RFC 5802 §5.1).
    #[error("the server nonce does not extend the client nonce")]
    NonceMismatch,
}

/// One client exchange with a caller-chosen nonce, so that transcripts repeat.
#[derive(Debug, Clone)]
pub struct ScramClient {
    hash: ScramHash,
    password: String,
    nonce: String,
    gs2_header: String,
    cb_data: Vec<u8>,
    forged_binding: Option<Vec<u8>>,
    client_first_bare: String,
    server_signature: Option<Vec<u8>>,
}

impl ScramClient {
    /// A client for `username` (sent as is, so pass it already escaped per RFC 5802
    /// §5.1 if it holds `,` or `=`), with GS2 header `gs2_header` (`n,,`, `y,,`,
    /// `p=tls-exporter,,`) and channel-binding data `cb_data` (empty without `p=`).
    pub fn new(
        hash: ScramHash,
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
            forged_binding: None,
            client_first_bare: format!("n={username},r={nonce}"),
            server_signature: None,
        }
    }

    /// Sends `c` (raw, before base64) as the channel-binding attribute instead of the
    /// true one: for testing that a server refuses bad bindings.
    #[must_use]
    pub fn with_forged_binding(mut self, c: Vec<u8>) -> Self {
        self.forged_binding = Some(c);
        self
    }

    /// client-first-message.
    pub fn first(&self) -> Vec<u8> {
        format!("{}{}", self.gs2_header, self.client_first_bare).into_bytes()
    }

    /// client-final-message answering `server_first`.
    pub fn finish(&mut self, server_first: &[u8]) -> Result<Vec<u8>, ScramClientError> {
        let text = std::str::from_utf8(server_first).map_err(|_| ScramClientError::MalformedServerFirst)?;
        let attr = |name: &str| text.split(',').find_map(|a| a.strip_prefix(name));
        let (Some(nonce), Some(salt), Some(iterations)) = (attr("r="), attr("s="), attr("i=")) else {
            return Err(ScramClientError::MalformedServerFirst);
        };
        let salt = BASE64
            .decode(salt)
            .map_err(|_| ScramClientError::MalformedServerFirst)?;
        let iterations: u32 = iterations
            .parse()
            .map_err(|_| ScramClientError::MalformedServerFirst)?;
        if !nonce.starts_with(&self.nonce) {
            return Err(ScramClientError::NonceMismatch);
        }
        let c = self.forged_binding.clone().unwrap_or_else(|| {
            let mut c = self.gs2_header.as_bytes().to_vec();
            c.extend_from_slice(&self.cb_data);
            c
        });
        let without_proof = format!("c={},r={nonce}", BASE64.encode(c));
        let auth: [&[u8]; 5] = [
            self.client_first_bare.as_bytes(),
            b",",
            server_first,
            b",",
            without_proof.as_bytes(),
        ];
        let salted = self
            .hash
            .salted_password(self.password.as_bytes(), &salt, iterations);
        let client_key = self.hash.client_key(&salted);
        let signature = self.hash.hmac(&self.hash.digest(&client_key), &auth);
        let proof: Vec<u8> = client_key.iter().zip(&signature).map(|(a, b)| a ^ b).collect();
        self.server_signature = Some(self.hash.hmac(&self.hash.server_key(&salted), &auth));
        Ok(format!("{without_proof},p={}", BASE64.encode(proof)).into_bytes())
    }

    /// The server-final-message a genuine server sends (`v=...`), once
    /// [`ScramClient::finish`] has run.
    pub fn expected_server_final(&self) -> Option<Vec<u8>> {
        self.server_signature
            .as_ref()
            .map(|s| format!("v={}", BASE64.encode(s)).into_bytes())
    }

    /// True when `server_final` proves the server knows the credentials.
    pub fn verify(&self, server_final: &[u8]) -> bool {
        self.expected_server_final().is_some_and(|e| e == server_final)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 5802 §5.
    #[test]
    fn rfc5802_example() {
        let mut c = ScramClient::new(
            ScramHash::Sha1,
            "user",
            "pencil",
            "fyko+d2lbbFgONRv9qkxdawL",
            "n,,",
            vec![],
        );
        assert_eq!(c.first(), b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL");
        let fin = c
            .finish(b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096")
            .unwrap();
        assert_eq!(
            fin,
            b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
        );
        assert!(c.verify(b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ="));
    }

    #[test]
    fn refuses_a_nonce_that_is_not_ours() {
        let mut c = ScramClient::new(ScramHash::Sha256, "user", "pencil", "abc", "n,,", vec![]);
        assert_eq!(
            c.finish(b"r=xyz123,s=QSXCR+Q6sek8bf92,i=4096"),
            Err(ScramClientError::NonceMismatch)
        );
        assert_eq!(
            c.finish(b"r=abc123,i=4096"),
            Err(ScramClientError::MalformedServerFirst)
        );
    }
}
