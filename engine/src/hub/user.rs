//! What the hub knows about one user (one bare JID): the bound sessions, the roster
//! (once loaded) and the queue of work waiting for it.
//!
//! Every input that concerns a user goes through that user's queue, in arrival
//! order: binds and unbinds, stanzas from the user's sessions (the outbound part of
//! RFC 6121 processing) and stanzas addressed to the user (the inbound part). Work
//! at the head of the queue that needs the roster waits for it; everything behind
//! waits too, so stanzas between two entities are processed in order
//! (RFC 6120 §10.1).

use std::collections::{BTreeSet, VecDeque};

use super::SessionId;
use crate::jid::Jid;
use crate::modules::presence::PresenceType;
use crate::modules::roster::Roster;
use crate::xml::Element;

/// One bound resource of the user.
#[derive(Debug)]
pub(super) struct Session {
    /// The connection.
    pub id: SessionId,
    /// Its full JID.
    pub jid: Jid,
    /// The last available presence broadcast from this resource; `Some` while the
    /// resource is available (RFC 6121 §4.1: it sent presence and no unavailable
    /// presence since).
    pub presence: Option<Element>,
    /// RFC 6121 §4.7.2.3 priority of the last available presence.
    pub priority: i8,
    /// RFC 6121 §2.1.6: the resource asked for the roster, so it gets roster pushes.
    pub interested: bool,
    /// RFC 6121 §4.6: entities that got directed available presence from this
    /// resource; they get unavailable presence when it goes away.
    pub directed: BTreeSet<Jid>,
    /// XEP-0280: the resource gets carbon copies.
    pub carbons: bool,
    /// XEP-0198: the stream management id, once enabled.
    pub sm_id: Option<String>,
    /// XEP-0388: the client installation (user-agent id) that bound it.
    pub agent: Option<String>,
}

/// A change to one session's settings, ordered with its other work.
#[derive(Debug)]
pub(super) enum SessionChange {
    /// XEP-0280 carbons on or off.
    Carbons(bool),
    /// XEP-0198 enabled with this id.
    SmId(String),
    /// XEP-0386 §2.2: bound by this client installation.
    Agent(String),
}

impl Session {
    pub fn new(id: SessionId, jid: Jid) -> Self {
        Self {
            id,
            jid,
            presence: None,
            priority: 0,
            interested: false,
            directed: BTreeSet::new(),
            carbons: false,
            sm_id: None,
            agent: None,
        }
    }

    /// True while the resource is available.
    pub fn available(&self) -> bool {
        self.presence.is_some()
    }
}

/// Where the user's roster is.
#[derive(Debug)]
pub(super) enum RosterState {
    /// Not asked for.
    Unknown,
    /// `LoadUser` sent, answer pending.
    Loading,
    /// Loaded; `None` means there is no such user.
    Loaded(Option<Roster>),
}

/// One unit of work on a user's queue.
#[derive(Debug)]
pub(super) enum Work {
    /// A session bound `jid` (RFC 6120 §7).
    Bind { session: SessionId, jid: Jid },
    /// A session ended (or was replaced).
    Unbind { session: SessionId },
    /// A session's settings changed.
    Configure {
        session: SessionId,
        change: SessionChange,
    },
    /// A stanza from one of the user's sessions, `from` stamped with `from`.
    Outbound {
        session: SessionId,
        from: Jid,
        stanza: Element,
    },
    /// A stanza addressed to the user: `to` is the user's bare or full JID, or `None`
    /// for an iq the user sent without `to` (RFC 6120 §10.3.3: handled on behalf of
    /// the account).
    Inbound { to: Option<Jid>, stanza: Element },
}

/// What a piece of work needs before it can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Need {
    /// Nothing: it can run now.
    Nothing,
    /// To know whether the user exists.
    Existence,
    /// The roster.
    Roster,
}

/// The state of one user.
#[derive(Debug)]
pub(super) struct UserState {
    /// Bound sessions, in bind order.
    pub sessions: Vec<Session>,
    /// The roster.
    pub roster: RosterState,
    /// Pending work, oldest first.
    pub queue: VecDeque<Work>,
}

