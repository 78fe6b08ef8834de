//! XML 1.0 character classes (§2.2 `Char`, §2.3 `Name`) and XML Namespaces 1.0 qualified
//! names (§4 `QName`): quick-xml checks neither, so names and character data are checked
//! here, with a byte table for the loops that see every byte.

use super::XmlError;

/// XML `S` (§2.3): space, tab, CR, LF.
pub(super) const WS: u8 = 1;
/// An ASCII byte that may continue a name (`NameChar`).
const NAME: u8 = 1 << 1;
/// A byte that may start a name: an ASCII `NameStartChar` or any non-ASCII byte (the
/// name is checked exactly once the tag is complete, see [`split_qname`]).
pub(super) const NAME_START: u8 = 1 << 2;
/// Bytes the scanner stops at inside a start tag or the XML declaration, outside
/// attribute values: quotes, `>`, `/`, `?` and `<`.
pub(super) const TAG_STOP: u8 = 1 << 3;
/// Bytes the scanner stops at inside an end tag: `>`, and quotes and `<`, which are
/// errors there.
pub(super) const END_STOP: u8 = 1 << 4;
/// Bytes [`check_chars`] must look at: C0 controls other than tab, LF and CR (never
/// allowed, XML 1.0 §2.2), `0xEF` (which starts U+FFFE and U+FFFF) and `>` (`]]>`).
const CHECK: u8 = 1 << 5;

/// Class bits of every byte value, so the hot loops cost one lookup per byte.
static CLASS: [u8; 256] = classes();

const fn classes() -> [u8; 256] {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        let mut f = 0;
        if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            f |= WS;
        }
        if (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r')) || b == 0xEF || b == b'>' {
            f |= CHECK;
        }
        if b.is_ascii_alphabetic() || b == b'_' || b == b':' {
            f |= NAME_START | NAME;
        }
        if b >= 0x80 {
            f |= NAME_START;
        }
        if b.is_ascii_digit() || b == b'-' || b == b'.' {
            f |= NAME;
        }
        if matches!(b, b'\'' | b'"' | b'>' | b'/' | b'?' | b'<') {
            f |= TAG_STOP;
        }
        if matches!(b, b'\'' | b'"' | b'>' | b'<') {
            f |= END_STOP;
        }
        table[i] = f;
        i += 1;
    }
    table
}

/// True when byte `b` has any of the class bits in `mask`.
#[inline]
pub(super) fn is(b: u8, mask: u8) -> bool {
    CLASS[b as usize] & mask != 0
}

/// XML 1.0 §2.2 `Char`. Surrogates cannot occur in a Rust `char`.
pub(super) fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Checks that UTF-8 character data holds only XML 1.0 characters (§2.2): no C0 controls
/// but tab, LF and CR, no U+FFFE or U+FFFF. quick-xml passes them through, literal or
/// as character references. In character data (`text`), `]]>` is also refused (§2.4).
pub(super) fn check_chars(s: &[u8], text: bool) -> Result<(), XmlError> {
    let mut from = 0;
    while let Some(i) = s[from..].iter().position(|&b| is(b, CHECK)) {
        let at = from + i;
        from = at + 1;
        match s[at] {
            b'>' if text && at >= 2 && s[at - 2..at] == *b"]]" => {
                return Err(XmlError::NotWellFormed("']]>' in character data".into()));
            }
            b'>' => {}
            0xEF if s.get(at + 1) == Some(&0xBF) && matches!(s.get(at + 2), Some(0xBE | 0xBF)) => {
                return Err(XmlError::NotWellFormed(
                    "character not allowed in XML (U+FFFE or U+FFFF)".into(),
                ));
            }
            0xEF => {}
            _ => {
                return Err(XmlError::NotWellFormed(
                    "control character not allowed in XML".into(),
                ))
            }
        }
    }
    Ok(())
}

/// XML 1.0 §2.3 `NameStartChar`, without `:` (Namespaces §3 `NCName`).
fn is_name_start(c: char) -> bool {
    matches!(c,
        'A'..='Z' | '_' | 'a'..='z'
        | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}' | '\u{F8}'..='\u{2FF}'
        | '\u{370}'..='\u{37D}' | '\u{37F}'..='\u{1FFF}' | '\u{200C}'..='\u{200D}'
        | '\u{2070}'..='\u{218F}' | '\u{2C00}'..='\u{2FEF}' | '\u{3001}'..='\u{D7FF}'
        | '\u{F900}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFFD}' | '\u{10000}'..='\u{EFFFF}')
}

/// XML 1.0 §2.3 `NameChar`, without `:`.
fn is_name_char(c: char) -> bool {
    is_name_start(c)
        || matches!(c, '-' | '.' | '0'..='9' | '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}')
}

