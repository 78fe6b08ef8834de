//! The tree builder: turns complete tokens into the stream header, elements and the
//! stream close, resolving namespaces (Namespaces in XML 1.0, RFC 6120 §4.8) and checking
//! what the lexer leaves to whole tokens (names, attribute uniqueness, matching end tags,
//! references, UTF-8).
//!
//! Elements are built as their tokens complete, so a stanza is never re-read: when its
//! last end tag arrives, the tree is ready.

use super::chars::{split_qname, utf8};
use super::lexer::{AttrSpan, Token, TokenKind};
use super::text::{cdata_into, check_xml_decl, decode_into, Context};
use super::{ExceededLimit, StreamEvent, StreamHeader, XmlError, MAX_NAMESPACES};
use crate::ns;
use crate::xml::{Element, Node};

/// Namespace reserved for `xmlns` declarations themselves (Namespaces in XML 1.0 §3).
const XMLNS_NS: &str = "http://www.w3.org/2000/xmlns/";

/// Above this many attributes, duplicates are found by sorting instead of comparing
/// every pair, so a hostile tag cannot cost quadratic time.
const PAIRWISE_MAX: usize = 8;

/// One in-scope namespace declaration; the default namespace has an empty prefix.
#[derive(Default)]
struct Binding {
    prefix: String,
    uri: String,
}

/// The stack of in-scope declarations: the stream header's at the bottom (they apply to
/// every stanza, RFC 6120 §4.8), then those of each open element. Popped slots keep their
/// strings for reuse, so steady-state parsing does not allocate for declarations.
#[derive(Default)]
struct Bindings {
    slots: Vec<Binding>,
    len: usize,
}

impl Bindings {
    fn push(&mut self, prefix: &str) -> &mut Binding {
        if self.len == self.slots.len() {
            self.slots.push(Binding::default());
        }
        let slot = &mut self.slots[self.len];
        self.len += 1;
        slot.prefix.clear();
        slot.prefix.push_str(prefix);
        slot.uri.clear();
        slot
    }

    /// The namespace `prefix` is bound to (`""`: the default namespace). `xml` is bound
    /// by definition (Namespaces in XML 1.0 §3).
    fn resolve(&self, prefix: &str) -> Option<&str> {
        if prefix == "xml" {
            return Some(ns::XML);
        }
        self.slots[..self.len]
            .iter()
            .rev()
            .find(|b| b.prefix == prefix)
            .map(|b| b.uri.as_str())
    }

    /// Drops the declarations above `len`; frees the pool if a hostile stanza inflated it.
    fn truncate(&mut self, len: usize) {
        self.len = len;
        if len == 0 || self.slots.len() > 64 {
            self.slots.truncate(len.max(16));
        }
    }
}

/// An element whose end tag has not arrived yet.
struct Open {
    element: Element,
    /// Where its qualified name starts in [`Tree::names`].
    name_at: usize,
    /// Number of bindings in scope before its own declarations.
    scope: usize,
}

/// Builds events from tokens.
#[derive(Default)]
pub(super) struct Tree {
    bindings: Bindings,
    stack: Vec<Open>,
    /// Qualified names of the open elements, concatenated, for matching end tags
    /// literally (XML 1.0 §3 element type match).
    names: String,
    /// The root's qualified name, which `</...>` at the top level must repeat.
    root: String,
}

impl Tree {
    /// Forgets the stream, keeping allocations.
    pub(super) fn reset(&mut self) {
        self.bindings.truncate(0);
        self.stack.clear();
        self.names.clear();
        self.root.clear();
    }

