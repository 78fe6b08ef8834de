//! The messages of RFC 5802 §7 as the server reads them, and the reasons an exchange
//! fails, each with its `e=` server-error value and its RFC 6120 §6.5 condition.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

use super::{ChannelBindingType, SaslFailure};

/// Why a SCRAM exchange failed. Every reason maps to one RFC 5802 §7 `server-error-value`
/// ([`ScramError::server_error`]) and to one RFC 6120 §6.5 condition
/// ([`ScramError::failure`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    /// A message does not follow the RFC 5802 §7 grammar (attribute order, names,
    /// empty values, bad base64 inside `c=`/`p=`, non-UTF-8, NUL).
    #[error("message does not follow the SCRAM grammar")]
    Malformed,
    /// A saslname holds `=` not followed by `2C` or `3D` (RFC 5802 §5.1 `n`).
    #[error("bad '=' escape in a username")]
    UsernameEncoding,
    /// The username, once decoded, is not a valid localpart (RFC 7622 §3.3) or names
    /// another domain.
    #[error("username is not a localpart of this domain")]
    BadUsername,
    /// The `a=` authzid is not the user's bare JID (RFC 6120 §6.3.8).
    #[error("authzid is not the user's bare JID")]
    InvalidAuthzid,
    /// The mandatory extension `m=` was sent (RFC 5802 §5.1: MUST fail).
    #[error("mandatory extension not supported")]
    ExtensionsNotSupported,
    /// A `-PLUS` mechanism was selected without the `p` flag, or `p` was sent on a
    /// mechanism without `-PLUS` (RFC 5802 §6, RFC 5801 §5).
    #[error("channel-binding flag does not match the mechanism")]
    FlagMismatch,
    /// The client sent `y` although the server advertised a `-PLUS` mechanism: a
    /// downgrade (RFC 5802 §6).
    #[error("client thinks the server does not support channel binding")]
    Downgrade,
    /// `p=` names a channel-binding type the server does not implement.
    #[error("unsupported channel-binding type")]
    UnsupportedChannelBindingType,
    /// `p=` names a type the server implements but cannot offer on this connection
    /// (no TLS, or no TLS 1.3 for `tls-exporter`).
    #[error("channel binding not available on this connection")]
    ChannelBindingUnavailable,
    /// `c=` is not the GS2 header followed by the channel-binding data (RFC 5802 §5.1).
    #[error("channel bindings do not match")]
    ChannelBindingsDontMatch,
    /// `r=` in the client-final-message is not the nonce of the server-first-message.
    #[error("nonce mismatch")]
    NonceMismatch,
    /// The proof is wrong, or the user does not exist (indistinguishable on purpose).
    #[error("invalid proof")]
    InvalidProof,
    /// A message arrived in a state that expects none (an exchange that ended, or a
    /// response while credentials are being looked up).
    #[error("unexpected message")]
    UnexpectedMessage,
}

impl ScramError {
    /// The RFC 5802 §7 `server-error-value` a server-final-message would carry (`e=`).
    /// Unknown users report `invalid-proof`, never `unknown-user`, so that the answer
    /// does not reveal which accounts exist.
    pub fn server_error(self) -> &'static str {
        match self {
            ScramError::Malformed | ScramError::UnexpectedMessage => "invalid-encoding",
            ScramError::UsernameEncoding | ScramError::BadUsername => "invalid-username-encoding",
            ScramError::InvalidAuthzid | ScramError::NonceMismatch | ScramError::FlagMismatch => {
                "other-error"
            }
            ScramError::ExtensionsNotSupported => "extensions-not-supported",
            ScramError::Downgrade => "server-does-support-channel-binding",
            ScramError::UnsupportedChannelBindingType => "unsupported-channel-binding-type",
            ScramError::ChannelBindingUnavailable => "channel-binding-not-supported",
            ScramError::ChannelBindingsDontMatch => "channel-bindings-dont-match",
            ScramError::InvalidProof => "invalid-proof",
        }
    }

    /// The RFC 6120 §6.5 condition the client gets. Grammar violations are
    /// `malformed-request` (§6.5.8); a wrong authzid is `invalid-authzid` (§6.5.6);
    /// everything that is about who the client is or what it proved, including channel
    /// binding and downgrade checks, is `not-authorized` (§6.5.10).
    pub fn failure(self) -> SaslFailure {
        match self {
            ScramError::Malformed
            | ScramError::UsernameEncoding
            | ScramError::ExtensionsNotSupported
            | ScramError::FlagMismatch
            | ScramError::UnexpectedMessage => SaslFailure::MalformedRequest,
            ScramError::InvalidAuthzid => SaslFailure::InvalidAuthzid,
            ScramError::BadUsername
            | ScramError::Downgrade
            | ScramError::UnsupportedChannelBindingType
            | ScramError::ChannelBindingUnavailable
            | ScramError::ChannelBindingsDontMatch
            | ScramError::NonceMismatch
            | ScramError::InvalidProof => SaslFailure::NotAuthorized,
        }
    }
}

