//! Client side of SASL2 (XEP-0388) with Bind 2 (XEP-0386) inline, and of FAST (XEP-0484)
//! with the `HT-SHA-256-NONE` mechanism (draft-ietf-kitten-sasl-ht): the `<authenticate/>`
//! a session sends, the HT proofs, and what it reads from `<success/>`. Sans-IO: the
//! session code moves the elements.

use crate::xml::{escape, Element};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const NS_SASL2: &str = "urn:xmpp:sasl:2";
pub const NS_BIND2: &str = "urn:xmpp:bind:0";
pub const NS_FAST: &str = "urn:xmpp:fast:0";

/// The one HT mechanism the load generator uses: HMAC-SHA-256 without channel binding, which
/// every FAST server offers on TLS (XEP-0484 §6).
pub const HT_MECHANISM: &str = "HT-SHA-256-NONE";

/// What a real client keeps between its logins: its user-agent id (XEP-0388 §2.3; a FAST
/// server keeps tokens per user and id, XEP-0484 §4.1) and its FAST token with the
/// count of its last use (§3.4: each use carries a higher count, so a replay fails).
pub struct Device {
    pub agent_id: String,
    token: Option<String>,
    count: u64,
}

impl Device {
    pub fn new() -> Self {
        Device {
            agent_id: uuid_v4(),
            token: None,
            count: 0,
        }
    }

    /// The token and the count for a login with it, if the device holds one. The count
    /// goes up on every call, so a login never repeats one.
    pub fn fast_login(&mut self) -> Option<(String, u64)> {
        let token = self.token.clone()?;
        self.count += 1;
        Some((token, self.count))
    }

    /// A `<success/>` arrived: the token in it, if any (issued on request, or rotated,
    /// §3.3), replaces the one held. Returns whether there was one.
    pub fn take_token(&mut self, token: Option<String>) -> bool {
        let new = token.is_some();
        if new {
            self.token = token;
        }
        new
    }

    /// The server refused the token (§4.2: expired or invalidated): the next login uses
    /// the password and asks for a new one.
    pub fn forget_token(&mut self) {
        self.token = None;
    }
}

/// A random UUID (version 4, RFC 9562 §5.4), the form XEP-0388 §2.3 asks for the id.
pub fn uuid_v4() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// The inline requests of one `<authenticate/>`, after its initial response.
pub struct Inline<'a> {
    pub agent_id: &'a str,
    /// Bind 2 with this tag (XEP-0386 §3: the server makes the resource from it).
    pub bind_tag: &'a str,
    /// XEP-0484 §3.2 `<request-token/>` for [`HT_MECHANISM`].
    pub request_token: bool,
    /// XEP-0484 §3.4 `<fast count/>`: authenticating with a token.
    pub fast_count: Option<u64>,
}

impl Inline<'_> {
    /// XEP-0388 §2.3 `<authenticate/>`.
    pub fn authenticate(&self, mechanism: &str, initial_response: &[u8]) -> String {
        let mut s = format!(
            "<authenticate xmlns='{NS_SASL2}' mechanism='{}'><initial-response>{}</initial-response>\
             <user-agent id='{}'><software>meerkat-loadgen</software></user-agent>\
             <bind xmlns='{NS_BIND2}'><tag>{}</tag></bind>",
            escape(mechanism),
            B64.encode(initial_response),
            escape(self.agent_id),
            escape(self.bind_tag)
        );
        if self.request_token {
            s.push_str(&format!(
                "<request-token xmlns='{NS_FAST}' mechanism='{HT_MECHANISM}'/>"
            ));
        }
        if let Some(c) = self.fast_count {
            s.push_str(&format!("<fast xmlns='{NS_FAST}' count='{c}'/>"));
        }
        s.push_str("</authenticate>");
        s
    }
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

/// The HT initial response: `authcid NUL HMAC(token, "Initiator")` (no channel binding data).
pub fn ht_initial_response(user: &str, token: &str) -> Vec<u8> {
    let mut out = user.as_bytes().to_vec();
    out.push(0);
    out.extend(hmac_sha256(token.as_bytes(), b"Initiator"));
    out
}

/// The server's proof that it knows the token too: the additional data of its success.
pub fn ht_responder(token: &str) -> Vec<u8> {
    hmac_sha256(token.as_bytes(), b"Responder")
}

/// Where the SASL2 authentication feature offers `mechanism`.
pub enum Offer {
    /// In `<authentication/>`, as a SASL mechanism.
    Sasl,
    /// In `<inline><fast/>`, as a FAST mechanism.
    Fast,
}

/// Whether the features' `<authentication xmlns='urn:xmpp:sasl:2'/>` offers `mechanism`.
pub fn offers(features: &Element, mechanism: &str, offer: Offer) -> bool {
    let Some(auth) = features
        .children
        .iter()
        .find(|c| c.local() == "authentication" && c.attr("xmlns") == Some(NS_SASL2))
    else {
        return false;
    };
    let list = match offer {
        Offer::Sasl => Some(auth),
        Offer::Fast => auth.child("inline").and_then(|i| i.child("fast")),
    };
    list.is_some_and(|l| {
        l.children
            .iter()
            .any(|c| c.local() == "mechanism" && c.text.trim() == mechanism)
    })
}

/// What the session needs from a SASL2 `<success/>` (XEP-0388 §2.6.1).
#[derive(Debug, PartialEq, Eq)]
pub struct Success {
    /// `<authorization-identifier/>`: the full JID once Bind 2 bound the session.
    pub jid: String,
    /// Bind 2's `<bound/>` was there.
    pub bound: bool,
    /// A FAST token issued or rotated (XEP-0484 §3.2, §3.3).
    pub token: Option<String>,
}