    /// Applies a token whose bytes are `buf[token.start..token.end]`; `name_end` and
    /// `attrs` describe the last start or end tag, relative to its `<`.
    pub(super) fn apply(
        &mut self,
        token: &Token,
        buf: &[u8],
        name_end: usize,
        attrs: &[AttrSpan],
    ) -> Result<Option<StreamEvent>, XmlError> {
        let raw = &buf[token.start..token.end];
        match token.kind {
            TokenKind::XmlDecl => check_xml_decl(raw).map(|()| None),
            TokenKind::Header { .. } => self.header(utf8(raw)?, name_end, attrs).map(Some),
            TokenKind::Start { empty } => {
                let scope = self.bindings.len;
                let tag = utf8(raw)?;
                let element = self.start(tag, name_end, attrs)?;
                if empty {
                    self.bindings.truncate(scope);
                    return Ok(self.complete(element, token.item_len));
                }
                let name_at = self.names.len();
                self.names.push_str(&tag[1..name_end]);
                self.stack.push(Open {
                    element,
                    name_at,
                    scope,
                });
                Ok(None)
            }
            TokenKind::End => {
                let open = self.stack.pop().ok_or_else(internal)?;
                let name = &raw[2..name_end];
                if self.names.as_bytes()[open.name_at..] != *name {
                    return Err(mismatch(&self.names[open.name_at..], name));
                }
                self.names.truncate(open.name_at);
                self.bindings.truncate(open.scope);
                Ok(self.complete(open.element, token.item_len))
            }
            TokenKind::Close => {
                let name = &raw[2..name_end];
                if self.root.as_bytes() != name {
                    return Err(mismatch(&self.root, name));
                }
                Ok(Some(StreamEvent::Close))
            }
            TokenKind::Text { decode } | TokenKind::CData { decode } => {
                let cdata = matches!(token.kind, TokenKind::CData { .. });
                let top = self.stack.last_mut().ok_or_else(internal)?;
                append_text(&mut top.element, utf8(raw)?, decode, cdata)?;
                Ok(None)
            }
        }
    }

    /// Attaches a finished element to its parent, or hands it out at the top level.
    fn complete(&mut self, element: Element, item_len: Option<usize>) -> Option<StreamEvent> {
        match self.stack.last_mut() {
            Some(parent) => {
                parent.element.push_child(element);
                None
            }
            None => Some(StreamEvent::Element(element, item_len.unwrap_or(0))),
        }
    }

