//! One connection's engine state machine, as every adapter drives it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use meerkat_engine::hub::{shard_of, HubInput, RequestId, SessionId};
use meerkat_engine::storage::{StorageReply, StorageRequest};
use meerkat_engine::stream::c2s::{C2s, C2sConfig, SmResumed};
use meerkat_engine::stream::Action;
use meerkat_engine::Element;
use rand_core::OsRng;

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
}

/// A C2S connection: the engine's [`C2s`] plus what every runtime needs to know about
/// it (its hub shard once bound). Feed it with the `on_*` methods, then drain
/// [`Session::next_effect`] until `None`.
pub struct Session {
    id: SessionId,
    c2s: C2s,
    shards: usize,
    shard: Option<usize>,
    /// The bind that follows an [`Effect::Attach`].
    pending: Option<Effect>,
    metrics: Arc<Metrics>,
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
        Self {
            id,
            c2s,
            shards: shards.max(1),
            shard: None,
            pending: None,
            metrics,
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
        self.c2s.handle_bytes(bytes, now);
    }

    /// The last timer set by [`Effect::Timer`] fired.
    pub fn on_timeout(&mut self, now: Instant) {
        self.c2s.handle_timeout(now);
    }

    /// The socket closed or failed.
    pub fn on_closed(&mut self, now: Instant) {
        self.c2s.handle_closed(now);
    }

    /// A message from the hub, storage or the shutdown.
    pub fn on_message(&mut self, msg: ToSession, now: Instant) {
        match msg {
            ToSession::Routed(stanza) => self.c2s.handle_routed(*stanza, now),
            ToSession::RoutedRaw(xml) => self.c2s.handle_routed_raw(&xml, now),
            ToSession::Replaced => self.c2s.handle_replaced(now),
            ToSession::Reply(reply) => {
                let (id, reply) = *reply;
                self.c2s.handle_reply(id, reply, now);
            }
            ToSession::Shutdown => self.c2s.handle_shutdown(now),
            ToSession::Resumed(resumed) => self.c2s.handle_resumed(*resumed, now),
            ToSession::ResumeFailed => self.c2s.handle_resume_failed(now),
            ToSession::Takeover => self.c2s.handle_takeover(now),
        }
    }

    /// The next thing to do; instrumentation is recorded here, not passed on.
    pub fn next_effect(&mut self) -> Option<Effect> {
        if let Some(effect) = self.pending.take() {
            return Some(effect);
        }
        loop {
            let effect = match self.c2s.poll_action()? {
                Action::Transmit(bytes) => Effect::Write(bytes),
                Action::Hub(input) => {
                    let user = match &input {
                        HubInput::Bind { jid, .. } => Some(jid.bare()),
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
    }
}
