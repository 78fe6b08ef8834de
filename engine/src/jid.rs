//! JIDs per RFC 7622: `[localpart@]domainpart[/resourcepart]`, each part prepared with
//! its PRECIS profile (UsernameCaseMapped for the localpart, OpaqueString for the
//! resourcepart, a width-mapped, lower-cased IDNA2008-style domain or an IP literal)
//! and limited to 1023 octets (RFC 7622 §3.1).
//!
//! The part preparation functions are public so that other layers (SASL usernames,
//! stream `to` attributes) apply exactly the same rules as JIDs do.

use std::fmt;

use precis_core::profile::Profile;

/// Why a string is not a JID (RFC 7622 §3). Each variant maps to the XMPP `jid-malformed`
/// condition (RFC 6120 §8.3.3.8) where a stanza carried it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JidError {
    /// RFC 7622 §3.2: the domainpart is empty, has an empty or over-long label, holds
    /// a character a domain name may not, or is a malformed IP literal.
    #[error("invalid domainpart")]
    Domain,
    /// RFC 7622 §3.3: the localpart is empty after `@`, contains a character of
    /// §3.3.1 or fails the UsernameCaseMapped profile (spaces, symbols, controls).
    #[error("invalid localpart")]
    Local,
    /// RFC 7622 §3.4: the resourcepart is empty after `/` or fails OpaqueString.
    #[error("invalid resourcepart")]
    Resource,
    /// RFC 7622 §3.1: a part is longer than 1023 octets.
    #[error("part too long")]
    TooLong,
}

/// A prepared JID (RFC 7622 §3). Equality and hashing compare the prepared forms, so
/// two JIDs that differ only in case of the localpart are the same JID (§3.3).
///
/// Held as its prepared text in one allocation, with the part boundaries: a server
/// keeps several JIDs per session (the session's own, the hub's maps), and three
/// strings each would cost three allocations and 72 bytes inline. The text decides
/// the parts (a localpart or domainpart never holds `@` or `/`), so comparing texts
/// compares parts.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Jid {
    /// `[local@]domain[/resource]`, prepared.
    text: Box<str>,
    /// Length of the localpart; 0 when there is none (a localpart is never empty).
    local_len: u16,
    /// Where the domainpart ends: the `/` before the resourcepart, or the text's end.
    domain_end: u16,
}

impl Jid {
    /// Parses and prepares `s` (RFC 7622 §3.1: the first `/` starts the resourcepart,
    /// the first `@` before it ends the localpart).
    pub fn parse(s: &str) -> Result<Self, JidError> {
        // RFC 7622 §3.1: the first '/' starts the resource; '@' before it ends the local.
        let (rest, resource) = match s.find('/') {
            Some(i) => (&s[..i], Some(&s[i + 1..])),
            None => (s, None),
        };
        let (local, domain) = match rest.find('@') {
            Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
            None => (None, rest),
        };
        Self::new(local, domain, resource)
    }

    /// Builds a JID from its parts, preparing each (RFC 7622 §3.2, §3.3, §3.4).
    pub fn new(local: Option<&str>, domain: &str, resource: Option<&str>) -> Result<Self, JidError> {
        let domain = prepare_domainpart(domain)?;
        let local = local.map(prepare_localpart).transpose()?;
        let resource = resource.map(prepare_resourcepart).transpose()?;
        Ok(Self::from_parts(local.as_deref(), &domain, resource.as_deref()))
    }

    /// Joins prepared parts (each at most [`MAX_PART_LEN`] octets, so every boundary
    /// fits a `u16`).
    fn from_parts(local: Option<&str>, domain: &str, resource: Option<&str>) -> Self {
        let len = local.map_or(0, |l| l.len() + 1) + domain.len() + resource.map_or(0, |r| r.len() + 1);
        let mut text = String::with_capacity(len);
        if let Some(l) = local {
            text.push_str(l);
            text.push('@');
        }
        text.push_str(domain);
        let domain_end = text.len();
        if let Some(r) = resource {
            text.push('/');
            text.push_str(r);
        }
        Self {
            text: text.into_boxed_str(),
            local_len: local.map_or(0, str::len) as u16,
            domain_end: domain_end as u16,
        }
    }

    /// A domain-only JID (a server or component address, RFC 7622 §3.2).
    pub fn domain_jid(domain: &str) -> Result<Self, JidError> {
        Self::new(None, domain, None)
    }