/// RFC 5802 §7 `gs2-cbind-flag`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CbFlag<'a> {
    /// `n`: the client does not support channel binding.
    None,
    /// `y`: the client supports it but thinks the server does not.
    ClientOnly,
    /// `p=cb-name`: the client uses this channel binding.
    Required(&'a str),
}

impl CbFlag<'_> {
    /// The binding type named by `p=`, when the server knows it.
    pub(crate) fn binding_type(name: &str) -> Option<ChannelBindingType> {
        match name {
            "tls-exporter" => Some(ChannelBindingType::TlsExporter),
            "tls-server-end-point" => Some(ChannelBindingType::TlsServerEndPoint),
            _ => None,
        }
    }
}

/// RFC 5802 §7 `client-first-message`, borrowed from the received bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClientFirst<'a> {
    /// `gs2-header`, including its final comma; `c=` must echo it.
    pub gs2_header: &'a str,
    /// The channel-binding flag.
    pub flag: CbFlag<'a>,
    /// The decoded `a=` authzid, if any.
    pub authzid: Option<String>,
    /// The decoded `n=` username, not yet prepared.
    pub username: String,
    /// The client's nonce (`r=`).
    pub nonce: &'a str,
    /// `client-first-message-bare`, part of the AuthMessage.
    pub bare: &'a str,
}

/// RFC 5802 §7 `client-final-message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClientFinal<'a> {
    /// `client-final-message-without-proof`, part of the AuthMessage.
    pub without_proof: &'a str,
    /// Decoded `c=`: GS2 header plus channel-binding data.
    pub channel_binding: Vec<u8>,
    /// `r=`: client nonce followed by server nonce.
    pub nonce: &'a str,
    /// Decoded `p=`.
    pub proof: Vec<u8>,
}

/// Parses a client-first-message (RFC 5802 §7).
pub(crate) fn parse_client_first(data: &[u8]) -> Result<ClientFirst<'_>, ScramError> {
    let msg = utf8_without_nul(data)?;
    let (flag_str, rest) = msg.split_once(',').ok_or(ScramError::Malformed)?;
    let flag = match flag_str {
        "n" => CbFlag::None,
        "y" => CbFlag::ClientOnly,
        _ => {
            let name = flag_str.strip_prefix("p=").ok_or(ScramError::Malformed)?;
            // RFC 5056 §7 cb-name: 1*(ALPHA / DIGIT / "." / "-").
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
            {
                return Err(ScramError::Malformed);
            }
            CbFlag::Required(name)
        }
    };
    let (authz_str, bare) = rest.split_once(',').ok_or(ScramError::Malformed)?;
    let authzid = if authz_str.is_empty() {
        None
    } else {
        let name = authz_str.strip_prefix("a=").ok_or(ScramError::Malformed)?;
        Some(decode_saslname(name)?)
    };
    let gs2_header = &msg[..flag_str.len() + authz_str.len() + 2];

    let mut attrs = bare.split(',');
    let first = attrs.next().unwrap_or_default();
    if first.starts_with("m=") {
        return Err(ScramError::ExtensionsNotSupported);
    }
    let username = decode_saslname(first.strip_prefix("n=").ok_or(ScramError::Malformed)?)?;
    let nonce = attrs
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .ok_or(ScramError::Malformed)?;
    check_nonce(nonce)?;
    check_extensions(attrs)?;
    Ok(ClientFirst {
        gs2_header,
        flag,
        authzid,
        username,
        nonce,
        bare,
    })
}

