//! Every connection type behind one value, driven the same way (DESIGN.md, the
//! engine contract): runtimes and simulations hold a [`Connection`] and feed it
//! bytes, timeouts and [`ConnectionInput`]s, whatever the stream type.

use std::time::Instant;

use super::c2s::{C2s, SmResumed};
use super::component::Component;
use super::s2s_in::S2sIn;
use super::s2s_out::{DnsAnswer, S2sOut};
use super::Action;
use crate::federation::DialbackRequest;
use crate::hub::RequestId;
use crate::storage::StorageReply;
use crate::xml::Element;

/// A connection of any type. The variants are of similar size (2-2.5 KiB) and each
/// connection holds exactly one, inline: boxing the largest would add an
/// allocation and an indirection to every connection for a few hundred bytes.
#[allow(clippy::large_enum_variant)]
pub enum Connection {
    /// Client-to-server.
    C2s(C2s),
    /// Incoming server-to-server.
    S2sIn(S2sIn),
    /// Outgoing server-to-server (boxed: these are few, and the largest machine, so
    /// inline they would make every client connection pay for their size).
    S2sOut(Box<S2sOut>),
    /// External component (XEP-0114).
    Component(Component),
}

/// What reaches a connection from the rest of the server (hub, storage, federation
/// router, resolver, runtime).
#[derive(Debug, Clone, PartialEq)]
pub enum ConnectionInput {
    /// A stanza to write.
    Routed(Element),
    /// A serialised stanza to write as is (C2S offline messages).
    RoutedRaw(String),
    /// Replaced by a newer session or component: close with `conflict`.
    Replaced,
    /// A storage answer.
    Reply(RequestId, StorageReply),
    /// The server is stopping.
    Shutdown,
    /// A component's registration was accepted or refused.
    ComponentAnswer(bool),
    /// An outgoing S2S stream is to send this dialback verification.
    Verify(DialbackRequest),
    /// An incoming S2S stream gets its verification answer.
    Verified(DialbackRequest, bool),
    /// The answer to an outgoing stream's DNS query.
    Resolved(DnsAnswer),
    /// The outgoing stream's TCP connect succeeded (or not).
    Connected(bool),
    /// XEP-0198: the session this C2S connection asked to resume is now its own.
    Resumed(Box<SmResumed>),
    /// XEP-0198: there was no session to resume.
    ResumeFailed,
    /// XEP-0198: a new connection resumes this C2S session; hand it over.
    Takeover,
    /// The runtime ends the stream with this error and text: a limit of the server
    /// was reached (too many connections, output the peer does not read). The stream
    /// header is sent first when it was not yet (RFC 6120 §4.9.1.1), then the error,
    /// then the stream closes.
    StreamError(super::StreamError, String),
}

macro_rules! each {
    ($c:expr, $x:ident => $e:expr) => {
        match $c {
            Connection::C2s($x) => $e,
            Connection::S2sIn($x) => $e,
            Connection::S2sOut($x) => $e,
            Connection::Component($x) => $e,
        }
    };
}

impl Connection {
    /// Bytes read from the socket.
    pub fn handle_bytes(&mut self, bytes: &[u8], now: Instant) {
        each!(self, c => c.handle_bytes(bytes, now))
    }

    /// The deadline of the last `Action::SetTimer` passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        each!(self, c => c.handle_timeout(now))
    }

    /// The socket closed or failed.
    pub fn handle_closed(&mut self, now: Instant) {
        each!(self, c => c.handle_closed(now))
    }

    /// The next action, `None` when there is nothing more to do now.
    pub fn poll_action(&mut self) -> Option<Action> {
        each!(self, c => c.poll_action())
    }

    /// The peer's address, for the checks made per address (the C2S
    /// authentication backoff); other connection types ignore it.
    pub fn set_peer(&mut self, peer: std::net::IpAddr) {
        if let Connection::C2s(c) = self {
            c.set_peer(peer);
        }
    }

    /// True for the connection types the federation router talks to.
    pub fn is_federated(&self) -> bool {
        !matches!(self, Connection::C2s(_))
    }

    /// An input from the rest of the server. Inputs that do not apply to this
    /// connection type are ignored (and logged).
    pub fn handle_input(&mut self, input: ConnectionInput, now: Instant) {
        use ConnectionInput as I;
        match (self, input) {
            (c, I::Shutdown) => each!(c, c => c.handle_shutdown(now)),
            (c, I::StreamError(error, text)) => each!(c, c => c.handle_stream_error(error, &text, now)),
            (Connection::C2s(c), input) => c.handle_input(input, now),
            (Connection::Component(c), I::Routed(stanza)) => c.handle_routed(stanza, now),
            (Connection::Component(c), I::Replaced) => c.handle_replaced(now),
            (Connection::Component(c), I::ComponentAnswer(accepted)) => {
                c.handle_component_answer(accepted, now)
            }
            (Connection::S2sOut(c), I::Routed(stanza)) => c.handle_routed(stanza, now),
            (Connection::S2sOut(c), I::Verify(request)) => c.handle_verify(request, now),
            (Connection::S2sOut(c), I::Resolved(answer)) => c.handle_resolved(answer, now),
            (Connection::S2sOut(c), I::Connected(true)) => c.handle_connected(now),
            (Connection::S2sOut(c), I::Connected(false)) => c.handle_connect_failed(now),
            (Connection::S2sIn(c), I::Verified(request, valid)) => {
                c.handle_dialback_verified(&request, valid, now)
            }
            (_, other) => tracing::debug!(input = ?other, "input not for this connection type"),
        }
    }
}

impl C2s {
    /// An input from the rest of the server, whatever carries the stream (TCP,
    /// WebSocket, BOSH). Inputs for other connection types are ignored (and logged).
    pub fn handle_input(&mut self, input: ConnectionInput, now: Instant) {
        use ConnectionInput as I;
        match input {
            I::Shutdown => self.handle_shutdown(now),
            I::StreamError(error, text) => self.handle_stream_error(error, &text, now),
            I::Routed(stanza) => self.handle_routed(stanza, now),
            I::RoutedRaw(xml) => self.handle_routed_raw(&xml, now),
            I::Replaced => self.handle_replaced(now),
            I::Reply(id, reply) => self.handle_reply(id, reply, now),
            I::Resumed(resumed) => self.handle_resumed(*resumed, now),
            I::ResumeFailed => self.handle_resume_failed(now),
            I::Takeover => self.handle_takeover(now),
            other => tracing::debug!(input = ?other, "input not for a client stream"),
        }
    }
}
