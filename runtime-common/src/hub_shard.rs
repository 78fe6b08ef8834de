//! One shard of the engine's hub, with the mailboxes of the sessions bound to it, and
//! the messages a shard's task receives.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use meerkat_engine::hub::{Forwarded, Hub, HubAction, HubConfig, HubInput, RequestId, SessionId};
use meerkat_engine::storage::StorageRequest;

use crate::federation::FedMsg;
use crate::storage::SubmitStorage;
use crate::ToSession;

/// The sending end of a runtime's channel. Adapters wrap their channel senders in a
/// newtype implementing it; a closed channel drops the message (its receiver is
/// going away).
pub trait Sink<T>: Clone + Send + Sync + 'static {
    /// Sends `msg` without waiting (the channels are unbounded).
    fn send(&self, msg: T);
}

/// A message to a hub shard's task; `M` is the runtime's session mailbox.
// Inputs stay inline: there are only `threads` hub inboxes, and boxing would cost an
// allocation per stanza.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum HubMsg<M> {
    /// A session bound a user of this shard; what is for it goes to the mailbox.
    Attach(SessionId, M),
    /// A connection ended (after its unbind input).
    Detach(SessionId),
    /// An input for the shard.
    Input(HubInput),
    /// Every session is gone: stop.
    Stop,
}

/// The senders of every shard's task, by shard index.
pub type Shards<S> = Arc<[S]>;

/// What a shard sends elsewhere than to its sessions.
#[derive(Debug)]
pub enum HubOut {
    /// Work for another shard: deliver as [`HubInput::Forwarded`] there.
    Forward {
        /// The shard.
        shard: usize,
        /// The work.
        work: Forwarded,
    },
    /// A storage request; answer with [`HubInput::Reply`] to this shard.
    Storage {
        /// Its id.
        id: RequestId,
        /// The request.
        request: StorageRequest,
    },
    /// A stanza for another domain: for the federation router.
    External(meerkat_engine::Element),
}

/// A hub shard and the mailboxes of its bound sessions.
pub struct HubShard<M> {
    index: usize,
    hub: Hub,
    mailboxes: HashMap<SessionId, M>,
}

impl<M: Sink<ToSession>> HubShard<M> {
    /// Shard `shard` of `shards`, with the other settings from `config`.
    pub fn new(config: &HubConfig, shard: usize, shards: usize) -> Self {
        Self {
            index: shard,
            hub: Hub::new(HubConfig {
                shard,
                shards,
                ..config.clone()
            }),
            mailboxes: HashMap::new(),
        }
    }

    /// Handles one message in a runtime whose shards are reached through `shards`,
    /// whose storage is `storage` and whose federation router (if any) is
    /// `federation`. Returns false on [`HubMsg::Stop`].
    pub fn on_message<S: Sink<HubMsg<M>>, F: Sink<FedMsg<M>>>(
        &mut self,
        msg: HubMsg<M>,
        shards: &[S],
        storage: &impl SubmitStorage,
        federation: Option<&F>,
    ) -> bool {
        match msg {
            HubMsg::Attach(session, mailbox) => self.attach(session, mailbox),
            HubMsg::Detach(session) => self.detach(session),
            HubMsg::Stop => return false,
            HubMsg::Input(input) => {
                self.hub.handle(input, SystemTime::now());
                self.drain(shards, storage, federation);
            }
        }
        true
    }

    fn drain<S: Sink<HubMsg<M>>, F: Sink<FedMsg<M>>>(
        &mut self,
        shards: &[S],
        storage: &impl SubmitStorage,
        federation: Option<&F>,
    ) {
        let me = &shards[self.index];
        self.carry_out(|out| match out {
            HubOut::Forward { shard, work } => shards[shard].send(HubMsg::Input(HubInput::Forwarded(work))),
            HubOut::Storage { id, request } => {
                let me = me.clone();
                let reply_to = move |id, reply| me.send(HubMsg::Input(HubInput::Reply { id, reply }));
                storage.submit(id, request, Box::new(reply_to));
            }
            HubOut::External(stanza) => match federation {
                Some(f) => f.send(FedMsg::Input(
                    meerkat_engine::federation::FederationInput::Outbound(stanza),
                )),
                None => tracing::debug!("no federation router; dropping a stanza for another domain"),
            },
        })
    }

    /// When [`HubShard::on_timeout`] has work (a detached XEP-0198 session's
    /// resumption deadline); runtimes sleep until then, or until a message.
    pub fn next_deadline(&self) -> Option<SystemTime> {
        self.hub.next_deadline()
    }

    /// The deadline of [`HubShard::next_deadline`] passed.
    pub fn on_timeout<S: Sink<HubMsg<M>>, F: Sink<FedMsg<M>>>(
        &mut self,
        shards: &[S],
        storage: &impl SubmitStorage,
        federation: Option<&F>,
    ) {
        let now = SystemTime::now();
        self.hub.handle_timeout(now);
        self.drain(shards, storage, federation);
    }

    /// A session bound a user of this shard; its bind input follows.
    pub fn attach(&mut self, session: SessionId, mailbox: M) {
        self.mailboxes.insert(session, mailbox);
    }

    /// The session's connection ended (after its unbind input).
    pub fn detach(&mut self, session: SessionId) {
        self.mailboxes.remove(&session);
    }

    /// Feeds one input and carries out the hub's actions: deliveries go to the
    /// sessions' mailboxes, the rest to `out`.
    pub fn handle(&mut self, input: HubInput, now: SystemTime, out: impl FnMut(HubOut)) {
        self.hub.handle(input, now);
        self.carry_out(out);
    }

    fn carry_out(&mut self, mut out: impl FnMut(HubOut)) {
        while let Some(action) = self.hub.poll_action() {
            match action {
                HubAction::Deliver { session, stanza } => {
                    self.send(session, ToSession::Routed(Box::new(stanza)))
                }
                HubAction::DeliverRaw { session, xml } => {
                    self.send(session, ToSession::RoutedRaw(xml.into_boxed_str()))
                }
                HubAction::Replaced { session } => self.send(session, ToSession::Replaced),
                HubAction::Resumed { session, resumed } => self.send(session, ToSession::Resumed(resumed)),
                HubAction::ResumeFailed { session } => self.send(session, ToSession::ResumeFailed),
                HubAction::Takeover { session } => self.send(session, ToSession::Takeover),
                HubAction::Forward { shard, work } => out(HubOut::Forward { shard, work }),
                HubAction::Request { id, request } => out(HubOut::Storage { id, request }),
                HubAction::External { stanza } => out(HubOut::External(stanza)),
            }
        }
    }

    fn send(&self, session: SessionId, msg: ToSession) {
        if let Some(m) = self.mailboxes.get(&session) {
            m.send(msg);
        }
    }
}