/// Parses a client-final-message (RFC 5802 §7): `c=`, `r=`, extensions, `p=` last.
pub(crate) fn parse_client_final(data: &[u8]) -> Result<ClientFinal<'_>, ScramError> {
    let msg = utf8_without_nul(data)?;
    let (without_proof, proof) = msg.rsplit_once(",p=").ok_or(ScramError::Malformed)?;
    let proof = decode_base64(proof)?;
    let mut attrs = without_proof.split(',');
    let channel_binding = attrs
        .next()
        .and_then(|a| a.strip_prefix("c="))
        .ok_or(ScramError::Malformed)
        .and_then(decode_base64)?;
    let nonce = attrs
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .ok_or(ScramError::Malformed)?;
    check_nonce(nonce)?;
    check_extensions(attrs)?;
    Ok(ClientFinal {
        without_proof,
        channel_binding,
        nonce,
        proof,
    })
}

/// RFC 5802 §7 `saslname`: `=2C` is `,` and `=3D` is `=`; any other `=` and any `,`
/// are errors, and the name may not be empty.
pub(crate) fn decode_saslname(s: &str) -> Result<String, ScramError> {
    if s.is_empty() {
        return Err(ScramError::Malformed);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        let esc = rest.get(i + 1..i + 3).ok_or(ScramError::UsernameEncoding)?;
        out.push(match esc {
            "2C" => ',',
            "3D" => '=',
            _ => return Err(ScramError::UsernameEncoding),
        });
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// RFC 5802 §7 `c-nonce`/`nonce`: one or more `printable` characters
/// (%x21-2B / %x2D-7E).
fn check_nonce(nonce: &str) -> Result<(), ScramError> {
    if !nonce.is_empty() && nonce.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b',') {
        Ok(())
    } else {
        Err(ScramError::Malformed)
    }
}

/// RFC 5802 §7 `extensions`: `attr-val` items (`ALPHA "=" 1*value-char`), ignored
/// unless `m`, which is reserved and MUST fail the exchange (§5.1).
fn check_extensions<'a>(attrs: impl Iterator<Item = &'a str>) -> Result<(), ScramError> {
    for attr in attrs {
        let b = attr.as_bytes();
        if b.len() < 3 || !b[0].is_ascii_alphabetic() || b[1] != b'=' {
            return Err(ScramError::Malformed);
        }
        if b[0] == b'm' {
            return Err(ScramError::ExtensionsNotSupported);
        }
    }
    Ok(())
}

/// SCRAM messages are UTF-8 (RFC 5802 §7) and `value-safe-char` excludes NUL.
fn utf8_without_nul(data: &[u8]) -> Result<&str, ScramError> {
    let s = std::str::from_utf8(data).map_err(|_| ScramError::Malformed)?;
    if s.contains('\0') {
        return Err(ScramError::Malformed);
    }
    Ok(s)
}

