//! Just enough XML for an XMPP client under load.
//!
//! Two layers:
//! - [`Scanner`]: an incremental, allocation-free byte scanner that finds the stream header,
//!   the boundaries of top-level stanzas (depth 1 children of `<stream:stream>`) and the
//!   stream close. Input may be split anywhere; each byte is looked at once.
//! - [`Element`]: a small tree parser for one complete stanza, used during negotiation
//!   (features, SASL, bind), where convenience matters more than speed. The hot path
//!   (chat messages) uses the flat helpers [`start_tag_name`], [`start_tag_attr`] and
//!   [`child_text`] on the raw bytes instead.
//!
//! It is not a validating parser: it trusts the server to send well-formed XML and only
//! guards against unbounded growth (`max_stanza`).

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

/// What the scanner found; ranges index into [`Scanner::slice`] and stay valid until the
/// next call that adds bytes ([`Scanner::feed`] or [`Scanner::read_buf`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The `<stream:stream ...>` start tag (only the tag).
    StreamOpen(Range<usize>),
    /// One complete top-level element, start tag to end tag.
    Element(Range<usize>),
    /// `</stream:stream>`.
    StreamClose,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanError(pub &'static str);

impl fmt::Display for ScanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Character data (or whitespace between stanzas).
    Text,
    /// Just after `<`.
    Lt,
    /// Inside a start tag; `slash` is true when the last significant byte was `/`.
    StartTag { slash: bool },
    /// Inside a quoted attribute value in a start tag.
    Quote { q: u8 },
    /// Inside an end tag.
    EndTag,
    /// Inside `<? ... ?>`; `q` is true when the last byte was `?`.
    Pi { q: bool },
    /// Just after `<!`.
    Bang,
    /// After `<!-`.
    BangDash,
    /// Inside `<!-- ... -->`; counts trailing dashes.
    Comment { dashes: u8 },
    /// Inside `<![CDATA[ ... ]]>`; counts trailing brackets.
    Cdata { brackets: u8 },
    /// Inside `<!DOCTYPE ...>` or another declaration (not allowed in XMPP; skipped).
    Decl,
}

/// Incremental scanner of an XMPP stream. See the module docs.
pub struct Scanner {
    buf: Vec<u8>,
    /// Next byte to look at.
    pos: usize,
    /// Start of the top-level construct in progress (header or stanza), if any; bytes before
    /// it (or before `pos` when there is none) are no longer needed.
    mark: Option<usize>,
    depth: u32,
    state: State,
    max_stanza: usize,
}

const READ_CHUNK: usize = 2048;
const MIN_SPARE: usize = 512;
const SHRINK_ABOVE: usize = 64 * 1024;

impl Scanner {
    pub fn new(max_stanza: usize) -> Self {
        Scanner {
            buf: Vec::new(),
            pos: 0,
            mark: None,
            depth: 0,
            state: State::Text,
            max_stanza,
        }
    }

    /// Forget everything: used at stream restarts (after STARTTLS and SASL).
    pub fn reset(&mut self) {
        self.buf.clear();
        self.pos = 0;
        self.mark = None;
        self.depth = 0;
        self.state = State::Text;
    }

    /// Bytes that have been scanned and are not part of an unfinished construct are dropped.
    fn compact(&mut self) {
        let keep_from = self.mark.unwrap_or(self.pos);
        if keep_from > 0 {
            self.buf.drain(..keep_from);
            self.pos -= keep_from;
            if let Some(m) = self.mark.as_mut() {
                *m -= keep_from;
            }
        }
        if self.buf.is_empty() && self.buf.capacity() > SHRINK_ABOVE {
            self.buf = Vec::new();
        }
    }

    /// Append bytes (the session reads straight into [`Scanner::read_buf`] instead).
    #[cfg(test)]
    pub fn feed(&mut self, data: &[u8]) {
        self.compact();
        self.buf.extend_from_slice(data);
    }

    /// The buffer to read into (e.g. with `AsyncReadExt::read_buf`): already compacted and
    /// with some spare capacity, so reads are not tiny.
    pub fn read_buf(&mut self) -> &mut Vec<u8> {
        self.compact();
        if self.buf.capacity() - self.buf.len() < MIN_SPARE {
            self.buf.reserve(READ_CHUNK);
        }
        &mut self.buf
    }

    pub fn slice(&self, r: Range<usize>) -> &[u8] {
        &self.buf[r]
    }

