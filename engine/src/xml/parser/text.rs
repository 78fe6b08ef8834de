//! Turning the raw bytes of complete tokens into values: references (XML 1.0 §4.1 and the
//! RFC 6120 §11.1 ban on all but the predefined entities), end-of-line handling (§2.11),
//! attribute-value normalisation (§3.3.3), and the XML declaration (§2.8, RFC 6120 §11.5).

use super::chars::{is_name, is_xml_char};
use super::XmlError;

/// Whether decoded data is character data or an attribute value: attribute values also
/// turn literal tab, LF and CR into spaces (XML 1.0 §3.3.3).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Context {
    Text,
    Attr,
}

/// Appends `raw` to `out`, resolving references and normalising line ends (and, for
/// attribute values, whitespace). `raw` holds no `<`: the lexer ends tokens there.
pub(super) fn decode_into(out: &mut String, raw: &str, ctx: Context) -> Result<(), XmlError> {
    let bytes = raw.as_bytes();
    let mut run = 0;
    let mut i = 0;
    while i < bytes.len() {
        let replacement = match bytes[i] {
            b'&' => {
                let rest = &raw[i + 1..];
                let semi = rest
                    .find(';')
                    .ok_or_else(|| XmlError::NotWellFormed("'&' not part of a reference".into()))?;
                out.push_str(&raw[run..i]);
                out.push(resolve_reference(&rest[..semi])?);
                i += semi + 2;
                run = i;
                continue;
            }
            b'\r' if bytes.get(i + 1) == Some(&b'\n') => None,
            b'\r' | b'\n' | b'\t' if ctx == Context::Attr => Some(' '),
            b'\r' => Some('\n'),
            _ => {
                i += 1;
                continue;
            }
        };
        out.push_str(&raw[run..i]);
        if let Some(c) = replacement {
            out.push(c);
        }
        i += 1;
        run = i;
    }
    out.push_str(&raw[run..]);
    Ok(())
}

/// Appends the content of a CDATA section: no references there, only end-of-line
/// handling (XML 1.0 §2.11 applies to the whole entity).
pub(super) fn cdata_into(out: &mut String, raw: &str) {
    let mut parts = raw.split('\r');
    if let Some(first) = parts.next() {
        out.push_str(first);
    }
    for part in parts {
        if !part.starts_with('\n') {
            out.push('\n');
        }
        out.push_str(part);
    }
}

/// The character a reference (the text between `&` and `;`) stands for.
fn resolve_reference(name: &str) -> Result<char, XmlError> {
    match name {
        "lt" => return Ok('<'),
        "gt" => return Ok('>'),
        "amp" => return Ok('&'),
        "apos" => return Ok('\''),
        "quot" => return Ok('"'),
        _ => {}
    }
    if let Some(number) = name.strip_prefix('#') {
        let (digits, radix) = match number.strip_prefix('x') {
            Some(hex) => (hex, 16),
            None => (number, 10),
        };
        let bad = || XmlError::NotWellFormed(format!("invalid character reference &{name};"));
        if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
            return Err(bad());
        }
        let value = u32::from_str_radix(digits, radix).map_err(|_| bad())?;
        return char::from_u32(value).filter(|&c| is_xml_char(c)).ok_or_else(bad);
    }
    if is_name(name) {
        Err(XmlError::RestrictedXml(format!(
            "entity reference &{name}; (only the five predefined entities are allowed)"
        )))
    } else {
        Err(XmlError::NotWellFormed("'&' not part of a reference".into()))
    }
}

/// Checks the inside of an XML declaration (the bytes between `<?xml` and `?>`): XML 1.0
/// §2.8 `VersionInfo EncodingDecl? SDDecl? S?`. RFC 6120 §11.6 streams are UTF-8; any
/// other declared encoding is refused (RFC 6120 names `unsupported-encoding` for it).
pub(super) fn check_xml_decl(raw: &[u8]) -> Result<(), XmlError> {
    let bad = |why: &str| XmlError::NotWellFormed(format!("XML declaration: {why}"));
    let mut d = Decl { raw, at: 0 };
    let version = d.pseudo_attr("version").ok_or_else(|| bad("no version"))?;
    let digits = version.strip_prefix(b"1.").unwrap_or_default();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(bad("unsupported XML version"));
    }
    let save = d.at;
    match d.pseudo_attr("encoding") {
        Some(enc) if enc.eq_ignore_ascii_case(b"UTF-8") => {}
        Some(_) => return Err(bad("encoding other than UTF-8")),
        None => d.at = save,
    }
    let save = d.at;
    match d.pseudo_attr("standalone") {
        Some(b"yes" | b"no") => {}
        Some(_) => return Err(bad("invalid standalone value")),
        None => d.at = save,
    }
    d.spaces();
    if d.at == raw.len() {
        Ok(())
    } else {
        Err(bad("unexpected content"))
    }
}

