//! What the engine asks of storage, and the answers it expects.
//!
//! The engine never performs storage IO: a state machine emits a [`StorageRequest`]
//! (inside an `Action::Request`), the runtime hands it to the configured backend's
//! [`Storage::execute`] on its storage executor, and feeds the [`StorageReply`] back
//! with `handle_reply`. Backends live in the server crate (SQLite embedded, and others).
//!
//! Requests for one user are executed in the order they were emitted; runtimes keep
//! that order (a single storage queue is enough).

use crate::jid::Jid;
use crate::sasl::StoredCredentials;

/// A request from the engine to the storage backend. JIDs are bare and prepared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageRequest {
    /// SCRAM credentials of `user` (answered by [`StorageReply::Credentials`]).
    GetCredentials {
        /// The account.
        user: Jid,
    },
    /// Creates `user` (answered by [`StorageReply::Done`] or [`StorageReply::Conflict`]).
    CreateUser {
        /// The new account.
        user: Jid,
        /// Its credentials.
        credentials: StoredCredentials,
    },
    /// Replaces the credentials of an existing user (Done or [`StorageReply::NotFound`]).
    SetCredentials {
        /// The account.
        user: Jid,
        /// The new credentials.
        credentials: StoredCredentials,
    },
    /// Removes the user with their roster and offline messages (Done or NotFound).
    RemoveUser {
        /// The account.
        user: Jid,
    },
    /// Users of `domain`, sorted (answered by [`StorageReply::Users`]).
    ListUsers {
        /// The served domain.
        domain: String,
    },
    /// Whether `user` exists and their roster (answered by [`StorageReply::User`]).
    LoadUser {
        /// The account.
        user: Jid,
    },
    /// Inserts or replaces the roster item `item.jid` of `owner` (Done).
    PutRosterItem {
        /// The roster's owner.
        owner: Jid,
        /// The item.
        item: RosterItem,
    },
    /// Deletes the roster item `contact` of `owner` (Done).
    DeleteRosterItem {
        /// The roster's owner.
        owner: Jid,
        /// The contact to remove.
        contact: Jid,
    },
    /// Stores a message for an unavailable user (XEP-0160). Answered by Done, or
    /// [`StorageReply::LimitReached`] when the user's store holds `limit` messages.
    StoreOffline {
        /// The recipient.
        owner: Jid,
        /// The serialised `<message/>` with its delay stamp.
        stanza: String,
        /// Most messages kept for one user.
        limit: usize,
    },
    /// Removes and returns the offline messages of `owner`, oldest first
    /// (answered by [`StorageReply::Offline`]).
    TakeOffline {
        /// The recipient.
        owner: Jid,
    },
}

/// The backend's answer to a [`StorageRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageReply {
    /// The request was carried out.
    Done,
    /// `CreateUser` for a user that exists.
    Conflict,
    /// The user does not exist.
    NotFound,
    /// `StoreOffline` refused: the user's offline store is full.
    LimitReached,
    /// Answer to `GetCredentials` (`None`: no such user).
    Credentials(Option<StoredCredentials>),
    /// Answer to `ListUsers`.
    Users(Vec<Jid>),
    /// Answer to `LoadUser` (`None`: no such user).
    User(Option<Vec<RosterItem>>),
    /// Answer to `TakeOffline`: serialised `<message/>` stanzas, oldest first.
    Offline(Vec<String>),
    /// The backend failed; the engine answers the client with `internal-server-error`.
    Failed(String),
}

/// RFC 6121 §2.1.2.5: the subscription state of a roster item, from the owner's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subscription {
    /// Neither side is subscribed.
    None,
    /// The owner receives the contact's presence.
    To,
    /// The contact receives the owner's presence.
    From,
    /// Both.
    Both,
    /// RFC 6121 §2.1.2.5: an item being deleted (only in roster sets and pushes).
    Remove,
}

impl Subscription {
    /// The wire value of the `subscription` attribute.
    pub fn as_str(self) -> &'static str {
        match self {
            Subscription::None => "none",
            Subscription::To => "to",
            Subscription::From => "from",
            Subscription::Both => "both",
            Subscription::Remove => "remove",
        }
    }

    /// Parses a wire value.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "none" => Subscription::None,
            "to" => Subscription::To,
            "from" => Subscription::From,
            "both" => Subscription::Both,
            "remove" => Subscription::Remove,
            _ => return None,
        })
    }
}

/// One record of a user's roster store: a roster item with the subscription
/// sub-states of RFC 6121 Appendix A, or (when `in_roster` is false) only the memory
/// of a contact's unanswered subscription request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterItem {
    /// The contact's bare JID.
    pub jid: Jid,
    /// The owner has this contact in their roster (RFC 6121 §2): set by a roster set,
    /// by an outbound subscription request or approval (§3.1.2, §3.1.5, §3.4), and
    /// kept by every state RFC 6121 shows as an item. False only for a record that
    /// remembers a "Pending In" request from a contact who is not in the roster:
    /// §3.1.3 says the server "MUST NOT add an item to the roster" for it, so a
    /// roster get leaves it out and no push announces it.
    pub in_roster: bool,
    /// The handle the owner gave the contact.
    pub name: Option<String>,
    /// The subscription state.
    pub subscription: Subscription,
    /// "Pending Out": the owner asked to subscribe (`ask='subscribe'` on the wire).
    pub ask_out: bool,
    /// "Pending In": the contact asked to subscribe and the owner has not answered.
    /// The stored request is redelivered at each login (RFC 6121 §3.1.3).
    pub pending_in: bool,
    /// RFC 6121 §3.4: the owner pre-approved a subscription from the contact.
    pub approved: bool,
    /// Roster groups.
    pub groups: Vec<String>,
}

impl RosterItem {
    /// A new item in the owner's roster, with no subscription, handle or group: what
    /// a roster set adds (RFC 6121 §2.3). Records outside the roster are made by
    /// [`RosterItem::hidden`].
    pub fn new(jid: Jid) -> Self {
        Self {
            in_roster: true,
            ..Self::hidden(jid)
        }
    }

    /// A record for a contact who is not in the owner's roster, with no state yet:
    /// where the subscription state machine starts for a contact it has never seen.
    /// It only becomes worth storing with a Pending In request (RFC 6121 §3.1.3), or
    /// by joining the roster.
    pub fn hidden(jid: Jid) -> Self {
        Self {
            jid,
            in_roster: false,
            name: None,
            subscription: Subscription::None,
            ask_out: false,
            pending_in: false,
            approved: false,
            groups: Vec::new(),
        }
    }
}

/// A storage backend. Implementations may block (they run on the runtime's storage
/// executor, never on a protocol thread) and must be usable from several threads.
pub trait Storage: Send + Sync {
    /// Carries out one request.
    fn execute(&self, request: StorageRequest) -> StorageReply;
}

mod memory;
pub use memory::MemoryStorage;
