//! The boundary scanner: a resumable state machine that finds where each markup token of
//! the stream ends (a tag, a CDATA section, the XML declaration), so that quick-xml, which
//! has no push mode, is only ever given complete tokens.
//!
//! Its whole state survives between [`Scanner::next_token`] calls, so input fed one byte
//! at a time costs the same as input fed at once, and where tokens end depends only on
//! the bytes, never on how they were split. Reading the tokens is quick-xml's job; the
//! scanner knows just the grammar it needs for the boundaries (quoted attribute values,
//! `/>`, `]]>`, `?>`), and checks what must be caught while a token or an element is still
//! arriving, because a peer may never finish it:
//!
//! - restricted XML (RFC 6120 §11.1): comments, processing instructions and DTDs are
//!   refused as soon as they start, and never reach quick-xml;
//! - only whitespace between top-level elements (RFC 6120 §4.6.1 keepalives);
//! - the limits (RFC 6120 §13.12): `max_stanza_size` bytes per top-level *item* (the XML
//!   declaration, the stream header, one top-level element or the stream close), counted
//!   as the bytes arrive, [`MAX_DEPTH`] at the `<` that would go deeper and [`MAX_ATTRS`]
//!   at the attribute value that would be one too many;
//! - the tag syntax that decides where a tag ends or that quick-xml tolerates: `<` inside
//!   a tag, `/` or `?` not followed by `>`, attributes not separated by whitespace
//!   (XML 1.0 §3.1).

use super::chars::{is, END_STOP, NAME_START, TAG_STOP, WS};
use super::{ExceededLimit, XmlError, MAX_ATTRS, MAX_DEPTH};

/// Where the stream is, as far as the scanner is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Before the stream header (an XML declaration may come first).
    Prolog,
    /// The stream header has been read; `depth` counts open elements below the root.
    Open,
    /// `</stream:stream>` (or an empty root) has been read; only whitespace may follow.
    Closed,
}

/// Where the scanner is inside the current token.
#[derive(Clone, Copy, Debug)]
enum State {
    /// Outside any element (prolog, between top-level elements, epilog).
    Idle,
    /// Character data inside an element, up to the next `<`.
    Text,
    /// Just after `<`.
    Lt,
    /// After `<!`, matching `lit` (of which `matched` bytes are seen).
    Bang { lit: &'static [u8], matched: usize },
    /// Inside `<![CDATA[`, looking for `]]>`.
    CData,
    /// After `<?` at the very start of the stream, matching `xml`.
    PiTarget { matched: usize },
    /// Inside a start tag or the XML declaration, outside attribute values.
    Tag,
    /// Inside an attribute value.
    Quoted { quote: u8 },
    /// Just after an attribute value.
    AfterQuote,
    /// After the `/` of `/>` (or the `?` of the declaration's `?>`).
    Closing,
    /// Inside an end tag.
    EndTag,
}

/// A complete markup token: quick-xml may read the buffer up to `end` (exclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Token {
    pub end: usize,
    /// Set on the token that completes a top-level item: the item's size in input bytes.
    pub item_len: Option<usize>,
}

/// The resumable scanner of one stream.
pub(super) struct Scanner {
    max_item: usize,
    state: State,
    phase: Phase,
    depth: usize,
    /// Next byte to look at (buffer index).
    pos: usize,
    /// The `<` of the current token (buffer index).
    mark: usize,
    /// Stream offset of `buf[0]`.
    base: u64,
    /// Stream offset of the current item's `<`, while inside one.
    item_start: Option<u64>,
    /// The current tag is the XML declaration, which ends with `?>` rather than `/>`.
    decl: bool,
    /// Attribute values seen in the current tag.
    attrs: usize,
}

impl Scanner {
    pub(super) fn new(max_item: usize) -> Self {
        Self {
            max_item,
            state: State::Idle,
            phase: Phase::Prolog,
            depth: 0,
            pos: 0,
            mark: 0,
            base: 0,
            item_start: None,
            decl: false,
            attrs: 0,
        }
    }

    /// Back to the start of a stream.
    pub(super) fn reset(&mut self) {
        *self = Self::new(self.max_item);
    }

    /// The caller dropped the first `n` buffer bytes, all before the current token
    /// (`mark` only matters inside one).
    pub(super) fn shift(&mut self, n: usize) {
        debug_assert!(n <= self.pos);
        self.pos -= n;
        self.mark = self.mark.saturating_sub(n);
        self.base += n as u64;
    }

    /// The next complete token in `buf`, `Ok(None)` when more input is needed.
    pub(super) fn next_token(&mut self, buf: &[u8]) -> Result<Option<Token>, XmlError> {
        loop {
            let end = self.scan_end(buf.len());
            if self.pos >= end {
                if end < buf.len() {
                    // The item has not ended within its allowed size and more is coming.
                    return Err(XmlError::PolicyViolation {
                        limit: self.max_item,
                        exceeded: ExceededLimit::StanzaSize,
                    });
                }
                return Ok(None);
            }
            if let Some(token) = self.step(buf, end)? {
                return Ok(Some(token));
            }
        }
    }

