//! Incremental XMPP stream parser (RFC 6120 §4, §11), on quick-xml.
//!
//! Bytes arrive in arbitrary pieces ([`StreamParser::feed`]); [`StreamParser::next_event`]
//! yields the stream header, each complete top-level element, and the stream close,
//! exactly the same whatever the split. Restricted XML (RFC 6120 §11.1) is enforced.
//!
//! quick-xml reads the XML: one [`quick_xml::Reader`] per stream tokenizes it, checks
//! attribute syntax and end tags, and unescapes text; a
//! [`quick_xml::name::NamespaceResolver`] resolves names, with the header's declarations
//! in scope for every stanza. quick-xml has no push mode (it takes the end of its input
//! for the end of the document), so a small resumable scanner (`scanner`) finds where
//! each markup token ends as bytes arrive and quick-xml (`input`) is shown only complete
//! tokens; the scanner also refuses what must be refused before a token or an element
//! ends (restricted XML, the limits). The tree builder (`tree`) turns quick-xml's events
//! into elements as their tags complete, checking what quick-xml leaves to its users
//! (names, characters, entities, the XML 1.0 namespace rules). Only the unfinished token
//! is kept buffered, and input fed one byte at a time costs the same as input fed at
//! once.

mod chars;
mod input;
mod scanner;
mod tree;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use quick_xml::Reader;

use input::Input;
use scanner::Scanner;
use tree::Tree;

use super::Element;

/// Limits applied while parsing: a peer must not make the server buffer or build
/// without bound (RFC 6120 §13.12). See also [`MAX_DEPTH`], [`MAX_ATTRS`] and
/// [`MAX_NAMESPACES`], which are fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseLimits {
    /// Largest top-level element (or stream header), in bytes of input
    /// (MongooseIM's `max_stanza_size`; exceeding it is a `policy-violation`,
    /// RFC 6120 §4.9.3.14). `usize::MAX` means no limit.
    pub max_stanza_size: usize,
}

impl Default for ParseLimits {
    fn default() -> Self {
        Self {
            max_stanza_size: 65_536,
        }
    }
}

/// The opening `<stream:stream>` tag (RFC 6120 §4.7), reported as parsed: checking
/// the name, namespaces, `to`, `version` and so on is the stream layer's job, so that it
/// can answer with the precise stream error (§4.9.3.2, §4.9.3.10, §4.9.3.25, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamHeader {
    /// Namespace URI of the root element's name (must be `ns::STREAMS`).
    pub name_ns: String,
    /// Local name of the root element (must be `stream`).
    pub name: String,
    /// The default namespace declared (`jabber:client`, `jabber:server`, ...), if any.
    pub default_ns: Option<String>,
    /// Other attributes by qualified name (`to`, `from`, `version`, `id`, `xml:lang`).
    pub attrs: Vec<(String, String)>,
    /// Prefixed namespace declarations on the header, as (prefix, URI), e.g.
    /// (`stream`, `http://etherx.jabber.org/streams`). A server stream declaring
    /// `xmlns:db='jabber:server:dialback'` announces dialback support (XEP-0220);
    /// these prefixes stay in scope for every stanza of the stream (RFC 6120 §4.8).
    pub ns_decls: Vec<(String, String)>,
}

impl StreamHeader {
    /// The value of attribute `name`.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One thing parsed from the stream: the header, a top-level element (a stanza or
/// other first-level child, RFC 6120 §4.1), or the close (§4.4). Whitespace between
/// top-level elements (keepalives, §4.6.1) yields nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// The stream header.
    Header(StreamHeader),
    /// A complete top-level element and the number of input bytes it took (from its
    /// `<` to its last `>`, for byte counters and instrumentation).
    Element(Element, usize),
    /// `</stream:stream>` (or the end of an empty `<stream:stream/>` root), after which
    /// only whitespace may follow.
    Close,
}

