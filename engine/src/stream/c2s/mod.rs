//! The client-to-server stream (RFC 6120): stream open and restarts, features,
//! STARTTLS and direct TLS, SASL, in-band registration, resource binding, then stanzas
//! to and from the hub.
//!
//! Inputs are `handle_*` calls, outputs are drained with [`C2s::poll_action`]. Bytes
//! written during one input are gathered into a single `Action::Transmit`.

mod bind2;
mod csi;
mod fast;
mod negotiation;
mod sasl2;
mod session;
mod settings;
mod sm;

pub use settings::{CsiConfig, FastConfig, SmConfig};
pub use sm::{Outbound, SmResumed, SmSnapshot};

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rand_core::RngCore;

use super::{Action, StreamError};
use crate::hub::{HubInput, RequestId, SessionId};
use crate::instrument::{ConnectionType, Direction, ElementKind, Event};
use crate::jid::Jid;
use crate::ns;
use crate::sasl::{Mechanism, SaslServer};
use crate::shaper::Shaper;
use crate::storage::StorageReply;
use crate::tls::{TlsIdentity, TlsSession};
use crate::xml::{Element, ParseLimits, StreamEvent, StreamParser};

/// MongooseIM's `tls.mode` for a C2S listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// STARTTLS offered, optional.
    StartTls,
    /// STARTTLS offered and required before authentication.
    StartTlsRequired,
    /// Direct TLS (XEP-0368): TLS from the first byte.
    Tls,
    /// No TLS at all (no `tls` section); PLAIN is then never offered.
    None,
}

/// Settings of a C2S listener, shared by its connections.
#[derive(Debug, Clone)]
pub struct C2sConfig {
    /// Served domains.
    pub hosts: Vec<String>,
    /// TLS mode.
    pub tls_mode: TlsMode,
    /// Certificate and key; required unless `tls_mode` is `None`.
    pub tls: Option<Arc<TlsIdentity>>,
    /// Largest accepted top-level element (`max_stanza_size`).
    pub max_stanza_size: usize,
    /// Shaper rate in bytes per second (`shaper = "NAME"` resolved), if any.
    pub shaper_max_rate: Option<u64>,
    /// SASL mechanisms to offer, in order (`[auth] sasl_mechanisms`), before the
    /// channel-binding and TLS filters are applied.
    pub mechanisms: Vec<Mechanism>,
    /// XEP-0077 in-band registration allowed (`[modules.mod_register]`).
    pub registration: bool,
    /// Time a connection may take to authenticate and bind before it is closed.
    pub auth_timeout: Duration,
    /// Whitespace keepalive interval once bound (RFC 6120 §4.6.1).
    pub keepalive_interval: Duration,
    /// Secret from which SCRAM derives the fake salt of unknown users, so that the
    /// same unknown name gets the same salt on every attempt and cannot be told from
    /// a real account. Made once per server start from a secure random source.
    pub sasl_secret: [u8; 32],
    /// XEP-0198 stream management (`[modules.mod_stream_management]`); `None`: off.
    pub sm: Option<SmConfig>,
    /// XEP-0280 message carbons (`[modules.mod_carbons]`), offered inline in Bind 2.
    pub carbons: bool,
    /// XEP-0352 client state indication (`[modules.mod_csi]`); `None`: off.
    pub csi: Option<CsiConfig>,
    /// XEP-0484 FAST (`[modules.mod_fast_auth_token]`); `None`: off.
    pub fast: Option<FastConfig>,
    /// Failed authentications counted per source address, shared by every
    /// connection of the server (`[auth.backoff]`); `None`: no backoff.
    pub auth_backoff: Option<Arc<crate::sasl::backoff::SharedAuthBackoff>>,
}

impl C2sConfig {
    /// A configuration for `hosts` with everything else at its default: no TLS,
    /// all SCRAM mechanisms, no registration. Tests and simulations start from here.
    pub fn new(hosts: Vec<String>) -> Self {
        use crate::sasl::ScramHash::*;
        let mut mechanisms = Vec::new();
        for plus in [true, false] {
            for hash in [Sha512, Sha256, Sha1] {
                mechanisms.push(Mechanism::Scram { hash, plus });
            }
        }
        mechanisms.push(Mechanism::Plain);
        Self {
            hosts,
            tls_mode: TlsMode::None,
            tls: None,
            max_stanza_size: 65_536,
            shaper_max_rate: None,
            mechanisms,
            registration: false,
            auth_timeout: Duration::from_secs(30),
            keepalive_interval: Duration::from_secs(60),
            // Deterministic for simulations; the server sets a random one.
            sasl_secret: [0; 32],
            sm: None,
            carbons: false,
            csi: None,
            fast: None,
            auth_backoff: None,
        }
    }
}

