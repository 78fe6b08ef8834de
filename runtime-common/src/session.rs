//! One connection's engine state machine, as every adapter drives it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use std::collections::HashMap;

use meerkat_engine::http::{
    BoshAction, BoshBody, BoshReply, BoshSession, HttpAction, HttpConfig, HttpConnection, HttpRef,
};
use meerkat_engine::hub::{shard_of, HubInput, RequestId, SessionId};
use meerkat_engine::storage::{StorageReply, StorageRequest};
use meerkat_engine::stream::c2s::{C2s, C2sConfig, SmResumed};
use meerkat_engine::stream::Action;
use meerkat_engine::Element;
use rand_core::OsRng;

use crate::bosh::{BoshDelivery, BoshReplyTo, BoshSessions, BoshStart};
use crate::metrics::Transport;
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
    /// XEP-0124: a request for this BOSH session.
    Bosh(Box<BoshDelivery>),
    /// XEP-0124: a BOSH session's answer to the request this HTTP connection read.
    BoshReply(Box<BoshReply>),
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
    /// Pass this BOSH request to its session (or start one).
    Bosh(Box<BoshBody>),
}

/// The engine machine a [`Session`] drives. A TCP stream, the common case, stays
/// inline as before (no indirection on its per-byte path); the others are boxed.
#[allow(clippy::large_enum_variant)]
enum Machine {
    /// A C2S stream over TCP.
    C2s(C2s),
    /// An HTTP connection (which may carry a C2S stream over WebSocket).
    Http(Box<HttpConnection>),
    /// A BOSH session (a C2S stream over BOSH requests).
    Bosh(Box<BoshSession>),
}

