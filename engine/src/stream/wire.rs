//! The stream layer shared by the S2S and component state machines (RFC 6120 §4–5):
//! bytes in through the shaper, TLS and the XML parser; elements out, serialised in
//! the stream's content namespace and gathered into one `Transmit` per input; stream
//! headers, stream errors and the close; one instrumentation event per element.
//!
//! A connection type keeps only its negotiation and its stanza rules: everything
//! that is the same for every stream lives here.

use std::collections::VecDeque;
use std::time::Instant;

use super::{Action, StreamError};
use crate::hub::SessionId;
use crate::instrument::{ConnectionType, Direction, ElementKind, Event};
use crate::ns;
use crate::shaper::Shaper;
use crate::tls::TlsSession;
use crate::xml::{escape_attr, Element, ParseLimits, StreamEvent, StreamParser};

/// What the stream delivered, after parsing and instrumentation.
#[derive(Debug)]
pub(crate) enum WireEvent {
    /// A stream header (first, or after a restart).
    Header(crate::xml::StreamHeader),
    /// A top-level element.
    Element(Element),
    /// The peer closed its stream (RFC 6120 §4.4).
    Close,
}

/// One stream's transport: see the module docs.
pub(crate) struct Wire {
    pub(crate) id: SessionId,
    parser: StreamParser,
    tls: Option<TlsSession>,
    shaper: Option<Shaper>,
    content_ns: &'static str,
    connection_type: ConnectionType,
    /// The `host_type` label: the served domain this stream is for, once known.
    pub(crate) host_type: String,
    header_sent: bool,
    closed: bool,
    /// Bytes ready for the socket (ciphertext when TLS is on).
    out: Vec<u8>,
    /// Plaintext waiting to be encrypted, so that one input gives one TLS record.
    plain_out: Vec<u8>,
    actions: VecDeque<Action>,
}

impl Wire {
    /// A stream in `content_ns` (`jabber:server`, `jabber:component:accept`).
    pub(crate) fn new(
        id: SessionId,
        content_ns: &'static str,
        connection_type: ConnectionType,
        max_stanza_size: usize,
        shaper_max_rate: Option<u64>,
    ) -> Self {
        Self {
            id,
            parser: StreamParser::new(ParseLimits { max_stanza_size }),
            tls: None,
            shaper: shaper_max_rate.map(Shaper::new),
            content_ns,
            connection_type,
            host_type: String::new(),
            header_sent: false,
            closed: false,
            out: Vec::new(),
            plain_out: Vec::new(),
            actions: VecDeque::new(),
        }
    }

    /// True once the stream is over; every input is then ignored.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }

    /// The TLS session, once TLS is on.
    pub(crate) fn tls(&self) -> Option<&TlsSession> {
        self.tls.as_ref()
    }

    /// True when TLS is on (negotiated or direct).
    pub(crate) fn is_encrypted(&self) -> bool {
        self.tls.is_some()
    }

    /// Queues an action.
    pub(crate) fn push(&mut self, action: Action) {
        self.actions.push_back(action);
    }

    /// The next action for the runtime.
    pub(crate) fn poll_action(&mut self) -> Option<Action> {
        let action = self.actions.pop_front();
        if action.is_none() && self.actions.capacity() > 0 {
            // An idle stream keeps no queue.
            self.actions = VecDeque::new();
        }
        action
    }

    /// Bytes from the socket: shaped, decrypted and fed to the parser. Events are
    /// then read with [`Wire::next_event`]. A broken TLS session closes the stream.
    pub(crate) fn receive(&mut self, bytes: &[u8], now: Instant) {
        if self.closed {
            return;
        }
        if let Some(shaper) = &mut self.shaper {
            if let Some(pause) = shaper.consume(bytes.len(), now) {
                self.actions.push_back(Action::PauseReading(now + pause));
                self.actions.push_back(Action::Instrument(Event::ShaperDelay {
                    micros: pause.as_micros() as u64,
                }));
            }
        }
        match &mut self.tls {
            Some(tls) => {
                let mut plain = Vec::new();
                let result = tls.read(bytes, &mut plain);
                tls.take_output(&mut self.out);
                if let Err(e) = result {
                    tracing::debug!(session = self.id, error = %e, "TLS failure");
                    self.flush();
                    self.closed = true;
                    self.actions.push_back(Action::Close);
                    return;
                }
                self.parser.feed(&plain);
            }
            None => self.parser.feed(bytes),
        }
    }

    /// The next parsed event, or `None` when more input is needed or the stream is
    /// over. A parse error becomes its stream error here (RFC 6120 §4.9.3).
    pub(crate) fn next_event(&mut self, default_from: &str) -> Option<WireEvent> {
        if self.closed {
            return None;
        }
        match self.parser.next_event() {
            Ok(None) => None,
            Ok(Some(StreamEvent::Header(h))) => {
                tracing::trace!(session = self.id, header = ?h.attrs, "in");
                Some(WireEvent::Header(h))
            }
            Ok(Some(StreamEvent::Element(el, size))) => {
                tracing::trace!(session = self.id, xml = %el.to_xml(), "in");
                self.instrument(Direction::In, el.name(), size);
                Some(WireEvent::Element(el))
            }
            Ok(Some(StreamEvent::Close)) => Some(WireEvent::Close),
            Err(e) => {
                tracing::info!(session = self.id, error = %e, "bad XML from peer");
                self.stream_error(StreamError::from(&e), None, default_from);
                None
            }
        }
    }

