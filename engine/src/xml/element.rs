//! The element tree shared by every layer of the engine.

use std::fmt::Write as _;

use crate::ns;

/// A child of an [`Element`]: another element or character data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A child element.
    Element(Element),
    /// Character data, unescaped.
    Text(String),
}

/// An XML element with its namespace resolved.
///
/// Attributes keep their qualified wire name (`xml:lang` stays `xml:lang`); namespace
/// declarations are not attributes, they are derived from `ns` when serialising.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    name: String,
    ns: String,
    attrs: Vec<(String, String)>,
    children: Vec<Node>,
}

impl Element {
    /// A new empty element `name` in namespace `ns`.
    pub fn new(name: impl Into<String>, ns: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ns: ns.into(),
            attrs: Vec::new(),
            children: Vec::new(),
        }
    }

    /// Builder form of [`Element::set_attr`].
    #[must_use]
    pub fn with_attr(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.set_attr(name, value);
        self
    }

    /// Builder form of [`Element::push_child`].
    #[must_use]
    pub fn with_child(mut self, child: Element) -> Self {
        self.children.push(Node::Element(child));
        self
    }

    /// Builder form of [`Element::push_text`].
    #[must_use]
    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.push_text(text);
        self
    }

    /// The local name (`message`, `iq`, `features`, ...).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace URI.
    pub fn ns(&self) -> &str {
        &self.ns
    }

    /// Changes the namespace of this element only (children keep theirs). Used when a
    /// stanza crosses from `jabber:client` to `jabber:server` or a component stream.
    pub fn set_ns(&mut self, ns: impl Into<String>) {
        self.ns = ns.into();
    }

    /// True when this element is `name` in namespace `ns`.
    pub fn is(&self, name: &str, ns: &str) -> bool {
        self.name == name && self.ns == ns
    }

    /// The value of attribute `name`, if present.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// All attributes in document order.
    pub fn attrs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.attrs.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Sets (or replaces) attribute `name`.
    pub fn set_attr(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let name = name.into();
        let value = value.into();
        match self.attrs.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.attrs.push((name, value)),
        }
    }

    /// Removes attribute `name`, returning its value.
    pub fn remove_attr(&mut self, name: &str) -> Option<String> {
        let pos = self.attrs.iter().position(|(n, _)| n == name)?;
        Some(self.attrs.remove(pos).1)
    }

    /// Appends a child element.
    pub fn push_child(&mut self, child: Element) {
        self.children.push(Node::Element(child));
    }

    /// Appends character data, merging with a preceding text node.
    pub fn push_text(&mut self, text: impl Into<String>) {
        let text = text.into();
        if text.is_empty() {
            return;
        }
        if let Some(Node::Text(prev)) = self.children.last_mut() {
            prev.push_str(&text);
        } else {
            self.children.push(Node::Text(text));
        }
    }

    /// All child nodes.
    pub fn nodes(&self) -> &[Node] {
        &self.children
    }

    /// Mutable access to the child nodes.
    pub fn nodes_mut(&mut self) -> &mut Vec<Node> {
        &mut self.children
    }

    /// Child elements in order.
    pub fn children(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    /// The first child `name` in namespace `ns`.
    pub fn get_child(&self, name: &str, ns: &str) -> Option<&Element> {
        self.children().find(|c| c.is(name, ns))
    }

    /// The first child `name` in namespace `ns`, mutably.
    pub fn get_child_mut(&mut self, name: &str, ns: &str) -> Option<&mut Element> {
        self.children.iter_mut().find_map(|n| match n {
            Node::Element(e) if e.is(name, ns) => Some(e),
            _ => None,
        })
    }

    /// Removes every child element `name` in namespace `ns`.
    pub fn remove_children(&mut self, name: &str, ns: &str) {
        self.children
            .retain(|n| !matches!(n, Node::Element(e) if e.is(name, ns)));
    }

    /// The first child element, whatever its name (the payload of an iq).
    pub fn first_child(&self) -> Option<&Element> {
        self.children().next()
    }

    /// Concatenated character data of the direct children.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for n in &self.children {
            if let Node::Text(t) = n {
                out.push_str(t);
            }
        }
        out
    }

    /// Serialises as a standalone fragment: the `xmlns` of this element is always
    /// written (unless it is the stream namespace, which uses the `stream:` prefix).
    pub fn to_xml(&self) -> String {
        let mut out = String::with_capacity(128);
        self.write_xml(&mut out, None);
        out
    }

    /// Serialises inside a stream whose default namespace is `parent_ns`: `xmlns` is
    /// omitted when it equals `parent_ns`, as RFC 6120 §4.8.3 expects for stanzas.
    pub fn to_xml_in(&self, parent_ns: &str) -> String {
        let mut out = String::with_capacity(128);
        self.write_xml(&mut out, Some(parent_ns));
        out
    }

    /// Appends the serialisation to `out` (see [`Element::to_xml_in`]).
    pub fn write_xml(&self, out: &mut String, parent_ns: Option<&str>) {
        self.write_mapped(out, parent_ns, None);
    }

    /// Serialises a stanza the hub holds in `jabber:client` into a stream whose content
    /// namespace is `stream_ns` (`jabber:server` for S2S, `jabber:component:accept` for
    /// components): every element in `jabber:client` is written as if it were in
    /// `stream_ns` (RFC 6120 §4.8.3: the stanza namespace is the stream's default), so
    /// that the stanza needs no copy to cross from one stream type to another.
    pub fn write_in_stream(&self, out: &mut String, stream_ns: &str) {
        self.write_mapped(out, Some(stream_ns), Some(stream_ns));
    }

    /// The reverse of [`Element::write_in_stream`] for a parsed stanza: every element
    /// in namespace `from` (the stream's content namespace) moves to `to`
    /// (`jabber:client`, the hub's), recursively.
    pub fn rename_ns(&mut self, from: &str, to: &str) {
        if self.ns == from {
            self.ns = to.to_string();
        }
        for n in &mut self.children {
            if let Node::Element(e) = n {
                e.rename_ns(from, to);
            }
        }
    }

    fn write_mapped(&self, out: &mut String, parent_ns: Option<&str>, client_as: Option<&str>) {
        let own_ns = match client_as {
            Some(mapped) if self.ns == ns::CLIENT => mapped,
            _ => self.ns.as_str(),
        };
        // Elements of the stream namespace use the `stream:` prefix everywhere; inside
        // a server stream, dialback elements use `db:` (XEP-0220 §2.1: some servers
        // match the prefixed name, and every S2S header of ours declares it).
        let prefix = if self.ns == ns::STREAMS {
            Some("stream:")
        } else if client_as.is_some() && self.ns == ns::DIALBACK {
            Some("db:")
        } else {
            None
        };
        out.push('<');
        if let Some(p) = prefix {
            out.push_str(p);
        }
        out.push_str(&self.name);
        if prefix.is_none() && parent_ns != Some(own_ns) {
            out.push_str(" xmlns='");
            escape_attr(out, own_ns);
            out.push('\'');
        }
        for (n, v) in &self.attrs {
            let _ = write!(out, " {n}='");
            escape_attr(out, v);
            out.push('\'');
        }
        if self.children.is_empty() {
            out.push_str("/>");
            return;
        }
        out.push('>');
        // Children of a prefixed element inherit the stream's content namespace,
        // which a fragment does not know; they always declare their own.
        let child_parent = if prefix.is_some() { None } else { Some(own_ns) };
        for n in &self.children {
            match n {
                Node::Element(e) => e.write_mapped(out, child_parent, client_as),
                Node::Text(t) => escape_text(out, t),
            }
        }
        out.push_str("</");
        if let Some(p) = prefix {
            out.push_str(p);
        }
        out.push_str(&self.name);
        out.push('>');
    }
}

