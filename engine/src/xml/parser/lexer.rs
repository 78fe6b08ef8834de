//! The lexer: a resumable state machine that finds where each token of the stream ends.
//!
//! It looks at every input byte exactly once, whatever the split of the input: its whole
//! state (position, state, offsets inside the current token) survives between
//! [`Lexer::next_token`] calls, so input fed one byte at a time costs the same as input fed
//! at once. It knows just enough grammar to find token boundaries, to reject what can be
//! rejected byte by byte (controls, `<` in attribute values, `]]>` in text, missing
//! whitespace or quotes) and to spot restricted XML (RFC 6120 §11.1) as soon as it
//! starts. Names, references, UTF-8 and namespaces are checked per complete token by the
//! tree builder.
//!
//! It also tracks the top-level *item* (the XML declaration, the stream header, one
//! top-level element or the stream close) and enforces `max_stanza_size` on it
//! (RFC 6120 §13.12), counting bytes as they arrive rather than when the item
//! ends.
//! [`MAX_DEPTH`] and [`MAX_ATTRS`] are enforced the same way, at the `<` or the attribute
//! that would go over them.

use super::chars::{is, ATTR_STOP, CDATA_STOP, FORBIDDEN, NAME, NAME_START, TEXT_STOP, WS};
use super::{ExceededLimit, XmlError, MAX_ATTRS, MAX_DEPTH};

/// Where the stream is, as far as the lexer is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Before the stream header (an XML declaration may come first).
    Prolog,
    /// The stream header has been read; `depth` counts open elements below the root.
    Open,
    /// `</stream:stream>` (or an empty root) has been read; only whitespace may follow.
    Closed,
}

/// Where the lexer is inside the current token.
#[derive(Clone, Copy, Debug)]
enum State {
    /// Outside any element (prolog, between top-level elements, epilog).
    Idle,
    /// Character data inside an element; the token starts at `mark`.
    Text,
    /// Just after `<`.
    Lt,
    /// After `<!`, matching `lit` (of which `matched` bytes are seen).
    Bang {
        lit: &'static [u8],
        matched: usize,
    },
    /// Inside `<![CDATA[`.
    CData,
    /// After `<?` at the very start of the stream, matching `xml`.
    PiTarget {
        matched: usize,
    },
    /// Inside an XML declaration, looking for `?>`.
    Decl,
    StartName,
    /// Inside a start tag after its name or an attribute; `ws` when whitespace was seen
    /// since, as XML 1.0 §3.1 requires between attributes.
    TagSpace {
        ws: bool,
    },
    AttrName,
    AttrEq,
    AttrQuote,
    AttrValue {
        quote: u8,
        start: usize,
        decode: bool,
    },
    EmptySlash,
    EndNameStart,
    EndName,
    EndSpace,
}

/// An attribute of the current start tag, offsets relative to the tag's `<`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct AttrSpan {
    pub name: (usize, usize),
    pub value: (usize, usize),
    /// The value holds a reference or whitespace that normalisation rewrites.
    pub decode: bool,
}

/// What a token is; its bytes are `buf[start..end]` of the [`Token`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum TokenKind {
    /// The inside of `<?xml ...?>` (between `<?xml` and `?>`).
    XmlDecl,
    /// The stream header's start tag (`empty` for `<stream:stream/>`).
    Header { empty: bool },
    /// A start tag below the root.
    Start { empty: bool },
    /// An end tag below the root.
    End,
    /// The end tag of the root.
    Close,
    /// Character data; `decode` when it holds references or CRs.
    Text { decode: bool },
    /// The content of a CDATA section; `decode` when it holds CRs.
    CData { decode: bool },
}

/// A complete token. `start..end` index the parser's buffer, valid until the next feed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Token {
    pub kind: TokenKind,
    pub start: usize,
    pub end: usize,
    /// Set on the token that completes a top-level item: the item's size in input bytes.
    pub item_len: Option<usize>,
}