/// A connection's engine machine (a C2S stream over TCP, an HTTP connection, or a
/// BOSH session) plus what every runtime needs to know about it (its hub shard once
/// bound, metrics, BOSH plumbing). Feed it with the `on_*` methods, then drain
/// [`Session::next_effect`] (or [`Session::next_io`]) until `None`.
pub struct Session {
    id: SessionId,
    machine: Machine,
    shards: usize,
    shard: Option<usize>,
    /// The bind that follows an [`Effect::Attach`].
    pending: Option<Effect>,
    metrics: Arc<Metrics>,
    /// The C2S transport counted open in the metrics, if any.
    counted: Option<Transport>,
    /// For HTTP connections and BOSH sessions: the live BOSH sessions.
    bosh: Option<BoshSessions>,
    /// For a BOSH session: where the answers to its held requests go.
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
        metrics.connection("c2s", true);
        metrics.transport(Transport::Tcp, true);
        let mut session = Self::with_machine(id, Machine::C2s(c2s), shards, metrics, None);
        session.counted = Some(Transport::Tcp);
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
        Self::with_machine(id, Machine::Http(Box::new(http)), shards, metrics, Some(bosh))
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
        } = start;
        let mut replies = HashMap::new();
        replies.insert(0, delivery.reply_to);
        let session = BoshSession::new(
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
        metrics.connection("c2s", true);
        metrics.transport(Transport::Bosh, true);
        let mut s = Self::with_machine(id, Machine::Bosh(Box::new(session)), shards, metrics, Some(bosh));
        s.counted = Some(Transport::Bosh);
        s.replies = replies;
        s.next_ref = 1;
        s
    }

    fn with_machine(
        id: SessionId,
        machine: Machine,
        shards: usize,
        metrics: Arc<Metrics>,
        bosh: Option<BoshSessions>,
    ) -> Self {
        Self {
            id,
            machine,
            shards: shards.max(1),
            shard: None,
            pending: None,
            metrics,
            counted: None,
            bosh,
            replies: HashMap::new(),
            next_ref: 0,
        }
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

    /// Bytes read from the socket.
    pub fn on_bytes(&mut self, bytes: &[u8], now: Instant) {
        match &mut self.machine {
            Machine::C2s(c2s) => c2s.handle_bytes(bytes, now),
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
            Machine::C2s(c2s) => c2s.handle_timeout(now),
            Machine::Http(http) => http.handle_timeout(now),
            Machine::Bosh(bosh) => bosh.handle_timeout(now),
        }
    }

    /// The socket closed or failed (for a BOSH session: the task ends).
    pub fn on_closed(&mut self, now: Instant) {
        match &mut self.machine {
            Machine::C2s(c2s) => c2s.handle_closed(now),
            Machine::Http(http) => http.handle_closed(now),
            Machine::Bosh(bosh) => bosh.with_c2s(now, |c2s| c2s.handle_closed(now)),
        }
    }

    /// A message from the hub, storage, a BOSH peer or the shutdown.
    pub fn on_message(&mut self, msg: ToSession, now: Instant) {
        match &mut self.machine {
            Machine::C2s(c2s) => deliver(c2s, msg, now),
            Machine::Http(http) => match msg {
                ToSession::BoshReply(reply) => {
                    self.metrics
                        .transport_bytes(Transport::Bosh, false, reply.body.len());
                    http.handle_bosh_reply(*reply, now)
                }
                ToSession::Shutdown => http.handle_shutdown(now),
                ToSession::Bosh(delivery) => (delivery.reply_to)(BoshReply::terminate("item-not-found")),
                msg => http.with_c2s(now, |c2s| deliver(c2s, msg, now)),
            },
            Machine::Bosh(bosh) => match msg {
                ToSession::Bosh(delivery) => {
                    let to = self.next_ref;
                    self.next_ref += 1;
                    self.replies.insert(to, delivery.reply_to);
                    bosh.handle_request(delivery.body, to, now);
                }
                ToSession::BoshReply(_) => {}
                msg => bosh.with_c2s(now, |c2s| deliver(c2s, msg, now)),
            },
        }
    }

    /// The next thing to do; instrumentation is recorded here, not passed on.
    pub fn next_effect(&mut self) -> Option<Effect> {
        if let Some(effect) = self.pending.take() {
            return Some(effect);
        }
        loop {
            let action = match &mut self.machine {
                Machine::C2s(c2s) => c2s.poll_action()?,
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
                        self.metrics.connection("c2s", true);
                        self.metrics.transport(Transport::WebSocket, true);
                        self.counted = Some(Transport::WebSocket);
                        tracing::Span::current().record("transport", "websocket");
                        continue;
                    }
                    HttpAction::Stream(action) => action,
                },
                Machine::Bosh(bosh) => match bosh.poll_action()? {
                    BoshAction::Respond { to, reply } => {
                        if let Some(reply_to) = self.replies.remove(&to) {
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
                            self.pending = Some(Effect::Hub { shard, input });
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
            };
            return Some(effect);
        }
    }
}

/// A message for a C2S stream, whatever carries it.
fn deliver(c2s: &mut C2s, msg: ToSession, now: Instant) {
    match msg {
        ToSession::Routed(stanza) => c2s.handle_routed(*stanza, now),
        ToSession::RoutedRaw(xml) => c2s.handle_routed_raw(&xml, now),
        ToSession::Replaced => c2s.handle_replaced(now),
        ToSession::Reply(reply) => {
            let (id, reply) = *reply;
            c2s.handle_reply(id, reply, now);
        }
        ToSession::Shutdown => c2s.handle_shutdown(now),
        ToSession::Resumed(resumed) => c2s.handle_resumed(*resumed, now),
        ToSession::ResumeFailed => c2s.handle_resume_failed(now),
        ToSession::Takeover => c2s.handle_takeover(now),
        ToSession::Bosh(delivery) => (delivery.reply_to)(BoshReply::terminate("item-not-found")),
        ToSession::BoshReply(_) => {}
    }
}

/// How a session reaches the rest of the server in a runtime whose hub shards are
/// reached through `S` and whose session mailbox is `M`.
pub struct Links<S, M, X = StorageExecutor> {
    /// The hub shards' senders.
    pub shards: Shards<S>,
    /// The storage executor.
    pub storage: X,
    /// This session's own mailbox (given to its hub shard and to storage).
    pub mailbox: M,
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
    /// Start a BOSH session: register a mailbox under `sid`, spawn a task driving
    /// [`Session::bosh`] with it.
    StartBosh(Box<BoshStart>),
}

impl Session {
    /// The next socket or timer effect; hub and storage effects on the way are sent
    /// through `links`.
    pub fn next_io<S, M, X>(&mut self, links: &Links<S, M, X>) -> Option<Io>
    where
        S: Sink<HubMsg<M>>,
        M: Sink<ToSession>,
        X: SubmitStorage,
    {
        loop {
            match self.next_effect()? {
                Effect::Write(bytes) => return Some(Io::Write(bytes)),
                Effect::Timer(at) => return Some(Io::Timer(at)),
                Effect::PauseReading(until) => return Some(Io::PauseReading(until)),
                Effect::Close => return Some(Io::Close),
                Effect::Bosh(body) => {
                    let mailbox = links.mailbox.clone();
                    let reply_to: BoshReplyTo =
                        Box::new(move |reply| mailbox.send(ToSession::BoshReply(Box::new(reply))));
                    self.metrics.transport_bytes(
                        Transport::Bosh,
                        true,
                        body.children.iter().map(|c| c.to_xml().len()).sum(),
                    );
                    let delivery = BoshDelivery {
                        body: *body,
                        reply_to,
                    };
                    let Machine::Http(http) = &mut self.machine else {
                        continue;
                    };
                    let config = http.config().clone();
                    let Some(bosh) = &self.bosh else { continue };
                    match delivery.body.sid().map(str::to_string) {
                        Some(sid) => {
                            if let Err(ToSession::Bosh(d)) =
                                bosh.deliver(&sid, ToSession::Bosh(Box::new(delivery)))
                            {
                                tracing::debug!(sid, "BOSH request for an unknown session");
                                (d.reply_to)(BoshReply::terminate("item-not-found"));
                            }
                        }
                        None => {
                            let start = BoshStart {
                                sid: BoshSessions::new_sid(),
                                config,
                                delivery,
                            };
                            return Some(Io::StartBosh(Box::new(start)));
                        }
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

    /// The connection is gone: whatever the session still has for its hub shard
    /// (the unbind) is sent, then the shard forgets its mailbox.
    pub fn finish<S, M, X>(&mut self, links: &Links<S, M, X>, now: Instant)
    where
        S: Sink<HubMsg<M>>,
        M: Sink<ToSession>,
    {
        self.on_closed(now);
        while let Some(effect) = self.next_effect() {
            if let Effect::Hub { shard, input } = effect {
                links.shards[shard].send(HubMsg::Input(input));
            }
        }
        if let Some(shard) = self.shard {
            links.shards[shard].send(HubMsg::Detach(self.id));
        }
        if let (Some(sid), Some(bosh)) = (self.bosh_sid(), &self.bosh) {
            bosh.unregister(sid);
        }
        if let Some(transport) = self.counted.take() {
            self.metrics.connection("c2s", false);
            self.metrics.transport(transport, false);
        }
        // Requests still waiting for this BOSH session hear it is gone.
        for (_, reply_to) in self.replies.drain() {
            reply_to(BoshReply::terminate("item-not-found"));
        }
    }
}
