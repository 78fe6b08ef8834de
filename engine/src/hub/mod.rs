//! The hub: session manager and router (RFC 6120 §10, RFC 6121 §8), and home of the
//! modules' protocol logic (roster, presence subscriptions, offline storage, disco,
//! ping, version, ...).
//!
//! The hub is a state machine like a connection: inputs come through
//! [`Hub::handle`], outputs are drained with [`Hub::poll_action`] until `None`. It
//! never performs IO: storage is asked for with [`HubAction::Request`] and answered
//! with [`HubInput::Reply`].
//!
//! Work is keyed by bare JID (a user's sessions, roster and pending work live
//! together), so that the hub can be sharded by bare-JID hash: a shard owns the users
//! whose bare JID hashes to it.
//!
//! # How a stanza travels
//!
//! RFC 6121 splits the handling of a stanza between the sender's server (outbound
//! processing) and the recipient's server (inbound processing). The hub keeps that
//! split even when both users are local: a stanza from a session becomes an
//! *outbound* work item on the sender's queue; routing it puts an *inbound* work item
//! on the recipient's queue. Only the inbound item touches the recipient's state, so
//! it can later cross a shard or an S2S link unchanged.
//!
//! A work item that needs the user's roster (broadcasts, subscriptions, roster iqs,
//! probes) or needs to know whether the user exists (messages) waits at the head of
//! the queue while `LoadUser` is under way; later items wait behind it, which keeps
//! the stanzas between two entities in order (RFC 6120 §10.1). A user's state is
//! forgotten when they have no session and no pending work; it is loaded again when
//! needed (storage executes requests in order, so a reload sees earlier writes).
//!
//! Submodules: `router` (addressing, RFC 6120 §10 and RFC 6121 §8.5), `presence`
//! (RFC 6121 §3 and §4), `iq` (server and account iqs, roster RFC 6121 §2), `user`
//! (per-user state), `queue` (running the per-user queues). Tests and simulations
//! answer its requests from [`crate::storage::MemoryStorage`].

mod carbons;
mod iq;
mod presence;
mod queue;
mod resumption;
mod router;
mod shard;
mod user;

pub use shard::{shard_of, Forwarded};

#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::SystemTime;

use crate::stream::c2s::{SmResumed, SmSnapshot};

use crate::jid::Jid;
use crate::storage::{StorageReply, StorageRequest};
use crate::stream::StanzaError;
use crate::xml::Element;

use user::{UserState, Work};

/// Identifies one connection (assigned by the runtime, unique for the process life).
pub type SessionId = u64;

/// Identifies one storage request of one state machine.
pub type RequestId = u64;

/// Hub settings, built from the config by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubConfig {
    /// Served domains (`[general] hosts`).
    pub hosts: Vec<String>,
    /// Most offline messages kept per user (`[modules.mod_offline] store_limit`?
    /// MongooseIM: `access_max_user_messages`); past it, messages bounce.
    pub offline_limit: usize,
    /// Whether `mod_offline` is on.
    pub offline_enabled: bool,
    /// Whether `mod_register` is on (announced in disco).
    pub registration_enabled: bool,
    /// XEP-0092 name and version answered (`mod_version`); `None` when disabled.
    pub software_version: Option<(String, String)>,
    /// XEP-0092: whether to include the OS (`mod_version os_info`).
    pub version_os: Option<String>,
    /// Whether stanzas for other domains go to the federation router
    /// ([`HubAction::External`]: components, S2S); without it they bounce with
    /// `remote-server-not-found` here.
    pub federation: bool,
    /// This hub's shard index, below `shards` (see [`shard_of`]).
    pub shard: usize,
    /// How many shards share the users; 1 for an unsharded hub.
    pub shards: usize,
    /// XEP-0280 message carbons (`mod_carbons`).
    pub carbons_enabled: bool,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            hosts: vec!["localhost".into()],
            offline_limit: 5000,
            offline_enabled: true,
            registration_enabled: false,
            software_version: Some(("Meerkat".into(), env!("CARGO_PKG_VERSION").into())),
            version_os: None,
            federation: false,
            shard: 0,
            shards: 1,
            carbons_enabled: false,
        }
    }
}