    /// Index up to which bytes may be scanned: the whole buffer, or inside an item, up to
    /// the byte that would make it exceed `max_item`.
    fn scan_end(&self, len: usize) -> usize {
        match self.item_start {
            None => len,
            Some(start) => {
                let limit = start
                    .saturating_add(self.max_item as u64)
                    .saturating_sub(self.base);
                len.min(usize::try_from(limit).unwrap_or(usize::MAX))
            }
        }
    }

    /// Handles at least one byte of `buf[pos..end]` (which is not empty).
    fn step(&mut self, buf: &[u8], end: usize) -> Result<Option<Token>, XmlError> {
        let b = buf[self.pos];
        match self.state {
            State::Idle => self.idle(b)?,
            State::Text => match find(buf, self.pos, end, |b| b == b'<') {
                Some(lt) => {
                    self.mark = lt;
                    self.pos = lt + 1;
                    self.state = State::Lt;
                }
                None => self.pos = end,
            },
            State::Lt => self.lt(b)?,
            State::Bang { lit, matched } => self.bang(b, lit, matched)?,
            State::CData => {
                // `<![CDATA[` is 9 bytes; `]]` must come after it.
                let content = self.mark + 9;
                while let Some(gt) = find(buf, self.pos, end, |b| b == b'>') {
                    self.pos = gt + 1;
                    if gt >= content + 2 && buf[gt - 2..gt] == *b"]]" {
                        return Ok(Some(self.token_end()));
                    }
                }
                self.pos = end;
            }
            State::PiTarget { matched } => {
                if matched < 3 && b == b"xml"[matched] {
                    self.state = State::PiTarget { matched: matched + 1 };
                } else if matched == 3 && is(b, WS) {
                    self.enter_tag(true);
                } else {
                    return Err(restricted("processing instruction"));
                }
                self.pos += 1;
            }
            State::Tag => match find(buf, self.pos, end, |b| is(b, TAG_STOP)) {
                Some(at) => return self.tag_byte(buf[at], at),
                None => self.pos = end,
            },
            State::Quoted { quote } => match find(buf, self.pos, end, |b| b == quote || b == b'<') {
                Some(at) if buf[at] == quote => {
                    self.pos = at + 1;
                    self.state = State::AfterQuote;
                }
                Some(_) => return Err(not_well_formed("'<' in an attribute value")),
                None => self.pos = end,
            },
            State::AfterQuote => {
                if is(b, WS) {
                    self.pos += 1;
                    self.state = State::Tag;
                } else if matches!(b, b'>' | b'/' | b'?') {
                    return self.tag_byte(b, self.pos);
                } else {
                    return Err(not_well_formed("attributes must be separated by whitespace"));
                }
            }
            State::Closing => {
                if b != b'>' {
                    let what = if self.decl { "'?'" } else { "'/'" };
                    return Err(not_well_formed(&format!("{what} not followed by '>' in a tag")));
                }
                self.pos += 1;
                return Ok(Some(if self.decl {
                    self.token_end()
                } else {
                    self.start_tag_end(true)
                }));
            }
            State::EndTag => match find(buf, self.pos, end, |b| is(b, END_STOP)) {
                Some(gt) if buf[gt] == b'>' => {
                    self.pos = gt + 1;
                    return Ok(Some(self.end_tag_end()));
                }
                Some(_) => return Err(not_well_formed("unexpected character in an end tag")),
                None => self.pos = end,
            },
        }
        Ok(None)
    }

    /// Outside elements only whitespace (RFC 6120 §4.6.1 keepalives) and markup may
    /// appear.
    fn idle(&mut self, b: u8) -> Result<(), XmlError> {
        if is(b, WS) {
            self.pos += 1;
            return Ok(());
        }
        match (b, self.phase) {
            (b'<', Phase::Prolog | Phase::Open) => {
                self.item_start = Some(self.base + self.pos as u64);
                self.mark = self.pos;
                self.pos += 1;
                self.state = State::Lt;
                Ok(())
            }
            (_, Phase::Prolog) => Err(not_well_formed("text before the stream header")),
            (_, Phase::Open) => Err(not_well_formed("text between top-level elements")),
            (_, Phase::Closed) => Err(not_well_formed("content after the stream was closed")),
        }
    }