/// How XML crosses the connection's transport: the framing seam that lets one C2S
/// state machine serve TCP, WebSocket and BOSH clients alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// RFC 6120 §4: one XML stream, opened by `<stream:stream>` and closed by
    /// `</stream:stream>`; output is gathered into one `Transmit` per input.
    Stream,
    /// RFC 7395 §3.3 (WebSocket) and XEP-0206 (BOSH): every input message is one
    /// complete element, the stream is opened by `<open/>` and closed by `<close/>`
    /// of the framing namespace, and every element written is its own `Transmit`,
    /// a standalone document (namespaces and the `stream:` prefix declared).
    Message,
}

/// What the transport below a framed C2S stream (WebSocket or BOSH) already secures:
/// the stream is then encrypted for SASL's purposes (PLAIN may be offered), and the
/// TLS connection's channel bindings, if any, allow the `-PLUS` mechanisms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransportSecurity {
    /// Channel bindings of the TLS connection carrying the stream (none for BOSH,
    /// whose requests may each arrive on another connection).
    pub channel_bindings: crate::sasl::ChannelBindings,
}

/// Where the stream is in its negotiation (RFC 6120 §4.3).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// Waiting for the initiating stream header (first, or after a restart).
    AwaitingHeader,
    /// Header answered, features sent; negotiating TLS, SASL or registration.
    Negotiating,
    /// Authenticated; waiting for resource binding.
    Authenticated,
    /// Resource bound: stanzas flow.
    Bound,
    /// The stream is closed; every input is ignored.
    Closed,
}

/// What a pending storage request was for.
#[derive(Debug)]
enum Pending {
    /// SASL asked for credentials.
    Credentials,
    /// In-band registration (XEP-0077) of a new account; answers the iq `id`.
    Register { iq: Box<Element> },
    /// Password change or account removal by an authenticated user (XEP-0077 §3.2–3.3).
    AccountChange { iq: Box<Element>, remove: bool },
    /// XEP-0484: the client's FAST tokens, to check an HT initial response.
    FastTokens(Box<fast::FastAttempt>),
    /// XEP-0484: writing a token use, rotation or issue before `<success/>`.
    FastWrite(Box<fast::FastAttempt>),
}

/// A C2S connection.
pub struct C2s {
    id: SessionId,
    config: Arc<C2sConfig>,
    rng: Box<dyn RngCore + Send>,
    phase: Phase,
    parser: StreamParser,
    tls: Option<TlsSession>,
    /// True once the initiating entity's first header on this connection was answered
    /// (a stream error needs a header first, RFC 6120 §4.9.1.3).
    header_sent: bool,
    /// The served domain named by the client's `to`.
    domain: Option<String>,
    /// The authenticated bare JID.
    user: Option<Jid>,
    /// The bound full JID.
    jid: Option<Jid>,
    /// The SASL exchange under way (boxed: a bound session has none).
    sasl: Option<Box<SaslServer>>,
    sasl_failures: u32,
    pending: Option<(RequestId, Pending)>,
    next_request: RequestId,
    shaper: Option<Shaper>,
    auth_deadline: Instant,
    keepalive_due: Option<Instant>,
    /// Bytes ready for the socket (ciphertext when TLS is on).
    out: Vec<u8>,
    /// Plaintext waiting to be encrypted: gathered so that one input gives one TLS
    /// record rather than one per element.
    plain_out: Vec<u8>,
    actions: VecDeque<Action>,
    /// XEP-0388: the SASL2 exchange under way, with its inline requests; `None`
    /// during a legacy SASL exchange.
    sasl2: Option<Box<sasl2::Sasl2Exchange>>,
    /// XEP-0388 §2.3: the client installation that authenticated.
    user_agent: Option<Box<sasl2::UserAgent>>,
    /// XEP-0198 state once enabled (or resumed).
    sm: Option<Box<sm::StreamManagement>>,
    /// XEP-0198: a resumption asked of the hub, waiting for its answer.
    resuming: Option<Box<sm::Resuming>>,
    /// XEP-0352 state and the stanzas held back while inactive.
    csi: csi::ClientState,
    /// An instant and the wall-clock time it was (FAST token expiry), so that wall
    /// time follows the `now` inputs. Set by [`C2s::set_wall_clock`].
    wall: (Instant, SystemTime),
    /// True while the input being processed arrived as TLS 1.3 early data.
    in_early_data: bool,
    /// The `from` of the client's stream header (XEP-0388 §2.3: the identity it
    /// means to authenticate as).
    header_from: Option<Box<Jid>>,
    /// TCP stream or message framing (WebSocket, BOSH).
    framing: Framing,
    /// For a framed stream over TLS: what the transport secures.
    transport_security: Option<Box<TransportSecurity>>,
    /// The client's address, for the authentication backoff and logs (boxed: the
    /// connection stays as small as it was without it).
    peer: Option<Box<IpAddr>>,
}

/// The stream header a framed stream's parser is primed with: messages then parse as
/// its top-level elements, in `jabber:client` unless they say otherwise.
const FRAMED_PRELUDE: &str =
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";

