//! The per-user work queues: putting work on them, running them, and waiting for
//! (or giving up on) a roster load. See the module docs of [`super`] for why every
//! input concerning a user goes through that user's queue.

use std::collections::VecDeque;

use super::user::{self, RosterState, UserState, Work};
use super::{shard_of, Forwarded, Hub, HubAction, Pending};
use crate::jid::Jid;
use crate::modules::roster::Roster;
use crate::storage::{StorageReply, StorageRequest};
use crate::stream::StanzaError;

impl Hub {
    /// Puts `work` on `user`'s queue. Work that the item being processed routes back
    /// to its own user runs next, before the rest of that user's queue.
    /// Inbound work for a user of another shard is forwarded there instead.
    pub(super) fn enqueue(&mut self, user: &Jid, work: Work) {
        let work = match work {
            Work::Inbound { to, stanza } if self.config.shards > 1 => {
                let shard = shard_of(user, self.config.shards);
                if shard != self.config.shard {
                    let work = Forwarded {
                        user: user.clone(),
                        to,
                        stanza,
                    };
                    self.actions.push_back(HubAction::Forward { shard, work });
                    return;
                }
                Work::Inbound { to, stanza }
            }
            other => other,
        };
        if self.current.as_ref() == Some(user) {
            self.front.push(work);
            return;
        }
        self.users
            .entry(user.clone())
            .or_insert_with(UserState::new)
            .queue
            .push_back(work);
        self.runnable.push_back(user.clone());
    }

    /// Runs every queue that can make progress.
    pub(super) fn run(&mut self) {
        while let Some(user) = self.runnable.pop_front() {
            self.drain(&user);
        }
    }

    /// Runs `user`'s queue until it is empty or its head needs the roster, then
    /// forgets the user if idle.
    fn drain(&mut self, user: &Jid) {
        loop {
            let Some(state) = self.users.get_mut(user) else {
                return;
            };
            let Some(front) = state.queue.front() else {
                // An online user's queue is empty most of the time: give its memory
                // back rather than keep the largest burst's capacity per user.
                state.queue = VecDeque::new();
                break;
            };
            if !state.satisfied(state.need(front)) {
                if matches!(state.roster, RosterState::Unknown) {
                    state.roster = RosterState::Loading;
                    self.request(
                        StorageRequest::LoadUser { user: user.clone() },
                        Pending::LoadUser(user.clone()),
                    );
                }
                return;
            }
            let work = state.queue.pop_front().expect("front checked");
            self.current = Some(user.clone());
            self.process(user, work);
            self.current = None;
            let routed_back = std::mem::take(&mut self.front);
            if let Some(state) = self.users.get_mut(user) {
                for w in routed_back.into_iter().rev() {
                    state.queue.push_front(w);
                }
            }
        }
        if self.users.get(user).is_some_and(UserState::idle) {
            self.users.remove(user);
        }
    }

    fn process(&mut self, user: &Jid, work: Work) {
        match work {
            Work::Bind { session, jid } => {
                let state = self.user_mut(user);
                if let RosterState::Loaded(r @ None) = &mut state.roster {
                    *r = Some(Roster::default());
                }
                // Most users have one session: no room for four.
                state.sessions.reserve_exact(1);
                state.sessions.push(user::Session::new(session, jid));
            }
            Work::Unbind { session } => self.unbind_session(user, session),
            Work::Configure {
                session,
                change: user::SessionChange::Agent(agent),
            } => self.end_earlier_sessions_of(user, session, agent),
            Work::Configure { session, change } => {
                if let Some(s) = self.user_mut(user).session_mut(session) {
                    match change {
                        user::SessionChange::Carbons(on) => s.carbons = on,
                        user::SessionChange::SmId(id) => s.sm_id = Some(id),
                        user::SessionChange::Agent(_) => {}
                    }
                }
            }
            Work::Outbound {
                session,
                from,
                stanza,
            } => match stanza.name() {
                "message" => self.outbound_message(user, session, stanza),
                "presence" => self.outbound_presence(user, session, &from, stanza),
                _ => self.outbound_iq(user, stanza),
            },
            Work::Inbound { to, stanza } => self.inbound(user, to, stanza),
        }
    }

    pub(super) fn on_user_loaded(&mut self, user: Jid, reply: StorageReply) {
        let Some(state) = self.users.get_mut(&user) else {
            return;
        };
        match reply {
            StorageReply::User(items) => {
                let roster = match items {
                    Some(items) => Some(Roster::new(items)),
                    // A bound session proves the account (e.g. an anonymous one).
                    None if !state.sessions.is_empty() => Some(Roster::default()),
                    None => None,
                };
                state.roster = RosterState::Loaded(roster);
            }
            other => {
                tracing::warn!(%user, reply = ?other, "loading a user failed");
                state.roster = RosterState::Unknown;
                self.fail_blocked(&user);
            }
        }
        self.runnable.push_back(user);
    }

    /// After a failed load, answers the work that was waiting for it with
    /// `internal-server-error` (requests) or drops it, so that the queue moves on; the
    /// next work that needs the roster loads it again.
    fn fail_blocked(&mut self, user: &Jid) {
        loop {
            let Some(state) = self.users.get_mut(user) else {
                return;
            };
            let Some(front) = state.queue.front() else {
                return;
            };
            if state.satisfied(state.need(front)) {
                return;
            }
            let work = state.queue.pop_front().expect("front checked");
            match work {
                Work::Outbound { stanza, .. } | Work::Inbound { stanza, .. } => {
                    let request =
                        stanza.name() == "message" || matches!(stanza.attr("type"), Some("get" | "set"));
                    if stanza.name() != "presence" && request {
                        self.bounce(&stanza, StanzaError::InternalServerError);
                    }
                }
                Work::Unbind { session } => {
                    if let Some(state) = self.users.get_mut(user) {
                        state.sessions.retain(|s| s.id != session);
                    }
                }
                Work::Bind { .. } | Work::Configure { .. } => {}
            }
        }
    }
}