/// Why the input is not an acceptable XMPP stream. Each maps to one stream error
/// (RFC 6120 §4.9.3); the messages are for logs, not for the peer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    /// RFC 6120 §4.9.3.13: the input is not well-formed XML (includes bad UTF-8 and
    /// undeclared prefixes).
    #[error("not well-formed: {0}")]
    NotWellFormed(String),
    /// RFC 6120 §4.9.3.18 / §11.1: DTD, comment, processing instruction or entity
    /// other than the five predefined.
    #[error("restricted XML: {0}")]
    RestrictedXml(String),
    /// RFC 6120 §4.9.3.22: the XML declaration names an encoding other than UTF-8
    /// (RFC 6120 §11.6).
    #[error("unsupported encoding {0}")]
    UnsupportedEncoding(String),
    /// RFC 6120 §4.9.3.14: the header or a top-level element went over a limit:
    /// `max_stanza_size` bytes, [`MAX_DEPTH`] levels of nesting, [`MAX_ATTRS`]
    /// attributes on one element or [`MAX_NAMESPACES`] declarations in scope. Reported
    /// while the element is still arriving.
    #[error("{exceeded} over the limit of {limit}")]
    PolicyViolation {
        /// The limit (bytes, levels, attributes or declarations, see `exceeded`).
        limit: usize,
        /// Which limit.
        exceeded: ExceededLimit,
    },
}

/// The limit behind an [`XmlError::PolicyViolation`]; both are the same stream error
/// (RFC 6120 §4.9.3.14), this only says which one to log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExceededLimit {
    /// [`ParseLimits::max_stanza_size`]: bytes of the header or of one top-level element.
    StanzaSize,
    /// [`MAX_DEPTH`]: levels of elements in one top-level element.
    Depth,
    /// [`MAX_ATTRS`]: attributes (namespace declarations included) on one element.
    Attributes,
    /// [`MAX_NAMESPACES`]: namespace declarations in scope at once.
    Namespaces,
}

impl std::fmt::Display for ExceededLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ExceededLimit::StanzaSize => "element size in bytes",
            ExceededLimit::Depth => "element nesting depth",
            ExceededLimit::Attributes => "attributes on one element",
            ExceededLimit::Namespaces => "namespace declarations in scope",
        })
    }
}

/// Deepest nesting accepted in a top-level element (the element itself is level 1).
///
/// Element trees are dropped, cloned and serialised recursively, so a peer that could
/// nest thousands of levels in one stanza could overflow a thread's stack and abort
/// the whole server. Real stanzas (pubsub payloads, forwarded and archived messages,
/// XHTML-IM) stay far below this.
pub const MAX_DEPTH: usize = 256;

/// Most attributes (namespace declarations included) accepted on one element.
///
/// Building an element checks each attribute against the ones before it, so without
/// a cap one tag of `n` attributes costs `n²` (70 ms for a 64 KB tag, growing with the
/// square of `max_stanza_size`); with it, the cost stays linear in the input. Real
/// stanzas carry a handful.
pub const MAX_ATTRS: usize = 256;

/// Most namespace declarations in scope at once (the stream header's and those of the
/// open elements). Resolving a prefix walks them, so the cap keeps a stanza of many
/// declarations and many prefixed names linear rather than quadratic in its size.
pub const MAX_NAMESPACES: usize = 256;

/// The incremental parser of one stream (one per stream; call
/// [`StreamParser::reset`] on a stream restart).
///
/// Feed what the transport delivered, then call [`StreamParser::next_event`] until it
/// returns `Ok(None)`: only the unfinished token is kept, so draining after each feed
/// keeps memory within `max_stanza_size`.
pub struct StreamParser {
    /// quick-xml's reader over the buffered input, for the whole stream.
    reader: Reader<Input>,
    /// The bytes of the event quick-xml is reading (its `read_event_into` buffer).
    event_buf: Vec<u8>,
    scanner: Scanner,
    tree: Tree,
    /// Input size of the last item whose end quick-xml was shown.
    item_len: usize,
    /// `<stream:stream/>` yields a header and then, at the next call, the close.
    pending_close: bool,
    /// RFC 6120 §4.9.1.1: a stream error is fatal; the parser stays dead.
    failed: Option<XmlError>,
}

/// A buffer grown by an exceptionally large stanza is given back once it is mostly
/// unused, so an idle session does not keep `max_stanza_size` bytes around.
const SHRINK_ABOVE: usize = 16 * 1024;

impl StreamParser {
    /// A parser expecting a stream header, optionally preceded by an XML declaration
    /// (RFC 6120 §11.5).
    pub fn new(limits: ParseLimits) -> Self {
        Self {
            reader: Reader::from_reader(Input::default()),
            event_buf: Vec::new(),
            scanner: Scanner::new(limits.max_stanza_size),
            tree: Tree::default(),
            item_len: 0,
            pending_close: false,
            failed: None,
        }
    }