/// RFC 6120 §6.4.5: retries allowed before the stream is closed.
const MAX_SASL_FAILURES: u32 = 3;

impl C2s {
    /// A new connection accepted at `now`. `rng` provides stream ids, resources and
    /// SASL nonces.
    pub fn new(id: SessionId, config: Arc<C2sConfig>, rng: Box<dyn RngCore + Send>, now: Instant) -> Self {
        let tls = match (config.tls_mode, &config.tls) {
            (TlsMode::Tls, Some(identity)) => TlsSession::new(identity).ok(),
            _ => None,
        };
        let mut c2s = Self {
            id,
            parser: StreamParser::new(ParseLimits {
                max_stanza_size: config.max_stanza_size,
            }),
            shaper: config.shaper_max_rate.map(Shaper::new),
            auth_deadline: now + config.auth_timeout,
            config,
            rng,
            phase: Phase::AwaitingHeader,
            tls,
            header_sent: false,
            domain: None,
            user: None,
            jid: None,
            sasl: None,
            sasl_failures: 0,
            pending: None,
            next_request: 1,
            keepalive_due: None,
            out: Vec::new(),
            plain_out: Vec::new(),
            actions: VecDeque::new(),
            sasl2: None,
            user_agent: None,
            sm: None,
            resuming: None,
            csi: csi::ClientState::default(),
            wall: (now, SystemTime::UNIX_EPOCH),
            in_early_data: false,
            header_from: None,
            framing: Framing::Stream,
            transport_security: None,
            peer: None,
        };
        if c2s.config.tls_mode == TlsMode::Tls && c2s.tls.is_none() {
            // A direct-TLS listener without an identity cannot serve anyone.
            c2s.phase = Phase::Closed;
            c2s.actions.push_back(Action::Close);
        } else {
            c2s.actions.push_back(Action::SetTimer(c2s.auth_deadline));
        }
        c2s
    }

    /// A C2S stream carried by a message-framed transport (RFC 7395 WebSocket,
    /// XEP-0206 BOSH): every `handle_bytes` input is one complete element, every
    /// `Transmit` one element to send as one message. `security` is what the
    /// transport's TLS provides (`None` over plain HTTP). The listener's own TLS mode
    /// does not apply: the transport below does TLS.
    pub fn framed(
        id: SessionId,
        config: Arc<C2sConfig>,
        rng: Box<dyn RngCore + Send>,
        now: Instant,
        security: Option<TransportSecurity>,
    ) -> Self {
        let mut c2s = Self::new(id, config, rng, now);
        c2s.tls = None;
        c2s.framing = Framing::Message;
        c2s.transport_security = security.map(Box::new);
        if c2s.phase == Phase::Closed {
            // `new` refused a direct-TLS config without identity; framed streams
            // never do TLS themselves.
            c2s.phase = Phase::AwaitingHeader;
            c2s.actions.clear();
            c2s.actions.push_back(Action::SetTimer(c2s.auth_deadline));
        }
        c2s.restart_parser();
        c2s
    }

    /// The framing of this stream.
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// The connection id given at creation.
    pub fn id(&self) -> SessionId {
        self.id
    }

    /// The client's address (from the runtime): failed authentications count
    /// against it server-wide (see [`C2sConfig::auth_backoff`]).
    pub fn set_peer(&mut self, peer: IpAddr) {
        self.peer = Some(Box::new(peer));
    }

    /// The bound full JID, once bound.
    pub fn jid(&self) -> Option<&Jid> {
        self.jid.as_ref()
    }

    /// Tells the connection that `at` is the wall-clock time `wall` (runtimes call it
    /// once at creation; simulations with their virtual clock). Wall time is needed
    /// for FAST token expiry (XEP-0082 timestamps); it then follows the `now` inputs.
    pub fn set_wall_clock(&mut self, at: Instant, wall: SystemTime) {
        self.wall = (at, wall);
    }

    /// The wall-clock time at `now`.
    fn wall_time(&self, now: Instant) -> SystemTime {
        let (at, wall) = self.wall;
        match now.checked_duration_since(at) {
            Some(d) => wall + d,
            None => wall - at.duration_since(now),
        }
    }

    /// XEP-0484 §3.1: whether this stream may carry a FAST authentication in TLS
    /// 1.3 early data (direct TLS with early data enabled on the identity).
    fn early_data_offered(&self) -> bool {
        self.config.tls_mode == TlsMode::Tls && self.config.tls.as_ref().is_some_and(|t| t.early_data)
    }

    /// The XEP-0388 user agent the client authenticated with.
    pub fn user_agent_id(&self) -> Option<&str> {
        self.user_agent.as_ref().and_then(|u| u.id.as_deref())
    }