    /// Writes our stream header (RFC 6120 §4.7) with `attrs` in order and extra
    /// prefixed namespace declarations (`xmlns:db` for dialback).
    pub(crate) fn send_header(&mut self, attrs: &[(&str, &str)], prefixes: &[(&str, &str)]) {
        let mut header = String::with_capacity(256);
        header.push_str("<?xml version='1.0'?><stream:stream xmlns='");
        header.push_str(self.content_ns);
        header.push_str("' xmlns:stream='");
        header.push_str(ns::STREAMS);
        header.push('\'');
        for (prefix, uri) in prefixes {
            header.push_str(" xmlns:");
            header.push_str(prefix);
            header.push_str("='");
            escape_attr(&mut header, uri);
            header.push('\'');
        }
        for (name, value) in attrs {
            header.push(' ');
            header.push_str(name);
            header.push_str("='");
            escape_attr(&mut header, value);
            header.push('\'');
        }
        header.push('>');
        self.write_raw(header.as_bytes());
        self.header_sent = true;
    }

    /// Serialises `el` in the stream's content namespace and writes it, with its
    /// `xmpp_element_out` event.
    pub(crate) fn send(&mut self, el: &Element) {
        let mut s = String::with_capacity(128);
        el.write_in_stream(&mut s, self.content_ns);
        tracing::trace!(session = self.id, xml = %s, "out");
        self.instrument(Direction::Out, el.name(), s.len());
        self.write_raw(s.as_bytes());
    }

    /// Writes bytes as they are (headers, whitespace, the closing tag).
    pub(crate) fn write_raw(&mut self, bytes: &[u8]) {
        if self.tls.is_some() {
            self.plain_out.extend_from_slice(bytes);
        } else {
            self.out.extend_from_slice(bytes);
        }
    }

    /// Gathers everything written since the last flush into one `Transmit`, which
    /// always precedes a `Close`.
    pub(crate) fn flush(&mut self) {
        if let Some(tls) = &mut self.tls {
            if !self.plain_out.is_empty() {
                tls.write(&std::mem::take(&mut self.plain_out));
            }
            tls.take_output(&mut self.out);
        }
        if !self.out.is_empty() {
            let bytes = std::mem::take(&mut self.out);
            match self.actions.iter().position(|a| matches!(a, Action::Close)) {
                Some(i) => self.actions.insert(i, Action::Transmit(bytes)),
                None => self.actions.push_back(Action::Transmit(bytes)),
            }
        }
    }

    /// Switches to TLS from the next byte on (after `<proceed/>` has been flushed,
    /// or from the first byte for direct TLS), expecting a new stream header
    /// (RFC 6120 §5.4.3.3).
    pub(crate) fn start_tls(&mut self, tls: TlsSession) {
        self.flush();
        self.tls = Some(tls);
        self.flush();
        self.parser.reset();
    }

    /// A stream restart (RFC 6120 §4.3.3, after SASL success): a new header follows.
    pub(crate) fn restart(&mut self) {
        self.parser.reset();
    }

    /// Sends a stream error and closes (RFC 6120 §4.9.1.1). Before our header, one is
    /// sent first from `default_from` so that the error is well-formed (§4.9.1.3).
    pub(crate) fn stream_error(&mut self, error: StreamError, text: Option<&str>, default_from: &str) {
        if self.closed {
            return;
        }
        tracing::info!(
            session = self.id,
            connection_type = self.connection_type.as_str(),
            condition = error.condition(),
            text,
            "stream error"
        );
        if !self.header_sent {
            let from = default_from.to_string();
            self.send_header(&[("from", &from), ("version", "1.0")], &[]);
        }
        self.send(&error.to_element(text));
        self.write_raw(b"</stream:stream>");
        self.close();
    }

    /// Closes our stream (RFC 6120 §4.4): the closing tag, then TLS close_notify, then
    /// `Close`.
    pub(crate) fn close_stream(&mut self) {
        if self.closed {
            return;
        }
        self.write_raw(b"</stream:stream>");
        self.close();
    }

    /// Ends the connection without a closing tag (the socket is gone, or it was
    /// already written).
    pub(crate) fn close(&mut self) {
        if self.closed {
            return;
        }
        self.flush();
        if let Some(tls) = &mut self.tls {
            tls.close();
        }
        self.flush();
        self.closed = true;
        self.actions.push_back(Action::Close);
    }

    /// The socket closed under us: nothing more is written.
    pub(crate) fn lost(&mut self) {
        if !self.closed {
            self.closed = true;
            self.actions.push_back(Action::Close);
        }
    }

    fn instrument(&mut self, direction: Direction, name: &str, bytes: usize) {
        self.actions.push_back(Action::Instrument(Event::Element {
            direction,
            connection_type: self.connection_type,
            host_type: self.host_type.clone(),
            kind: ElementKind::of(name),
            bytes,
        }));
    }
}

/// RFC 6120 §4.7.5: the major version of a header's `version`, if any.
pub(crate) fn major_version(version: Option<&str>) -> Option<u32> {
    version
        .and_then(|v| v.split('.').next())
        .and_then(|m| m.parse().ok())
}

/// A random hexadecimal token (stream ids) from `rng`.
pub(crate) fn random_token(rng: &mut dyn rand_core::RngCore, bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rng.fill_bytes(&mut buf);
    hex(&buf)
}

/// Lower-case hexadecimal (stream ids, XEP-0114 handshakes, XEP-0185 keys).
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