/// An input to the hub.
#[derive(Debug, Clone, PartialEq)]
pub enum HubInput {
    /// A C2S session bound `jid` (a full JID). If a session with the same full JID
    /// exists, it is replaced (RFC 6120 §7.7.2.2, our conflict rule: the new session wins):
    /// the hub emits [`HubAction::Replaced`] for the old one and forgets it.
    Bind {
        /// The new session.
        session: SessionId,
        /// Its full JID.
        jid: Jid,
    },
    /// The session ended (connection closed or replaced). If it had sent available
    /// presence, the hub broadcasts unavailable presence for it (RFC 6121 §4.5.2).
    Unbind {
        /// The ended session.
        session: SessionId,
    },
    /// A stanza from a bound session. The connection has already stamped `from` with
    /// the session's full JID (RFC 6120 §8.1.2.1) and checked the namespace.
    Stanza {
        /// The sending session.
        session: SessionId,
        /// The stanza (`message`, `presence` or `iq`, namespace `jabber:client`).
        stanza: Element,
    },
    /// Work another shard routed to a user of this one ([`HubAction::Forward`]).
    Forwarded(Forwarded),
    /// A stanza from outside this server: from a component or a remote server (its
    /// connection checked `from` and `to`), or a bounce from the federation router.
    /// Namespace `jabber:client`, like every stanza in the hub.
    External(Element),
    /// The domains of the connected components that disco#items lists (XEP-0030,
    /// XEP-0114), replacing the previous list.
    Components(Vec<String>),
    /// The answer to a [`HubAction::Request`].
    Reply {
        /// The request's id.
        id: RequestId,
        /// The answer.
        reply: StorageReply,
    },
    /// XEP-0198: the bound `session` enabled stream management with this id (its
    /// `previd` when a new connection resumes it).
    SmEnabled {
        /// The session.
        session: SessionId,
        /// The stream management id.
        id: String,
    },
    /// XEP-0198 §5: the stream-managed `session`'s connection ended. With a non-zero
    /// `snapshot.resume_timeout` the hub keeps the session, detached, until then
    /// (stanzas for it join its unacknowledged ones); otherwise, or at the
    /// deadline, the session ends and its unacknowledged stanzas are routed again
    /// (another resource, or offline storage) or bounced.
    Detach {
        /// The session.
        session: SessionId,
        /// Its full JID (the session may have been replaced meanwhile; its
        /// unacknowledged stanzas still go to this user).
        jid: Jid,
        /// Its resumable state.
        snapshot: Box<SmSnapshot>,
    },
    /// XEP-0198 §5: the new connection `session`, authenticated as `user` (bare),
    /// resumes the session whose stream management id is `previd`. Answered by
    /// [`HubAction::Resumed`] or [`HubAction::ResumeFailed`].
    Resume {
        /// The new connection (its mailbox is attached to this shard).
        session: SessionId,
        /// The authenticated user.
        user: Jid,
        /// The id the client resumes.
        previd: String,
    },
    /// XEP-0386 §2.2: `session` was bound by the client installation `id` (its SASL2
    /// user-agent id); earlier sessions of the same installation end (attached ones
    /// as replaced, detached ones with their stanzas routed again).
    UserAgent {
        /// The session.
        session: SessionId,
        /// The user-agent id.
        id: String,
    },
    /// XEP-0280: `session` enabled (or disabled) message carbons (inline in Bind 2).
    Carbons {
        /// The session.
        session: SessionId,
        /// On or off.
        enabled: bool,
    },
}