    /// Bytes read from the socket.
    pub fn handle_bytes(&mut self, bytes: &[u8], now: Instant) {
        if self.phase == Phase::Closed {
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
                // Decrypted data lives only for this call: an idle connection keeps no
                // read-sized buffer.
                let (mut early, mut plain) = (Vec::new(), Vec::new());
                let result = tls.read_with_early(bytes, &mut early, &mut plain);
                tls.take_output(&mut self.out);
                if let Err(e) = result {
                    tracing::debug!(session = self.id, error = %e, "TLS failure");
                    self.flush();
                    self.phase = Phase::Closed;
                    self.unbind(true);
                    self.actions.push_back(Action::Close);
                    return;
                }
                if !early.is_empty() {
                    // RFC 8446 §8: 0-RTT data may be a replay; what it may carry is
                    // checked element by element (see `in_early_data`).
                    tracing::debug!(session = self.id, bytes = early.len(), "TLS early data");
                    self.in_early_data = true;
                    self.parser.feed(&early);
                    self.process_events(now);
                    self.in_early_data = false;
                }
                if !plain.is_empty() {
                    self.parser.feed(&plain);
                    self.process_events(now);
                }
            }
            None => {
                self.parser.feed(bytes);
                self.process_events(now);
            }
        }
        self.flush();
    }

    fn process_events(&mut self, now: Instant) {
        while self.phase != Phase::Closed {
            match self.parser.next_event() {
                Ok(None) => break,
                Ok(Some(StreamEvent::Header(h))) => self.on_header(&h),
                Ok(Some(StreamEvent::Element(el, _)))
                    if self.framing == Framing::Message && el.ns() == ns::FRAMING =>
                {
                    self.on_framing_element(&el)
                }
                Ok(Some(StreamEvent::Element(el, size))) => {
                    self.instrument(Direction::In, el.name(), size);
                    self.on_element(el, now);
                }
                Ok(Some(StreamEvent::Close)) => self.on_stream_close(),
                Err(e) => {
                    tracing::info!(session = self.id, error = %e, "bad XML from client");
                    self.stream_error(StreamError::from(&e), None);
                }
            }
        }
    }

    /// The deadline set by `Action::SetTimer` has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.phase == Phase::Closed {
            return;
        }
        if self.phase != Phase::Bound && now >= self.auth_deadline {
            self.stream_error(
                StreamError::ConnectionTimeout,
                Some("authentication took too long"),
            );
        } else if let Some(due) = self.keepalive_due {
            if now >= due {
                // RFC 6120 §4.6.1: a whitespace keepalive. RFC 7395 §3.6 forbids
                // them on WebSocket, whose transport pings instead (so does BOSH's).
                if self.framing == Framing::Stream {
                    self.write_raw(b" ");
                }
                self.keepalive_due = Some(now + self.config.keepalive_interval);
            }
            self.arm_timer();
        } else {
            self.arm_timer();
        }
        self.flush();
    }

    /// A stanza the hub delivers to this session.
    pub fn handle_routed(&mut self, stanza: Element, now: Instant) {
        if self.phase != Phase::Bound {
            return;
        }
        self.deliver(Outbound::Stanza(stanza), now);
        self.touch(now);
        self.flush();
    }

    /// A serialised stanza the hub delivers as is (offline messages).
    pub fn handle_routed_raw(&mut self, xml: &str, now: Instant) {
        if self.phase != Phase::Bound {
            return;
        }
        self.deliver(Outbound::Raw(xml.to_string()), now);
        self.touch(now);
        self.flush();
    }

    /// Writes a stanza to the client and, with stream management, keeps it until
    /// acknowledged.
    fn transmit(&mut self, out: Outbound, _now: Instant) {
        match &out {
            Outbound::Stanza(el) => self.send(el),
            Outbound::Raw(xml) => {
                // Stored with its namespace declared (`Element::to_xml`), so it is a
                // standalone document for framed transports too.
                self.write_element_bytes(xml.as_bytes().to_vec());
                self.instrument(Direction::Out, "message", xml.len());
            }
        }
        if self.sm.is_some() {
            self.sm_record_outbound(out);
        }
    }

    /// The hub replaced this session by a new one with the same full JID.
    pub fn handle_replaced(&mut self, _now: Instant) {
        self.stream_error(StreamError::Conflict, Some("replaced by a new connection"));
        self.flush();
    }

    /// The server is shutting down (`system-shutdown`).
    pub fn handle_shutdown(&mut self, _now: Instant) {
        self.stream_error(StreamError::SystemShutdown, None);
        self.flush();
    }

    /// The runtime ends the stream with `error` (a server limit was reached: too
    /// many connections, output the client does not read; see
    /// [`crate::stream::ConnectionInput::StreamError`]). The session is not
    /// resumable: the limit would be met again.
    pub fn handle_stream_error(&mut self, error: StreamError, text: &str, _now: Instant) {
        self.stream_error(error, Some(text));
        self.flush();
    }

    /// The peer closed the socket or it failed: the session unbinds and ends with
    /// `Action::Close` (the runtime drops the socket). Nothing happens if it had
    /// already ended.
    pub fn handle_closed(&mut self, _now: Instant) {
        if self.phase != Phase::Closed {
            self.phase = Phase::Closed;
            self.unbind(true);
            self.actions.push_back(Action::Close);
        }
    }

    /// The answer to an `Action::Request`.
    pub fn handle_reply(&mut self, id: RequestId, reply: StorageReply, now: Instant) {
        if self.phase == Phase::Closed {
            return;
        }
        match self.pending.take() {
            Some((pid, what)) if pid == id => self.on_reply(what, reply, now),
            other => self.pending = other,
        }
        self.flush();
    }

    /// The next action, `None` when there is nothing more to do now.
    pub fn poll_action(&mut self) -> Option<Action> {
        let action = self.actions.pop_front();
        if action.is_none() && self.actions.capacity() > 0 {
            // Drained: an idle session keeps no queue (an `Action` is ~200 bytes, and
            // a login grows the queue to a dozen of them).
            self.actions = VecDeque::new();
        }
        action
    }

    // ---- stream level ----

    fn content_ns(&self) -> &'static str {
        ns::CLIENT
    }

    fn on_header(&mut self, h: &crate::xml::StreamHeader) {
        if self.phase != Phase::AwaitingHeader {
            // A second header inside an open stream is not well-formed for us.
            self.stream_error(StreamError::NotWellFormed, Some("unexpected stream header"));
            return;
        }
        let domain = h
            .attr("to")
            .and_then(|to| Jid::domain_jid(to).ok())
            .map(|j| j.domain().to_string());
        // The header is answered before any error so that the error is well-formed
        // (RFC 6120 §4.9.1.3); the `from` is the host asked for when we serve it.
        let served = domain
            .as_ref()
            .filter(|d| self.config.hosts.iter().any(|h| h == *d))
            .cloned();
        let from = served
            .clone()
            .or_else(|| self.config.hosts.first().cloned())
            .unwrap_or_default();
        self.send_header(&from);
        if h.name != "stream" || h.name_ns != ns::STREAMS {
            return self.stream_error(
                StreamError::InvalidNamespace,
                Some("the root must be stream:stream"),
            );
        }
        if h.default_ns.as_deref() != Some(self.content_ns()) {
            return self.stream_error(
                StreamError::InvalidNamespace,
                Some("the content namespace must be jabber:client"),
            );
        }
        match h.attr("version") {
            Some(v) if v.split('.').next().and_then(|m| m.parse::<u32>().ok()) == Some(1) => {}
            _ => return self.stream_error(StreamError::UnsupportedVersion, Some("version 1.0 is required")),
        }
        let Some(domain) = served else {
            return self.stream_error(StreamError::HostUnknown, None);
        };
        if let Some(previous) = &self.domain {
            if *previous != domain {
                return self.stream_error(StreamError::HostUnknown, Some("the host changed on restart"));
            }
        }
        self.domain = Some(domain);
        self.header_from = h.attr("from").and_then(|f| Jid::parse(f).ok()).map(Box::new);
        self.phase = if self.user.is_some() {
            Phase::Authenticated
        } else {
            Phase::Negotiating
        };
        let features = self.features();
        self.send(&features);
    }

    fn send_header(&mut self, from: &str) {
        let id = self.random_token(16);
        if self.framing == Framing::Message {
            // RFC 7395 §3.4: the server's `<open/>` answers the client's.
            let mut open = String::with_capacity(200);
            open.push_str("<open xmlns='");
            open.push_str(ns::FRAMING);
            open.push_str("' id='");
            open.push_str(&id);
            open.push_str("' from='");
            crate::xml::escape_attr(&mut open, from);
            open.push_str("' version='1.0' xml:lang='en'/>");
            self.write_element_bytes(open.into_bytes());
            self.header_sent = true;
            return;
        }
        let mut header = String::with_capacity(200);
        header.push_str("<?xml version='1.0'?><stream:stream xmlns='");
        header.push_str(self.content_ns());
        header.push_str("' xmlns:stream='");
        header.push_str(ns::STREAMS);
        header.push_str("' id='");
        header.push_str(&id);
        header.push_str("' from='");
        crate::xml::escape_attr(&mut header, from);
        header.push_str("' version='1.0' xml:lang='en'>");
        self.write_raw(header.as_bytes());
        self.header_sent = true;
    }

    fn on_stream_close(&mut self) {
        // RFC 6120 §4.4: answer the closing tag with ours, then close.
        self.write_close_tag();
        self.close();
    }

    /// The end of the stream: `</stream:stream>`, or RFC 7395 §3.6's `<close/>`.
    pub(super) fn write_close_tag(&mut self) {
        match self.framing {
            Framing::Stream => self.write_raw(b"</stream:stream>"),
            Framing::Message => {
                let close = format!("<close xmlns='{}'/>", ns::FRAMING);
                self.write_element_bytes(close.into_bytes());
            }
        }
    }

    /// RFC 7395 §3.4 and §3.6: a framed stream's `<open/>` (the stream header and
    /// every restart) and `<close/>`.
    fn on_framing_element(&mut self, el: &Element) {
        match el.name() {
            "open" => {
                let header = crate::xml::StreamHeader {
                    name_ns: ns::STREAMS.to_string(),
                    name: "stream".to_string(),
                    default_ns: Some(ns::CLIENT.to_string()),
                    attrs: el.attrs().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
                    ns_decls: Vec::new(),
                };
                self.on_header(&header);
            }
            "close" => self.on_stream_close(),
            _ => self.stream_error(
                StreamError::UnsupportedStanzaType,
                Some("unknown framing element"),
            ),
        }
    }

    /// Forgets the parsed stream for a restart (RFC 6120 §4.3.3). A framed stream's
    /// parser is primed with a stream header of its own, so that each message is
    /// parsed as a top-level element of `jabber:client`.
    pub(super) fn restart_parser(&mut self) {
        self.parser.reset();
        if self.framing == Framing::Message {
            self.parser.feed(FRAMED_PRELUDE.as_bytes());
            let primed = self.parser.next_event();
            debug_assert!(matches!(primed, Ok(Some(StreamEvent::Header(_)))));
        }
    }

    /// Sends a stream error and closes (RFC 6120 §4.9.1.1); the session is over.
    fn stream_error(&mut self, error: StreamError, text: Option<&str>) {
        self.stream_error_with(error, text, false);
    }

    /// [`C2s::stream_error`]; with `resumable`, a stream-managed session stays
    /// resumable (XEP-0198 §5) after the stream ends.
    fn stream_error_with(&mut self, error: StreamError, text: Option<&str>, resumable: bool) {
        if self.phase == Phase::Closed {
            return;
        }
        tracing::info!(session = self.id, condition = error.condition(), "stream error");
        if !self.header_sent {
            let from = self.config.hosts.first().cloned().unwrap_or_default();
            self.send_header(&from);
        }
        self.send(&error.to_element(text));
        self.write_close_tag();
        self.close_with(resumable);
    }

    fn close(&mut self) {
        self.close_with(false);
    }

    fn close_with(&mut self, resumable: bool) {
        // Pending data first, then close_notify after it.
        self.flush();
        if let Some(tls) = &mut self.tls {
            tls.close();
        }
        self.flush();
        self.phase = Phase::Closed;
        self.unbind(resumable);
        self.actions.push_back(Action::Close);
    }

    /// The session ends: the hub forgets it, or, with stream management, keeps it
    /// detached (for a resumption when `resumable`, XEP-0198 §5) and takes care of
    /// the stanzas the client did not acknowledge.
    fn unbind(&mut self, resumable: bool) {
        if self.jid.is_some() {
            self.session_event(false);
        }
        if let Some(jid) = self.jid.take() {
            let input = match self.sm_snapshot(resumable) {
                Some(snapshot) => HubInput::Detach {
                    session: self.id,
                    jid,
                    snapshot: Box::new(snapshot),
                },
                None => HubInput::Unbind { session: self.id },
            };
            self.actions.push_back(Action::Hub(input));
        }
    }

    // ---- output ----

    /// Serialises and writes an element, with its `xmpp_element_out` event.
    fn send(&mut self, el: &Element) {
        let mut s = String::with_capacity(128);
        if self.framing == Framing::Message {
            // A standalone document: its namespace, and the `stream:` prefix of
            // features and errors, declared on the element itself (RFC 7395 §3.3.3).
            el.write_xml(&mut s, None);
            if el.ns() == ns::STREAMS {
                let at = "<stream:".len() + el.name().len();
                s.insert_str(at, &format!(" xmlns:stream='{}'", ns::STREAMS));
            }
            self.instrument(Direction::Out, el.name(), s.len());
            return self.write_element_bytes(s.into_bytes());
        }
        el.write_xml(&mut s, Some(self.content_ns()));
        self.instrument(Direction::Out, el.name(), s.len());
        self.write_raw(s.as_bytes());
    }

    /// Writes one complete element: on a framed stream, its own `Transmit` (one
    /// WebSocket message, one child of a BOSH body).
    fn write_element_bytes(&mut self, bytes: Vec<u8>) {
        match self.framing {
            Framing::Stream => self.write_raw(&bytes),
            Framing::Message => self.push_transmit(bytes),
        }
    }

    /// Queues a `Transmit`, before the `Close` that ends the stream if there is one.
    fn push_transmit(&mut self, bytes: Vec<u8>) {
        match self.actions.iter().position(|a| matches!(a, Action::Close)) {
            Some(i) => self.actions.insert(i, Action::Transmit(bytes)),
            None => self.actions.push_back(Action::Transmit(bytes)),
        }
    }

    fn write_raw(&mut self, bytes: &[u8]) {
        if self.tls.is_some() {
            self.plain_out.extend_from_slice(bytes);
        } else {
            self.out.extend_from_slice(bytes);
        }
    }

    /// Gathers everything written since the last flush into one `Transmit`.
    fn flush(&mut self) {
        if let Some(tls) = &mut self.tls {
            if !self.plain_out.is_empty() {
                tls.write(&std::mem::take(&mut self.plain_out));
            }
            tls.take_output(&mut self.out);
        }
        if !self.out.is_empty() {
            let bytes = std::mem::take(&mut self.out);
            // Keep Close last: a Transmit must precede the Close that ends the stream.
            self.push_transmit(bytes);
        }
    }

    fn instrument(&mut self, direction: Direction, name: &str, bytes: usize) {
        self.actions.push_back(Action::Instrument(Event::Element {
            direction,
            connection_type: ConnectionType::C2s,
            host_type: self.domain.clone().unwrap_or_default(),
            kind: ElementKind::of(name),
            bytes,
        }));
    }

    /// The session was bound (or resumed), or ended.
    pub(super) fn session_event(&mut self, opened: bool) {
        let host_type = self.domain.clone().unwrap_or_default();
        self.actions
            .push_back(Action::Instrument(Event::Session { host_type, opened }));
    }

    /// Pushes the keepalive deadline after traffic.
    fn touch(&mut self, now: Instant) {
        if self.phase == Phase::Bound {
            let due = now + self.config.keepalive_interval;
            // Re-arm only when the deadline moved noticeably, to keep timer churn low.
            if self
                .keepalive_due
                .is_none_or(|d| due > d + Duration::from_secs(1))
            {
                self.keepalive_due = Some(due);
                self.arm_timer();
            }
        }
    }

    fn arm_timer(&mut self) {
        let deadline = match self.phase {
            Phase::Bound => self.keepalive_due,
            Phase::Closed => None,
            _ => Some(self.auth_deadline),
        };
        if let Some(d) = deadline {
            self.actions.push_back(Action::SetTimer(d));
        }
    }

    fn request(&mut self, what: Pending, request: crate::storage::StorageRequest) {
        let id = self.next_request;
        self.next_request += 1;
        self.pending = Some((id, what));
        self.actions.push_back(Action::Request(id, request));
    }

    fn random_token(&mut self, bytes: usize) -> String {
        let mut buf = vec![0u8; bytes];
        self.rng.fill_bytes(&mut buf);
        let mut s = String::with_capacity(bytes * 2);
        for b in buf {
            use std::fmt::Write as _;
            let _ = write!(s, "{b:02x}");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c2s_with_shaper(rate: u64, now: Instant) -> C2s {
        let mut config = C2sConfig::new(vec!["localhost".into()]);
        config.shaper_max_rate = Some(rate);
        let rng = Box::new(rand_core::OsRng);
        C2s::new(1, Arc::new(config), rng, now)
    }

    fn pauses(c2s: &mut C2s) -> Vec<Instant> {
        std::iter::from_fn(|| c2s.poll_action())
            .filter_map(|a| match a {
                Action::PauseReading(until) => Some(until),
                _ => None,
            })
            .collect()
    }

    /// A shaped connection reading faster than `max_rate` is told to stop reading for
    /// as long as its excess takes at that rate.
    #[test]
    fn shaper_pauses_reading_in_proportion_to_the_excess() {
        let t0 = Instant::now();
        let mut c2s = c2s_with_shaper(100, t0);
        // 100 bytes of burst are free.
        c2s.handle_bytes(&[b' '; 100], t0);
        assert!(pauses(&mut c2s).is_empty());
        // 50 bytes more at the same instant cost half a second.
        c2s.handle_bytes(&[b' '; 50], t0);
        assert_eq!(pauses(&mut c2s), vec![t0 + Duration::from_millis(500)]);
        // Reading at the allowed rate afterwards needs no pause.
        c2s.handle_bytes(&[b' '; 10], t0 + Duration::from_millis(600));
        assert!(pauses(&mut c2s).is_empty());
    }

    /// RFC 6120 §6.4.4: `<abort/>` while the credentials are being looked up ends the
    /// exchange with `<aborted/>`, and the late storage answer changes nothing.
    #[test]
    fn abort_during_credential_lookup() {
        let t0 = Instant::now();
        let config = C2sConfig::new(vec!["localhost".into()]);
        let mut c2s = C2s::new(1, Arc::new(config), Box::new(rand_core::OsRng), t0);
        c2s.handle_bytes(
            b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' \
              to='localhost' version='1.0'><auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' \
              mechanism='SCRAM-SHA-256'>biwsbj1qdWxpZXQscj1hYmM=</auth>",
            t0,
        );
        let actions: Vec<Action> = std::iter::from_fn(|| c2s.poll_action()).collect();
        let request = actions.iter().find_map(|a| match a {
            Action::Request(id, _) => Some(*id),
            _ => None,
        });
        let id = request.expect("a credentials lookup");
        c2s.handle_bytes(b"<abort xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>", t0);
        let out: Vec<u8> = std::iter::from_fn(|| c2s.poll_action())
            .filter_map(|a| match a {
                Action::Transmit(b) => Some(b),
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><aborted/></failure>"
        );
        c2s.handle_reply(id, StorageReply::Credentials(None), t0);
        assert!(std::iter::from_fn(|| c2s.poll_action()).all(|a| !matches!(a, Action::Transmit(_))));
    }

    fn transmitted(c2s: &mut C2s) -> (String, Option<RequestId>) {
        let mut out = Vec::new();
        let mut request = None;
        while let Some(a) = c2s.poll_action() {
            match a {
                Action::Transmit(b) => out.extend(b),
                Action::Request(id, _) => request = Some(id),
                _ => {}
            }
        }
        (String::from_utf8(out).unwrap(), request)
    }

    const OPEN_AND_AUTH: &[u8] = b"<stream:stream xmlns='jabber:client' \
        xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>\
        <auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>biwsbj1qdWxpZXQscj1hYmM=</auth>";

    /// A SCRAM exchange for an unknown user with a made-up proof: `not-authorized`.
    fn fail_login(c2s: &mut C2s, t: Instant) -> String {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        c2s.handle_bytes(OPEN_AND_AUTH, t);
        let (_, request) = transmitted(c2s);
        c2s.handle_reply(
            request.expect("credentials lookup"),
            StorageReply::Credentials(None),
            t,
        );
        let (out, _) = transmitted(c2s);
        let challenge = out
            .split("<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>")
            .nth(1)
            .unwrap();
        let challenge = String::from_utf8(b64.decode(challenge.split('<').next().unwrap()).unwrap()).unwrap();
        let nonce = challenge.split(',').find_map(|f| f.strip_prefix("r=")).unwrap();
        let last = format!("c=biws,r={nonce},p={}", b64.encode([7u8; 32]));
        c2s.handle_bytes(
            format!(
                "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</response>",
                b64.encode(last)
            )
            .as_bytes(),
            t,
        );
        transmitted(c2s).0
    }

    /// Failures from one address on several connections add up server-wide; once
    /// they reach the limit, another connection from that address gets
    /// `temporary-auth-failure` without its credentials being looked at, while
    /// other addresses go on; after the wait, checks resume.
    #[test]
    fn failed_authentications_from_one_address_make_it_wait_on_every_connection() {
        use crate::sasl::backoff::{BackoffConfig, SharedAuthBackoff};
        let t0 = Instant::now();
        let mut config = C2sConfig::new(vec!["localhost".into()]);
        config.auth_backoff = Some(Arc::new(SharedAuthBackoff::new(BackoffConfig {
            after_failures: 2,
            initial_delay: Duration::from_secs(10),
            max_delay: Duration::from_secs(60),
        })));
        let config = Arc::new(config);
        let attacker: IpAddr = "192.0.2.1".parse().unwrap();
        let connect = |id, peer: IpAddr| {
            let mut c2s = C2s::new(id, config.clone(), Box::new(rand_core::OsRng), t0);
            c2s.set_peer(peer);
            c2s
        };
        for id in 1..=2 {
            let out = fail_login(&mut connect(id, attacker), t0);
            assert!(out.contains("<not-authorized/>"), "{out}");
        }
        let mut third = connect(3, attacker);
        third.handle_bytes(OPEN_AND_AUTH, t0 + Duration::from_secs(1));
        let (out, request) = transmitted(&mut third);
        assert!(
            out.contains(
                "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><temporary-auth-failure/></failure>"
            ),
            "{out}"
        );
        assert_eq!(request, None, "the attempt is not checked");
        // Someone else is not affected.
        let mut other = connect(4, "192.0.2.2".parse().unwrap());
        other.handle_bytes(OPEN_AND_AUTH, t0 + Duration::from_secs(1));
        assert!(transmitted(&mut other).1.is_some());
        // After the wait, the address is checked again.
        third.handle_bytes(
            b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>biwsbj1qdWxpZXQscj1hYmM=</auth>",
            t0 + Duration::from_secs(10),
        );
        assert!(transmitted(&mut third).1.is_some());
    }

    #[test]
    fn unshaped_connections_never_pause() {
        let t0 = Instant::now();
        let config = C2sConfig::new(vec!["localhost".into()]);
        let mut c2s = C2s::new(1, Arc::new(config), Box::new(rand_core::OsRng), t0);
        c2s.handle_bytes(&[b' '; 100_000], t0);
        assert!(pauses(&mut c2s).is_empty());
    }
}