/// RFC 5802 §7 `base64` (RFC 4648 §4, padded).
fn decode_base64(s: &str) -> Result<Vec<u8>, ScramError> {
    BASE64.decode(s).map_err(|_| ScramError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rfc5802_client_first() {
        let m = parse_client_first(b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL").unwrap();
        assert_eq!(m.gs2_header, "n,,");
        assert_eq!(m.flag, CbFlag::None);
        assert_eq!(m.authzid, None);
        assert_eq!(m.username, "user");
        assert_eq!(m.nonce, "fyko+d2lbbFgONRv9qkxdawL");
        assert_eq!(m.bare, "n=user,r=fyko+d2lbbFgONRv9qkxdawL");
    }

    #[test]
    fn parses_gs2_header_variants() {
        let m = parse_client_first(b"p=tls-exporter,a=juliet@example.com,n=juliet,r=abc,x=ext").unwrap();
        assert_eq!(m.gs2_header, "p=tls-exporter,a=juliet@example.com,");
        assert_eq!(m.flag, CbFlag::Required("tls-exporter"));
        assert_eq!(m.authzid.as_deref(), Some("juliet@example.com"));
        assert_eq!(
            parse_client_first(b"y,,n=u,r=a").unwrap().flag,
            CbFlag::ClientOnly
        );
    }

    #[test]
    fn decodes_saslname_escapes() {
        assert_eq!(decode_saslname("a=2Cb=3Dc").unwrap(), "a,b=c");
        assert_eq!(decode_saslname("=2C").unwrap(), ",");
        assert_eq!(decode_saslname("a=2c"), Err(ScramError::UsernameEncoding));
        assert_eq!(decode_saslname("a=3"), Err(ScramError::UsernameEncoding));
        assert_eq!(decode_saslname("a="), Err(ScramError::UsernameEncoding));
        assert_eq!(decode_saslname("a=41"), Err(ScramError::UsernameEncoding));
        assert_eq!(decode_saslname("é=\u{e9}"), Err(ScramError::UsernameEncoding));
        assert_eq!(decode_saslname(""), Err(ScramError::Malformed));
    }

    #[test]
    fn rejects_malformed_client_first() {
        for bad in [
            &b""[..],
            b"n",
            b"n,",
            b"n,,",
            b"x,,n=u,r=a",
            b"p=,,n=u,r=a",
            b"p=tls unique,,n=u,r=a",
            b"n,b=x,n=u,r=a",
            b"n,a=,n=u,r=a",
            b"n,,r=a,n=u",
            b"n,,n=u",
            b"n,,n=u,r=",
            b"n,,n=,r=a",
            b"n,,n=u,r=a,",
            b"n,,n=u,r=a,1=x",
            b"n,,n=u,r=a,x=",
            b"N,,n=u,r=a",
            b"n,,n=u\0,r=a",
            b"n,,n=\xff,r=a",
        ] {
            assert_eq!(
                parse_client_first(bad),
                Err(ScramError::Malformed),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(
            parse_client_first(b"n,,m=x,n=u,r=a"),
            Err(ScramError::ExtensionsNotSupported)
        );
        assert_eq!(
            parse_client_first(b"n,,n=u,r=a,m=x"),
            Err(ScramError::ExtensionsNotSupported)
        );
        assert_eq!(
            parse_client_first(b"n,,n=a=b,r=a"),
            Err(ScramError::UsernameEncoding)
        );
    }

    #[test]
    fn parses_client_final() {
        let m = parse_client_final(b"c=biws,r=abc,x=1,p=dGVzdA==").unwrap();
        assert_eq!(m.without_proof, "c=biws,r=abc,x=1");
        assert_eq!(m.channel_binding, b"n,,");
        assert_eq!(m.nonce, "abc");
        assert_eq!(m.proof, b"test");
    }

    #[test]
    fn rejects_malformed_client_final() {
        for bad in [
            &b""[..],
            b"c=biws,r=abc",
            b"r=abc,c=biws,p=dGVzdA==",
            b"c=biws,p=dGVzdA==",
            b"c=biws,r=abc,p=dGVzdA==,x=1",
            b"c=bi!s,r=abc,p=dGVzdA==",
            b"c=biws,r=abc,p=dGVzdA",
            b"c=biws,r=,p=dGVzdA==",
            b"c=biws,r=abc,=1,p=dGVzdA==",
        ] {
            assert_eq!(
                parse_client_final(bad),
                Err(ScramError::Malformed),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(
            parse_client_final(b"c=biws,r=abc,m=1,p=dGVzdA=="),
            Err(ScramError::ExtensionsNotSupported)
        );
    }
}