/// The resumable scanner of one stream.
pub(super) struct Lexer {
    max_item: usize,
    state: State,
    phase: Phase,
    depth: usize,
    /// Next byte to look at (buffer index).
    pos: usize,
    /// Start of the current token (buffer index); bytes before it are no longer needed.
    mark: usize,
    /// Stream offset of `buf[0]`.
    base: u64,
    /// Stream offset of the current item's `<`, while inside one.
    item_start: Option<u64>,
    /// End of the current tag's name, relative to `mark`.
    name_end: usize,
    /// Name of the attribute being read, relative to `mark`.
    attr_name: (usize, usize),
    attrs: Vec<AttrSpan>,
    text_decode: bool,
}

impl Lexer {
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
            name_end: 0,
            attr_name: (0, 0),
            attrs: Vec::new(),
            text_decode: false,
        }
    }

    /// Back to the start of a stream, keeping allocations.
    pub(super) fn reset(&mut self) {
        let attrs = std::mem::take(&mut self.attrs);
        *self = Self {
            attrs,
            ..Self::new(self.max_item)
        };
        self.attrs.clear();
    }

    /// How many leading buffer bytes are no longer needed; the caller drops them and the
    /// lexer shifts its indices accordingly.
    pub(super) fn take_consumed(&mut self) -> usize {
        let n = self.mark;
        self.mark = 0;
        self.pos -= n;
        self.base += n as u64;
        n
    }

    /// End of the current tag's name, relative to the tag's `<`.
    pub(super) fn name_end(&self) -> usize {
        self.name_end
    }

    /// Attributes of the last start tag returned.
    pub(super) fn attrs(&self) -> &[AttrSpan] {
        &self.attrs
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
            State::Text => return self.text(buf, end),
            State::Lt => self.lt(b)?,
            State::Bang { lit, matched } => self.bang(b, lit, matched)?,
            State::CData => return self.cdata(buf, end),
            State::PiTarget { matched } => {
                if matched < 3 && b == b"xml"[matched] {
                    self.state = State::PiTarget { matched: matched + 1 };
                } else if matched == 3 && is(b, WS) {
                    self.state = State::Decl;
                } else {
                    return Err(restricted("processing instruction"));
                }
                self.pos += 1;
            }
            State::Decl => {
                let Some(gt) = find(buf, self.pos, end, |b| b == b'>') else {
                    self.pos = end;
                    return Ok(None);
                };
                self.pos = gt + 1;
                // `mark + 5` is the whitespace after `<?xml`: `?` must come after it.
                if gt > self.mark + 6 && buf[gt - 1] == b'?' {
                    let token = self.token(TokenKind::XmlDecl, self.mark + 5, gt - 1, true);
                    self.mark = self.pos;
                    self.state = State::Idle;
                    return Ok(Some(token));
                }
            }
            State::StartName => {
                self.pos = skip_name(buf, self.pos, end);
                if self.pos < end {
                    self.name_end = self.pos - self.mark;
                    self.state = State::TagSpace { ws: false };
                }
            }
            State::TagSpace { ws } => match b {
                _ if is(b, WS) => {
                    self.state = State::TagSpace { ws: true };
                    self.pos += 1;
                }
                b'>' => return Ok(Some(self.start_tag_end(false))),
                b'/' => {
                    self.state = State::EmptySlash;
                    self.pos += 1;
                }
                _ if is(b, NAME_START) && ws && self.attrs.len() >= MAX_ATTRS => {
                    return Err(XmlError::PolicyViolation {
                        limit: MAX_ATTRS,
                        exceeded: ExceededLimit::Attributes,
                    })
                }
                _ if is(b, NAME_START) && ws => {
                    self.attr_name.0 = self.pos - self.mark;
                    self.state = State::AttrName;
                    self.pos += 1;
                }
                _ if is(b, NAME_START) => {
                    return Err(not_well_formed("attributes must be separated by whitespace"))
                }
                _ => return Err(not_well_formed("unexpected character in a start tag")),
            },
            State::AttrName => {
                self.pos = skip_name(buf, self.pos, end);
                if self.pos < end {
                    self.attr_name.1 = self.pos - self.mark;
                    self.state = State::AttrEq;
                }
            }
            State::AttrEq => match b {
                _ if is(b, WS) => self.pos += 1,
                b'=' => {
                    self.state = State::AttrQuote;
                    self.pos += 1;
                }
                _ => return Err(not_well_formed("attribute without '='")),
            },
            State::AttrQuote => match b {
                _ if is(b, WS) => self.pos += 1,
                b'\'' | b'"' => {
                    self.pos += 1;
                    self.state = State::AttrValue {
                        quote: b,
                        start: self.pos - self.mark,
                        decode: false,
                    };
                }
                _ => return Err(not_well_formed("attribute value without quotes")),
            },
            State::AttrValue { quote, start, decode } => self.attr_value(buf, end, quote, start, decode)?,
            State::EmptySlash => {
                if b != b'>' {
                    return Err(not_well_formed("'/' not followed by '>' in a tag"));
                }
                return Ok(Some(self.start_tag_end(true)));
            }
            State::EndNameStart => {
                if !is(b, NAME_START) {
                    return Err(not_well_formed("'</' not followed by a name"));
                }
                self.state = State::EndName;
                self.pos += 1;
            }
            State::EndName => {
                self.pos = skip_name(buf, self.pos, end);
                if self.pos < end {
                    self.name_end = self.pos - self.mark;
                    self.state = State::EndSpace;
                }
            }
            State::EndSpace => match b {
                _ if is(b, WS) => self.pos += 1,
                b'>' => return Ok(Some(self.end_tag_end())),
                _ => return Err(not_well_formed("unexpected character in an end tag")),
            },
        }
        Ok(None)
    }

    /// Outside elements only whitespace (RFC 6120 §4.6.1 keepalives) and markup may
    /// appear.
    fn idle(&mut self, b: u8) -> Result<(), XmlError> {
        if is(b, WS) {
            self.pos += 1;
            self.mark = self.pos;
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
        self.state = match b {
            b'/' if self.phase == Phase::Prolog => {
                return Err(not_well_formed("end tag before the stream header"))
            }
            b'/' => State::EndNameStart,
            b'!' => State::Bang { lit: b"", matched: 0 },
            // XML 1.0 §2.8: the declaration may only be the very first bytes.
            b'?' if self.phase == Phase::Prolog && self.base + self.mark as u64 == 0 => {
                State::PiTarget { matched: 0 }
            }
            b'?' => return Err(restricted("processing instruction")),
            _ if is(b, NAME_START) && self.depth >= MAX_DEPTH => {
                return Err(XmlError::PolicyViolation {
                    limit: MAX_DEPTH,
                    exceeded: ExceededLimit::Depth,
                })
            }
            _ if is(b, NAME_START) => {
                self.attrs.clear();
                State::StartName
            }
            _ => return Err(not_well_formed("'<' not followed by a name")),
        };
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
                self.text_decode = false;
                Ok(())
            }
            _ => Err(not_well_formed("CDATA section outside an element")),
        }
    }

    fn text(&mut self, buf: &[u8], end: usize) -> Result<Option<Token>, XmlError> {
        loop {
            let Some(at) = find(buf, self.pos, end, |b| is(b, TEXT_STOP)) else {
                self.pos = end;
                return Ok(None);
            };
            self.pos = at + 1;
            match buf[at] {
                b'<' => {
                    let (start, decode) = (self.mark, self.text_decode);
                    self.mark = at;
                    self.state = State::Lt;
                    self.text_decode = false;
                    if start == at {
                        return Ok(None);
                    }
                    return Ok(Some(self.token(TokenKind::Text { decode }, start, at, false)));
                }
                // XML 1.0 §2.4: `]]>` may not appear in character data.
                b'>' if at >= self.mark + 2 && buf[at - 2..at] == *b"]]" => {
                    return Err(not_well_formed("']]>' in character data"));
                }
                b'>' => {}
                b'&' | b'\r' => self.text_decode = true,
                _ => return Err(forbidden_char()),
            }
        }
    }

    fn cdata(&mut self, buf: &[u8], end: usize) -> Result<Option<Token>, XmlError> {
        // `<![CDATA[` is 9 bytes; content starts after it.
        let content = self.mark + 9;
        loop {
            let Some(at) = find(buf, self.pos, end, |b| is(b, CDATA_STOP)) else {
                self.pos = end;
                return Ok(None);
            };
            self.pos = at + 1;
            match buf[at] {
                b'>' if at >= content + 2 && buf[at - 2..at] == *b"]]" => {
                    let token = TokenKind::CData {
                        decode: self.text_decode,
                    };
                    let token = self.token(token, content, at - 2, false);
                    self.mark = self.pos;
                    self.state = State::Text;
                    self.text_decode = false;
                    return Ok(Some(token));
                }
                b'>' => {}
                b'\r' => self.text_decode = true,
                _ => return Err(forbidden_char()),
            }
        }
    }

    fn attr_value(
        &mut self,
        buf: &[u8],
        end: usize,
        quote: u8,
        start: usize,
        mut decode: bool,
    ) -> Result<(), XmlError> {
        loop {
            let Some(at) = find(buf, self.pos, end, |b| is(b, ATTR_STOP)) else {
                self.pos = end;
                self.state = State::AttrValue { quote, start, decode };
                return Ok(());
            };
            self.pos = at + 1;
            match buf[at] {
                b if b == quote => {
                    self.attrs.push(AttrSpan {
                        name: self.attr_name,
                        value: (start, at - self.mark),
                        decode,
                    });
                    self.state = State::TagSpace { ws: false };
                    return Ok(());
                }
                b'\'' | b'"' => {}
                b'<' => return Err(not_well_formed("'<' in an attribute value")),
                b'&' | b'\t' | b'\n' | b'\r' => decode = true,
                _ => return Err(forbidden_char()),
            }
        }
    }

    /// The `>` of a start tag is at `pos`.
    fn start_tag_end(&mut self, empty: bool) -> Token {
        let kind = match self.phase {
            Phase::Prolog => {
                self.phase = if empty { Phase::Closed } else { Phase::Open };
                TokenKind::Header { empty }
            }
            Phase::Open | Phase::Closed => {
                if !empty {
                    self.depth += 1;
                }
                TokenKind::Start { empty }
            }
        };
        let ends_item = self.depth == 0;
        self.pos += 1;
        let token = self.token(kind, self.mark, self.pos, ends_item);
        self.mark = self.pos;
        self.enter_content();
        token
    }

    /// The `>` of an end tag is at `pos`.
    fn end_tag_end(&mut self) -> Token {
        let kind = if self.depth == 0 {
            self.phase = Phase::Closed;
            TokenKind::Close
        } else {
            self.depth -= 1;
            TokenKind::End
        };
        let ends_item = self.depth == 0;
        self.pos += 1;
        let token = self.token(kind, self.mark, self.pos, ends_item);
        self.mark = self.pos;
        self.enter_content();
        token
    }

    /// After a tag: character data inside an element, whitespace outside.
    fn enter_content(&mut self) {
        self.state = if self.depth > 0 {
            self.text_decode = false;
            State::Text
        } else {
            State::Idle
        };
    }

    /// Builds the token `buf[start..end]`, closing the current item when `ends_item`.
    fn token(&mut self, kind: TokenKind, start: usize, end: usize, ends_item: bool) -> Token {
        let item_len = if ends_item {
            let item_start = self.item_start.take().unwrap_or(self.base);
            let len = (self.base + self.pos as u64).saturating_sub(item_start);
            Some(usize::try_from(len).unwrap_or(usize::MAX))
        } else {
            None
        };
        Token {
            kind,
            start,
            end,
            item_len,
        }
    }
}

/// First index in `buf[from..to]` whose byte satisfies `stop`.
#[inline]
fn find(buf: &[u8], from: usize, to: usize, stop: impl Fn(u8) -> bool) -> Option<usize> {
    buf[from..to].iter().position(|&b| stop(b)).map(|i| from + i)
}

/// Index of the first byte in `buf[from..to]` that cannot continue a name, or `to`.
#[inline]
fn skip_name(buf: &[u8], from: usize, to: usize) -> usize {
    find(buf, from, to, |b| !is(b, NAME)).unwrap_or(to)
}

fn not_well_formed(why: &str) -> XmlError {
    XmlError::NotWellFormed(why.into())
}

fn restricted(what: &str) -> XmlError {
    XmlError::RestrictedXml(format!("{what} (RFC 6120 §11.1)"))
}

fn forbidden_char() -> XmlError {
    debug_assert!(is(0, FORBIDDEN));
    not_well_formed("control character not allowed in XML")
}