    /// The prepared localpart, if any.
    pub fn local(&self) -> Option<&str> {
        (self.local_len > 0).then(|| &self.text[..usize::from(self.local_len)])
    }

    /// The prepared domainpart.
    pub fn domain(&self) -> &str {
        let start = match self.local_len {
            0 => 0,
            n => usize::from(n) + 1,
        };
        &self.text[start..usize::from(self.domain_end)]
    }

    /// The prepared resourcepart, if any.
    pub fn resource(&self) -> Option<&str> {
        self.text.get(usize::from(self.domain_end) + 1..)
    }

    /// True when there is no resourcepart (a "bare JID", RFC 6120 §1.4).
    pub fn is_bare(&self) -> bool {
        usize::from(self.domain_end) == self.text.len()
    }

    /// This JID without its resourcepart.
    pub fn bare(&self) -> Jid {
        Jid {
            text: self.text[..usize::from(self.domain_end)].into(),
            local_len: self.local_len,
            domain_end: self.domain_end,
        }
    }

    /// This JID's bare form with resourcepart `resource`, prepared.
    pub fn with_resource(&self, resource: &str) -> Result<Jid, JidError> {
        let resource = prepare_resourcepart(resource)?;
        Ok(Self::from_parts(self.local(), self.domain(), Some(&resource)))
    }
}

impl fmt::Display for Jid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The parts, as when they were three fields.
impl fmt::Debug for Jid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jid")
            .field("local", &self.local())
            .field("domain", &self.domain())
            .field("resource", &self.resource())
            .finish()
    }
}

/// Part by part, as when they were three fields (localpart, domainpart, resourcepart;
/// a missing part first), so ordered collections keep their order.
impl Ord for Jid {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.local(), self.domain(), self.resource()).cmp(&(other.local(), other.domain(), other.resource()))
    }
}

