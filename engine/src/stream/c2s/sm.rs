//! XEP-0198 stream management on a C2S connection: `<enable/>`, acks (`<r/>`,
//! `<a/>`), the queue of stanzas the client has not acknowledged, and resumption
//! (`<resume/>`, also inline in SASL2).
//!
//! When a stream-managed connection breaks, its state ([`SmSnapshot`]) goes to the
//! hub shard of its user, which keeps the session as a detached one until the
//! resumption timeout (see `crate::hub`); a new connection of the same user asks
//! that shard for it with `HubInput::Resume`. The hub, not the runtime, owns this,
//! so resumption works whichever thread or executor the new connection lands on.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::{Action, C2s, Phase, SmConfig};
use crate::hub::HubInput;
use crate::jid::Jid;
use crate::ns;
use crate::stream::{StanzaError, StreamError};
use crate::xml::Element;

/// A stanza on its way to the client, as the hub gave it.
#[derive(Debug, Clone, PartialEq)]
pub enum Outbound {
    /// A stanza element.
    Stanza(Element),
    /// An already serialised stanza (an offline message, XEP-0160).
    Raw(String),
}

impl Outbound {
    /// The element name (`message`, `presence`, `iq`).
    pub fn name(&self) -> &str {
        match self {
            Outbound::Stanza(el) => el.name(),
            Outbound::Raw(_) => "message",
        }
    }
}

/// The resumable state of a stream-managed session, handed to the hub when its
/// connection breaks (XEP-0198 §5).
#[derive(Debug, Clone, PartialEq)]
pub struct SmSnapshot {
    /// The stream management id (the client's `previd` when it resumes).
    pub id: String,
    /// Stanzas from the client the server handled (the server's `h`).
    pub inbound: u32,
    /// Stanzas to the client it acknowledged.
    pub acked: u32,
    /// Stanzas sent (or held back) and not acknowledged, oldest first.
    pub unacked: Vec<Outbound>,
    /// How long the hub keeps the session for a resumption; zero when the stream
    /// ended on purpose and the session is over.
    pub resume_timeout: Duration,
    /// Most unacknowledged stanzas the hub keeps while detached.
    pub buffer_max: Option<usize>,
}

/// What the hub hands to the connection that resumed a session.
#[derive(Debug, Clone, PartialEq)]
pub struct SmResumed {
    /// The session's full JID.
    pub jid: Jid,
    /// Its state, with what arrived while it was detached.
    pub state: SmSnapshot,
}

/// A resumption asked of the hub: the client's `h` and where the answer goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Resuming {
    pub previd: String,
    pub h: u32,
    /// Inline in a SASL2 `<authenticate/>` (the answer goes into `<success/>`).
    pub inline: bool,
}

/// Stream management of one connection.
#[derive(Debug)]
pub(super) struct StreamManagement {
    pub id: String,
    pub resume: bool,
    pub inbound: u32,
    pub acked: u32,
    pub unacked: VecDeque<Outbound>,
    /// Stanzas sent since the last `<r/>`.
    since_request: u32,
}

impl StreamManagement {
    fn new(id: String, resume: bool) -> Self {
        Self {
            id,
            resume,
            inbound: 0,
            acked: 0,
            unacked: VecDeque::new(),
            since_request: 0,
        }
    }

    /// XEP-0198 §4: the peer handled `h` stanzas; forget those. `false` when `h`
    /// acknowledges more than was sent (§4: an `undefined-condition` error).
    fn ack(&mut self, h: u32) -> bool {
        let newly = h.wrapping_sub(self.acked);
        if newly as usize > self.unacked.len() {
            return false;
        }
        self.unacked.drain(..newly as usize);
        self.acked = h;
        true
    }
}

/// XEP-0198 §6: the `<failed/>` answer to an enable or resume we cannot grant.
pub(super) fn failed(condition: StanzaError, h: Option<u32>) -> Element {
    let mut f = Element::new("failed", ns::SM).with_child(Element::new(condition.condition(), ns::STANZAS));
    if let Some(h) = h {
        f.set_attr("h", h.to_string());
    }
    f
}

impl C2s {
    fn sm_config(&self) -> Option<&SmConfig> {
        self.config.sm.as_ref()
    }