    /// RFC 6120 §4.8: the header's declarations stay in scope for the whole stream.
    fn header(&mut self, tag: &str, name_end: usize, attrs: &[AttrSpan]) -> Result<StreamEvent, XmlError> {
        self.reset();
        let root = self.start(tag, name_end, attrs)?;
        self.root.push_str(&tag[1..name_end]);
        let mut default_ns = None;
        let mut ns_decls = Vec::new();
        for b in &self.bindings.slots[..self.bindings.len] {
            if b.prefix.is_empty() {
                default_ns = Some(b.uri.clone());
            } else {
                ns_decls.push((b.prefix.clone(), b.uri.clone()));
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

    /// Builds the element of a start tag, pushing its namespace declarations.
    fn start(&mut self, tag: &str, name_end: usize, attrs: &[AttrSpan]) -> Result<Element, XmlError> {
        let qname = &tag[1..name_end];
        let (prefix, local) = split_qname(qname)?;
        let attr_name = |a: &AttrSpan| &tag[a.name.0..a.name.1];
        let attr_value = |a: &AttrSpan| &tag[a.value.0..a.value.1];

        check_unique(attrs.iter().map(attr_name), attrs.len())?;
        for a in attrs {
            let name = attr_name(a);
            split_qname(name)?;
            if !is_declaration(name) {
                continue;
            }
            let declared = name.strip_prefix("xmlns:").unwrap_or("");
            if self.bindings.len >= MAX_NAMESPACES {
                return Err(XmlError::PolicyViolation {
                    limit: MAX_NAMESPACES,
                    exceeded: ExceededLimit::Namespaces,
                });
            }
            let binding = self.bindings.push(declared);
            decode_value(&mut binding.uri, attr_value(a), a.decode)?;
            check_declaration(declared, &binding.uri)?;
        }

        let ns = match prefix {
            // No default namespace in scope: the element is in no namespace.
            "" => self.bindings.resolve("").unwrap_or(""),
            _ => self.bindings.resolve(prefix).ok_or_else(|| undeclared(prefix))?,
        };
        let mut element = Element::new(local, ns);

        let mut prefixed = 0;
        for a in attrs {
            let name = attr_name(a);
            if is_declaration(name) {
                continue;
            }
            let (prefix, _) = split_qname(name)?;
            if !prefix.is_empty() {
                self.bindings.resolve(prefix).ok_or_else(|| undeclared(prefix))?;
                prefixed += 1;
            }
            let mut value = String::with_capacity(a.value.1 - a.value.0);
            decode_value(&mut value, attr_value(a), a.decode)?;
            element.set_attr(name, value);
        }
        if prefixed > 1 {
            // Namespaces in XML 1.0 §6.3: two prefixed attributes may not share a
            // namespace and local name, even under different prefixes.
            let expanded = attrs.iter().filter_map(|a| {
                let (prefix, local) = attr_name(a).split_once(':')?;
                (prefix != "xmlns").then(|| (self.bindings.resolve(prefix), local))
            });
            check_unique(expanded, prefixed)?;
        }
        Ok(element)
    }
}

/// `xmlns` and `xmlns:p` attributes declare namespaces; they are not attributes of the
/// element (Namespaces in XML 1.0 §3).
fn is_declaration(name: &str) -> bool {
    name == "xmlns" || name.starts_with("xmlns:")
}

/// Namespaces in XML 1.0 §3: `xmlns` and `xml` are reserved, and a prefix cannot be
/// undeclared (that is XML 1.1 only).
fn check_declaration(prefix: &str, uri: &str) -> Result<(), XmlError> {
    let ok = match prefix {
        "xmlns" => false,
        "xml" => uri == ns::XML,
        "" => uri != ns::XML && uri != XMLNS_NS,
        _ => !uri.is_empty() && uri != ns::XML && uri != XMLNS_NS,
    };
    if ok {
        Ok(())
    } else {
        Err(XmlError::NotWellFormed(format!(
            "invalid namespace declaration for prefix '{prefix}': '{uri}'"
        )))
    }
}

/// XML 1.0 §3.1: an attribute name appears once per tag.
fn check_unique<T: Ord + Copy>(items: impl Iterator<Item = T> + Clone, count: usize) -> Result<(), XmlError> {
    let duplicate = if count <= PAIRWISE_MAX {
        items
            .clone()
            .enumerate()
            .any(|(i, a)| items.clone().skip(i + 1).any(|b| a == b))
    } else {
        let mut sorted: Vec<T> = items.collect();
        sorted.sort_unstable();
        sorted.windows(2).any(|w| w[0] == w[1])
    };
    if duplicate {
        Err(XmlError::NotWellFormed("duplicate attribute".into()))
    } else {
        Ok(())
    }
}

/// Appends an attribute value, decoding it only when the lexer saw something to
/// decode.
fn decode_value(out: &mut String, raw: &str, decode: bool) -> Result<(), XmlError> {
    if decode {
        decode_into(out, raw, Context::Attr)
    } else {
        out.push_str(raw);
        Ok(())
    }
}

/// Appends character data (`cdata`: the content of a CDATA section, where `&` is
/// literal) to the element's last text node or a new one, so adjacent runs form one
/// node and no temporary string is built.
fn append_text(element: &mut Element, raw: &str, decode: bool, cdata: bool) -> Result<(), XmlError> {
    let write = |out: &mut String| match (decode, cdata) {
        (false, _) => {
            out.push_str(raw);
            Ok(())
        }
        (true, true) => {
            cdata_into(out, raw);
            Ok(())
        }
        (true, false) => decode_into(out, raw, Context::Text),
    };
    let nodes = element.nodes_mut();
    if let Some(Node::Text(prev)) = nodes.last_mut() {
        return write(prev);
    }
    if !raw.is_empty() {
        let mut text = String::with_capacity(raw.len());
        write(&mut text)?;
        nodes.push(Node::Text(text));
    }
    Ok(())
}

fn undeclared(prefix: &str) -> XmlError {
    XmlError::NotWellFormed(format!("undeclared namespace prefix '{prefix}'"))
}

fn mismatch(open: &str, close: &[u8]) -> XmlError {
    XmlError::NotWellFormed(format!(
        "end tag '{}' does not match start tag '{open}'",
        String::from_utf8_lossy(close)
    ))
}

/// The lexer and the tree disagree on nesting; unreachable, but a peer must not be able
/// to panic the server if it ever happens.
fn internal() -> XmlError {
    XmlError::NotWellFormed("unbalanced element nesting".into())
}