/// An output of the hub.
#[derive(Debug, Clone, PartialEq)]
pub enum HubAction {
    /// Write `stanza` to `session` (its `from`/`to` are final).
    Deliver {
        /// The target session.
        session: SessionId,
        /// The stanza.
        stanza: Element,
    },
    /// Write `xml`, an already serialised stanza, to `session` as is. Used for
    /// offline messages (XEP-0160), which storage keeps as text: the text is what
    /// [`Element::to_xml`] produced when the message was stored (a `<message/>`
    /// declaring `xmlns='jabber:client'`, with its XEP-0203 `<delay/>`), so it is
    /// valid as is inside a `jabber:client` stream.
    DeliverRaw {
        /// The target session.
        session: SessionId,
        /// The serialised stanza.
        xml: String,
    },
    /// `session` was replaced by a new session with the same full JID: close it with
    /// a `<conflict/>` stream error (RFC 6120 §4.9.3.3).
    Replaced {
        /// The session to close.
        session: SessionId,
    },
    /// Hand `work` to shard `shard` as [`HubInput::Forwarded`]. Only emitted by a
    /// sharded hub (`shards` > 1).
    Forward {
        /// The shard that owns the recipient.
        shard: usize,
        /// The work, carried as is.
        work: Forwarded,
    },
    /// Carry out a storage request and answer with [`HubInput::Reply`].
    Request {
        /// Its id.
        id: RequestId,
        /// The request.
        request: StorageRequest,
    },
    /// XEP-0198 §5: `session` (a new connection) now owns the resumed session.
    Resumed {
        /// The new connection.
        session: SessionId,
        /// The session's JID and state.
        resumed: Box<SmResumed>,
    },
    /// XEP-0198 §5: no session to resume for `session`.
    ResumeFailed {
        /// The new connection.
        session: SessionId,
    },
    /// XEP-0198 §5: a new connection resumes `session` while its connection is
    /// still open: end it and hand over its state (`HubInput::Detach`).
    Takeover {
        /// The old connection.
        session: SessionId,
    },
    /// A stanza for a domain not served here: for the federation router
    /// ([`crate::federation`]), which hands it to a component or a remote server.
    /// Only emitted when [`HubConfig::federation`] is on.
    External {
        /// The stanza, `from` and `to` final.
        stanza: Element,
    },
}

/// What an outstanding storage request was for.
#[derive(Debug)]
enum Pending {
    /// Loading a user's roster (and existence).
    LoadUser(Jid),
    /// A roster write; its `Done` only needs consuming.
    Write,
    /// Storing this message offline; bounced if storage refuses.
    StoreOffline(Element),
    /// Putting back an offline message whose session left before it was delivered.
    Restore,
    /// Taking the offline messages of `owner` for `session`.
    TakeOffline { session: SessionId, owner: Jid },
}

/// The hub (see the module docs).
pub struct Hub {
    config: HubConfig,
    /// Served domains, prepared like JID domainparts.
    hosts: HashSet<String>,
    /// Bound sessions and their full JIDs.
    sessions: HashMap<SessionId, Jid>,
    /// The current session of each bound full JID.
    bound: HashMap<Jid, SessionId>,
    /// Users the hub knows about, by bare JID.
    users: HashMap<Jid, UserState>,
    /// Users whose queue may be able to make progress.
    runnable: VecDeque<Jid>,
    /// The user whose work item is being processed, and the work that item routed
    /// back to the same user: it runs before the rest of the queue.
    current: Option<Jid>,
    front: Vec<Work>,
    pending: HashMap<RequestId, Pending>,
    next_request: RequestId,
    next_push: u64,
    /// Visible components, for disco#items.
    components: Vec<String>,
    actions: VecDeque<HubAction>,
    now: SystemTime,
    /// XEP-0198 sessions whose connection broke, kept for a resumption.
    detached: HashMap<SessionId, resumption::Detached>,
    /// Resumptions waiting for the old connection's state: old → new session.
    takeovers: HashMap<SessionId, SessionId>,
}

