//! XML 1.0 character classes (§2.2 `Char`, §2.3 `Name`) and XML Namespaces 1.0 qualified
//! names (§4 `QName`), in the two shapes the parser needs: a byte table for the lexer's hot
//! loops, and exact checks for complete tokens.

use super::XmlError;

/// XML `S` (§2.3): space, tab, CR, LF.
pub(super) const WS: u8 = 1;
/// A byte that may continue a name: an ASCII `NameChar` or any byte of a multi-byte UTF-8
/// sequence (checked exactly once the name is complete, see [`split_qname`]).
pub(super) const NAME: u8 = 1 << 1;
/// A byte that may start a name (ASCII `NameStartChar` or a non-ASCII byte).
pub(super) const NAME_START: u8 = 1 << 2;
/// Bytes the lexer must look at inside character data: `<`, `>` (for `]]>`), `&` and CR
/// (which need decoding), and forbidden controls.
pub(super) const TEXT_STOP: u8 = 1 << 3;
/// Bytes the lexer must look at inside an attribute value: both quotes, `<`, `&`, the
/// whitespace that attribute-value normalisation rewrites, and forbidden controls.
pub(super) const ATTR_STOP: u8 = 1 << 4;
/// Bytes the lexer must look at inside a CDATA section: `>` (for `]]>`), CR and forbidden
/// controls.
pub(super) const CDATA_STOP: u8 = 1 << 5;
/// C0 controls other than tab, LF and CR: never allowed in XML 1.0 (§2.2), whatever the
/// context.
pub(super) const FORBIDDEN: u8 = 1 << 6;

/// Class bits of every byte value, so the lexer's loops cost one lookup per byte.
pub(super) static CLASS: [u8; 256] = classes();

const fn classes() -> [u8; 256] {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        let mut f = 0;
        if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            f |= WS;
        }
        if b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r') {
            f |= FORBIDDEN | TEXT_STOP | ATTR_STOP | CDATA_STOP;
        }
        if b.is_ascii_alphabetic() || b == b'_' || b == b':' || b >= 0x80 {
            f |= NAME_START | NAME;
        }
        if b.is_ascii_digit() || b == b'-' || b == b'.' {
            f |= NAME;
        }
        if matches!(b, b'<' | b'>' | b'&' | b'\r') {
            f |= TEXT_STOP;
        }
        if matches!(b, b'\'' | b'"' | b'<' | b'&' | b'\t' | b'\n' | b'\r') {
            f |= ATTR_STOP;
        }
        if matches!(b, b'>' | b'\r') {
            f |= CDATA_STOP;
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
pub(super) fn is_ncname(s: &str) -> bool {
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
pub(super) fn split_qname(qname: &str) -> Result<(&str, &str), XmlError> {
    let (prefix, local) = match qname.split_once(':') {
        Some((p, l)) => (p, l),
        None => ("", qname),
    };
    if (prefix.is_empty() && qname.contains(':'))
        || (!prefix.is_empty() && !is_ncname(prefix))
        || !is_ncname(local)
    {
        return Err(XmlError::NotWellFormed(format!("invalid name '{qname}'")));
    }
    Ok((prefix, local))
}

/// Decodes a complete token as UTF-8 (RFC 6120 §11.6: streams are UTF-8) and rejects the
/// two non-characters UTF-8 can encode but XML 1.0 §2.2 forbids (U+FFFE, U+FFFF). C0
/// controls were already rejected byte by byte by the lexer.
pub(super) fn utf8(bytes: &[u8]) -> Result<&str, XmlError> {
    let s = std::str::from_utf8(bytes).map_err(|_| XmlError::NotWellFormed("invalid UTF-8".into()))?;
    if !s.is_ascii() && s.chars().any(|c| c == '\u{FFFE}' || c == '\u{FFFF}') {
        return Err(XmlError::NotWellFormed(
            "character not allowed in XML (U+FFFE or U+FFFF)".into(),
        ));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_classes() {
        assert!(is(b' ', WS) && is(b'\r', WS) && !is(b'a', WS));
        assert!(is(0x00, FORBIDDEN) && is(0x1F, FORBIDDEN) && !is(b'\t', FORBIDDEN));
        assert!(!is(0x7F, FORBIDDEN), "DEL is a Char in XML 1.0");
        assert!(is(b'a', NAME_START) && is(0xC3, NAME_START) && !is(b'1', NAME_START));
        assert!(is(b'1', NAME) && is(b'-', NAME) && !is(b'=', NAME) && !is(b'/', NAME));
        assert!(is(b'<', TEXT_STOP) && !is(b'"', TEXT_STOP));
        assert!(is(b'"', ATTR_STOP) && is(b'\n', ATTR_STOP) && !is(b'>', ATTR_STOP));
        assert!(is(b'>', CDATA_STOP) && !is(b'<', CDATA_STOP) && !is(b'&', CDATA_STOP));
    }

    #[test]
    fn qualified_names() {
        assert_eq!(split_qname("message"), Ok(("", "message")));
        assert_eq!(split_qname("stream:features"), Ok(("stream", "features")));
        assert_eq!(split_qname("x.y-z_1"), Ok(("", "x.y-z_1")));
        assert_eq!(split_qname("été"), Ok(("", "été")));
        for bad in [":a", "a:", "a:b:c", "1a", "a:1b", "", "-a", "a\u{D7}"] {
            assert!(split_qname(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn names_and_chars() {
        assert!(is_name("a:b") && is_name(":x") && !is_name("#12") && !is_name(""));
        assert!(is_xml_char('\u{10FFFF}') && !is_xml_char('\u{0}') && !is_xml_char('\u{FFFE}'));
        assert!(utf8(b"\xff").is_err());
        assert!(utf8("a\u{FFFF}".as_bytes()).is_err());
        assert_eq!(utf8("é".as_bytes()), Ok("é"));
    }
}