    /// True when no partial construct is pending (the stream is between stanzas).
    #[cfg(test)]
    pub fn is_idle(&self) -> bool {
        self.mark.is_none() && self.pos == self.buf.len()
    }

    /// Scan forward and return the next event, or `None` when more bytes are needed.
    pub fn next_event(&mut self) -> Result<Option<Event>, ScanError> {
        let len = self.buf.len();
        while self.pos < len {
            let i = self.pos;
            let b = self.buf[i];
            self.pos += 1;
            match self.state {
                State::Text => {
                    if b == b'<' {
                        if self.depth <= 1 {
                            self.mark = Some(i);
                        }
                        self.state = State::Lt;
                    } else {
                        // Skip the rest of the text quickly.
                        if let Some(off) = self.buf[self.pos..len].iter().position(|&c| c == b'<') {
                            self.pos += off;
                        } else {
                            self.pos = len;
                        }
                        if self.depth == 0 && self.mark.is_none() && !b.is_ascii_whitespace() {
                            // Text before the stream header: BOM or junk. Tolerate a BOM only.
                            if !(b == 0xEF || b == 0xBB || b == 0xBF) {
                                return Err(ScanError("text before stream header"));
                            }
                        }
                    }
                }
                State::Lt => match b {
                    b'/' => self.state = State::EndTag,
                    b'?' => self.state = State::Pi { q: false },
                    b'!' => self.state = State::Bang,
                    _ => {
                        self.state = State::StartTag { slash: false };
                    }
                },
                State::StartTag { slash } => match b {
                    b'"' | b'\'' => self.state = State::Quote { q: b },
                    b'/' => self.state = State::StartTag { slash: true },
                    b'>' => {
                        self.state = State::Text;
                        if let Some(ev) = self.start_tag_end(slash, i)? {
                            return Ok(Some(ev));
                        }
                    }
                    _ if b.is_ascii_whitespace() => {}
                    _ => {
                        if slash {
                            self.state = State::StartTag { slash: false };
                        }
                    }
                },
                State::Quote { q } => {
                    if b == q {
                        self.state = State::StartTag { slash: false };
                    } else if let Some(off) = self.buf[self.pos..len].iter().position(|&c| c == q) {
                        self.pos += off;
                    } else {
                        self.pos = len;
                    }
                }
                State::EndTag => {
                    if b == b'>' {
                        self.state = State::Text;
                        if let Some(ev) = self.end_tag_end(i)? {
                            return Ok(Some(ev));
                        }
                    }
                }
                State::Pi { q } => {
                    if q && b == b'>' {
                        self.state = State::Text;
                        self.after_skipped();
                    } else {
                        self.state = State::Pi { q: b == b'?' };
                    }
                }
                State::Bang => match b {
                    b'-' => self.state = State::BangDash,
                    b'[' => self.state = State::Cdata { brackets: 0 },
                    _ => self.state = State::Decl,
                },
                State::BangDash => {
                    if b == b'-' {
                        self.state = State::Comment { dashes: 0 };
                    } else {
                        return Err(ScanError("malformed comment"));
                    }
                }
                State::Comment { dashes } => {
                    if b == b'>' && dashes >= 2 {
                        self.state = State::Text;
                        self.after_skipped();
                    } else if b == b'-' {
                        self.state = State::Comment {
                            dashes: dashes.saturating_add(1),
                        };
                    } else {
                        self.state = State::Comment { dashes: 0 };
                    }
                }
                State::Cdata { brackets } => {
                    if b == b'>' && brackets >= 2 {
                        self.state = State::Text;
                    } else if b == b']' {
                        self.state = State::Cdata {
                            brackets: brackets.saturating_add(1),
                        };
                    } else {
                        self.state = State::Cdata { brackets: 0 };
                    }
                }
                State::Decl => {
                    if b == b'>' {
                        self.state = State::Text;
                        self.after_skipped();
                    }
                }
            }
        }
        if let Some(m) = self.mark {
            if self.pos - m > self.max_stanza {
                return Err(ScanError("stanza too large"));
            }
        }
        Ok(None)
    }

    /// A comment or declaration ended; if it was at the top level, nothing is pending.
    fn after_skipped(&mut self) {
        if self.depth <= 1 {
            self.mark = None;
        }
    }