impl Success {
    pub fn parse(el: &Element) -> Self {
        Success {
            jid: el
                .child("authorization-identifier")
                .map(|j| j.text.trim().to_string())
                .unwrap_or_default(),
            bound: el.child("bound").is_some(),
            token: el
                .child("token")
                .and_then(|t| t.attr("token"))
                .filter(|t| !t.is_empty())
                .map(str::to_string),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authenticate_carries_the_inline_requests() {
        let first = Inline {
            agent_id: "id-1",
            bind_tag: "loadgen",
            request_token: true,
            fast_count: None,
        };
        let s = first.authenticate("SCRAM-SHA-1", b"n,,n=u,r=x");
        let el = Element::parse(s.as_bytes()).unwrap();
        assert_eq!(
            (el.local(), el.attr("xmlns"), el.attr("mechanism")),
            ("authenticate", Some(NS_SASL2), Some("SCRAM-SHA-1"))
        );
        assert_eq!(
            B64.decode(&el.child("initial-response").unwrap().text).unwrap(),
            b"n,,n=u,r=x"
        );
        assert_eq!(el.child("user-agent").unwrap().attr("id"), Some("id-1"));
        let bind = el.child("bind").unwrap();
        assert_eq!(
            (bind.attr("xmlns"), bind.child("tag").unwrap().text.as_str()),
            (Some(NS_BIND2), "loadgen")
        );
        let rt = el.child("request-token").unwrap();
        assert_eq!(
            (rt.attr("xmlns"), rt.attr("mechanism")),
            (Some(NS_FAST), Some(HT_MECHANISM))
        );
        assert!(el.child("fast").is_none());

        let again = Inline {
            request_token: false,
            fast_count: Some(7),
            ..first
        };
        let el = Element::parse(again.authenticate(HT_MECHANISM, b"u\0m").as_bytes()).unwrap();
        assert!(el.child("request-token").is_none());
        assert_eq!(el.child("fast").unwrap().attr("count"), Some("7"));
    }

    /// HMAC-SHA-256 of RFC 4231 test case 2 (key "Jefe"), through the HT framing.
    #[test]
    fn ht_proofs() {
        let ir = ht_initial_response("user1", "Jefe");
        let (user, mac) = ir.split_at(ir.iter().position(|b| *b == 0).unwrap());
        assert_eq!(user, b"user1");
        assert_eq!(mac[1..], hmac_sha256(b"Jefe", b"Initiator"));
        assert_eq!(
            hmac_sha256(b"Jefe", b"what do ya want for nothing?"),
            B64.decode("W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM=")
                .unwrap()
        );
        assert_ne!(ht_responder("Jefe"), mac[1..]);
        assert_ne!(ht_responder("Jefe"), ht_responder("Jeff"));
    }

    #[test]
    fn features_and_success() {
        let f = Element::parse(
            b"<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
              <mechanism>PLAIN</mechanism></mechanisms>\
              <authentication xmlns='urn:xmpp:sasl:2'><mechanism>SCRAM-SHA-1</mechanism>\
              <inline><bind xmlns='urn:xmpp:bind:0'/><fast xmlns='urn:xmpp:fast:0'>\
              <mechanism>HT-SHA-256-NONE</mechanism></fast></inline></authentication>\
              </stream:features>",
        )
        .unwrap();
        assert!(offers(&f, "SCRAM-SHA-1", Offer::Sasl));
        assert!(!offers(&f, "PLAIN", Offer::Sasl), "a SASL1 mechanism only");
        assert!(offers(&f, HT_MECHANISM, Offer::Fast));
        assert!(!offers(&f, "HT-SHA-256-EXPR", Offer::Fast));
        assert!(!offers(&f, HT_MECHANISM, Offer::Sasl));

        let s = Element::parse(
            b"<success xmlns='urn:xmpp:sasl:2'><additional-data>dj1x</additional-data>\
              <authorization-identifier>user1@localhost/loadgen.x1</authorization-identifier>\
              <bound xmlns='urn:xmpp:bind:0'/>\
              <token xmlns='urn:xmpp:fast:0' expiry='2026-12-03T00:00:00Z' token='abc'/></success>",
        )
        .unwrap();
        assert_eq!(
            Success::parse(&s),
            Success {
                jid: "user1@localhost/loadgen.x1".into(),
                bound: true,
                token: Some("abc".into())
            }
        );
    }

    #[test]
    fn device_ids_are_uuids() {
        let d = Device::new();
        let id = &d.agent_id;
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!("89ab".contains(&id[19..20]));
        assert_ne!(id, &Device::new().agent_id);
    }

    #[test]
    fn device_uses_the_newest_token_with_a_rising_count() {
        let mut d = Device::new();
        assert_eq!(d.fast_login(), None, "no token yet: the password");
        assert!(!d.take_token(None));
        assert!(d.take_token(Some("first".into())));
        assert_eq!(d.fast_login(), Some(("first".into(), 1)));
        assert!(!d.take_token(None), "no rotation: the token stays");
        assert_eq!(d.fast_login(), Some(("first".into(), 2)));
        assert!(d.take_token(Some("rotated".into())));
        assert_eq!(d.fast_login(), Some(("rotated".into(), 3)));
        d.forget_token();
        assert_eq!(d.fast_login(), None);
        assert!(d.take_token(Some("again".into())));
        assert_eq!(d.fast_login(), Some(("again".into(), 4)), "counts never repeat");
    }
}
