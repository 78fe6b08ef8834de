//! One connection's engine state machine, as every adapter drives it: C2S, incoming
//! and outgoing S2S, an external component, an HTTP connection (which may carry a
//! C2S stream over WebSocket) or a BOSH session, behind one driver.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use meerkat_engine::federation::{DialbackRequest, DomainPair, FederationInput};
use meerkat_engine::http::{
    BoshAction, BoshBody, BoshReply, BoshSession, HttpAction, HttpConfig, HttpConnection, HttpRef,
};
use meerkat_engine::hub::{shard_of, HubInput, RequestId, SessionId};
use meerkat_engine::instrument::ConnectionType;
use meerkat_engine::storage::{StorageReply, StorageRequest};
use meerkat_engine::stream::c2s::{C2s, C2sConfig, SmResumed};
use meerkat_engine::stream::component::{Component, ComponentConfig};
use meerkat_engine::stream::s2s_in::{S2sIn, S2sInConfig};
use meerkat_engine::stream::s2s_out::{DnsAnswer, DnsQuery, S2sOut, S2sOutConfig};
use meerkat_engine::stream::{Action, Connection, ConnectionInput};
use meerkat_engine::{Element, Jid};
use rand_core::OsRng;

use crate::bosh::{BoshDelivery, BoshReplyTo, BoshSessions, BoshStart};
use crate::federation::FedMsg;
use crate::metrics::Transport;
use crate::resolver::Resolver;
use crate::storage::{StorageExecutor, SubmitStorage};
use crate::{HubMsg, Metrics, Shards, Sink};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A fresh connection id, unique for the life of the process (whatever the runtime
/// and thread).
pub fn next_session_id() -> SessionId {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// What reaches a connection from elsewhere: its hub shard, the storage executor,
/// the shutdown. Payloads are boxed so that a queue of them is small per idle session.
#[derive(Debug)]
pub enum ToSession {
    /// A stanza from the hub.
    Routed(Box<Element>),
    /// A serialised stanza from the hub (offline messages).
    RoutedRaw(Box<str>),
    /// Replaced by a newer session with the same full JID.
    Replaced,
    /// A storage answer.
    Reply(Box<(RequestId, StorageReply)>),
    /// The server is stopping.
    Shutdown,
    /// XEP-0198: the session this connection asked to resume is now its own.
    Resumed(Box<SmResumed>),
    /// XEP-0198: there was no session to resume.
    ResumeFailed,
    /// XEP-0198: a new connection resumes this session; hand it over.
    Takeover,
    /// Something the federation router or the resolver says to this connection.
    Federation(Box<FederationReply>),
    /// XEP-0124: a request for this BOSH session.
    Bosh(Box<BoshDelivery>),
    /// XEP-0124: a BOSH session's answer to the request this HTTP connection read.
    BoshReply(Box<BoshReply>),
}

impl ToSession {
    /// The engine input this message carries; `None` for the BOSH plumbing, which
    /// the session handles itself.
    fn into_input(self) -> Option<ConnectionInput> {
        Some(match self {
            ToSession::Routed(stanza) => ConnectionInput::Routed(*stanza),
            ToSession::RoutedRaw(xml) => ConnectionInput::RoutedRaw(xml.into()),
            ToSession::Replaced => ConnectionInput::Replaced,
            ToSession::Reply(reply) => {
                let (id, reply) = *reply;
                ConnectionInput::Reply(id, reply)
            }
            ToSession::Shutdown => ConnectionInput::Shutdown,
            ToSession::Resumed(resumed) => ConnectionInput::Resumed(resumed),
            ToSession::ResumeFailed => ConnectionInput::ResumeFailed,
            ToSession::Takeover => ConnectionInput::Takeover,
            ToSession::Federation(reply) => match *reply {
                FederationReply::ComponentAnswer(a) => ConnectionInput::ComponentAnswer(a),
                FederationReply::Verify(r) => ConnectionInput::Verify(r),
                FederationReply::Verified(r, v) => ConnectionInput::Verified(r, v),
                FederationReply::Resolved(a) => ConnectionInput::Resolved(a),
                FederationReply::Connected(c) => ConnectionInput::Connected(c),
            },
            ToSession::Bosh(delivery) => {
                // Only a BOSH session takes requests.
                (delivery.reply_to)(BoshReply::terminate("item-not-found"));
                return None;
            }
            ToSession::BoshReply(_) => return None,
        })
    }
}

/// What the federation router (or the DNS resolver) tells one S2S or component
/// connection.
#[derive(Debug)]
pub enum FederationReply {
    /// A component's registration was accepted or refused.
    ComponentAnswer(bool),
    /// An outgoing stream is asked to send this dialback verification.
    Verify(DialbackRequest),
    /// An incoming stream gets the answer to its verification.
    Verified(DialbackRequest, bool),
    /// The answer to an outgoing stream's DNS query.
    Resolved(DnsAnswer),
    /// The TCP connect an outgoing stream asked for succeeded (or not).
    Connected(bool),
}

/// What the adapter must do for the session, in order.
#[derive(Debug)]
pub enum Effect {
    /// Write these bytes to the socket.
    Write(Vec<u8>),
    /// The session just bound (or asks to resume a session): register its mailbox
    /// with hub shard `shard` (before the `Hub` effect that follows, which carries
    /// the bind or the resumption).
    Attach {
        /// The shard of the bound user.
        shard: usize,
    },
    /// Send `input` to hub shard `shard`.
    Hub {
        /// The shard of the session's user.
        shard: usize,
        /// The input.
        input: HubInput,
    },
    /// Submit a storage request; its answer comes back as [`ToSession::Reply`].
    Storage {
        /// The request's id.
        id: RequestId,
        /// The request.
        request: StorageRequest,
    },
    /// Call [`Session::timeout`] at this instant (replaces any earlier timer).
    Timer(Instant),
    /// Stop reading from the socket until this instant (the shaper).
    PauseReading(Instant),
    /// Close the socket; the session is over.
    Close,
    /// Send this input to the federation router (registering the session's mailbox
    /// with it first, once).
    Federation(FederationInput),
    /// Resolve this DNS query; the answer comes back as
    /// [`FederationReply::Resolved`].
    Resolve(DnsQuery),
    /// Open the socket to this address (outgoing S2S); the result comes back as
    /// [`FederationReply::Connected`].
    Connect(SocketAddr),
    /// Pass this BOSH request to its session (or start one).
    Bosh(Box<BoshBody>),
}

/// The engine machine a [`Session`] drives. A stream over TCP, the common case,
/// stays inline (no indirection on its per-byte path); the others are boxed.
#[allow(clippy::large_enum_variant)]
enum Machine {
    /// A C2S, S2S or component stream over TCP.
    Stream(Connection),
    /// An HTTP connection (which may carry a C2S stream over WebSocket).
    Http(Box<HttpConnection>),
    /// A BOSH session (a C2S stream over BOSH requests).
    Bosh(Box<BoshSession>),
}

/// What the metrics count a session as while it is open.
#[derive(Debug, Clone, Copy)]
struct Counted {
    connection_type: ConnectionType,
    /// For C2S: how it reaches the server.
    transport: Option<Transport>,
}

/// A connection: the engine's state machine plus what every runtime needs to know
/// about it (its hub shard once bound, metrics, BOSH plumbing). Feed it with the
/// `on_*` methods, then drain [`Session::next_effect`] (or [`Session::next_io`])
/// until `None`.
pub struct Session {
    id: SessionId,
    machine: Machine,
    shards: usize,
    shard: Option<usize>,
    /// The bind that follows an [`Effect::Attach`] (boxed: an effect is large, and
    /// this is empty but for an instant per session).
    pending: Option<Box<Effect>>,
    metrics: Arc<Metrics>,
    /// The federation router knows this session's mailbox.
    federation_attached: bool,
    /// What the metrics count as open for this session, until it finishes.
    counted: Option<Counted>,
    /// HTTP connections and BOSH sessions: the live BOSH sessions, and for a BOSH
    /// session where the answers to its held requests go.
    bosh: Option<Box<BoshLinks>>,
}

/// The BOSH plumbing of an HTTP connection or a BOSH session.
struct BoshLinks {
    sessions: BoshSessions,
    replies: HashMap<HttpRef, BoshReplyTo>,
    next_ref: HttpRef,
}

impl Session {
    /// A new connection `id` on a listener with `config`, in a server with `shards`
    /// hub shards.
    pub fn new(
        id: SessionId,
        config: Arc<C2sConfig>,
        shards: usize,
        metrics: Arc<Metrics>,
        now: Instant,
    ) -> Self {
        let mut c2s = C2s::new(id, config, Box::new(OsRng), now);
        c2s.set_wall_clock(now, std::time::SystemTime::now());
        let machine = Machine::Stream(Connection::C2s(c2s));
        let mut session = Self::with_machine(id, machine, shards, metrics);
        session.count(ConnectionType::C2s, Some(Transport::Tcp));
        session
    }

    /// A new connection `id` on an HTTP listener with `config`; `bosh` finds the
    /// live BOSH sessions.
    pub fn http(
        id: SessionId,
        config: Arc<HttpConfig>,
        shards: usize,
        metrics: Arc<Metrics>,
        bosh: BoshSessions,
        now: Instant,
    ) -> Self {
        let mut http = HttpConnection::new(id, config, Box::new(OsRng), now);
        http.set_wall_clock(now, std::time::SystemTime::now());
        let mut session = Self::with_machine(id, Machine::Http(Box::new(http)), shards, metrics);
        session.bosh = Some(Box::new(BoshLinks {
            sessions: bosh,
            replies: HashMap::new(),
            next_ref: 0,
        }));
        session
    }

    /// A new BOSH session `id` created by `start`; it answers the creation request
    /// at once (drain its effects). The caller registers its mailbox under
    /// `start.sid` in `bosh` first.
    pub fn bosh(
        id: SessionId,
        start: BoshStart,
        shards: usize,
        metrics: Arc<Metrics>,
        bosh: BoshSessions,
        now: Instant,
    ) -> Self {
        let BoshStart {
            sid,
            config,
            delivery,
            peer,
        } = start;
        let mut replies = HashMap::new();
        replies.insert(0, delivery.reply_to);
        let mut machine = BoshSession::new(
            id,
            sid,
            config.c2s.clone(),
            config.bosh.clone(),
            Box::new(OsRng),
            delivery.body,
            0,
            now,
            std::time::SystemTime::now(),
        );
        if let Some(peer) = peer {
            machine.with_c2s(now, |c2s| c2s.set_peer(peer));
        }
        let mut session = Self::with_machine(id, Machine::Bosh(Box::new(machine)), shards, metrics);
        session.count(ConnectionType::C2s, Some(Transport::Bosh));
        session.bosh = Some(Box::new(BoshLinks {
            sessions: bosh,
            replies,
            next_ref: 1,
        }));
        session
    }

    /// An incoming S2S connection.
    pub fn s2s_in(
        id: SessionId,
        config: Arc<S2sInConfig>,
        shards: usize,
        metrics: Arc<Metrics>,
        now: Instant,
    ) -> Self {
        let machine = Machine::Stream(Connection::S2sIn(S2sIn::new(id, config, Box::new(OsRng), now)));
        let mut session = Self::with_machine(id, machine, shards, metrics);
        session.count(ConnectionType::S2s, None);
        session
    }

    /// An outgoing S2S connection for `pair`, opened by the federation router. It
    /// starts without a socket: its first effects are DNS queries and a connect.
    pub fn s2s_out(
        id: SessionId,
        pair: DomainPair,
        config: Arc<S2sOutConfig>,
        shards: usize,
        metrics: Arc<Metrics>,
        now: Instant,
    ) -> Self {
        let machine = Connection::S2sOut(Box::new(S2sOut::new(id, pair, config, Box::new(OsRng), now)));
        let mut session = Self::with_machine(id, Machine::Stream(machine), shards, metrics);
        session.count(ConnectionType::S2s, None);
        // The router registered its mailbox when it opened it.
        session.federation_attached = true;
        session
    }

    /// An external component connection.
    pub fn component(
        id: SessionId,
        config: Arc<ComponentConfig>,
        shards: usize,
        metrics: Arc<Metrics>,
        now: Instant,
    ) -> Self {
        let machine = Connection::Component(Component::new(id, config, Box::new(OsRng), now));
        let mut session = Self::with_machine(id, Machine::Stream(machine), shards, metrics);
        session.count(ConnectionType::Component, None);
        session
    }

    fn with_machine(id: SessionId, machine: Machine, shards: usize, metrics: Arc<Metrics>) -> Self {
        Self {
            id,
            machine,
            shards: shards.max(1),
            shard: None,
            pending: None,
            metrics,
            federation_attached: false,
            counted: None,
            bosh: None,
        }
    }

    /// Counts the session open in the metrics until [`Session::finish`].
    fn count(&mut self, connection_type: ConnectionType, transport: Option<Transport>) {
        self.metrics.connection(connection_type, true);
        if let Some(t) = transport {
            self.metrics.transport(t, true);
        }
        self.counted = Some(Counted {
            connection_type,
            transport,
        });
    }

    /// The BOSH session id, for a BOSH session.
    pub fn bosh_sid(&self) -> Option<&str> {
        match &self.machine {
            Machine::Bosh(b) => Some(b.sid()),
            _ => None,
        }
    }

    /// The connection's id.
    pub fn id(&self) -> SessionId {
        self.id
    }

    /// The hub shard of the bound user, once bound.
    pub fn shard(&self) -> Option<usize> {
        self.shard
    }

    /// True for a connection that the federation router routes to (components,
    /// incoming and outgoing S2S).
    pub fn is_federated(&self) -> bool {
        matches!(&self.machine, Machine::Stream(c) if c.is_federated())
    }

    /// True for an HTTP connection, the only kind that yields [`Io::StartBosh`]: its
    /// task keeps what a new BOSH session's task needs, the others do not.
    pub fn may_start_bosh(&self) -> bool {
        matches!(&self.machine, Machine::Http(_))
    }

    /// The peer's address (accepted connections), for the checks made per
    /// address.
    pub fn set_peer(&mut self, peer: std::net::IpAddr) {
        match &mut self.machine {
            Machine::Stream(c) => c.set_peer(peer),
            Machine::Http(http) => http.set_peer(peer),
            Machine::Bosh(bosh) => bosh.with_c2s(Instant::now(), |c2s| c2s.set_peer(peer)),
        }
    }

    /// Bytes read from the socket.
    pub fn on_bytes(&mut self, bytes: &[u8], now: Instant) {
        match &mut self.machine {
            Machine::Stream(c) => c.handle_bytes(bytes, now),
            Machine::Http(http) => {
                if http.is_websocket() {
                    self.metrics
                        .transport_bytes(Transport::WebSocket, true, bytes.len());
                }
                http.handle_bytes(bytes, now)
            }
            Machine::Bosh(_) => {}
        }
    }

    /// The last timer set by [`Effect::Timer`] fired.
    pub fn on_timeout(&mut self, now: Instant) {
        match &mut self.machine {
            Machine::Stream(c) => c.handle_timeout(now),
            Machine::Http(http) => http.handle_timeout(now),
            Machine::Bosh(bosh) => bosh.handle_timeout(now),
        }
    }

    /// The socket closed or failed (for a BOSH session: its task ends).
    pub fn on_closed(&mut self, now: Instant) {
        match &mut self.machine {
            Machine::Stream(c) => c.handle_closed(now),
            Machine::Http(http) => http.handle_closed(now),
            Machine::Bosh(bosh) => bosh.with_c2s(now, |c2s| c2s.handle_closed(now)),
        }
    }

    /// Ends the stream with `error` and `text` because a limit of the server was
    /// reached (too many connections, output the peer does not read); drain the
    /// effects as usual. An HTTP connection without a stream just closes.
    pub fn end_with_error(&mut self, error: meerkat_engine::stream::StreamError, text: String, now: Instant) {
        let input = ConnectionInput::StreamError(error, text);
        match &mut self.machine {
            Machine::Stream(c) => c.handle_input(input, now),
            Machine::Http(http) if http.is_websocket() => {
                http.with_c2s(now, |c2s| c2s.handle_input(input, now))
            }
            Machine::Http(http) => http.handle_closed(now),
            Machine::Bosh(bosh) => bosh.with_c2s(now, |c2s| c2s.handle_input(input, now)),
        }
    }

    /// The socket connect asked for by [`Io::Connect`] ended: up (`true`) or not.
    pub fn on_connected(&mut self, connected: bool, now: Instant) {
        if let Machine::Stream(c) = &mut self.machine {
            c.handle_input(ConnectionInput::Connected(connected), now)
        }
    }

    /// A message from the hub, storage, the federation router, a BOSH peer or the
    /// shutdown.
    pub fn on_message(&mut self, msg: ToSession, now: Instant) {
        match &mut self.machine {
            Machine::Stream(c) => {
                if let Some(input) = msg.into_input() {
                    c.handle_input(input, now);
                }
            }
            Machine::Http(http) => match msg {
                ToSession::BoshReply(reply) => {
                    self.metrics
                        .transport_bytes(Transport::Bosh, false, reply.body.len());
                    http.handle_bosh_reply(*reply, now)
                }
                ToSession::Shutdown => http.handle_shutdown(now),
                msg => {
                    if let Some(input) = msg.into_input() {
                        http.with_c2s(now, |c2s| c2s.handle_input(input, now));
                    }
                }
            },
            Machine::Bosh(bosh) => match msg {
                ToSession::Bosh(delivery) => match &mut self.bosh {
                    Some(links) => {
                        let to = links.next_ref;
                        links.next_ref += 1;
                        links.replies.insert(to, delivery.reply_to);
                        bosh.handle_request(delivery.body, to, now);
                    }
                    None => (delivery.reply_to)(BoshReply::terminate("item-not-found")),
                },
                msg => {
                    if let Some(input) = msg.into_input() {
                        bosh.with_c2s(now, |c2s| c2s.handle_input(input, now));
                    }
                }
            },
        }
    }

    /// The next thing to do; instrumentation is recorded here, not passed on.
    pub fn next_effect(&mut self) -> Option<Effect> {
        if let Some(effect) = self.pending.take() {
            return Some(*effect);
        }
        loop {
            let action = match &mut self.machine {
                Machine::Stream(c) => c.poll_action()?,
                Machine::Http(http) => match http.poll_action()? {
                    HttpAction::Transmit(bytes) => {
                        if http.is_websocket() {
                            self.metrics
                                .transport_bytes(Transport::WebSocket, false, bytes.len());
                        }
                        return Some(Effect::Write(bytes));
                    }
                    HttpAction::SetTimer(at) => return Some(Effect::Timer(at)),
                    HttpAction::PauseReading(until) => return Some(Effect::PauseReading(until)),
                    HttpAction::Close => return Some(Effect::Close),
                    HttpAction::Bosh(body) => {
                        self.metrics.http_request();
                        return Some(Effect::Bosh(body));
                    }
                    HttpAction::RenderMetrics => {
                        self.metrics.http_request();
                        let text = self.metrics.render();
                        http.handle_metrics(text, Instant::now());
                        continue;
                    }
                    HttpAction::Upgraded => {
                        self.metrics.http_request();
                        self.count(ConnectionType::C2s, Some(Transport::WebSocket));
                        tracing::Span::current().record("transport", "websocket");
                        continue;
                    }
                    HttpAction::Stream(action) => action,
                },
                Machine::Bosh(bosh) => match bosh.poll_action()? {
                    BoshAction::Respond { to, reply } => {
                        let reply_to = self.bosh.as_mut().and_then(|l| l.replies.remove(&to));
                        if let Some(reply_to) = reply_to {
                            reply_to(reply);
                        }
                        continue;
                    }
                    BoshAction::SetTimer(at) => return Some(Effect::Timer(at)),
                    BoshAction::Close => return Some(Effect::Close),
                    BoshAction::Stream(action) => action,
                },
            };
            let effect = match action {
                Action::Transmit(bytes) => Effect::Write(bytes),
                Action::Hub(HubInput::External(stanza)) => {
                    // A stanza from outside goes to the shard of its recipient.
                    let shard = stanza
                        .attr("to")
                        .and_then(|t| Jid::parse(t).ok())
                        .map_or(0, |to| shard_of(&to.bare(), self.shards));
                    Effect::Hub {
                        shard,
                        input: HubInput::External(stanza),
                    }
                }
                Action::Hub(input) => {
                    let user = match &input {
                        HubInput::Bind { jid, .. } => {
                            tracing::Span::current().record("jid", tracing::field::display(jid));
                            Some(jid.bare())
                        }
                        HubInput::Resume { user, .. } => Some(user.clone()),
                        _ => None,
                    };
                    if let Some(user) = user {
                        if self.shard.is_none() {
                            let shard = shard_of(&user, self.shards);
                            self.shard = Some(shard);
                            self.pending = Some(Box::new(Effect::Hub { shard, input }));
                            return Some(Effect::Attach { shard });
                        }
                    }
                    Effect::Hub {
                        shard: self.shard.unwrap_or(0),
                        input,
                    }
                }
                Action::Request(id, request) => Effect::Storage { id, request },
                Action::SetTimer(at) => Effect::Timer(at),
                Action::PauseReading(until) => Effect::PauseReading(until),
                Action::Instrument(event) => {
                    self.metrics.record(&event);
                    continue;
                }
                Action::Close => Effect::Close,
                Action::Federation(input) => Effect::Federation(input),
                Action::Resolve(query) => Effect::Resolve(query),
                Action::Connect(addr) => Effect::Connect(addr),
            };
            return Some(effect);
        }
    }
}

/// How a session reaches the rest of the server in a runtime whose hub shards are
/// reached through `S`, whose session mailbox is `M` and whose federation router is
/// reached through `F`.
pub struct Links<S, M, X = StorageExecutor, F = NoFederation> {
    /// The hub shards' senders.
    pub shards: Shards<S>,
    /// The storage executor.
    pub storage: X,
    /// This session's own mailbox (given to its hub shard and to storage).
    pub mailbox: M,
    /// The federation router and the DNS resolver, when the server has S2S or
    /// components.
    pub federation: Option<(F, Resolver)>,
}

/// The federation sink of a runtime without federation (never called).
#[derive(Clone)]
pub struct NoFederation;

impl<M: Send + 'static> Sink<FedMsg<M>> for NoFederation {
    fn send(&self, _msg: FedMsg<M>) {}
}

/// The effects only the adapter can carry out: socket and timers.
#[derive(Debug)]
pub enum Io {
    /// Write these bytes to the socket.
    Write(Vec<u8>),
    /// Call [`Session::on_timeout`] at this instant (replaces any earlier timer).
    Timer(Instant),
    /// Stop reading from the socket until this instant (the shaper).
    PauseReading(Instant),
    /// Close the socket; the session is over (call [`Session::finish`]).
    Close,
    /// Connect the socket to this address (outgoing S2S), then tell the session with
    /// [`FederationReply::Connected`].
    Connect(SocketAddr),
    /// Start a BOSH session: register a mailbox under `sid`, spawn a task driving
    /// [`Session::bosh`] with it.
    StartBosh(Box<BoshStart>),
}

impl Session {
    /// The next socket or timer effect; hub and storage effects on the way are sent
    /// through `links`.
    pub fn next_io<S, M, X, F>(&mut self, links: &Links<S, M, X, F>) -> Option<Io>
    where
        S: Sink<HubMsg<M>>,
        M: Sink<ToSession>,
        X: SubmitStorage,
        F: Sink<FedMsg<M>>,
    {
        loop {
            match self.next_effect()? {
                Effect::Write(bytes) => return Some(Io::Write(bytes)),
                Effect::Timer(at) => return Some(Io::Timer(at)),
                Effect::PauseReading(until) => return Some(Io::PauseReading(until)),
                Effect::Close => return Some(Io::Close),
                Effect::Connect(addr) => return Some(Io::Connect(addr)),
                Effect::Bosh(body) => {
                    if let Some(start) = self.route_bosh(*body, links.mailbox.clone()) {
                        return Some(Io::StartBosh(Box::new(start)));
                    }
                }
                Effect::Federation(input) => {
                    if let Some((federation, _)) = &links.federation {
                        if !self.federation_attached {
                            self.federation_attached = true;
                            federation.send(FedMsg::Attach(self.id, links.mailbox.clone()));
                        }
                        federation.send(FedMsg::Input(input));
                    }
                }
                Effect::Resolve(query) => {
                    let mailbox = links.mailbox.clone();
                    let answer_to = move |answer| {
                        mailbox.send(ToSession::Federation(Box::new(FederationReply::Resolved(answer))))
                    };
                    match &links.federation {
                        Some((_, resolver)) => resolver.resolve(query, Box::new(answer_to)),
                        None => answer_to(DnsAnswer::Failed),
                    }
                }
                Effect::Attach { shard } => {
                    links.shards[shard].send(HubMsg::Attach(self.id, links.mailbox.clone()))
                }
                Effect::Hub { shard, input } => links.shards[shard].send(HubMsg::Input(input)),
                Effect::Storage { id: rid, request } => {
                    let mailbox = links.mailbox.clone();
                    let reply_to = move |rid, reply| mailbox.send(ToSession::Reply(Box::new((rid, reply))));
                    links.storage.submit(rid, request, Box::new(reply_to));
                }
            }
        }
    }

    /// Passes a BOSH request read by this HTTP connection to its session, whose
    /// answer comes back through `mailbox`; a request without a `sid` creates a
    /// session, which the adapter starts.
    fn route_bosh<M: Sink<ToSession>>(&mut self, body: BoshBody, mailbox: M) -> Option<BoshStart> {
        let reply_to: BoshReplyTo =
            Box::new(move |reply| mailbox.send(ToSession::BoshReply(Box::new(reply))));
        self.metrics
            .transport_bytes(Transport::Bosh, true, body.payload_bytes);
        let delivery = BoshDelivery { body, reply_to };
        let (Machine::Http(http), Some(links)) = (&self.machine, &self.bosh) else {
            (delivery.reply_to)(BoshReply::terminate("item-not-found"));
            return None;
        };
        match delivery.body.sid().map(str::to_string) {
            Some(sid) => {
                if let Err(ToSession::Bosh(d)) =
                    links.sessions.deliver(&sid, ToSession::Bosh(Box::new(delivery)))
                {
                    tracing::debug!(sid, "BOSH request for an unknown session");
                    (d.reply_to)(BoshReply::terminate("item-not-found"));
                }
                None
            }
            None => Some(BoshStart {
                sid: BoshSessions::new_sid(),
                config: http.config().clone(),
                delivery,
                peer: http.peer(),
            }),
        }
    }

    /// A message found in the mailbox after [`Session::finish`]. A stanza the
    /// federation router gave an outgoing S2S connection that ended before writing it
    /// goes back to the router, which sends it over a new stream or bounces it
    /// (the router already heard that this connection closed).
    pub fn leftover<S, M, X, F>(&mut self, msg: ToSession, links: &Links<S, M, X, F>)
    where
        F: Sink<FedMsg<M>>,
    {
        if let (Machine::Stream(Connection::S2sOut(_)), ToSession::Routed(stanza), Some((federation, _))) =
            (&self.machine, msg, &links.federation)
        {
            federation.send(FedMsg::Input(FederationInput::Outbound(*stanza)));
        }
    }

    /// The connection is gone: whatever the session still has for its hub shard
    /// (the unbind) is sent, then the shard forgets its mailbox.
    pub fn finish<S, M, X, F>(&mut self, links: &Links<S, M, X, F>, now: Instant)
    where
        S: Sink<HubMsg<M>>,
        M: Sink<ToSession>,
        F: Sink<FedMsg<M>>,
    {
        self.on_closed(now);
        while let Some(effect) = self.next_effect() {
            match effect {
                Effect::Hub { shard, input } => links.shards[shard].send(HubMsg::Input(input)),
                Effect::Federation(input) => {
                    if let Some((federation, _)) = &links.federation {
                        federation.send(FedMsg::Input(input));
                    }
                }
                _ => {}
            }
        }
        if let Some(shard) = self.shard {
            links.shards[shard].send(HubMsg::Detach(self.id));
        }
        if let Some((federation, _)) = &links.federation {
            if self.federation_attached {
                federation.send(FedMsg::Detach(self.id));
            }
        }
        if let Some(counted) = self.counted.take() {
            self.metrics.connection(counted.connection_type, false);
            if let Some(t) = counted.transport {
                self.metrics.transport(t, false);
            }
        }
        if let Some(mut links) = self.bosh.take() {
            if let Machine::Bosh(bosh) = &self.machine {
                links.sessions.unregister(bosh.sid());
            }
            // Requests still waiting for this BOSH session hear it is gone.
            for (_, reply_to) in links.replies.drain() {
                reply_to(BoshReply::terminate("item-not-found"));
            }
        }
    }
}
