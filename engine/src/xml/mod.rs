//! XML for XMPP streams: the element tree, its serialisation, and the incremental
//! stream parser (RFC 6120 §4 and §11, restricted XML).
//!
//! An [`Element`] stores its resolved namespace URI and local name; prefixes are a
//! wire concern. Serialisation writes `xmlns` only where an element's namespace
//! differs from its parent's, and writes elements of the stream namespace with the
//! conventional `stream:` prefix.

mod element;
pub mod parser;

pub use element::{escape_attr, escape_text, Element, Node};
pub use parser::{
    ExceededLimit, ParseLimits, StreamEvent, StreamHeader, StreamParser, XmlError, MAX_ATTRS, MAX_DEPTH,
    MAX_NAMESPACES,
};
