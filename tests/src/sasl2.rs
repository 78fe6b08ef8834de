//! Client-side pieces for SASL2 (XEP-0388), Bind 2 (XEP-0386), stream management
//! (XEP-0198) and FAST (XEP-0484) in simulations: the `<authenticate/>` a client
//! sends, and readers for what the server answers.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

/// The user-agent id the simulated clients use (a UUID v4, XEP-0388 §2.3).
pub const AGENT: &str = "d4565fa7-4d72-4749-b3d3-740edbf87770";

/// A SASL2 `<authenticate/>` with its inline requests.
#[derive(Debug, Clone, Default)]
pub struct Authenticate {
    /// The mechanism name.
    pub mechanism: String,
    /// The initial response (raw bytes).
    pub initial: Option<Vec<u8>>,
    /// The `<user-agent id=...>`.
    pub agent: Option<String>,
    /// The content of Bind 2's `<bind/>` (e.g. `<tag>App</tag><enable xmlns='urn:xmpp:sm:3'/>`).
    pub bind: Option<String>,
    /// XEP-0198 `<resume previd h/>`.
    pub resume: Option<(String, u32)>,
    /// XEP-0484 `<request-token mechanism/>`.
    pub request_token: Option<String>,
    /// XEP-0484 `<fast count invalidate/>`.
    pub fast: Option<(Option<u64>, bool)>,
}

impl Authenticate {
    /// PLAIN with its initial response for `user` and `password`.
    pub fn plain(user: &str, password: &str) -> Self {
        Self {
            mechanism: "PLAIN".into(),
            initial: Some(format!("\0{user}\0{password}").into_bytes()),
            agent: Some(AGENT.into()),
            ..Self::default()
        }
    }

    /// HT-SHA-256-NONE with `token` for `user`, with `<fast count/>`.
    pub fn fast(user: &str, token: &str, count: Option<u64>) -> Self {
        let m = meerkat_engine::sasl::ht::HtMechanism::parse("HT-SHA-256-NONE").expect("mechanism");
        let initial = m
            .client_initial_response(user, token, &Default::default())
            .expect("no channel binding needed");
        Self {
            mechanism: m.name(),
            initial: Some(initial),
            agent: Some(AGENT.into()),
            fast: Some((count, false)),
            ..Self::default()
        }
    }

    /// Adds a Bind 2 request with tag `tag` and `extra` requests inside it.
    pub fn bind(mut self, tag: &str, extra: &str) -> Self {
        self.bind = Some(format!("<tag>{tag}</tag>{extra}"));
        self
    }

    /// The element as the client writes it.
    pub fn to_xml(&self) -> String {
        let mut s = format!(
            "<authenticate xmlns='urn:xmpp:sasl:2' mechanism='{}'>",
            self.mechanism
        );
        if let Some(ir) = &self.initial {
            s.push_str(&format!(
                "<initial-response>{}</initial-response>",
                B64.encode(ir)
            ));
        }
        if let Some(a) = &self.agent {
            s.push_str(&format!(
                "<user-agent id='{a}'><software>meerkat-sim</software></user-agent>"
            ));
        }
        if let Some((previd, h)) = &self.resume {
            s.push_str(&format!(
                "<resume xmlns='urn:xmpp:sm:3' previd='{previd}' h='{h}'/>"
            ));
        }
        if let Some(b) = &self.bind {
            s.push_str(&format!("<bind xmlns='urn:xmpp:bind:0'>{b}</bind>"));
        }
        if let Some(m) = &self.request_token {
            s.push_str(&format!(
                "<request-token xmlns='urn:xmpp:fast:0' mechanism='{m}'/>"
            ));
        }
        if let Some((count, invalidate)) = &self.fast {
            s.push_str("<fast xmlns='urn:xmpp:fast:0'");
            if let Some(c) = count {
                s.push_str(&format!(" count='{c}'"));
            }
            if *invalidate {
                s.push_str(" invalidate='true'");
            }
            s.push_str("/>");
        }
        s.push_str("</authenticate>");
        s
    }
}

/// The value of attribute `attr` of the first `<name ...>` in `xml`.
pub fn attr_of(xml: &str, name: &str, attr: &str) -> Option<String> {
    let start = xml.find(&format!("<{name} "))?;
    let tag = &xml[start..start + xml[start..].find('>')?];
    let key = format!(" {attr}='");
    let at = tag.find(&key)? + key.len();
    let end = tag[at..].find('\'')?;
    Some(tag[at..at + end].to_string())
}
