//! BOSH (XEP-0124) sessions carrying XMPP (XEP-0206): a session outlives the HTTP
//! requests and connections that carry it. It owns a C2S stream in
//! [`Framing::Message`] mode, keeps the requests the client lets it hold
//! (`hold`, answered when there is something to send or after `wait`), processes
//! requests in `rid` order (answering a retransmitted one with the same body), and
//! ends after `inactivity` (or a client's `pause`) without a request.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand_core::RngCore;

use crate::hub::SessionId;
use crate::ns;
use crate::stream::c2s::{C2s, C2sConfig, Framing, TransportSecurity};
use crate::stream::Action;
use crate::xml::{escape_attr, Element, ParseLimits, StreamEvent, StreamParser};

/// Which HTTP request an answer is for; the runtime's handle (opaque here).
pub type HttpRef = u64;

/// Session settings (MongooseIM's `[modules.mod_bosh]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoshConfig {
    /// `inactivity`: longest time without a request before the session ends.
    pub inactivity: Duration,
    /// `max_wait`: longest `wait` granted (how long a request is held).
    pub max_wait: Duration,
    /// `max_pause`: longest `pause` granted (XEP-0124 §10).
    pub max_pause: Duration,
}

impl Default for BoshConfig {
    fn default() -> Self {
        Self {
            inactivity: Duration::from_secs(30),
            max_wait: Duration::from_secs(60),
            max_pause: Duration::from_secs(120),
        }
    }
}

/// The protocol version we speak (XEP-0124 §7).
const BOSH_VERSION: &str = "1.11";

/// Most requests held at once, whatever the client asks.
const MAX_HOLD: usize = 2;

/// A parsed `<body/>` (XEP-0124 §4): its attributes and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoshBody {
    /// Attributes by qualified name.
    attrs: Vec<(String, String)>,
    /// Prefixes declared on the body (for `xmpp:restart`, `xmpp:version`).
    ns_decls: Vec<(String, String)>,
    /// The stanzas and other elements it carries.
    pub children: Vec<Element>,
    /// Bytes of those elements as received (for the transport's byte counters).
    pub payload_bytes: usize,
    /// Whether it came over TLS.
    pub secure: bool,
}

/// Why a request's body is not a BOSH `<body/>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BoshBodyError {
    /// Not well-formed, over the limits, or not complete.
    #[error("bad XML: {0}")]
    Xml(String),
    /// The root is not `<body xmlns='http://jabber.org/protocol/httpbind'>`.
    #[error("the root element must be an httpbind body")]
    NotABody,
}

impl BoshBody {
    /// Parses a request body; every child is limited to `max_stanza_size` bytes.
    pub fn parse(bytes: &[u8], max_stanza_size: usize) -> Result<Self, BoshBodyError> {
        let mut parser = StreamParser::new(ParseLimits { max_stanza_size });
        parser.feed(bytes);
        let xml = |e: crate::xml::XmlError| BoshBodyError::Xml(e.to_string());
        let header = match parser.next_event().map_err(xml)? {
            Some(StreamEvent::Header(h)) if h.name == "body" && h.name_ns == ns::HTTPBIND => h,
            Some(StreamEvent::Header(_)) => return Err(BoshBodyError::NotABody),
            _ => return Err(BoshBodyError::Xml("no body element".into())),
        };
        let mut children = Vec::new();
        let mut payload_bytes = 0;
        loop {
            match parser.next_event().map_err(xml)? {
                Some(StreamEvent::Element(el, size)) => {
                    payload_bytes += size;
                    children.push(el);
                }
                Some(StreamEvent::Close) => break,
                Some(StreamEvent::Header(_)) => return Err(BoshBodyError::NotABody),
                None => return Err(BoshBodyError::Xml("incomplete body".into())),
            }
        }
        Ok(Self {
            attrs: header.attrs,
            ns_decls: header.ns_decls,
            children,
            payload_bytes,
            secure: false,
        })
    }

