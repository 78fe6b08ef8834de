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

use std::time::SystemTime;

use crate::jid::Jid;
use crate::storage::{StorageReply, StorageRequest};
use crate::xml::Element;

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
    /// The answer to a [`HubAction::Request`].
    Reply {
        /// The request's id.
        id: RequestId,
        /// The answer.
        reply: StorageReply,
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
    /// `session` was replaced by a new session with the same full JID: close it with
    /// a `<conflict/>` stream error (RFC 6120 §4.9.3.3).
    Replaced {
        /// The session to close.
        session: SessionId,
    },
    /// Carry out a storage request and answer with [`HubInput::Reply`].
    Request {
        /// Its id.
        id: RequestId,
        /// The request.
        request: StorageRequest,
    },
}

/// The hub (see the module docs).
pub struct Hub {
    config: HubConfig,
}

impl Hub {
    /// A hub serving `config.hosts`.
    pub fn new(config: HubConfig) -> Self {
        Self { config }
    }

    /// The configuration.
    pub fn config(&self) -> &HubConfig {
        &self.config
    }

    /// Feeds one input. `now` is the wall-clock time, passed in (never read here),
    /// used for XEP-0203 delay stamps on stored messages.
    pub fn handle(&mut self, input: HubInput, now: SystemTime) {
        let _ = (input, now);
        todo!("hub helper")
    }

    /// The next output, `None` when there is nothing to do.
    pub fn poll_action(&mut self) -> Option<HubAction> {
        todo!("hub helper")
    }
}