    /// Appends input bytes (any piece of the stream, even one byte). Nothing is parsed
    /// until [`StreamParser::next_event`]. Input after an error is dropped.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.failed.is_some() || bytes.is_empty() {
            return;
        }
        // Dropping what quick-xml has read moves only the unfinished token.
        let input = self.reader.get_mut();
        let dropped = input.drop_read();
        self.scanner.shift(dropped);
        let needed = input.buf.len() + bytes.len();
        if input.buf.capacity() > SHRINK_ABOVE && needed < SHRINK_ABOVE / 4 {
            input.buf.shrink_to(SHRINK_ABOVE / 4);
        }
        if self.event_buf.capacity() > SHRINK_ABOVE {
            self.event_buf = Vec::new();
        }
        input.buf.extend_from_slice(bytes);
    }

    /// The next complete event, `Ok(None)` when more input is needed. After an error
    /// the parser is dead and keeps returning that error.
    ///
    /// Errors: [`XmlError::RestrictedXml`] as soon as a comment, processing instruction
    /// or DTD starts (RFC 6120 §4.9.3.18); [`XmlError::NotWellFormed`] as soon as the tag
    /// (or CDATA section) holding the offending bytes is complete, or for character data,
    /// the tag that follows it (RFC 6120 §4.9.3.13); [`XmlError::PolicyViolation`] as soon
    /// as the header or a top-level element grows past `max_stanza_size` bytes or another
    /// limit, without waiting for its end (RFC 6120 §4.9.3.14).
    pub fn next_event(&mut self) -> Result<Option<StreamEvent>, XmlError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if self.pending_close {
            self.pending_close = false;
            return Ok(Some(StreamEvent::Close));
        }
        match self.advance() {
            Ok(None) => {
                self.release_idle_buffers();
                Ok(None)
            }
            Ok(event) => Ok(event),
            Err(e) => {
                self.failed = Some(e.clone());
                *self.reader.get_mut() = Input::default();
                self.event_buf = Vec::new();
                self.tree.reset();
                Err(e)
            }
        }
    }

    /// Everything fed has been parsed: buffers that hold nothing still needed are
    /// given back, so that a session waiting for its next stanza (most sessions, most
    /// of the time) keeps none. Allocating them again for the next input costs less
    /// than keeping the largest stanza's buffers per idle session.
    fn release_idle_buffers(&mut self) {
        let input = self.reader.get_mut();
        let dropped = input.drop_read();
        self.scanner.shift(dropped);
        // What is left is the start of a token (or whitespace before one).
        input.buf.shrink_to_fit();
        // Only the event being read lives there.
        self.event_buf = Vec::new();
        self.tree.release_idle_buffers();
    }

    /// Lets quick-xml read the complete tokens, then has the scanner find the next one,
    /// until an event is ready or more input is needed. Tokens are shown to quick-xml
    /// one at a time, so that which error comes first never depends on the split.
    fn advance(&mut self) -> Result<Option<StreamEvent>, XmlError> {
        loop {
            while self.reader.get_ref().has_unread() {
                self.event_buf.clear();
                let event = self
                    .reader
                    .read_event_into(&mut self.event_buf)
                    .map_err(tree::not_well_formed)?;
                let empty_root = matches!(event, quick_xml::events::Event::Empty(_)) && !self.tree.has_root();
                if let Some(event) = self.tree.apply(event, self.item_len)? {
                    self.pending_close = empty_root;
                    return Ok(Some(event));
                }
            }
            let input = self.reader.get_mut();
            let Some(token) = self.scanner.next_token(&input.buf)? else {
                return Ok(None);
            };
            input.limit = token.end;
            if let Some(len) = token.item_len {
                self.item_len = len;
            }
        }
    }

    /// Forgets all state and buffered input, expecting a new stream header
    /// (RFC 6120 §4.3.3 stream restart after STARTTLS and SASL). The limits are kept.
    pub fn reset(&mut self) {
        let mut buf = std::mem::take(&mut self.reader.get_mut().buf);
        buf.clear();
        self.reader = Reader::from_reader(Input {
            buf,
            ..Input::default()
        });
        self.scanner.reset();
        self.tree.reset();
        self.pending_close = false;
        self.failed = None;
    }

    /// Bytes of buffer held (and elements the open-element stack has room for), for
    /// the tests of memory use.
    #[cfg(test)]
    fn buffer_capacity(&self) -> usize {
        self.reader.get_ref().buf.capacity() + self.event_buf.capacity() + self.tree.stack_capacity()
    }
}
