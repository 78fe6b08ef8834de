//! XEP-0198 §5 resumption in the hub: a stream-managed session whose connection
//! broke stays bound here, detached, until its deadline; stanzas for it join its
//! unacknowledged ones. A new connection of the same user takes it over
//! ([`HubInput::Resume`](super::HubInput::Resume)); at the deadline the session
//! ends and nothing it held is lost: messages are routed again (to another
//! resource, or offline storage, RFC 6121 §8.5.3.2.1), iq requests are answered
//! `service-unavailable` (XEP-0198 §5 "as if delivery failed"), presence is dropped.
//!
//! The hub shard of the user owns all this, so a connection may resume on any
//! thread or executor: the runtime only carries the inputs to the user's shard.

use std::time::SystemTime;

use super::user::{SessionChange, Work};
use super::{Hub, HubAction, Pending, SessionId};
use crate::jid::Jid;
use crate::modules::offline;
use crate::ns;
use crate::storage::StorageRequest;
use crate::stream::c2s::{Outbound, SmResumed, SmSnapshot};
use crate::stream::StanzaError;

/// A session waiting to be resumed.
#[derive(Debug)]
pub(super) struct Detached {
    pub snapshot: SmSnapshot,
    pub deadline: SystemTime,
}

impl Hub {
    /// A session setting, applied in order with the session's other work.
    pub(super) fn on_session_change(&mut self, session: SessionId, change: SessionChange) {
        let Some(jid) = self.sessions.get(&session).cloned() else {
            return;
        };
        self.enqueue(&jid.bare(), Work::Configure { session, change });
    }

    /// XEP-0386 §2.2: `session` of `user` was bound by the client installation
    /// `agent`; the installation's earlier sessions end. An attached one is
    /// replaced (its connection gets `conflict`), a detached one ends now; either
    /// way their unacknowledged stanzas are routed again. A session being resumed
    /// is left alone.
    pub(super) fn end_earlier_sessions_of(&mut self, user: &Jid, session: SessionId, agent: String) {
        let earlier: Vec<SessionId> = self
            .user(user)
            .sessions
            .iter()
            .filter(|s| s.id != session && s.agent.as_deref() == Some(agent.as_str()))
            .map(|s| s.id)
            .filter(|id| !self.takeovers.contains_key(id))
            .collect();
        if let Some(s) = self.user_mut(user).session_mut(session) {
            s.agent = Some(agent);
        }
        for old in earlier {
            let Some(jid) = self.sessions.remove(&old) else {
                continue;
            };
            if self.bound.get(&jid) == Some(&old) {
                self.bound.remove(&jid);
            }
            tracing::info!(old, new = session, %jid, "an earlier session of the same client ends");
            let detached = self.detached.remove(&old);
            if detached.is_none() {
                self.actions.push_back(HubAction::Replaced { session: old });
            }
            self.enqueue(user, Work::Unbind { session: old });
            if let Some(d) = detached {
                self.reroute_unacked(&jid, d.snapshot.unacked);
            }
        }
    }

    /// The connection of a stream-managed session ended.
    pub(super) fn on_detach(&mut self, session: SessionId, jid: &Jid, snapshot: SmSnapshot) {
        if let Some(new) = self.takeovers.remove(&session) {
            return self.complete_resume(session, new, snapshot);
        }
        let Some(jid) = self.sessions.get(&session).cloned() else {
            // Already replaced by a session with the same JID: its stanzas still
            // need a home.
            tracing::debug!(session, %jid, "detach of a replaced session");
            return self.reroute_unacked(jid, snapshot.unacked);
        };
        if snapshot.resume_timeout.is_zero() {
            self.on_unbind(session);
            return self.reroute_unacked(&jid, snapshot.unacked);
        }
        let deadline = self.now + snapshot.resume_timeout;
        tracing::debug!(session, %jid, unacked = snapshot.unacked.len(), "detached, resumable");
        self.detached.insert(session, Detached { snapshot, deadline });
    }

