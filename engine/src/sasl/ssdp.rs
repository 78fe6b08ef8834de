//! XEP-0474 (SASL SCRAM Downgrade Protection, v0.5.0) §3.1: the hash of the advertised
//! mechanism and channel-binding lists that the server puts into its
//! server-first-message, so that a client can detect a MITM that removed mechanisms
//! or channel-binding types from the stream features.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

use super::ScramHash;

/// The SCRAM attribute name that carries the hash (XEP-0474 §3.1: "h").
pub const ATTRIBUTE: char = 'h';

/// XEP-0474 §3.1, steps 1–5: the downgrade protection hash, base64-encoded.
///
/// `mechanisms` are the names of all SASL mechanisms advertised in the SASL profile
/// the client uses (SASL1 and SASL2 lists are never mixed). `channel_bindings` is
/// `Some(types)` when the server advertised XEP-0440 `<sasl-channel-binding/>`, `None`
/// when it did not. Both lists are sorted with "i;octet" collation (RFC 4790 §9.3,
/// plain byte order) and joined with U+001E; the channel-binding list follows a
/// U+001F. The string is hashed with the hash of the SCRAM mechanism in use.
///
/// The delimiters are not XML characters, so no advertised name can contain them.
pub fn downgrade_protection_hash(
    hash: ScramHash,
    mechanisms: &[&str],
    channel_bindings: Option<&[&str]>,
) -> String {
    let mut mechanisms = mechanisms.to_vec();
    mechanisms.sort_unstable();
    let mut s = mechanisms.join("\u{1e}");
    if let Some(types) = channel_bindings {
        let mut types = types.to_vec();
        types.sort_unstable();
        s.push('\u{1f}');
        s.push_str(&types.join("\u{1e}"));
    }
    BASE64.encode(hash.digest(s.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_xep_0474_example() {
        // XEP-0474 §3.3: SHA-1 of
        // 'SCRAM-SHA-1\x1eSCRAM-SHA-1-PLUS\x1ftls-exporter\x1etls-server-end-point'.
        let h = downgrade_protection_hash(
            ScramHash::Sha1,
            &["SCRAM-SHA-1-PLUS", "SCRAM-SHA-1"],
            Some(&["tls-server-end-point", "tls-exporter"]),
        );
        assert_eq!(h, "G6k/rBLDqgOhRRaCuuatSDFkJ08=");
    }

    #[test]
    fn without_xep_0440_there_is_no_separator() {
        let without = downgrade_protection_hash(ScramHash::Sha256, &["SCRAM-SHA-256", "PLAIN"], None);
        let expected = BASE64.encode(ScramHash::Sha256.digest(b"PLAIN\x1eSCRAM-SHA-256"));
        assert_eq!(without, expected);
        let with_empty = downgrade_protection_hash(ScramHash::Sha256, &["SCRAM-SHA-256", "PLAIN"], Some(&[]));
        assert_ne!(without, with_empty);
    }
}