impl Hub {
    /// A hub serving `config.hosts`.
    pub fn new(config: HubConfig) -> Self {
        let hosts = config
            .hosts
            .iter()
            .filter_map(|h| match Jid::domain_jid(h) {
                Ok(j) => Some(j.domain().to_string()),
                Err(_) => {
                    tracing::warn!(host = %h, "ignoring a host that is not a domain");
                    None
                }
            })
            .collect();
        Self {
            config,
            hosts,
            sessions: HashMap::new(),
            bound: HashMap::new(),
            users: HashMap::new(),
            runnable: VecDeque::new(),
            current: None,
            front: Vec::new(),
            pending: HashMap::new(),
            next_request: 1,
            next_push: 1,
            components: Vec::new(),
            actions: VecDeque::new(),
            now: SystemTime::UNIX_EPOCH,
            detached: HashMap::new(),
            takeovers: HashMap::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &HubConfig {
        &self.config
    }

    /// Feeds one input. `now` is the wall-clock time, passed in (never read here),
    /// used for XEP-0203 delay stamps on stored messages.
    pub fn handle(&mut self, input: HubInput, now: SystemTime) {
        self.now = now;
        match input {
            HubInput::Bind { session, jid } => self.on_bind(session, jid),
            HubInput::Unbind { session } => self.on_unbind(session),
            HubInput::Stanza { session, stanza } => self.on_stanza(session, stanza),
            HubInput::Forwarded(f) => self.enqueue(
                &f.user,
                Work::Inbound {
                    to: f.to,
                    stanza: f.stanza,
                },
            ),
            HubInput::External(stanza) => self.route(stanza),
            HubInput::Components(domains) => self.components = domains,
            HubInput::Reply { id, reply } => self.on_reply(id, reply),
            HubInput::SmEnabled { session, id } => {
                self.on_session_change(session, user::SessionChange::SmId(id))
            }
            HubInput::UserAgent { session, id } => {
                self.on_session_change(session, user::SessionChange::Agent(id))
            }
            HubInput::Carbons { session, enabled } => {
                self.on_session_change(session, user::SessionChange::Carbons(enabled))
            }
            HubInput::Detach {
                session,
                jid,
                snapshot,
            } => self.on_detach(session, &jid, *snapshot),
            HubInput::Resume {
                session,
                user,
                previd,
            } => self.on_resume(session, &user, &previd),
        }
        self.run();
    }

    /// The earliest instant [`Hub::handle_timeout`] has work for (a detached
    /// session's resumption deadline).
    pub fn next_deadline(&self) -> Option<SystemTime> {
        self.detached.values().map(|d| d.deadline).min()
    }

    /// Ends the detached sessions whose resumption deadline has passed.
    pub fn handle_timeout(&mut self, now: SystemTime) {
        self.now = now;
        self.expire_detached(now);
        self.run();
    }

    /// The next output, `None` when there is nothing to do.
    pub fn poll_action(&mut self) -> Option<HubAction> {
        self.actions.pop_front()
    }

    /// RFC 6120 §7.7.2.2: a second session with the same full JID replaces the first
    /// (our conflict policy: the new one wins).
    fn on_bind(&mut self, session: SessionId, jid: Jid) {
        if jid.is_bare() || jid.local().is_none() || self.sessions.contains_key(&session) {
            tracing::warn!(session, %jid, "ignoring a bind that is not a new user session");
            return;
        }
        let user = jid.bare();
        if let Some(old) = self.bound.insert(jid.clone(), session) {
            self.sessions.remove(&old);
            match self.detached.remove(&old) {
                Some(d) => self.reroute_unacked(&jid, d.snapshot.unacked),
                None => self.actions.push_back(HubAction::Replaced { session: old }),
            }
            self.enqueue(&user, Work::Unbind { session: old });
        }
        self.sessions.insert(session, jid.clone());
        self.enqueue(&user, Work::Bind { session, jid });
    }

    /// An unknown or replaced session's unbind is a no-op.
    fn on_unbind(&mut self, session: SessionId) {
        let Some(jid) = self.sessions.remove(&session) else {
            return;
        };
        if self.bound.get(&jid) == Some(&session) {
            self.bound.remove(&jid);
        }
        self.enqueue(&jid.bare(), Work::Unbind { session });
    }

    /// RFC 6120 §8.1.2.1: `from` is the session's full JID, whatever the stanza says.
    fn on_stanza(&mut self, session: SessionId, mut stanza: Element) {
        let Some(jid) = self.sessions.get(&session).cloned() else {
            tracing::debug!(session, "dropping a stanza from an unbound session");
            return;
        };
        if !matches!(stanza.name(), "message" | "presence" | "iq") {
            tracing::debug!(session, name = stanza.name(), "dropping a non-stanza");
            return;
        }
        stanza.set_attr("from", jid.to_string());
        self.enqueue(
            &jid.bare(),
            Work::Outbound {
                session,
                from: jid,
                stanza,
            },
        );
    }

    fn on_reply(&mut self, id: RequestId, reply: StorageReply) {
        let Some(pending) = self.pending.remove(&id) else {
            tracing::warn!(id, "reply to an unknown request");
            return;
        };
        match pending {
            Pending::LoadUser(user) => self.on_user_loaded(user, reply),
            Pending::Write | Pending::Restore => {
                if reply != StorageReply::Done {
                    tracing::warn!(?reply, "storage write failed");
                }
            }
            Pending::StoreOffline(message) => match reply {
                StorageReply::Done => {}
                // XEP-0160 §3: a full offline store means service-unavailable.
                StorageReply::LimitReached | StorageReply::NotFound => {
                    self.bounce(&message, StanzaError::ServiceUnavailable)
                }
                other => {
                    tracing::warn!(reply = ?other, "storing an offline message failed");
                    self.bounce(&message, StanzaError::InternalServerError);
                }
            },
            Pending::TakeOffline { session, owner } => match reply {
                StorageReply::Offline(messages) => {
                    for xml in messages {
                        if self.sessions.contains_key(&session) {
                            self.deliver_raw(session, xml);
                        } else {
                            // The session left meanwhile: keep the message for later.
                            self.request(
                                StorageRequest::StoreOffline {
                                    owner: owner.clone(),
                                    stanza: xml,
                                    limit: usize::MAX,
                                },
                                Pending::Restore,
                            );
                        }
                    }
                }
                other => tracing::warn!(reply = ?other, "taking offline messages failed"),
            },
        }
    }

    /// Emits a storage request and remembers what it is for.
    fn request(&mut self, request: StorageRequest, pending: Pending) {
        let id = self.next_request;
        self.next_request += 1;
        self.pending.insert(id, pending);
        self.actions.push_back(HubAction::Request { id, request });
    }

    fn deliver(&mut self, session: SessionId, stanza: Element) {
        if self.detached.contains_key(&session) {
            return self.hold_for_detached(session, crate::stream::c2s::Outbound::Stanza(stanza));
        }
        self.actions.push_back(HubAction::Deliver { session, stanza });
    }

    fn deliver_raw(&mut self, session: SessionId, xml: String) {
        if self.detached.contains_key(&session) {
            return self.hold_for_detached(session, crate::stream::c2s::Outbound::Raw(xml));
        }
        self.actions.push_back(HubAction::DeliverRaw { session, xml });
    }

    /// The state of `user`, which exists while one of their work items runs.
    fn user_mut(&mut self, user: &Jid) -> &mut UserState {
        self.users
            .get_mut(user)
            .expect("a user's state lives while their work runs")
    }

    fn user(&self, user: &Jid) -> &UserState {
        self.users
            .get(user)
            .expect("a user's state lives while their work runs")
    }

    /// True when `domain` is served here.
    fn serves(&self, domain: &str) -> bool {
        self.hosts.contains(domain)
    }

    /// A fresh id for a roster push.
    fn push_id(&mut self) -> String {
        let id = format!("push{}", self.next_push);
        self.next_push += 1;
        id
    }
}
