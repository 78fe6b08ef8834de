//! Builds the stream header, elements and the stream close from quick-xml's events.
//!
//! quick-xml tokenizes, matches end tags to start tags, parses attributes (syntax and
//! duplicates), unescapes references, normalises line ends and resolves namespaces (with
//! a [`NamespaceResolver`] that keeps the header's declarations in scope for the whole
//! stream, RFC 6120 §4.8). What it leaves out and XML 1.0 or RFC 6120 §11 require is
//! checked here: names (§2.3, Namespaces §4), characters (§2.2), `]]>` in text (§2.4),
//! entities other than the predefined five (restricted XML, RFC 6120 §11.1),
//! attribute-value normalisation (§3.3.3), the namespace rules of XML 1.0 (no
//! undeclaring a prefix, reserved names) and the XML declaration (§2.8, RFC 6120 §11.5).
//!
//! Elements are built as their tags complete, so when the last end tag of a stanza
//! arrives, the tree is ready.

use std::borrow::Cow;

use quick_xml::escape::{resolve_xml_entity, unescape_with, EscapeError};
use quick_xml::events::{BytesDecl, BytesRef, BytesStart, Event};
use quick_xml::name::{Namespace, NamespaceResolver, PrefixDeclaration, QName, ResolveResult};

use super::chars::{check_chars, is_name, is_xml_char, ncname, qname, split_qname, utf8};
use super::{ExceededLimit, StreamEvent, StreamHeader, XmlError, MAX_NAMESPACES};
use crate::ns;
use crate::xml::{Element, Node};

/// Namespace reserved for `xmlns` declarations themselves (Namespaces in XML 1.0 §3).
const XMLNS_NS: &str = "http://www.w3.org/2000/xmlns/";

/// Builds events from quick-xml's events.
#[derive(Default)]
pub(super) struct Tree {
    resolver: NamespaceResolver,
    /// The stream header has been read.
    has_root: bool,
    /// Elements whose end tag has not arrived, below the root.
    stack: Vec<Element>,
    /// Namespace declarations made by each open element, the root first.
    declared: Vec<usize>,
    /// Namespace declarations in scope: the sum of `declared`.
    in_scope: usize,
    /// A declaration was added since the resolver was last compacted: its buffers may
    /// have room for more than the declarations still in scope.
    resolver_grew: bool,
}

impl Tree {
    /// Forgets the stream.
    pub(super) fn reset(&mut self) {
        *self = Self::default();
    }

    /// Between top-level elements nothing is open below the root: the stack keeps
    /// no room for the next stanza's elements.
    ///
    /// Namespace declarations of the last stanza are out of scope by then, but
    /// quick-xml's resolver keeps the room they took (and the header's declarations
    /// sit in buffers grown for more): a copy holds just the declarations in scope.
    pub(super) fn release_idle_buffers(&mut self) {
        if !self.stack.is_empty() {
            return;
        }
        self.stack = Vec::new();
        self.declared.shrink_to_fit();
        if self.resolver_grew {
            self.resolver = self.resolver.clone();
            self.resolver_grew = false;
        }
    }

    /// Elements the stack has room for, for the tests of memory use.
    #[cfg(test)]
    pub(super) fn stack_capacity(&self) -> usize {
        self.stack.capacity()
    }

    /// True once the stream header has been read.
    pub(super) fn has_root(&self) -> bool {
        self.has_root
    }

    /// Applies one event; `item_len` is the input size of the item its token completes,
    /// if it completes one.
    pub(super) fn apply(
        &mut self,
        event: Event<'_>,
        item_len: usize,
    ) -> Result<Option<StreamEvent>, XmlError> {
        match event {
            Event::Decl(decl) => check_declaration(&decl).map(|()| None),
            Event::Start(start) | Event::Empty(start) if !self.has_root => self.header(&start).map(Some),
            Event::Start(start) => {
                let element = self.open(&start, None)?;
                self.stack.push(element);
                Ok(None)
            }
            Event::Empty(start) => {
                let element = self.open(&start, None)?;
                self.close_scope();
                Ok(self.complete(element, item_len))
            }
            // quick-xml has checked that the end tag matches its start tag.
            Event::End(_) => {
                self.close_scope();
                match self.stack.pop() {
                    Some(element) => Ok(self.complete(element, item_len)),
                    None => Ok(Some(StreamEvent::Close)),
                }
            }
            // Outside elements the scanner lets only whitespace through.
            Event::Text(_) if self.stack.is_empty() => Ok(None),
            Event::Text(text) => {
                check_chars(&text, true)?;
                let text = text.xml10_content().map_err(|_| invalid_utf8())?;
                self.append_text(&text)
            }
            Event::CData(cdata) => {
                check_chars(&cdata, false)?;
                let text = cdata.xml10_content().map_err(|_| invalid_utf8())?;
                self.append_text(&text)
            }
            Event::GeneralRef(reference) => {
                let mut utf8 = [0; 4];
                let text = resolve_reference(&reference, &mut utf8)?;
                self.append_text(text)
            }
            // The scanner refuses these before quick-xml sees them.
            Event::Comment(_) | Event::PI(_) | Event::DocType(_) => Err(XmlError::RestrictedXml(
                "comment, processing instruction or DTD (RFC 6120 §11.1)".into(),
            )),
            Event::Eof => Err(internal()),
        }
    }

