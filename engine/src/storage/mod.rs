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
    /// XEP-0484: the FAST tokens of `user` for the client installation `agent` (its
    /// SASL2 user-agent id), answered by [`StorageReply::FastTokens`].
    GetFastTokens {
        /// The account.
        user: Jid,
        /// The SASL2 `<user-agent id=...>`.
        agent: String,
    },
    /// XEP-0484 §3.2: puts a newly issued token into the `New` slot of `user` and
    /// `agent` (replacing an unused one there). Done, or NotFound for no such user.
    StoreFastToken {
        /// The account.
        user: Jid,
        /// The client installation.
        agent: String,
        /// The token, hashed.
        token: FastToken,
    },
    /// XEP-0484 §3.3–3.5: the token of `slot`, whose key is `key`, was just used.
    /// In one transaction: when `count` is given, it must be greater than the
    /// token's last count (else [`StorageReply::Conflict`]: a replay) and becomes
    /// the last count; a token used from the `New` slot moves to `Current`,
    /// replacing the older one; `invalidate` deletes every token of the client;
    /// then `issue`, if any, goes into the `New` slot. Done, Conflict, or NotFound
    /// when the token is gone (used up or invalidated meanwhile).
    UseFastToken {
        /// The account.
        user: Jid,
        /// The client installation.
        agent: String,
        /// Where the token was found.
        slot: FastSlot,
        /// The token's key, to make sure it is still the same token.
        key: Vec<u8>,
        /// The client's `count`, if it sent one.
        count: Option<u64>,
        /// Invalidate the client's tokens.
        invalidate: bool,
        /// A new token to store in the `New` slot.
        issue: Option<FastToken>,
    },
}

/// XEP-0484 §5.2: the two token slots of a client installation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FastSlot {
    /// The token in use.
    Current,
    /// The latest token issued, not yet used by the client.
    New,
}

impl StorageRequest {
    /// The operation's name, a metrics label (`storage_request_duration_seconds`).
    pub fn operation(&self) -> &'static str {
        match self {
            StorageRequest::GetCredentials { .. } => "get_credentials",
            StorageRequest::CreateUser { .. } => "create_user",
            StorageRequest::SetCredentials { .. } => "set_credentials",
            StorageRequest::RemoveUser { .. } => "remove_user",
            StorageRequest::ListUsers { .. } => "list_users",
            StorageRequest::LoadUser { .. } => "load_user",
            StorageRequest::PutRosterItem { .. } => "put_roster_item",
            StorageRequest::DeleteRosterItem { .. } => "delete_roster_item",
            StorageRequest::StoreOffline { .. } => "store_offline",
            StorageRequest::TakeOffline { .. } => "take_offline",
            StorageRequest::GetFastTokens { .. } => "get_fast_tokens",
            StorageRequest::StoreFastToken { .. } => "store_fast_token",
            StorageRequest::UseFastToken { .. } => "use_fast_token",
        }
    }
}

impl FastSlot {
    /// A stable name for storage.
    pub fn as_str(self) -> &'static str {
        match self {
            FastSlot::Current => "current",
            FastSlot::New => "new",
        }
    }

    /// Parses [`FastSlot::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "current" => Some(FastSlot::Current),
            "new" => Some(FastSlot::New),
            _ => None,
        }
    }
}

/// A FAST token as stored: never the token itself, only `H(token)` (see
/// [`crate::sasl::ht`]), the mechanism it is bound to, when it expires and the last
/// `count` the client used with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FastToken {
    /// The HT mechanism name the token is bound to (XEP-0484 §3.3).
    pub mechanism: String,
    /// `H(token)`, the HMAC key.
    pub key: Vec<u8>,
    /// Expiry, seconds since the Unix epoch.
    pub expiry: u64,
    /// The last `count` accepted with this token (0: none yet).
    pub count: u64,
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
    /// Answer to `GetFastTokens`: the client's tokens with their slots.
    FastTokens(Vec<(FastSlot, FastToken)>),
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
