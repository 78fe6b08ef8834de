//! JIDs per RFC 7622: `[localpart@]domainpart[/resourcepart]`, each part prepared with
//! its PRECIS profile (UsernameCaseMapped for the localpart, OpaqueString for the
//! resourcepart, lower-cased IDNA-style domain) and limited to 1023 bytes.

use std::fmt;

/// Why a string is not a JID (RFC 7622 §3).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JidError {
    /// The domainpart is empty or not a valid domain label sequence.
    #[error("invalid domainpart")]
    Domain,
    /// The localpart is empty after `@`, contains a forbidden character or fails PRECIS.
    #[error("invalid localpart")]
    Local,
    /// The resourcepart is empty after `/` or fails PRECIS.
    #[error("invalid resourcepart")]
    Resource,
    /// A part is longer than 1023 bytes.
    #[error("part too long")]
    TooLong,
}

/// A prepared JID. Equality and hashing compare the prepared forms, so two JIDs that
/// differ only in case of the localpart are the same JID.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Jid {
    local: Option<String>,
    domain: String,
    resource: Option<String>,
}

impl Jid {
    /// Parses and prepares `s`.
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

    /// Builds a JID from its parts, preparing each.
    pub fn new(local: Option<&str>, domain: &str, resource: Option<&str>) -> Result<Self, JidError> {
        let domain = prepare_domain(domain)?;
        let local = local.map(prepare_local).transpose()?;
        let resource = resource.map(prepare_resource).transpose()?;
        Ok(Self {
            local,
            domain,
            resource,
        })
    }

    /// A domain-only JID (a server or component address).
    pub fn domain_jid(domain: &str) -> Result<Self, JidError> {
        Self::new(None, domain, None)
    }

    /// The localpart, if any.
    pub fn local(&self) -> Option<&str> {
        self.local.as_deref()
    }

    /// The domainpart.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The resourcepart, if any.
    pub fn resource(&self) -> Option<&str> {
        self.resource.as_deref()
    }

    /// True when there is no resourcepart.
    pub fn is_bare(&self) -> bool {
        self.resource.is_none()
    }

    /// This JID without its resourcepart.
    pub fn bare(&self) -> Jid {
        Jid {
            local: self.local.clone(),
            domain: self.domain.clone(),
            resource: None,
        }
    }

    /// This JID's bare form with resourcepart `resource`, prepared.
    pub fn with_resource(&self, resource: &str) -> Result<Jid, JidError> {
        Ok(Jid {
            local: self.local.clone(),
            domain: self.domain.clone(),
            resource: Some(prepare_resource(resource)?),
        })
    }
}

impl fmt::Display for Jid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(l) = &self.local {
            write!(f, "{l}@")?;
        }
        f.write_str(&self.domain)?;
        if let Some(r) = &self.resource {
            write!(f, "/{r}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Jid {
    type Err = JidError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

fn check_len(s: &str) -> Result<(), JidError> {
    if s.len() > 1023 {
        Err(JidError::TooLong)
    } else {
        Ok(())
    }
}

/// RFC 7622 §3.2: domainpart, lower-cased; a trailing dot is removed.
fn prepare_domain(s: &str) -> Result<String, JidError> {
    let s = s.strip_suffix('.').unwrap_or(s);
    check_len(s)?;
    if s.is_empty() || s.split('.').any(str::is_empty) {
        return Err(JidError::Domain);
    }
    let s = s.to_lowercase();
    if s.chars()
        .any(|c| c.is_whitespace() || "@/\"&'<>:".contains(c) && !is_ipv6_literal(&s))
    {
        return Err(JidError::Domain);
    }
    Ok(s)
}

fn is_ipv6_literal(s: &str) -> bool {
    s.starts_with('[') && s.ends_with(']')
}

/// RFC 7622 §3.3: localpart via the UsernameCaseMapped profile (RFC 8265), with the
/// extra characters RFC 7622 forbids.
fn prepare_local(s: &str) -> Result<String, JidError> {
    check_len(s)?;
    if s.is_empty() || s.chars().any(|c| "\"&'/:<>@".contains(c)) {
        return Err(JidError::Local);
    }
    let p = precis_profiles::UsernameCaseMapped::new();
    let out = precis_core::profile::Profile::enforce(&p, s).map_err(|_| JidError::Local)?;
    check_len(&out)?;
    Ok(out.into_owned())
}

/// RFC 7622 §3.4: resourcepart via the OpaqueString profile (RFC 8265).
fn prepare_resource(s: &str) -> Result<String, JidError> {
    check_len(s)?;
    if s.is_empty() {
        return Err(JidError::Resource);
    }
    let p = precis_profiles::OpaqueString::new();
    let out = precis_core::profile::Profile::enforce(&p, s).map_err(|_| JidError::Resource)?;
    check_len(&out)?;
    Ok(out.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(Jid::parse("a@b c"), Err(JidError::Domain));
    }
}