/// Escapes character data (RFC 6120 §11: `&`, `<`, `>`).
pub fn escape_text(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
}

/// Escapes an attribute value written between single quotes.
pub fn escape_attr(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn omits_inherited_namespace_and_escapes() {
        let msg = Element::new("message", ns::CLIENT)
            .with_attr("to", "a'b@x")
            .with_child(Element::new("body", ns::CLIENT).with_text("1 < 2 & 3"));
        assert_eq!(
            msg.to_xml_in(ns::CLIENT),
            "<message to='a&apos;b@x'><body>1 &lt; 2 &amp; 3</body></message>"
        );
        assert_eq!(
            msg.to_xml(),
            "<message xmlns='jabber:client' to='a&apos;b@x'><body>1 &lt; 2 &amp; 3</body></message>"
        );
    }

    #[test]
    fn client_stanzas_are_written_in_the_stream_namespace_and_read_back() {
        let msg = Element::new("message", ns::CLIENT)
            .with_attr("to", "b@remote")
            .with_child(Element::new("body", ns::CLIENT).with_text("hi"))
            .with_child(Element::new("x", "urn:other"));
        let mut out = String::new();
        msg.write_in_stream(&mut out, ns::SERVER);
        assert_eq!(
            out,
            "<message to='b@remote'><body>hi</body><x xmlns='urn:other'/></message>"
        );
        let mut back =
            Element::new("message", ns::SERVER).with_child(Element::new("body", ns::SERVER).with_text("hi"));
        back.rename_ns(ns::SERVER, ns::CLIENT);
        assert_eq!(back.ns(), ns::CLIENT);
        assert_eq!(back.first_child().unwrap().ns(), ns::CLIENT);
    }

    /// ejabberd's codec matches dialback elements by their prefixed name, so inside a
    /// server stream they are written `db:result`, `db:verify` (XEP-0220 examples).
    #[test]
    fn dialback_elements_use_the_db_prefix_in_streams() {
        let result = Element::new("result", ns::DIALBACK)
            .with_attr("from", "a.example")
            .with_attr("to", "b.example")
            .with_text("k3y");
        let mut out = String::new();
        result.write_in_stream(&mut out, ns::SERVER);
        assert_eq!(out, "<db:result from='a.example' to='b.example'>k3y</db:result>");
        assert_eq!(
            result.to_xml(),
            "<result xmlns='jabber:server:dialback' from='a.example' to='b.example'>k3y</result>"
        );
    }

    #[test]
    fn stream_namespace_uses_prefix_and_children_declare_theirs() {
        let f = Element::new("features", ns::STREAMS).with_child(Element::new("bind", ns::BIND));
        assert_eq!(
            f.to_xml_in(ns::CLIENT),
            "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>"
        );
    }
}