    fn start_tag_end(&mut self, self_closing: bool, gt: usize) -> Result<Option<Event>, ScanError> {
        match (self.depth, self_closing) {
            (0, false) => {
                let start = self.mark.take().ok_or(ScanError("scanner lost its mark"))?;
                self.depth = 1;
                Ok(Some(Event::StreamOpen(start..gt + 1)))
            }
            (0, true) => Err(ScanError("self-closing stream header")),
            (1, true) => {
                let start = self.mark.take().ok_or(ScanError("scanner lost its mark"))?;
                Ok(Some(Event::Element(start..gt + 1)))
            }
            (d, false) => {
                if d >= 256 {
                    return Err(ScanError("elements nested too deeply"));
                }
                self.depth += 1;
                Ok(None)
            }
            (_, true) => Ok(None),
        }
    }

    fn end_tag_end(&mut self, gt: usize) -> Result<Option<Event>, ScanError> {
        match self.depth {
            0 => Err(ScanError("end tag outside the stream")),
            1 => {
                self.depth = 0;
                self.mark = None;
                Ok(Some(Event::StreamClose))
            }
            2 => {
                self.depth = 1;
                let start = self.mark.take().ok_or(ScanError("scanner lost its mark"))?;
                Ok(Some(Event::Element(start..gt + 1)))
            }
            _ => {
                self.depth -= 1;
                Ok(None)
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Flat helpers on raw stanza bytes (hot path).

fn is_name_end(b: u8) -> bool {
    b.is_ascii_whitespace() || b == b'/' || b == b'>'
}

/// The qualified name of the first start tag in `raw` (e.g. `message`, `stream:error`).
pub fn start_tag_name(raw: &[u8]) -> &[u8] {
    let s = match raw.iter().position(|&b| b == b'<') {
        Some(p) => p + 1,
        None => return &[],
    };
    let e = raw[s..]
        .iter()
        .position(|&b| is_name_end(b))
        .map_or(raw.len(), |p| s + p);
    &raw[s..e]
}

/// The part after a namespace prefix, if any.
pub fn local_name(name: &[u8]) -> &[u8] {
    match name.iter().position(|&b| b == b':') {
        Some(p) => &name[p + 1..],
        None => name,
    }
}

/// Iterate over the attributes of the first start tag in `raw`, yielding raw (escaped)
/// values. Stops at the end of the start tag.
pub fn start_tag_attrs(raw: &[u8]) -> AttrIter<'_> {
    let name = start_tag_name(raw);
    let pos = if name.is_empty() {
        raw.len()
    } else {
        // name is a subslice of raw
        (name.as_ptr() as usize - raw.as_ptr() as usize) + name.len()
    };
    AttrIter { raw, pos }
}

pub struct AttrIter<'a> {
    raw: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for AttrIter<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let raw = self.raw;
        let mut i = self.pos;
        while i < raw.len() && raw[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= raw.len() || raw[i] == b'/' || raw[i] == b'>' {
            self.pos = raw.len();
            return None;
        }
        let ns = i;
        while i < raw.len() && raw[i] != b'=' && !raw[i].is_ascii_whitespace() && raw[i] != b'>' {
            i += 1;
        }
        let name = &raw[ns..i];
        while i < raw.len() && (raw[i].is_ascii_whitespace() || raw[i] == b'=') {
            i += 1;
        }
        if i >= raw.len() || (raw[i] != b'\'' && raw[i] != b'"') {
            self.pos = raw.len();
            return None;
        }
        let q = raw[i];
        let vs = i + 1;
        let ve = match raw[vs..].iter().position(|&b| b == q) {
            Some(p) => vs + p,
            None => {
                self.pos = raw.len();
                return None;
            }
        };
        self.pos = ve + 1;
        Some((name, &raw[vs..ve]))
    }
}

/// The (unescaped) value of attribute `name` on the first start tag of `raw`.
pub fn start_tag_attr<'a>(raw: &'a [u8], name: &str) -> Option<Cow<'a, str>> {
    start_tag_attrs(raw)
        .find(|(n, _)| *n == name.as_bytes())
        .map(|(_, v)| unescape(v))
}