    /// XEP-0198 §3: `<enable/>` (also inline in Bind 2): the `<enabled/>` answer.
    pub(super) fn sm_enable(&mut self, enable: &Element) -> Element {
        if self.sm_config().is_none() {
            return failed(StanzaError::ServiceUnavailable, None);
        }
        if self.sm.is_some() {
            return failed(StanzaError::UnexpectedRequest, None);
        }
        let resume = matches!(enable.attr("resume"), Some("true" | "1"));
        let id = self.random_token(16);
        let mut enabled = Element::new("enabled", ns::SM).with_attr("id", id.clone());
        if resume {
            let timeout = self.sm_config().map_or(0, |c| c.resume_timeout.as_secs());
            enabled.set_attr("resume", "true");
            enabled.set_attr("max", timeout.to_string());
        }
        self.sm = Some(Box::new(StreamManagement::new(id.clone(), resume)));
        if resume {
            // Only a resumable session can be found by its id (XEP-0198 §5).
            self.actions
                .push_back(Action::Hub(HubInput::SmEnabled { session: self.id, id }));
        }
        enabled
    }

    /// A top-level element in the XEP-0198 namespace.
    pub(super) fn on_sm_element(&mut self, el: Element, now: Instant) {
        match (el.name(), &self.phase) {
            ("enable", Phase::Bound) => {
                let answer = self.sm_enable(&el);
                self.send(&answer);
            }
            ("resume", Phase::Authenticated) => self.ask_resume(&el, false, now),
            ("resume" | "enable", _) => self.send(&failed(StanzaError::UnexpectedRequest, None)),
            ("r", Phase::Bound) if self.sm.is_some() => {
                let h = self.sm.as_ref().map_or(0, |s| s.inbound);
                self.send(&Element::new("a", ns::SM).with_attr("h", h.to_string()));
            }
            ("a", Phase::Bound) if self.sm.is_some() => {
                let h = el.attr("h").and_then(|h| h.parse::<u32>().ok());
                let ok = match (h, self.sm.as_mut()) {
                    (Some(h), Some(sm)) => sm.ack(h),
                    _ => false,
                };
                if !ok {
                    // XEP-0198 §4: an impossible h is an undefined-condition error.
                    self.stream_error(StreamError::UndefinedCondition, Some("bad h in <a/>"));
                }
                self.touch(now);
            }
            _ => self.stream_error(StreamError::UnsupportedStanzaType, None),
        }
    }

    /// XEP-0198 §5: asks the hub shard of the authenticated user for the session
    /// `previd`.
    pub(super) fn ask_resume(&mut self, resume: &Element, inline: bool, now: Instant) {
        let (Some(user), Some(previd), Some(h)) = (
            self.user.clone(),
            resume.attr("previd"),
            resume.attr("h").and_then(|h| h.parse::<u32>().ok()),
        ) else {
            let f = failed(StanzaError::BadRequest, None);
            return if inline {
                self.sasl2_resume_answer(f, None, now)
            } else {
                self.send(&f)
            };
        };
        if self.sm_config().is_none() {
            let f = failed(StanzaError::ServiceUnavailable, None);
            return if inline {
                self.sasl2_resume_answer(f, None, now)
            } else {
                self.send(&f)
            };
        }
        self.resuming = Some(Box::new(Resuming {
            previd: previd.to_string(),
            h,
            inline,
        }));
        self.actions.push_back(Action::Hub(HubInput::Resume {
            session: self.id,
            user,
            previd: previd.to_string(),
        }));
    }

    /// The hub gave this connection the session it asked for.
    pub fn handle_resumed(&mut self, resumed: SmResumed, now: Instant) {
        let Some(asked) = self.resuming.take() else { return };
        if self.phase == Phase::Closed {
            // Too late: hand the session straight back.
            let snapshot = SmSnapshot {
                resume_timeout: self.sm_config().map_or(Duration::ZERO, |c| c.resume_timeout),
                ..resumed.state
            };
            self.actions.push_back(Action::Hub(HubInput::Detach {
                session: self.id,
                jid: resumed.jid,
                snapshot: Box::new(snapshot),
            }));
            return;
        }
        let state = resumed.state;
        let mut sm = StreamManagement::new(state.id.clone(), true);
        sm.inbound = state.inbound;
        sm.acked = state.acked;
        sm.unacked = state.unacked.into();
        // XEP-0198 §5: the client's h acknowledges what it got before the break.
        if !sm.ack(asked.h) {
            sm.acked = asked.h;
            sm.unacked.clear();
        }
        let answer = Element::new("resumed", ns::SM)
            .with_attr("h", sm.inbound.to_string())
            .with_attr("previd", state.id);
        let resend: Vec<Outbound> = std::mem::take(&mut sm.unacked).into();
        self.sm = Some(Box::new(sm));
        self.jid = Some(resumed.jid.clone());
        self.session_event(true);
        tracing::info!(session = self.id, jid = %resumed.jid, resent = resend.len(), "resumed");
        self.phase = Phase::Bound;
        self.keepalive_due = Some(now + self.config.keepalive_interval);
        self.arm_timer();
        if asked.inline {
            self.sasl2_resume_answer(answer, Some(resend), now);
        } else {
            self.send(&answer);
            self.resend(resend, now);
        }
        self.flush();
    }