impl PartialOrd for Jid {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl std::str::FromStr for Jid {
    type Err = JidError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// RFC 7622 §3.1: every part is at most 1023 octets once prepared.
pub const MAX_PART_LEN: usize = 1023;

/// RFC 1034 §3.1 (kept by IDNA2008): an LDH label is at most 63 octets.
const MAX_LABEL_LEN: usize = 63;

/// Raw input longer than this is refused before PRECIS runs: preparation can shrink
/// a string (fullwidth forms are 3 octets, their ASCII mappings 1), so the 1023-octet
/// limit is judged on the prepared form, but unbounded input is not worth preparing.
const MAX_INPUT_LEN: usize = 4 * MAX_PART_LEN;

fn check_input_len(s: &str) -> Result<(), JidError> {
    if s.len() > MAX_INPUT_LEN {
        Err(JidError::TooLong)
    } else {
        Ok(())
    }
}

fn check_len(s: &str) -> Result<(), JidError> {
    if s.len() > MAX_PART_LEN {
        Err(JidError::TooLong)
    } else {
        Ok(())
    }
}

/// RFC 7622 §3.2: prepares a domainpart.
///
/// A final dot is removed (§3.2). `[...]` must hold an IPv6 address and an IPv4
/// dotted quad is accepted as such (RFC 3986 §3.2.2); both are returned in canonical
/// form so that equal addresses compare equal. Anything else is a domain name: the
/// label separators of IDNA2008 (U+3002, U+FF0E, U+FF61) become dots, and each label
/// is width-mapped, lower-cased and NFC-normalised (§3.2.1) and must hold only
/// letters and digits (PRECIS IdentifierClass, which excludes spaces, symbols and
/// punctuation), ASCII hyphens inside the label, and at most 63 octets when ASCII.
/// This approximates IDNA2008's U-label rules without converting to A-labels.
pub fn prepare_domainpart(s: &str) -> Result<String, JidError> {
    let s = s.strip_suffix('.').unwrap_or(s);
    check_input_len(s)?;
    if s.is_empty() {
        return Err(JidError::Domain);
    }
    if let Some(inner) = s.strip_prefix('[') {
        let addr = inner
            .strip_suffix(']')
            .and_then(|a| a.parse::<std::net::Ipv6Addr>().ok())
            .ok_or(JidError::Domain)?;
        return Ok(format!("[{addr}]"));
    }
    if let Ok(addr) = s.parse::<std::net::Ipv4Addr>() {
        return Ok(addr.to_string());
    }
    let mapped: String = s
        .chars()
        .map(|c| match c {
            '\u{3002}' | '\u{FF0E}' | '\u{FF61}' => '.',
            c => c,
        })
        .collect();
    let mut out = String::with_capacity(mapped.len());
    for (i, label) in mapped.split('.').enumerate() {
        if i > 0 {
            out.push('.');
        }
        out.push_str(&prepare_label(label)?);
    }
    check_len(&out)?;
    Ok(out)
}

/// One label of a domain name (see [`prepare_domainpart`]).
fn prepare_label(label: &str) -> Result<String, JidError> {
    if label.is_empty() {
        return Err(JidError::Domain);
    }
    // UsernameCaseMapped applies exactly RFC 7622 §3.2.1's width mapping, case
    // mapping and NFC on top of IdentifierClass, which is what a label needs.
    let p = precis_profiles::UsernameCaseMapped::new();
    let out = p.enforce(label).map_err(|_| JidError::Domain)?;
    let ascii_ok = out
        .chars()
        .all(|c| !c.is_ascii() || c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !ascii_ok || out.starts_with('-') || out.ends_with('-') {
        return Err(JidError::Domain);
    }
    if out.is_ascii() && out.len() > MAX_LABEL_LEN {
        return Err(JidError::Domain);
    }
    Ok(out.into_owned())
}

/// Characters RFC 7622 §3.3.1 forbids in a localpart on top of UsernameCaseMapped.
const LOCALPART_FORBIDDEN: &str = "\"&'/:<>@";

/// RFC 7622 §3.3: prepares a localpart with the PRECIS UsernameCaseMapped profile
/// (RFC 8265 §3.3: width mapping, lower case, NFC, no spaces), then refuses the
/// characters of §3.3.1, also when width mapping produced them (`＠` → `@`).
pub fn prepare_localpart(s: &str) -> Result<String, JidError> {
    check_input_len(s)?;
    if s.is_empty() || s.chars().any(|c| LOCALPART_FORBIDDEN.contains(c)) {
        return Err(JidError::Local);
    }
    let p = precis_profiles::UsernameCaseMapped::new();
    let out = p.enforce(s).map_err(|_| JidError::Local)?;
    if out.chars().any(|c| LOCALPART_FORBIDDEN.contains(c)) {
        return Err(JidError::Local);
    }
    check_len(&out)?;
    Ok(out.into_owned())
}

/// RFC 7622 §3.4: prepares a resourcepart with the PRECIS OpaqueString profile
/// (RFC 8265 §4.2: non-ASCII spaces become U+0020, NFC, no control characters;
/// case and `@`/`/` are kept).
pub fn prepare_resourcepart(s: &str) -> Result<String, JidError> {
    check_input_len(s)?;
    if s.is_empty() {
        return Err(JidError::Resource);
    }
    let p = precis_profiles::OpaqueString::new();
    let out = p.enforce(s).map_err(|_| JidError::Resource)?;
    check_len(&out)?;
    Ok(out.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_come_back_from_the_joined_text() {
        for (text, local, domain, resource) in [
            ("example.com", None, "example.com", None),
            ("example.com/r", None, "example.com", Some("r")),
            ("a@example.com", Some("a"), "example.com", None),
            ("a@example.com/r@s/t", Some("a"), "example.com", Some("r@s/t")),
            ("[::1]/x", None, "[::1]", Some("x")),
        ] {
            let j = Jid::parse(text).unwrap();
            assert_eq!(
                (j.local(), j.domain(), j.resource()),
                (local, domain, resource),
                "{text}"
            );
            assert_eq!(j.is_bare(), resource.is_none());
            assert_eq!(j.to_string(), text);
            let bare = j.bare();
            assert_eq!(
                (bare.local(), bare.domain(), bare.resource()),
                (local, domain, None)
            );
            assert_eq!(bare.with_resource("Ü r").unwrap().resource(), Some("Ü r"));
            assert_eq!(bare.with_resource("Ü r").unwrap().bare(), bare);
        }
        let long = Jid::new(
            Some(&"l".repeat(MAX_PART_LEN)),
            "example.com",
            Some(&"r".repeat(MAX_PART_LEN)),
        )
        .unwrap();
        assert_eq!(long.local().unwrap().len(), MAX_PART_LEN);
        assert_eq!(long.resource().unwrap().len(), MAX_PART_LEN);
    }

    #[test]
    fn order_is_part_by_part_with_missing_parts_first() {
        let mut jids: Vec<Jid> = [
            "b@a.example",
            "a.example/r",
            "a@b.example",
            "a.example",
            "a@b.example/r",
        ]
        .iter()
        .map(|s| Jid::parse(s).unwrap())
        .collect();
        jids.sort();
        let sorted: Vec<String> = jids.iter().map(Jid::to_string).collect();
        assert_eq!(
            sorted,
            [
                "a.example",
                "a.example/r",
                "a@b.example",
                "a@b.example/r",
                "b@a.example"
            ]
        );
        assert_eq!(
            format!("{:?}", Jid::parse("a@b/c").unwrap()),
            r#"Jid { local: Some("a"), domain: "b", resource: Some("c") }"#
        );
    }

    #[test]
    fn parses_parts_and_case_maps_localpart() {
        let j = Jid::parse("Juliet@Example.COM/Balcony Room").unwrap();
        assert_eq!(j.local(), Some("juliet"));
        assert_eq!(j.domain(), "example.com");
        assert_eq!(j.resource(), Some("Balcony Room"));
        assert_eq!(j.to_string(), "juliet@example.com/Balcony Room");
        assert_eq!(j.bare().to_string(), "juliet@example.com");
    }

    #[test]
    fn resource_may_contain_at_and_slash() {
        let j = Jid::parse("a@b/c@d/e").unwrap();
        assert_eq!(j.resource(), Some("c@d/e"));
    }

    #[test]
    fn rejects_empty_parts() {
        assert_eq!(Jid::parse("@example.com"), Err(JidError::Local));
        assert_eq!(Jid::parse("a@"), Err(JidError::Domain));
        assert_eq!(Jid::parse("a@b/"), Err(JidError::Resource));
        assert_eq!(Jid::parse(""), Err(JidError::Domain));
        assert_eq!(Jid::parse("/r"), Err(JidError::Domain));
        assert_eq!(Jid::parse("a@."), Err(JidError::Domain));
        assert_eq!(Jid::parse("a@b..c"), Err(JidError::Domain));
        assert_eq!(Jid::parse("a@.b"), Err(JidError::Domain));
    }

    #[test]
    fn case_maps_localpart_and_domain_but_not_resource() {
        let j = Jid::parse("ROMEO@MONTAGUE.Example/Orchard").unwrap();
        assert_eq!(j.to_string(), "romeo@montague.example/Orchard");
        assert_eq!(j, Jid::parse("romeo@montague.example/Orchard").unwrap());
        assert_ne!(j, Jid::parse("romeo@montague.example/orchard").unwrap());
        // Unicode case mapping (RFC 8265 §3.3.1 step 2).
        assert_eq!(Jid::parse("ÇA@example.com").unwrap().local(), Some("ça"));
        assert_eq!(Jid::parse("x@ÜBER.example").unwrap().domain(), "über.example");
    }

    #[test]
    fn width_maps_fullwidth_characters() {
        // RFC 8265 §3.3.1 step 1 and RFC 7622 §3.2.1: fullwidth forms map to ASCII.
        let j = Jid::parse("\u{FF4A}\u{FF55}\u{FF4C}\u{FF49}\u{FF45}\u{FF54}@example.com").unwrap();
        assert_eq!(j.local(), Some("juliet"));
        let d = Jid::domain_jid("\u{FF45}\u{FF58}.\u{FF43}\u{FF4F}\u{FF4D}").unwrap();
        assert_eq!(d.domain(), "ex.com");
        // Ideographic full stop separates labels like a dot.
        assert_eq!(
            Jid::domain_jid("example\u{3002}com").unwrap().domain(),
            "example.com"
        );
        // A fullwidth '@' that maps to '@' is still forbidden in a localpart.
        assert_eq!(
            Jid::new(Some("a\u{FF20}b"), "example.com", None),
            Err(JidError::Local)
        );
    }

    #[test]
    fn rejects_forbidden_localpart_characters() {
        for bad in [
            "a\"b",
            "a&b",
            "a'b",
            "a:b",
            "a<b",
            "a>b",
            "a b",
            "a\u{0007}b",
            "a\tb",
        ] {
            assert_eq!(
                Jid::new(Some(bad), "example.com", None),
                Err(JidError::Local),
                "{bad:?}"
            );
        }
        assert_eq!(Jid::new(Some("a/b"), "example.com", None), Err(JidError::Local));
        assert_eq!(Jid::new(Some("a@b"), "example.com", None), Err(JidError::Local));
        // Allowed: punctuation not listed in RFC 7622 §3.3.1.
        assert!(Jid::new(Some("o.brien+tag_1"), "example.com", None).is_ok());
    }

    #[test]
    fn rejects_bad_domainparts() {
        for bad in [
            "exa mple.com",
            "exa_mple.com",
            "-example.com",
            "example-.com",
            "exa!mple.com",
            "a\"b",
            "a<b",
            "a:b",
            "[::1",
            "[not-an-address]",
            "[127.0.0.1]",
            "ex\u{00A0}ample.com",
            "ex\u{2603}ample.com",
        ] {
            assert_eq!(Jid::domain_jid(bad), Err(JidError::Domain), "{bad:?}");
        }
        assert_eq!(Jid::parse("a@b@c"), Err(JidError::Domain));
    }

    #[test]
    fn accepts_ip_literals_in_canonical_form() {
        assert_eq!(Jid::domain_jid("127.0.0.1").unwrap().domain(), "127.0.0.1");
        assert_eq!(Jid::domain_jid("[::1]").unwrap().domain(), "[::1]");
        assert_eq!(
            Jid::parse("u@[2001:DB8:0::1]/r").unwrap().domain(),
            "[2001:db8::1]"
        );
    }

    #[test]
    fn strips_one_trailing_dot() {
        assert_eq!(Jid::parse("a@example.com.").unwrap().domain(), "example.com");
        assert_eq!(Jid::parse("a@example.com.."), Err(JidError::Domain));
    }

    #[test]
    fn resourcepart_uses_opaque_string() {
        let j = Jid::parse("a@b/x\u{00A0}y").unwrap();
        assert_eq!(j.resource(), Some("x y"));
        assert_eq!(Jid::parse("a@b/x\u{0000}"), Err(JidError::Resource));
        assert_eq!(
            Jid::parse("a@b")
                .unwrap()
                .with_resource("e\u{0301}")
                .unwrap()
                .resource(),
            Some("\u{00E9}")
        );
    }

    #[test]
    fn enforces_length_limits() {
        let max = "a".repeat(MAX_PART_LEN);
        let over = "a".repeat(MAX_PART_LEN + 1);
        assert!(Jid::new(Some(&max), "example.com", None).is_ok());
        assert_eq!(Jid::new(Some(&over), "example.com", None), Err(JidError::TooLong));
        assert!(Jid::new(None, "example.com", Some(&max)).is_ok());
        assert_eq!(Jid::new(None, "example.com", Some(&over)), Err(JidError::TooLong));
        // Labels: 63 octets at most.
        let label63 = "b".repeat(63);
        assert!(Jid::domain_jid(&format!("{label63}.com")).is_ok());
        assert_eq!(Jid::domain_jid(&format!("{label63}b.com")), Err(JidError::Domain));
        // Whole domain: 1023 octets at most.
        let long_domain = vec![label63.as_str(); 17].join(".");
        assert!(long_domain.len() > MAX_PART_LEN);
        assert_eq!(Jid::domain_jid(&long_domain), Err(JidError::TooLong));
        let ok_domain = vec![label63.as_str(); 16].join(".");
        assert!(Jid::domain_jid(&ok_domain).is_ok());
    }

    #[test]
    fn length_limit_applies_to_the_prepared_form() {
        // 400 fullwidth letters are 1200 octets raw and 400 once width-mapped.
        let wide = "\u{FF41}".repeat(400);
        assert_eq!(
            Jid::new(Some(&wide), "example.com", None)
                .unwrap()
                .local()
                .unwrap()
                .len(),
            400
        );
        let huge = "a".repeat(5000);
        assert_eq!(Jid::new(Some(&huge), "example.com", None), Err(JidError::TooLong));
        assert_eq!(Jid::domain_jid(&huge), Err(JidError::TooLong));
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics_and_display_round_trips(s in "\\PC{0,40}") {
            if let Ok(j) = Jid::parse(&s) {
                proptest::prop_assert_eq!(Jid::parse(&j.to_string()), Ok(j));
            }
        }
    }

    #[test]
    fn never_panics_on_odd_input() {
        for s in [
            "@",
            "/",
            "@/",
            "a@/",
            "[",
            "]",
            "[]",
            "@@@",
            "\u{FFFF}",
            "a@\u{0300}",
            "...",
        ] {
            let _ = Jid::parse(s);
        }
    }
}