/// Text content of the first element named `local` (ignoring prefixes) anywhere inside `raw`,
/// unescaped. A simple substring search: good enough for `<body>` in a chat message.
pub fn child_text<'a>(raw: &'a [u8], local: &str) -> Option<Cow<'a, str>> {
    let l = local.as_bytes();
    let mut i = 1; // skip the outer start tag's '<'
    while let Some(p) = raw[i..].iter().position(|&b| b == b'<') {
        let s = i + p + 1;
        i = s;
        if s >= raw.len() || raw[s] == b'/' || raw[s] == b'!' || raw[s] == b'?' {
            continue;
        }
        let e = raw[s..]
            .iter()
            .position(|&b| is_name_end(b))
            .map_or(raw.len(), |q| s + q);
        if local_name(&raw[s..e]) != l {
            continue;
        }
        let gt = s + raw[s..].iter().position(|&b| b == b'>')?;
        if raw[gt - 1] == b'/' {
            return Some(Cow::Borrowed(""));
        }
        let ts = gt + 1;
        let te = ts + raw[ts..].iter().position(|&b| b == b'<')?;
        return Some(unescape(&raw[ts..te]));
    }
    None
}

/// Replace the five predefined entities and numeric character references.
pub fn unescape(raw: &[u8]) -> Cow<'_, str> {
    if !raw.contains(&b'&') {
        return String::from_utf8_lossy(raw);
    }
    let s = String::from_utf8_lossy(raw);
    let mut out = String::with_capacity(s.len());
    let mut rest: &str = &s;
    while let Some(p) = rest.find('&') {
        out.push_str(&rest[..p]);
        rest = &rest[p..];
        let end = match rest.find(';') {
            Some(e) if e <= 12 => e,
            _ => {
                out.push('&');
                rest = &rest[1..];
                continue;
            }
        };
        let ent = &rest[1..end];
        let ch = match ent {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ if ent.starts_with("#x") || ent.starts_with("#X") => {
                u32::from_str_radix(&ent[2..], 16).ok().and_then(char::from_u32)
            }
            _ if ent.starts_with('#') => ent[1..].parse::<u32>().ok().and_then(char::from_u32),
            _ => None,
        };
        match ch {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// Escape text for use in character data or a quoted attribute value.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.bytes().any(|b| matches!(b, b'&' | b'<' | b'>' | b'\'' | b'"')) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    Cow::Owned(out)
}

// ---------------------------------------------------------------------------------------------
// A tiny tree for negotiation stanzas.

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element {
    /// Qualified name as written (`stream:features`, `mechanism`).
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Element>,
    /// Concatenated character data of this element's direct text children.
    pub text: String,
}

impl Element {
    pub fn local(&self) -> &str {
        match self.name.find(':') {
            Some(p) => &self.name[p + 1..],
            None => &self.name,
        }
    }

    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// First direct child with this local name.
    pub fn child(&self, local: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.local() == local)
    }

    /// For `<error>`-style children: the first child that is not `<text>` (the condition).
    pub fn condition(&self) -> Option<&str> {
        self.children.iter().map(|c| c.local()).find(|n| *n != "text")
    }

    /// Parse one complete element (a whole stanza as returned by the scanner).
    pub fn parse(raw: &[u8]) -> Result<Element, ScanError> {
        let mut p = Parser { raw, i: 0 };
        p.skip_ws();
        let el = p.element(0)?;
        Ok(el)
    }
}

struct Parser<'a> {
    raw: &'a [u8],
    i: usize,
}