/// A cursor over an XML declaration.
struct Decl<'a> {
    raw: &'a [u8],
    at: usize,
}

impl<'a> Decl<'a> {
    /// Skips whitespace; true when there was some.
    fn spaces(&mut self) -> bool {
        let start = self.at;
        while self.raw.get(self.at).is_some_and(|b| b" \t\r\n".contains(b)) {
            self.at += 1;
        }
        self.at > start
    }

    /// `S name S? = S? ('value' | "value")`, returning the value; `None` (cursor moved)
    /// when the input is not that.
    fn pseudo_attr(&mut self, name: &str) -> Option<&'a [u8]> {
        if !self.spaces() || !self.raw[self.at..].starts_with(name.as_bytes()) {
            return None;
        }
        self.at += name.len();
        self.spaces();
        if self.raw.get(self.at) != Some(&b'=') {
            return None;
        }
        self.at += 1;
        self.spaces();
        let quote = *self.raw.get(self.at).filter(|q| matches!(q, b'\'' | b'"'))?;
        let start = self.at + 1;
        let len = self.raw[start..].iter().position(|&b| b == quote)?;
        self.at = start + len + 1;
        let value = &self.raw[start..start + len];
        value
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(b))
            .then_some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(raw: &str, ctx: Context) -> Result<String, XmlError> {
        let mut out = String::new();
        decode_into(&mut out, raw, ctx).map(|()| out)
    }

    #[test]
    fn predefined_and_numeric_references() {
        assert_eq!(
            decode(
                "a &lt;&gt;&amp;&apos;&quot; &#65;&#x42;&#x1F600; z",
                Context::Text
            )
            .unwrap(),
            "a <>&'\" AB\u{1F600} z"
        );
        assert_eq!(decode("&#0065;", Context::Text).unwrap(), "A");
    }

    #[test]
    fn other_entities_are_restricted() {
        assert!(matches!(
            decode("&nbsp;", Context::Text),
            Err(XmlError::RestrictedXml(_))
        ));
        assert!(matches!(
            decode("&a:b;", Context::Attr),
            Err(XmlError::RestrictedXml(_))
        ));
    }

    #[test]
    fn malformed_references_are_not_well_formed() {
        for raw in [
            "&",
            "a & b",
            "&amp",
            "&;",
            "&#;",
            "&#x;",
            "&#+65;",
            "&#xG;",
            "&#0;",
            "&#xD800;",
            "&#xFFFE;",
            "&#99999999999;",
            "&1a;",
        ] {
            assert!(
                matches!(decode(raw, Context::Text), Err(XmlError::NotWellFormed(_))),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn line_ends_and_attribute_whitespace() {
        assert_eq!(decode("a\r\nb\rc\nd\te", Context::Text).unwrap(), "a\nb\nc\nd\te");
        assert_eq!(decode("a\r\nb\rc\nd\te", Context::Attr).unwrap(), "a b c d e");
        assert_eq!(decode("&#10;&#9;&#13;", Context::Attr).unwrap(), "\n\t\r");
        let mut out = String::new();
        cdata_into(&mut out, "x\r\ny\rz&amp;\r");
        assert_eq!(out, "x\ny\nz&amp;\n");
    }

    #[test]
    fn xml_declarations() {
        for ok in [
            " version='1.0'",
            " version=\"1.0\" encoding='utf-8'",
            " version = '1.0' encoding='UTF-8' standalone='yes' ",
            "\nversion='1.1'",
        ] {
            assert_eq!(check_xml_decl(ok.as_bytes()), Ok(()), "{ok:?}");
        }
        for bad in [
            " encoding='UTF-8'",
            " version='2.0'",
            " version='1.0' encoding='ISO-8859-1'",
            " version='1.0'encoding='UTF-8'",
            " version='1.0' standalone='maybe'",
            " version='1.0' foo='bar'",
            " version='1.0",
            " version=1.0",
        ] {
            assert!(check_xml_decl(bad.as_bytes()).is_err(), "{bad:?}");
        }
    }
}