    fn lt(&mut self, b: u8) -> Result<(), XmlError> {
        match b {
            b'/' if self.phase == Phase::Prolog => {
                return Err(not_well_formed("end tag before the stream header"))
            }
            b'/' => self.state = State::EndTag,
            b'!' => self.state = State::Bang { lit: b"", matched: 0 },
            // XML 1.0 §2.8: the declaration may only be the very first bytes.
            b'?' if self.phase == Phase::Prolog && self.base + self.mark as u64 == 0 => {
                self.state = State::PiTarget { matched: 0 };
            }
            b'?' => return Err(restricted("processing instruction")),
            _ if is(b, NAME_START) && self.depth >= MAX_DEPTH => {
                return Err(XmlError::PolicyViolation {
                    limit: MAX_DEPTH,
                    exceeded: ExceededLimit::Depth,
                })
            }
            _ if is(b, NAME_START) => self.enter_tag(false),
            _ => return Err(not_well_formed("'<' not followed by a name")),
        }
        self.pos += 1;
        Ok(())
    }

    /// `<!--`, `<!DOCTYPE` and `<![CDATA[` are the only markup starting with `<!` outside
    /// a DTD; the first two are restricted (RFC 6120 §11.1).
    fn bang(&mut self, b: u8, lit: &'static [u8], matched: usize) -> Result<(), XmlError> {
        let lit: &'static [u8] = match (lit, b) {
            (b"", b'-') => b"--",
            (b"", b'D') => b"DOCTYPE",
            (b"", b'[') => b"[CDATA[",
            (b"", _) => return Err(not_well_formed("invalid markup after '<!'")),
            _ => lit,
        };
        if lit[matched] != b {
            return Err(not_well_formed("invalid markup after '<!'"));
        }
        self.pos += 1;
        let matched = matched + 1;
        if matched < lit.len() {
            self.state = State::Bang { lit, matched };
            return Ok(());
        }
        match lit {
            b"--" => Err(restricted("comment")),
            b"DOCTYPE" => Err(restricted("document type declaration")),
            _ if self.phase == Phase::Open && self.depth > 0 => {
                self.state = State::CData;
                Ok(())
            }
            _ => Err(not_well_formed("CDATA section outside an element")),
        }
    }

    fn enter_tag(&mut self, decl: bool) {
        self.state = State::Tag;
        self.decl = decl;
        self.attrs = 0;
    }

    /// A byte of [`TAG_STOP`] at `at`, outside attribute values.
    fn tag_byte(&mut self, b: u8, at: usize) -> Result<Option<Token>, XmlError> {
        self.pos = at + 1;
        match b {
            b'\'' | b'"' if self.attrs >= MAX_ATTRS => Err(XmlError::PolicyViolation {
                limit: MAX_ATTRS,
                exceeded: ExceededLimit::Attributes,
            }),
            b'\'' | b'"' => {
                self.attrs += 1;
                self.state = State::Quoted { quote: b };
                Ok(None)
            }
            b'/' if !self.decl => {
                self.state = State::Closing;
                Ok(None)
            }
            b'?' if self.decl => {
                self.state = State::Closing;
                Ok(None)
            }
            b'>' if !self.decl => Ok(Some(self.start_tag_end(false))),
            b'>' => Err(not_well_formed("XML declaration not ended by '?>'")),
            b'<' => Err(not_well_formed("'<' in a tag")),
            // `/` in the declaration or `?` in a start tag: an invalid name, which
            // quick-xml reports with the tag.
            _ => {
                self.state = State::Tag;
                Ok(None)
            }
        }
    }

    /// The `>` of a start tag is at `pos - 1`.
    fn start_tag_end(&mut self, empty: bool) -> Token {
        match self.phase {
            Phase::Prolog => self.phase = if empty { Phase::Closed } else { Phase::Open },
            Phase::Open | Phase::Closed if !empty => self.depth += 1,
            Phase::Open | Phase::Closed => {}
        }
        self.token_end()
    }

    /// The `>` of an end tag is at `pos - 1`.
    fn end_tag_end(&mut self) -> Token {
        if self.depth == 0 {
            self.phase = Phase::Closed;
        } else {
            self.depth -= 1;
        }
        self.token_end()
    }

    /// The token that started at `mark` ends at `pos`: it completes the current item
    /// unless it is inside an element.
    fn token_end(&mut self) -> Token {
        self.state = if self.depth > 0 { State::Text } else { State::Idle };
        let item_len = if self.depth == 0 {
            let item_start = self.item_start.take().unwrap_or(self.base);
            let len = (self.base + self.pos as u64).saturating_sub(item_start);
            Some(usize::try_from(len).unwrap_or(usize::MAX))
        } else {
            None
        };
        Token {
            end: self.pos,
            item_len,
        }
    }
}

/// First index in `buf[from..to]` whose byte satisfies `stop`.
#[inline]
fn find(buf: &[u8], from: usize, to: usize, stop: impl Fn(u8) -> bool) -> Option<usize> {
    buf[from..to].iter().position(|&b| stop(b)).map(|i| from + i)
}

fn not_well_formed(why: &str) -> XmlError {
    XmlError::NotWellFormed(why.into())
}

fn restricted(what: &str) -> XmlError {
    XmlError::RestrictedXml(format!("{what} (RFC 6120 §11.1)"))
}