    /// The value of the unprefixed attribute `name`.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of attribute `local` in the XEP-0206 namespace, whatever its prefix.
    fn xbosh_attr(&self, local: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| {
                n.split_once(':').is_some_and(|(prefix, l)| {
                    l == local
                        && self
                            .ns_decls
                            .iter()
                            .any(|(p, uri)| p == prefix && uri == ns::XBOSH)
                })
            })
            .map(|(_, v)| v.as_str())
    }

    /// The `sid` naming the session, absent in a session creation request.
    pub fn sid(&self) -> Option<&str> {
        self.attr("sid")
    }

    fn rid(&self) -> Option<u64> {
        self.attr("rid").and_then(|r| r.parse().ok())
    }

    fn seconds(&self, name: &str) -> Option<Duration> {
        self.attr(name)
            .and_then(|v| v.parse().ok())
            .map(Duration::from_secs)
    }
}

/// What answers one HTTP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoshReply {
    /// The HTTP status.
    pub status: u16,
    /// The `<body/>`.
    pub body: Vec<u8>,
}

impl BoshReply {
    /// XEP-0124 §17: the session is over, with a condition.
    pub fn terminate(condition: &str) -> Self {
        let body = format!(
            "<body xmlns='{}' type='terminate' condition='{condition}'/>",
            ns::HTTPBIND
        );
        Self {
            status: 200,
            body: body.into_bytes(),
        }
    }
}

/// An output of a [`BoshSession`], drained by the runtime until `None`.
// `Stream` carries an engine action inline, as `C2s::poll_action` returns it: the
// queue is drained at once, and boxing would cost an allocation per stanza.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum BoshAction {
    /// Answer this HTTP request.
    Respond {
        /// The request.
        to: HttpRef,
        /// The answer.
        reply: BoshReply,
    },
    /// Call [`BoshSession::handle_timeout`] at this instant (replaces any earlier).
    SetTimer(Instant),
    /// An action of the C2S stream (hub, storage, instrumentation).
    Stream(Action),
    /// The session is over: forget its `sid`. Nothing follows.
    Close,
}

/// A held request.
struct Held {
    rid: u64,
    to: HttpRef,
    deadline: Instant,
}

/// One BOSH session.
pub struct BoshSession {
    sid: String,
    config: Arc<BoshConfig>,
    c2s: C2s,
    wait: Duration,
    hold: usize,
    /// The highest `rid` processed.
    last_rid: u64,
    /// Requests that came ahead of their turn (XEP-0124 §14.1).
    ahead: BTreeMap<u64, (BoshBody, HttpRef)>,
    held: VecDeque<Held>,
    /// Elements for the client, in order.
    queue: Vec<Vec<u8>>,
    /// Recent answers by `rid`, for retransmitted requests (XEP-0124 §14.3).
    sent: VecDeque<(u64, Vec<u8>)>,
    /// The creation response (with the session's attributes) is sent.
    created: bool,
    /// The stream id, from the C2S stream's `<open/>`.
    authid: String,
    domain: String,
    inactivity: Duration,
    /// When the last held request was answered, if none is held now.
    idle_since: Option<Instant>,
    c2s_deadline: Option<Instant>,
    armed: Option<Instant>,
    /// The stream sent a stream error (the terminate condition).
    stream_error: bool,
    /// Why the session ends, once it does.
    terminating: Option<&'static str>,
    closed: bool,
    actions: VecDeque<BoshAction>,
}