    /// XEP-0198 §5: stanzas not acknowledged before the break are sent again, and
    /// count again.
    pub(super) fn resend(&mut self, stanzas: Vec<Outbound>, now: Instant) {
        for s in stanzas {
            self.transmit(s, now);
        }
    }

    /// The hub has no session `previd` for this user (expired, or never was).
    pub fn handle_resume_failed(&mut self, now: Instant) {
        let Some(asked) = self.resuming.take() else { return };
        let f = failed(StanzaError::ItemNotFound, None);
        if asked.inline {
            self.sasl2_resume_answer(f, None, now);
        } else {
            self.send(&f);
        }
        self.flush();
    }

    /// Another connection resumes this session: the stream ends (XEP-0198 §5
    /// leaves the old stream to the server; we close it with `conflict`) and the
    /// state goes to the hub, which hands it over.
    pub fn handle_takeover(&mut self, _now: Instant) {
        if self.phase == Phase::Closed {
            return;
        }
        tracing::info!(session = self.id, "session resumed elsewhere");
        self.stream_error_with(
            StreamError::Conflict,
            Some("session resumed by a new connection"),
            true,
        );
        self.flush();
    }

    /// Counts a stanza from the client (XEP-0198 §4: the server's `h`).
    pub(super) fn sm_count_inbound(&mut self) {
        if let Some(sm) = &mut self.sm {
            sm.inbound = sm.inbound.wrapping_add(1);
        }
    }

    /// Records a stanza written to the client; asks for an ack every `ack_freq`
    /// stanzas, and ends the stream when too many are unacknowledged.
    pub(super) fn sm_record_outbound(&mut self, stanza: Outbound) {
        let (ack_freq, buffer_max) = match self.sm_config() {
            Some(c) => (c.ack_freq, c.buffer_max),
            None => return,
        };
        let Some(sm) = &mut self.sm else { return };
        sm.unacked.push_back(stanza);
        sm.since_request += 1;
        let over = buffer_max.is_some_and(|max| sm.unacked.len() > max);
        let ask = ack_freq.is_some_and(|f| sm.since_request >= f.max(1));
        if ask {
            sm.since_request = 0;
            let r = Element::new("r", ns::SM);
            self.send(&r);
        }
        if over {
            self.stream_error(
                StreamError::ResourceConstraint,
                Some("too many unacknowledged stanzas"),
            );
        }
    }

    /// The session's state for the hub, when the connection ends.
    pub(super) fn sm_snapshot(&mut self, resumable: bool) -> Option<SmSnapshot> {
        let sm = self.sm.take()?;
        let mut unacked: Vec<Outbound> = sm.unacked.into();
        unacked.extend(self.csi.take_held());
        let config = self.sm_config();
        let resume_timeout = match (resumable && sm.resume, config) {
            (true, Some(c)) => c.resume_timeout,
            _ => Duration::ZERO,
        };
        Some(SmSnapshot {
            id: sm.id,
            inbound: sm.inbound,
            acked: sm.acked,
            unacked,
            resume_timeout,
            buffer_max: config.and_then(|c| c.buffer_max),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_drop_what_the_client_got() {
        let mut sm = StreamManagement::new("x".into(), true);
        for i in 0..3 {
            sm.unacked.push_back(Outbound::Raw(i.to_string()));
        }
        assert!(sm.ack(2));
        assert_eq!(sm.unacked, vec![Outbound::Raw("2".into())]);
        assert!(sm.ack(2));
        assert!(!sm.ack(5), "more than was sent");
        assert!(sm.ack(3));
        assert!(sm.unacked.is_empty());
    }
}