impl<'a> Parser<'a> {
    fn skip_ws(&mut self) {
        while self.i < self.raw.len() && self.raw[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn expect(&mut self, b: u8) -> Result<(), ScanError> {
        if self.raw.get(self.i) == Some(&b) {
            self.i += 1;
            Ok(())
        } else {
            Err(ScanError("unexpected byte in element"))
        }
    }

    fn name(&mut self) -> Result<String, ScanError> {
        let s = self.i;
        while self.i < self.raw.len() {
            let b = self.raw[self.i];
            if is_name_end(b) || b == b'=' {
                break;
            }
            self.i += 1;
        }
        if self.i == s {
            return Err(ScanError("empty name"));
        }
        Ok(String::from_utf8_lossy(&self.raw[s..self.i]).into_owned())
    }

    /// Returns the element (without children) and whether it was self-closing.
    fn start_tag(&mut self) -> Result<(Element, bool), ScanError> {
        self.expect(b'<')?;
        let name = self.name()?;
        let mut el = Element {
            name,
            ..Default::default()
        };
        loop {
            self.skip_ws();
            match self.raw.get(self.i) {
                None => return Err(ScanError("truncated start tag")),
                Some(b'/') => {
                    self.i += 1;
                    self.expect(b'>')?;
                    return Ok((el, true));
                }
                Some(b'>') => {
                    self.i += 1;
                    return Ok((el, false));
                }
                Some(_) => {
                    let an = self.name()?;
                    self.skip_ws();
                    self.expect(b'=')?;
                    self.skip_ws();
                    let q = *self.raw.get(self.i).ok_or(ScanError("truncated attribute"))?;
                    if q != b'\'' && q != b'"' {
                        return Err(ScanError("unquoted attribute"));
                    }
                    self.i += 1;
                    let vs = self.i;
                    let off = self.raw[vs..]
                        .iter()
                        .position(|&b| b == q)
                        .ok_or(ScanError("truncated attribute"))?;
                    self.i = vs + off + 1;
                    el.attrs
                        .push((an, unescape(&self.raw[vs..vs + off]).into_owned()));
                }
            }
        }
    }

    fn element(&mut self, depth: usize) -> Result<Element, ScanError> {
        if depth > 64 {
            return Err(ScanError("elements nested too deeply"));
        }
        let (mut el, empty) = self.start_tag()?;
        if empty {
            return Ok(el);
        }
        loop {
            let s = self.i;
            let off = self.raw[s..]
                .iter()
                .position(|&b| b == b'<')
                .ok_or(ScanError("truncated element"))?;
            if off > 0 {
                el.text.push_str(&unescape(&self.raw[s..s + off]));
            }
            self.i = s + off;
            let rest = &self.raw[self.i..];
            if rest.starts_with(b"</") {
                self.i += 2;
                let n = self.name()?;
                if n != el.name {
                    return Err(ScanError("mismatched end tag"));
                }
                self.skip_ws();
                self.expect(b'>')?;
                return Ok(el);
            } else if rest.starts_with(b"<![CDATA[") {
                let body = &rest[9..];
                let end = find(body, b"]]>").ok_or(ScanError("truncated CDATA"))?;
                el.text.push_str(&String::from_utf8_lossy(&body[..end]));
                self.i += 9 + end + 3;
            } else if rest.starts_with(b"<!--") {
                let end = find(&rest[4..], b"-->").ok_or(ScanError("truncated comment"))?;
                self.i += 4 + end + 3;
            } else if rest.starts_with(b"<?") {
                let end = find(&rest[2..], b"?>").ok_or(ScanError("truncated PI"))?;
                self.i += 2 + end + 2;
            } else {
                let child = self.element(depth + 1)?;
                el.children.push(child);
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
        xmlns:stream='http://etherx.jabber.org/streams' id='abc' from='localhost' version='1.0'>\
        <stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>\
        <mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SCRAM-SHA-1</mechanism>\
        <mechanism>PLAIN</mechanism></mechanisms></stream:features> \n\
        <message from='a@b/c' to=\"d@e/f\" type='chat' id='x&amp;y'><body>hello &lt;world&gt; \
        &#x263A;</body><thread attr='a>b'/></message>\
        <!-- a comment --><iq type='result' id='1'/>\
        <message><body><![CDATA[<not a tag>]]></body></message>\
        <presence a='/>'/></stream:stream>";

    fn collect(chunks: &[&[u8]]) -> Vec<(String, String)> {
        let mut sc = Scanner::new(1 << 20);
        let mut out = Vec::new();
        for c in chunks {
            sc.feed(c);
            while let Some(ev) = sc.next_event().unwrap() {
                out.push(match ev {
                    Event::StreamOpen(r) => (
                        "open".to_string(),
                        String::from_utf8(sc.slice(r).to_vec()).unwrap(),
                    ),
                    Event::Element(r) => ("el".to_string(), String::from_utf8(sc.slice(r).to_vec()).unwrap()),
                    Event::StreamClose => ("close".to_string(), String::new()),
                });
            }
        }
        out
    }

    #[test]
    fn scanner_whole_stream() {
        let evs = collect(&[STREAM.as_bytes()]);
        let kinds: Vec<&str> = evs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(kinds, ["open", "el", "el", "el", "el", "el", "close"]);
        assert!(evs[0].1.starts_with("<stream:stream ") && evs[0].1.ends_with("version='1.0'>"));
        assert!(evs[1].1.starts_with("<stream:features>") && evs[1].1.ends_with("</stream:features>"));
        assert!(evs[2].1.starts_with("<message ") && evs[2].1.ends_with("</message>"));
        assert_eq!(evs[3].1, "<iq type='result' id='1'/>");
        assert_eq!(evs[5].1, "<presence a='/>'/>");
    }

    #[test]
    fn scanner_splits_anywhere() {
        let whole = collect(&[STREAM.as_bytes()]);
        let bytes = STREAM.as_bytes();
        // every single split point
        for cut in 0..=bytes.len() {
            let got = collect(&[&bytes[..cut], &bytes[cut..]]);
            assert_eq!(got, whole, "split at {cut}");
        }
        // every pair of split points would be quadratic in a long string; use byte-at-a-time
        let singles: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(collect(&singles), whole);
        for n in [2, 3, 5, 7, 13] {
            let chunks: Vec<&[u8]> = bytes.chunks(n).collect();
            assert_eq!(collect(&chunks), whole, "chunks of {n}");
        }
    }

    #[test]
    fn scanner_keeps_buffer_small() {
        let mut sc = Scanner::new(1 << 20);
        sc.feed(b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>");
        assert!(matches!(sc.next_event().unwrap(), Some(Event::StreamOpen(_))));
        for i in 0..10_000 {
            let m = format!("<message id='{i}'><body>{i}</body></message> ");
            sc.feed(m.as_bytes());
            assert!(matches!(sc.next_event().unwrap(), Some(Event::Element(_))));
            assert_eq!(sc.next_event().unwrap(), None);
        }
        assert!(sc.is_idle());
        sc.feed(b"");
        assert!(sc.buf.len() < 64, "consumed bytes are dropped");
    }

    #[test]
    fn scanner_limits_stanza_size() {
        let mut sc = Scanner::new(100);
        sc.feed(b"<stream:stream><message><body>");
        sc.feed(&[b'a'; 200]);
        assert!(matches!(sc.next_event(), Ok(Some(Event::StreamOpen(_)))));
        assert!(sc.next_event().is_err());
    }

    #[test]
    fn scanner_rejects_junk() {
        let mut sc = Scanner::new(100);
        sc.feed(b"HTTP/1.1 400 Bad Request\r\n");
        assert!(sc.next_event().is_err());
    }

    #[test]
    fn flat_helpers() {
        let raw = b"<message from='a@b/c' to=\"d@e/f\" type='chat' id='x&amp;y'>\
            <body>hi &lt;3</body></message>";
        assert_eq!(start_tag_name(raw), b"message");
        assert_eq!(start_tag_attr(raw, "type").as_deref(), Some("chat"));
        assert_eq!(start_tag_attr(raw, "to").as_deref(), Some("d@e/f"));
        assert_eq!(start_tag_attr(raw, "id").as_deref(), Some("x&y"));
        assert_eq!(start_tag_attr(raw, "nope"), None);
        assert_eq!(child_text(raw, "body").as_deref(), Some("hi <3"));
        assert_eq!(child_text(raw, "subject"), None);
        assert_eq!(local_name(b"stream:error"), b"error");
        let empty = b"<message><bodyx>no</bodyx><body/></message>";
        assert_eq!(child_text(empty, "body").as_deref(), Some(""));
        assert_eq!(start_tag_attrs(b"<presence/>").count(), 0);
    }

    #[test]
    fn tree_parser() {
        let raw = b"<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/>\
            </starttls><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
            <mechanism>SCRAM-SHA-1</mechanism>\n<mechanism>PLAIN</mechanism></mechanisms>\
            </stream:features>";
        let el = Element::parse(raw).unwrap();
        assert_eq!(el.local(), "features");
        assert!(el.child("starttls").unwrap().child("required").is_some());
        let mechs: Vec<&str> = el
            .child("mechanisms")
            .unwrap()
            .children
            .iter()
            .map(|m| m.text.as_str())
            .collect();
        assert_eq!(mechs, ["SCRAM-SHA-1", "PLAIN"]);
        let err = Element::parse(
            b"<iq type='error' id='r'><error type='cancel'><text xmlns='x'>t</text>\
              <conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
        )
        .unwrap();
        assert_eq!(err.attr("type"), Some("error"));
        assert_eq!(err.child("error").unwrap().condition(), Some("conflict"));
        assert!(Element::parse(b"<a><b></a>").is_err());
        let attrs = Element::parse(b"<a id='x' version=\"1.0\"/>").unwrap();
        assert_eq!(attrs.attr("id"), Some("x"));
        assert_eq!(attrs.attr("version"), Some("1.0"));
    }

    #[test]
    fn escaping_round_trip() {
        let s = "a&b<c>d'e\"f";
        assert_eq!(unescape(escape(s).as_bytes()), s);
        assert_eq!(unescape(b"&#65;&#x42;&unknown;&"), "AB&unknown;&");
        assert!(matches!(escape("plain"), Cow::Borrowed(_)));
    }
}