/// Namespaces in XML 1.0 §3 `NCName`: a name without colons.
fn is_ncname(s: &str) -> bool {
    // Nearly every name on the wire is ASCII, where the byte table is exact.
    let bytes = s.as_bytes();
    if let Some((&first, rest)) = bytes.split_first() {
        let ascii_name = |b: u8, class: u8| b < 0x80 && b != b':' && is(b, class);
        if ascii_name(first, NAME_START) && rest.iter().all(|&b| ascii_name(b, NAME)) {
            return true;
        }
    }
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if is_name_start(c) => chars.all(is_name_char),
        _ => false,
    }
}

/// XML 1.0 §2.3 `Name` (colons allowed), for entity names in references.
pub(super) fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c == ':' || is_name_start(c) => chars.all(|c| c == ':' || is_name_char(c)),
        _ => false,
    }
}

/// Splits a qualified name (Namespaces §4 `QName`) into prefix (empty when there is none)
/// and local part; anything else is not namespace-well-formed.
pub(super) fn split_qname(name: &[u8]) -> Result<(&str, &str), XmlError> {
    let name = qname(name)?;
    Ok(match name.find(':') {
        Some(colon) => (&name[..colon], &name[colon + 1..]),
        None => ("", name),
    })
}

/// Checks a qualified name (Namespaces §4 `QName`: an `NCName`, or two joined by `:`).
pub(super) fn qname(name: &[u8]) -> Result<&str, XmlError> {
    let name = utf8(name)?;
    let ok = match name.as_bytes().iter().position(|&b| b == b':') {
        Some(colon) => is_ncname(&name[..colon]) && is_ncname(&name[colon + 1..]),
        None => is_ncname(name),
    };
    if ok {
        Ok(name)
    } else {
        Err(XmlError::NotWellFormed(format!("invalid name '{name}'")))
    }
}

/// A namespace prefix being declared (Namespaces §3 `PrefixedAttName`).
pub(super) fn ncname(name: &[u8]) -> Result<&str, XmlError> {
    let name = utf8(name)?;
    if is_ncname(name) {
        Ok(name)
    } else {
        Err(XmlError::NotWellFormed(format!("invalid prefix '{name}'")))
    }
}

/// Decodes bytes as UTF-8 (RFC 6120 §11.6: streams are UTF-8).
pub(super) fn utf8(bytes: &[u8]) -> Result<&str, XmlError> {
    std::str::from_utf8(bytes).map_err(|_| XmlError::NotWellFormed("invalid UTF-8".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_classes() {
        assert!(is(b' ', WS) && is(b'\r', WS) && !is(b'a', WS));
        assert!(is(b'a', NAME_START) && is(0xC3, NAME_START) && !is(b'1', NAME_START));
        assert!(is(b'1', NAME) && is(b'-', NAME) && !is(b'=', NAME) && !is(b'/', NAME));
        assert!(is(b'"', TAG_STOP) && is(b'/', TAG_STOP) && !is(b'=', TAG_STOP));
        assert!(is(b'>', END_STOP) && !is(b'/', END_STOP));
    }

    #[test]
    fn qualified_names() {
        assert_eq!(split_qname(b"message"), Ok(("", "message")));
        assert_eq!(split_qname(b"stream:features"), Ok(("stream", "features")));
        assert_eq!(split_qname(b"x.y-z_1"), Ok(("", "x.y-z_1")));
        assert_eq!(split_qname("été".as_bytes()), Ok(("", "été")));
        for bad in [
            ":a", "a:", "a:b:c", "1a", "a:1b", "", "-a", "a\u{D7}", "a/", "a\u{1}",
        ] {
            assert!(split_qname(bad.as_bytes()).is_err(), "{bad:?} accepted");
        }
        assert!(split_qname(b"a\xc3").is_err());
    }

    #[test]
    fn names_and_chars() {
        assert!(is_name("a:b") && is_name(":x") && !is_name("#12") && !is_name(""));
        assert!(is_xml_char('\u{10FFFF}') && !is_xml_char('\u{0}') && !is_xml_char('\u{FFFE}'));
        assert!(check_chars("tab\tlf\ncr\r é \u{FFFD} ]] > ]>".as_bytes(), true).is_ok());
        assert!(check_chars(b"a\x01", false).is_err());
        assert!(check_chars(b"\x00", false).is_err());
        assert!(check_chars("a\u{FFFF}".as_bytes(), false).is_err());
        assert!(check_chars("\u{FFFE}".as_bytes(), false).is_err());
        assert!(check_chars(b"a]]>b", true).is_err());
        assert!(
            check_chars(b"a]]>b", false).is_ok(),
            "allowed in attribute values"
        );
        assert!(utf8(b"\xff").is_err());
        assert_eq!(utf8("é".as_bytes()), Ok("é"));
    }
}