impl UserState {
    pub fn new() -> Self {
        Self {
            sessions: Vec::new(),
            roster: RosterState::Unknown,
            queue: VecDeque::new(),
        }
    }

    pub fn session(&self, id: SessionId) -> Option<&Session> {
        self.sessions.iter().find(|s| s.id == id)
    }

    pub fn session_mut(&mut self, id: SessionId) -> Option<&mut Session> {
        self.sessions.iter_mut().find(|s| s.id == id)
    }

    pub fn session_by_jid(&self, jid: &Jid) -> Option<&Session> {
        self.sessions.iter().find(|s| s.jid == *jid)
    }

    /// Available resources, in bind order.
    pub fn available(&self) -> impl Iterator<Item = &Session> {
        self.sessions.iter().filter(|s| s.available())
    }

    /// RFC 6121 §8.5.2.1.1: the sessions that get a chat or normal message sent to the
    /// bare JID: the available ones with the highest non-negative priority (all of
    /// them on a tie).
    pub fn most_available(&self) -> Vec<SessionId> {
        let best = self
            .available()
            .filter(|s| s.priority >= 0)
            .map(|s| s.priority)
            .max();
        match best {
            Some(p) => self
                .available()
                .filter(|s| s.priority == p)
                .map(|s| s.id)
                .collect(),
            None => Vec::new(),
        }
    }

    /// The roster, if loaded and the user exists.
    pub fn roster(&self) -> Option<&Roster> {
        match &self.roster {
            RosterState::Loaded(r) => r.as_ref(),
            _ => None,
        }
    }

    pub fn roster_mut(&mut self) -> Option<&mut Roster> {
        match &mut self.roster {
            RosterState::Loaded(r) => r.as_mut(),
            _ => None,
        }
    }

    /// Whether the user exists; meaningful once [`Need::Existence`] is satisfied. A
    /// bound session proves it (the connection authenticated).
    pub fn exists(&self) -> bool {
        !self.sessions.is_empty() || self.roster().is_some()
    }

    /// What `work` needs before it runs.
    pub fn need(&self, work: &Work) -> Need {
        match work {
            Work::Bind { .. } | Work::Configure { .. } => Need::Nothing,
            Work::Unbind { session } => {
                if self.session(*session).is_some_and(Session::available) {
                    Need::Roster
                } else {
                    Need::Nothing
                }
            }
            Work::Outbound { stanza, .. } => {
                if stanza.name() != "presence" {
                    return Need::Nothing;
                }
                let has_to = stanza.attr("to").is_some();
                match PresenceType::of(stanza) {
                    // Broadcasts go to the roster's subscribers (RFC 6121 §4.2.2).
                    Some(PresenceType::Available | PresenceType::Unavailable) if !has_to => Need::Roster,
                    // Outbound subscription processing (RFC 6121 §3).
                    Some(PresenceType::Subscription(_)) if has_to => Need::Roster,
                    _ => Need::Nothing,
                }
            }
            Work::Inbound { to, stanza } => match stanza.name() {
                "message" => Need::Existence,
                "presence" => match PresenceType::of(stanza) {
                    Some(PresenceType::Subscription(_) | PresenceType::Probe) => Need::Roster,
                    _ => Need::Nothing,
                },
                "iq" => {
                    let full = to.as_ref().is_some_and(|t| !t.is_bare());
                    let request = matches!(stanza.attr("type"), Some("get" | "set"));
                    if request && !full {
                        Need::Roster
                    } else {
                        Need::Nothing
                    }
                }
                _ => Need::Nothing,
            },
        }
    }

    /// True when `need` is met now.
    pub fn satisfied(&self, need: Need) -> bool {
        match need {
            Need::Nothing => true,
            Need::Existence => !self.sessions.is_empty() || matches!(self.roster, RosterState::Loaded(_)),
            Need::Roster => matches!(self.roster, RosterState::Loaded(_)),
        }
    }

    /// True when the state can be forgotten: no session, no work, no load under way.
    pub fn idle(&self) -> bool {
        self.sessions.is_empty() && self.queue.is_empty() && !matches!(self.roster, RosterState::Loading)
    }
}