    /// RFC 6120 §4.7: the header is the root's start tag; its declarations stay in scope
    /// for the whole stream (§4.8).
    fn header(&mut self, start: &BytesStart<'_>) -> Result<StreamEvent, XmlError> {
        self.has_root = true;
        let mut declarations = Vec::new();
        let root = self.open(start, Some(&mut declarations))?;
        let mut default_ns = None;
        let mut ns_decls = Vec::new();
        for (prefix, uri) in declarations {
            if prefix.is_empty() {
                default_ns = Some(uri);
            } else {
                ns_decls.push((prefix, uri));
            }
        }
        Ok(StreamEvent::Header(StreamHeader {
            name_ns: root.ns().to_owned(),
            name: root.name().to_owned(),
            default_ns,
            attrs: root.attrs().map(|(n, v)| (n.to_owned(), v.to_owned())).collect(),
            ns_decls,
        }))
    }

    /// Builds the element of a start tag and opens its namespace scope, recording its
    /// declarations as (prefix, URI) in `declarations` if asked.
    fn open(
        &mut self,
        start: &BytesStart<'_>,
        mut declarations: Option<&mut Vec<(String, String)>>,
    ) -> Result<Element, XmlError> {
        let name = start.name();
        let (prefix, local) = split_qname(name.as_ref())?;
        if prefix == "xmlns" {
            return Err(XmlError::NotWellFormed("element with the prefix 'xmlns'".into()));
        }
        // The namespace is known once all declarations of the tag are read.
        let mut element = Element::new(local, "");

        // `NamespaceResolver::push` would bind the raw attribute values, but a URI is an
        // attribute value like any other, with references and whitespace to normalise:
        // the scope is opened empty and each declaration added with its value.
        self.resolver
            .push(&BytesStart::new(""))
            .map_err(not_well_formed)?;
        self.declared.push(0);
        let mut prefixed = 0;
        // quick-xml checks the attribute syntax and duplicate names here.
        for attr in start.attributes() {
            let attr = attr.map_err(not_well_formed)?;
            let Some(declaration) = attr.key.as_namespace_binding() else {
                prefixed += usize::from(attr.key.prefix().is_some());
                element.set_attr(qname(attr.key.as_ref())?, attr_value(&attr.value)?);
                continue;
            };
            if self.in_scope >= MAX_NAMESPACES {
                return Err(XmlError::PolicyViolation {
                    limit: MAX_NAMESPACES,
                    exceeded: ExceededLimit::Namespaces,
                });
            }
            let prefix = match declaration {
                PrefixDeclaration::Default => "",
                PrefixDeclaration::Named(prefix) => ncname(prefix)?,
            };
            let uri = attr_value(&attr.value)?;
            check_namespace_declaration(prefix, &uri)?;
            self.resolver
                .add(declaration, Namespace(uri.as_bytes()))
                .map_err(not_well_formed)?;
            self.resolver_grew = true;
            self.in_scope += 1;
            if let Some(d) = self.declared.last_mut() {
                *d += 1;
            }
            if let Some(out) = declarations.as_deref_mut() {
                out.push((prefix.to_owned(), uri.into_owned()));
            }
        }

        match self.resolver.resolve_element(name).0 {
            ResolveResult::Bound(ns) => element.set_ns(utf8(ns.into_inner())?),
            ResolveResult::Unbound => {}
            ResolveResult::Unknown(_) => return Err(undeclared(prefix)),
        }
        if prefixed > 0 {
            self.check_prefixed_attributes(&element, prefixed)?;
        }
        Ok(element)
    }