    /// A new connection resumes `previd` of `user`.
    pub(super) fn on_resume(&mut self, new: SessionId, user: &Jid, previd: &str) {
        let old = self.users.get(user).and_then(|u| {
            u.sessions
                .iter()
                .find(|s| s.sm_id.as_deref() == Some(previd))
                .map(|s| s.id)
        });
        let Some(old) = old.filter(|o| !self.takeovers.contains_key(o)) else {
            return self.actions.push_back(HubAction::ResumeFailed { session: new });
        };
        match self.detached.remove(&old) {
            Some(d) => self.complete_resume(old, new, d.snapshot),
            None => {
                // Still connected as far as we know: its state comes with its
                // Detach once the old connection has closed.
                self.takeovers.insert(old, new);
                self.actions.push_back(HubAction::Takeover { session: old });
            }
        }
    }

    /// The session `old` continues as connection `new`.
    fn complete_resume(&mut self, old: SessionId, new: SessionId, mut snapshot: SmSnapshot) {
        let Some(jid) = self.sessions.remove(&old) else {
            return self.actions.push_back(HubAction::ResumeFailed { session: new });
        };
        self.sessions.insert(new, jid.clone());
        if self.bound.get(&jid) == Some(&old) {
            self.bound.insert(jid.clone(), new);
        }
        if let Some(state) = self.users.get_mut(&jid.bare()) {
            if let Some(s) = state.session_mut(old) {
                s.id = new;
            }
        }
        // The resumed stream has a buffer limit again; trim nothing here, the
        // connection enforces it as it resends.
        snapshot.resume_timeout = std::time::Duration::ZERO;
        tracing::info!(old, new, %jid, "session resumed");
        self.actions.push_back(HubAction::Resumed {
            session: new,
            resumed: Box::new(SmResumed { jid, state: snapshot }),
        });
    }

    /// A stanza for a detached session waits with its unacknowledged ones. Past
    /// `buffer_max` the session will not be resumed: its deadline becomes now, and
    /// the runtime's next timeout ends it (its stanzas go offline or bounce).
    pub(super) fn hold_for_detached(&mut self, session: SessionId, out: Outbound) {
        let now = self.now;
        if let Some(d) = self.detached.get_mut(&session) {
            d.snapshot.unacked.push(out);
            if d.snapshot
                .buffer_max
                .is_some_and(|max| d.snapshot.unacked.len() > max)
            {
                d.deadline = d.deadline.min(now);
            }
        }
    }

    /// Ends the detached sessions whose deadline is past.
    pub(super) fn expire_detached(&mut self, now: SystemTime) {
        let expired: Vec<SessionId> = self
            .detached
            .iter()
            .filter(|(_, d)| d.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for session in expired {
            let Some(d) = self.detached.remove(&session) else {
                continue;
            };
            let Some(jid) = self.sessions.get(&session).cloned() else {
                continue;
            };
            tracing::info!(session, %jid, unacked = d.snapshot.unacked.len(), "resumption timed out");
            self.on_unbind(session);
            self.reroute_unacked(&jid, d.snapshot.unacked);
        }
    }

    /// Stanzas a session that is gone never acknowledged (XEP-0198 §5): messages
    /// go to the user again (after the unbind on the queue, so another resource or
    /// offline storage gets them), offline messages back to storage, iq requests
    /// are bounced; presence and carbon copies are dropped.
    pub(super) fn reroute_unacked(&mut self, jid: &Jid, unacked: Vec<Outbound>) {
        let user = jid.bare();
        for out in unacked {
            match out {
                Outbound::Raw(xml) => self.request(
                    StorageRequest::StoreOffline {
                        owner: user.clone(),
                        stanza: xml,
                        limit: usize::MAX,
                    },
                    Pending::Restore,
                ),
                Outbound::Stanza(stanza) => match stanza.name() {
                    "message" => {
                        let carbon = stanza
                            .children()
                            .any(|c| c.ns() == ns::CARBONS && matches!(c.name(), "received" | "sent"));
                        if carbon || !offline::is_storable(&stanza) {
                            continue;
                        }
                        self.enqueue(
                            &user,
                            Work::Inbound {
                                to: Some(jid.clone()),
                                stanza,
                            },
                        );
                    }
                    "iq" if matches!(stanza.attr("type"), Some("get" | "set")) => {
                        self.bounce(&stanza, StanzaError::ServiceUnavailable)
                    }
                    _ => {}
                },
            }
        }
    }
}
