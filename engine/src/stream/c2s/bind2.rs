//! XEP-0386 Bind 2: resource binding inside the SASL2 `<authenticate/>`, with
//! stream management, carbons and CSI enabled inline, all answered in `<success/>`.
//!
//! One deviation from §2.2: the XEP says to clear offline messages (MAM provides
//! them). Meerkat has no MAM, so offline messages are kept and delivered on initial
//! presence as for any session; clearing them would lose them.

use std::time::Instant;

use super::{Action, C2s, Phase};
use crate::hub::HubInput;
use crate::jid::Jid;
use crate::ns;
use crate::xml::Element;

/// Longest client tag kept in a resource, in characters.
const MAX_TAG: usize = 64;

impl C2s {
    /// XEP-0386 §2.1: the `<bind/>` inline feature with what can be enabled with it.
    pub(super) fn bind2_feature(&self) -> Element {
        let mut inline = Element::new("inline", ns::BIND2);
        let mut offer =
            |var: &str| inline.push_child(Element::new("feature", ns::BIND2).with_attr("var", var));
        if self.config.carbons {
            offer(ns::CARBONS);
        }
        if self.config.csi.is_some() {
            offer(ns::CSI);
        }
        if self.config.sm.is_some() {
            offer(ns::SM);
        }
        let mut bind = Element::new("bind", ns::BIND2);
        if inline.children().next().is_some() {
            bind.push_child(inline);
        }
        bind
    }

    /// XEP-0386 §2.2: binds `[tag]/[random]` (or a random resource without a tag),
    /// enables what the client asked for, and returns the `<bound/>` answer.
    pub(super) fn bind2(&mut self, bind: &Element, now: Instant) -> Element {
        let random = self.random_token(6);
        let tag: Option<String> = bind
            .get_child("tag", ns::BIND2)
            .map(|t| t.text().trim().chars().take(MAX_TAG).collect())
            .filter(|t: &String| !t.is_empty());
        let Some(user) = self.user.clone() else {
            return Element::new("bound", ns::BIND2);
        };
        let jid = tag
            .and_then(|t| user.with_resource(&format!("{t}/{random}")).ok())
            .or_else(|| user.with_resource(&format!("meerkat-{random}")).ok())
            .unwrap_or(user);
        self.bind_session(jid, now);
        if let Some(id) = self.user_agent_id().map(str::to_string) {
            // §2.2: earlier sessions of this client installation end.
            self.actions
                .push_back(Action::Hub(HubInput::UserAgent { session: self.id, id }));
        }
        let mut bound = Element::new("bound", ns::BIND2);
        for request in bind.children() {
            match (request.name(), request.ns()) {
                ("enable", ns::SM) => {
                    let answer = self.sm_enable(request);
                    bound.push_child(answer);
                }
                // §2.2: carbons "MUST succeed", so there is no answer.
                ("enable", ns::CARBONS) if self.config.carbons => {
                    self.actions.push_back(Action::Hub(HubInput::Carbons {
                        session: self.id,
                        enabled: true,
                    }))
                }
                ("active", ns::CSI) => self.csi_set_inactive(false),
                ("inactive", ns::CSI) => self.csi_set_inactive(true),
                _ => {}
            }
        }
        bound
    }

    /// Binds `jid` to this connection (RFC 6120 §7, or Bind 2).
    pub(super) fn bind_session(&mut self, jid: Jid, now: Instant) {
        tracing::info!(session = self.id, jid = %jid, "bound");
        self.jid = Some(jid.clone());
        self.phase = Phase::Bound;
        self.session_event(true);
        self.actions.push_back(Action::Hub(HubInput::Bind {
            session: self.id,
            jid,
        }));
        self.keepalive_due = Some(now + self.config.keepalive_interval);
        self.arm_timer();
    }
}