    /// Prefixed attribute names must have their prefix declared, and (Namespaces in XML
    /// 1.0 §6.3) two attributes may not have the same namespace and local name, even
    /// under different prefixes. Only prefixed attributes can clash, and there are at
    /// most [`super::MAX_ATTRS`] of them.
    fn check_prefixed_attributes(&self, element: &Element, prefixed: usize) -> Result<(), XmlError> {
        let names = || {
            element
                .attrs()
                .map(|(name, _)| QName(name.as_bytes()))
                .filter(|n| n.prefix().is_some())
        };
        for name in names() {
            if let ResolveResult::Unknown(prefix) = self.resolver.resolve_attribute(name).0 {
                return Err(undeclared(&String::from_utf8_lossy(&prefix)));
            }
        }
        if prefixed > 1 {
            for (i, a) in names().enumerate() {
                for b in names().skip(i + 1) {
                    if a.local_name() == b.local_name()
                        && self.resolver.resolve_attribute(a).0 == self.resolver.resolve_attribute(b).0
                    {
                        return Err(XmlError::NotWellFormed("duplicate attribute".into()));
                    }
                }
            }
        }
        Ok(())
    }

    /// Ends the scope of the innermost open element (or of the root).
    fn close_scope(&mut self) {
        self.resolver.pop();
        self.in_scope -= self.declared.pop().unwrap_or(0);
    }

    /// Attaches a finished element to its parent, or hands it out at the top level.
    fn complete(&mut self, element: Element, item_len: usize) -> Option<StreamEvent> {
        match self.stack.last_mut() {
            Some(parent) => {
                parent.push_child(element);
                None
            }
            None => Some(StreamEvent::Element(element, item_len)),
        }
    }

    /// Appends character data to the innermost element's last text node or a new one,
    /// so adjacent runs (text, references, CDATA) form one node.
    fn append_text(&mut self, text: &str) -> Result<Option<StreamEvent>, XmlError> {
        let element = self.stack.last_mut().ok_or_else(internal)?;
        let nodes = element.nodes_mut();
        match nodes.last_mut() {
            Some(Node::Text(prev)) => prev.push_str(text),
            _ if text.is_empty() => {}
            _ => nodes.push(Node::Text(text.to_owned())),
        }
        Ok(None)
    }
}

/// The text a reference in character data stands for (XML 1.0 §4.1); only the five
/// predefined entities exist in XMPP (RFC 6120 §11.1).
fn resolve_reference<'a>(
    reference: &'a BytesRef<'_>,
    utf8_buf: &'a mut [u8; 4],
) -> Result<&'a str, XmlError> {
    let name = utf8(reference)?;
    match reference.resolve_char_ref() {
        Ok(Some(c)) if is_xml_char(c) => Ok(c.encode_utf8(utf8_buf)),
        Ok(Some(_)) | Err(_) => Err(XmlError::NotWellFormed(format!(
            "invalid character reference &{name};"
        ))),
        Ok(None) => resolve_xml_entity(name).ok_or_else(|| unknown_entity(name)),
    }
}

/// An attribute value as the application sees it: UTF-8, whitespace normalised (XML 1.0
/// §3.3.3: literal tab, LF, CR and CRLF become one space each, before references are
/// replaced), references replaced (by quick-xml), characters checked.
fn attr_value(raw: &[u8]) -> Result<Cow<'_, str>, XmlError> {
    check_chars(raw, false)?;
    let raw = utf8(raw)?;
    let normalised: Cow<'_, str> = if raw.bytes().any(|b| matches!(b, b'\t' | b'\n' | b'\r')) {
        Cow::Owned(raw.replace("\r\n", " ").replace(['\t', '\n', '\r'], " "))
    } else {
        Cow::Borrowed(raw)
    };
    match unescape_with(&normalised, resolve_xml_entity) {
        Ok(Cow::Borrowed(_)) => Ok(normalised),
        // Character references may stand for characters that are not allowed.
        Ok(Cow::Owned(value)) => check_chars(value.as_bytes(), false).map(|()| Cow::Owned(value)),
        Err(EscapeError::UnrecognizedEntity(_, name)) => Err(unknown_entity(&name)),
        Err(e) => Err(not_well_formed(e)),
    }
}

/// The rules of Namespaces in XML 1.0 §3 that quick-xml's resolver, written for XML 1.1,
/// does not apply: a prefix cannot be undeclared, and the default namespace cannot be
/// one of the reserved ones. (The resolver refuses the other reserved bindings.)
fn check_namespace_declaration(prefix: &str, uri: &str) -> Result<(), XmlError> {
    let ok = match prefix {
        "" => uri != ns::XML && uri != XMLNS_NS,
        _ => !uri.is_empty(),
    };
    if ok {
        Ok(())
    } else {
        Err(XmlError::NotWellFormed(format!(
            "invalid namespace declaration for prefix '{prefix}': '{uri}'"
        )))
    }
}