impl BoshSession {
    /// A session created by `body` (the creation request, XEP-0124 §7), answered
    /// through `to`. `sid` is the runtime's fresh, unguessable session id; `wall`
    /// is the wall-clock time at `now` (FAST token expiry, see
    /// [`C2s::set_wall_clock`]).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: SessionId,
        sid: String,
        c2s_config: Arc<C2sConfig>,
        config: Arc<BoshConfig>,
        rng: Box<dyn RngCore + Send>,
        body: BoshBody,
        to: HttpRef,
        now: Instant,
        wall: std::time::SystemTime,
    ) -> Self {
        let security = body.secure.then(TransportSecurity::default);
        let mut c2s = C2s::framed(id, c2s_config, rng, now, security);
        c2s.set_wall_clock(now, wall);
        let wait = body
            .seconds("wait")
            .unwrap_or(config.max_wait)
            .min(config.max_wait);
        let hold = body
            .attr("hold")
            .and_then(|h| h.parse::<usize>().ok())
            .unwrap_or(1)
            .min(MAX_HOLD);
        let mut session = Self {
            sid,
            c2s,
            wait,
            hold,
            last_rid: 0,
            ahead: BTreeMap::new(),
            held: VecDeque::new(),
            queue: Vec::new(),
            sent: VecDeque::new(),
            created: false,
            authid: String::new(),
            domain: body.attr("to").unwrap_or_default().to_string(),
            inactivity: config.inactivity,
            config,
            idle_since: None,
            c2s_deadline: None,
            armed: None,
            stream_error: false,
            terminating: None,
            closed: false,
            actions: VecDeque::new(),
        };
        debug_assert_eq!(session.c2s.framing(), Framing::Message);
        let Some(rid) = body.rid() else {
            session.actions.push_back(BoshAction::Respond {
                to,
                reply: BoshReply::terminate("bad-request"),
            });
            session.closed = true;
            session.actions.push_back(BoshAction::Close);
            return session;
        };
        session.last_rid = rid;
        let open = open_element(&session.domain, body.attr("xml:lang"));
        session.c2s.handle_bytes(open.as_bytes(), now);
        session.held.push_back(Held {
            rid,
            to,
            deadline: now + wait,
        });
        session.pump(now);
        session
    }

    /// The session id.
    pub fn sid(&self) -> &str {
        &self.sid
    }

    /// A request for this session, answered through `to`.
    pub fn handle_request(&mut self, body: BoshBody, to: HttpRef, now: Instant) {
        if self.closed {
            return self.actions.push_back(BoshAction::Respond {
                to,
                reply: BoshReply::terminate("item-not-found"),
            });
        }
        let Some(rid) = body.rid() else {
            self.reply_now(to, BoshReply::terminate("bad-request"));
            return self.terminate("bad-request", now);
        };
        let window = (self.hold + 1) as u64;
        if rid <= self.last_rid {
            // XEP-0124 §14.3: a retransmission gets the answer it missed.
            match self.sent.iter().find(|(r, _)| *r == rid) {
                Some((_, body)) => {
                    let body = body.clone();
                    self.reply_now(to, BoshReply { status: 200, body });
                }
                None => {
                    self.reply_now(to, BoshReply::terminate("item-not-found"));
                    self.terminate("item-not-found", now);
                }
            }
            return self.pump(now);
        }
        if rid > self.last_rid + window {
            // XEP-0124 §14.2: beyond the window of requests in flight.
            self.reply_now(to, BoshReply::terminate("item-not-found"));
            self.terminate("item-not-found", now);
            return self.pump(now);
        }
        self.ahead.insert(rid, (body, to));
        while let Some((body, to)) = self.ahead.remove(&(self.last_rid + 1)) {
            self.last_rid += 1;
            self.process(body, to, now);
        }
        self.pump(now);
    }

    /// The deadline of the last `SetTimer` has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.armed = None;
        if self.closed {
            return;
        }
        if self.c2s_deadline.is_some_and(|d| d <= now) {
            self.c2s_deadline = None;
            self.c2s.handle_timeout(now);
        }
        while self.held.front().is_some_and(|h| h.deadline <= now) {
            // XEP-0124 §10: nothing to send within `wait`: an empty body.
            self.respond_oldest(now);
        }
        if self.held.is_empty() && self.idle_since.is_some_and(|t| now >= t + self.inactivity) {
            // XEP-0124 §10: the client went away; a stream-managed session stays
            // resumable (XEP-0198).
            tracing::info!(sid = %self.sid, "BOSH session inactive; ending it");
            self.c2s.handle_closed(now);
        }
        self.pump(now);
    }

    /// Runs `f` on the C2S stream (a message from the hub or storage for it, the
    /// shutdown, the end of the server), then carries out what it did.
    pub fn with_c2s(&mut self, now: Instant, f: impl FnOnce(&mut C2s)) {
        if !self.closed {
            f(&mut self.c2s);
            self.pump(now);
        }
    }

    /// The next action, `None` when there is nothing more to do now.
    pub fn poll_action(&mut self) -> Option<BoshAction> {
        self.actions.pop_front()
    }

    /// One request, in `rid` order (XEP-0124 §10, §12; XEP-0206 §5).
    fn process(&mut self, body: BoshBody, to: HttpRef, now: Instant) {
        self.idle_since = None;
        let rid = self.last_rid;
        for child in &body.children {
            self.c2s.handle_bytes(child.to_xml().as_bytes(), now);
        }
        if body.xbosh_attr("restart") == Some("true") {
            // XEP-0206 §5: the stream restarts (after SASL).
            let open = open_element(&self.domain, body.attr("xml:lang"));
            self.c2s.handle_bytes(open.as_bytes(), now);
        }
        self.held.push_back(Held {
            rid,
            to,
            deadline: now + self.wait,
        });
        if body.attr("type") == Some("terminate") {
            // XEP-0124 §12: the client ends the session, after its payload.
            let close = format!("<close xmlns='{}'/>", ns::FRAMING);
            self.c2s.handle_bytes(close.as_bytes(), now);
            if self.terminating.is_none() {
                self.terminate("", now);
            }
        } else if let Some(pause) = body.seconds("pause") {
            // XEP-0124 §10: a pause lengthens the inactivity allowed, once; every
            // held request is answered.
            self.inactivity = pause.min(self.config.max_pause);
            while !self.held.is_empty() {
                self.respond_oldest(now);
            }
        }
    }

    /// Carries out what the C2S stream did, then answers what can be answered.
    fn pump(&mut self, now: Instant) {
        while let Some(action) = self.c2s.poll_action() {
            match action {
                Action::Transmit(bytes) => {
                    if bytes.starts_with(b"<open ") {
                        self.authid = stream_id(&bytes).unwrap_or_default();
                    } else if bytes.starts_with(b"<close ") {
                        // The Close that follows ends the session.
                    } else {
                        if bytes.starts_with(b"<stream:error") {
                            self.stream_error = true;
                        }
                        self.queue.push(bytes);
                    }
                }
                Action::SetTimer(at) => self.c2s_deadline = Some(at),
                Action::Close => {
                    let condition = if self.stream_error {
                        "remote-stream-error"
                    } else {
                        ""
                    };
                    if self.terminating.is_none() {
                        self.terminate(condition, now);
                    }
                }
                Action::PauseReading(_) => {}
                other => self.actions.push_back(BoshAction::Stream(other)),
            }
        }
        if self.terminating.is_some() {
            while !self.held.is_empty() {
                self.respond_oldest(now);
            }
            if !self.closed {
                self.closed = true;
                self.actions.push_back(BoshAction::Close);
            }
            return;
        }
        if !self.queue.is_empty() && !self.held.is_empty() {
            self.respond_oldest(now);
        }
        // XEP-0124 §10: never more than `hold` requests waiting.
        while self.held.len() > self.hold {
            self.respond_oldest(now);
        }
        self.rearm(now);
    }

    /// Ends the session (once): held requests get the terminate body; the stream
    /// ends if it had not.
    fn terminate(&mut self, condition: &'static str, now: Instant) {
        if self.terminating.is_some() {
            return;
        }
        self.terminating = Some(condition);
        // What the stream still does (its unbind) is carried out by `pump`.
        self.c2s.handle_closed(now);
    }

    /// Answers the oldest held request with everything queued.
    fn respond_oldest(&mut self, now: Instant) {
        let Some(held) = self.held.pop_front() else { return };
        let body = self.body(self.terminating.filter(|_| self.held.is_empty()));
        self.sent.push_back((held.rid, body.clone()));
        while self.sent.len() > self.hold + 1 {
            self.sent.pop_front();
        }
        self.actions.push_back(BoshAction::Respond {
            to: held.to,
            reply: BoshReply { status: 200, body },
        });
        if self.held.is_empty() {
            self.idle_since = Some(now);
        }
    }

    /// An answer that is not held (errors, retransmissions).
    fn reply_now(&mut self, to: HttpRef, reply: BoshReply) {
        self.actions.push_back(BoshAction::Respond { to, reply });
    }

    /// The `<body/>` carrying the queued elements; the first carries the session's
    /// attributes (XEP-0124 §7, XEP-0206 §3), the last the termination.
    fn body(&mut self, terminate: Option<&str>) -> Vec<u8> {
        let mut head = String::with_capacity(256);
        head.push_str("<body xmlns='");
        head.push_str(ns::HTTPBIND);
        head.push('\'');
        if !self.created {
            self.created = true;
            head.push_str(&format!(
                " xmlns:xmpp='{}' xmlns:stream='{}' sid='{}' wait='{}' hold='{}' requests='{}' \
                 inactivity='{}' maxpause='{}' polling='2' ver='{BOSH_VERSION}' authid='{}' \
                 xmpp:version='1.0' xmpp:restartlogic='true'",
                ns::XBOSH,
                ns::STREAMS,
                self.sid,
                self.wait.as_secs(),
                self.hold,
                self.hold + 1,
                self.config.inactivity.as_secs(),
                self.config.max_pause.as_secs(),
                self.authid,
            ));
            head.push_str(" from='");
            escape_attr(&mut head, &self.domain);
            head.push('\'');
        }
        if let Some(condition) = terminate {
            head.push_str(" type='terminate'");
            if !condition.is_empty() {
                head.push_str(&format!(" condition='{condition}'"));
            }
        }
        let mut out = head.into_bytes();
        if self.queue.is_empty() {
            out.extend_from_slice(b"/>");
            return out;
        }
        out.push(b'>');
        for el in self.queue.drain(..) {
            out.extend_from_slice(&el);
        }
        out.extend_from_slice(b"</body>");
        out
    }

    fn rearm(&mut self, _now: Instant) {
        let inactive = if self.held.is_empty() {
            self.idle_since.map(|t| t + self.inactivity)
        } else {
            None
        };
        let next = [self.c2s_deadline, self.held.front().map(|h| h.deadline), inactive]
            .into_iter()
            .flatten()
            .min();
        if let Some(at) = next.filter(|n| Some(*n) != self.armed) {
            self.armed = Some(at);
            self.actions.push_back(BoshAction::SetTimer(at));
        }
    }
}

/// The RFC 7395 `<open/>` that stands for a BOSH session's stream header.
fn open_element(domain: &str, lang: Option<&str>) -> String {
    let mut open = format!("<open xmlns='{}' version='1.0' to='", ns::FRAMING);
    escape_attr(&mut open, domain);
    open.push('\'');
    if let Some(lang) = lang {
        open.push_str(" xml:lang='");
        escape_attr(&mut open, lang);
        open.push('\'');
    }
    open.push_str("/>");
    open
}

/// The `id` of the C2S stream's `<open/>`.
fn stream_id(open: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(open).ok()?;
    let start = text.find(" id='")? + 5;
    let end = text[start..].find('\'')? + start;
    Some(text[start..end].to_string())
}