/// The XML declaration (XML 1.0 §2.8): `version`, then optionally `encoding` and
/// `standalone`, nothing else. RFC 6120 §11.6 streams are UTF-8; any other declared
/// encoding is [`XmlError::UnsupportedEncoding`] (RFC 6120 §4.9.3.22).
fn check_declaration(decl: &BytesDecl<'_>) -> Result<(), XmlError> {
    let bad = |why: &str| XmlError::NotWellFormed(format!("XML declaration: {why}"));
    // `decl` is the content between `<?` and `?>`, starting with `xml`.
    let content = BytesStart::from_content(utf8(decl)?, 3);
    let mut expected: &[&str] = &["version", "encoding", "standalone"];
    for attr in content.attributes() {
        let attr = attr.map_err(not_well_formed)?;
        let key = utf8(attr.key.as_ref())?;
        let at = expected
            .iter()
            .position(|&k| k == key)
            .ok_or_else(|| bad("unexpected content"))?;
        if expected.len() == 3 && at != 0 {
            return Err(bad("no version"));
        }
        expected = &expected[at + 1..];
        let value = &*attr.value;
        let ok = match key {
            "version" => value
                .strip_prefix(b"1.")
                .is_some_and(|digits| !digits.is_empty() && digits.iter().all(u8::is_ascii_digit)),
            "encoding" => value.eq_ignore_ascii_case(b"UTF-8"),
            _ => matches!(value, b"yes" | b"no"),
        };
        if !ok && key == "encoding" {
            return Err(XmlError::UnsupportedEncoding(
                String::from_utf8_lossy(value).into_owned(),
            ));
        }
        if !ok {
            return Err(bad(&format!("unsupported {key}")));
        }
    }
    if expected.len() == 3 {
        return Err(bad("no version"));
    }
    Ok(())
}

/// A reference to an entity other than the five predefined: restricted XML if it is a
/// well-formed reference at all (RFC 6120 §11.1).
fn unknown_entity(name: &str) -> XmlError {
    if is_name(name) {
        XmlError::RestrictedXml(format!(
            "entity reference &{name}; (only the five predefined entities are allowed)"
        ))
    } else {
        XmlError::NotWellFormed("'&' not part of a reference".into())
    }
}

/// Any error quick-xml reports is a well-formedness error.
pub(super) fn not_well_formed(e: impl std::fmt::Display) -> XmlError {
    XmlError::NotWellFormed(e.to_string())
}

fn invalid_utf8() -> XmlError {
    XmlError::NotWellFormed("invalid UTF-8".into())
}

fn undeclared(prefix: &str) -> XmlError {
    XmlError::NotWellFormed(format!("undeclared namespace prefix '{prefix}'"))
}

/// The scanner and quick-xml disagree on nesting; unreachable, but a peer must not be
/// able to panic the server if it ever happens.
fn internal() -> XmlError {
    XmlError::NotWellFormed("unbalanced element nesting".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_values_are_normalised_then_unescaped() {
        let value = |raw: &str| attr_value(raw.as_bytes()).map(Cow::into_owned);
        assert_eq!(
            value("a &lt;&gt;&amp;&apos;&quot; &#65;&#x42;&#x1F600; z").unwrap(),
            "a <>&'\" AB\u{1F600} z"
        );
        assert_eq!(value("&#0065;").unwrap(), "A");
        assert_eq!(value("a\r\nb\rc\nd\te").unwrap(), "a b c d e");
        assert_eq!(value("&#10;&#9;&#13;").unwrap(), "\n\t\r");
    }

    #[test]
    fn other_entities_are_restricted() {
        for raw in ["&nbsp;", "&a:b;"] {
            assert!(
                matches!(attr_value(raw.as_bytes()), Err(XmlError::RestrictedXml(_))),
                "{raw:?}"
            );
        }
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
            "&#1;",
            "&#xD800;",
            "&#xFFFE;",
            "&#99999999999;",
            "&1a;",
        ] {
            assert!(
                matches!(attr_value(raw.as_bytes()), Err(XmlError::NotWellFormed(_))),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn xml_declarations() {
        let check =
            |content: &str| check_declaration(&BytesDecl::from_start(BytesStart::from_content(content, 3)));
        for ok in [
            "xml version='1.0'",
            "xml version=\"1.0\" encoding='utf-8'",
            "xml version = '1.0' encoding='UTF-8' standalone='yes' ",
            "xml\nversion='1.1'",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok:?}");
        }
        for bad in [
            "xml encoding='UTF-8'",
            "xml version='2.0'",
            "xml version='1.0' encoding='ISO-8859-1'",
            "xml version='1.0' standalone='maybe'",
            "xml version='1.0' foo='bar'",
            "xml version='1.0' standalone='yes' encoding='UTF-8'",
            "xml version='1.0' version='1.0'",
            "xml version='1.0",
            "xml version=1.0",
            "xml",
        ] {
            assert!(check(bad).is_err(), "{bad:?}");
        }
    }
}
