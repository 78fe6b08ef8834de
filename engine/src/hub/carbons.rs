//! XEP-0280 message carbons: a user's resources that enabled carbons get a copy of
//! the chat messages their other resources send (`<sent/>`) and receive
//! (`<received/>`), wrapped in XEP-0297 `<forwarded/>`.

use super::{Hub, SessionId};
use crate::jid::Jid;
use crate::modules::{iq_result, MessageType};
use crate::ns;
use crate::stream::StanzaError;
use crate::xml::Element;

/// XEP-0280 §6: chat messages are copied, unless marked private (§7) or
/// `<no-copy/>` (XEP-0334), and copies are never copied again.
pub(super) fn eligible(message: &Element) -> bool {
    MessageType::of(message) == MessageType::Chat
        && message.get_child("private", ns::CARBONS).is_none()
        && message.get_child("no-copy", ns::HINTS).is_none()
        && !message
            .children()
            .any(|c| c.ns() == ns::CARBONS && matches!(c.name(), "received" | "sent"))
}

/// XEP-0280 §6: the copy of `message` for `to`, a resource of `user`.
fn copy(kind: &str, user: &Jid, to: &Jid, message: &Element) -> Element {
    let forwarded = Element::new("forwarded", ns::FORWARD).with_child(message.clone());
    Element::new("message", ns::CLIENT)
        .with_attr("from", user.to_string())
        .with_attr("to", to.to_string())
        .with_attr("type", "chat")
        .with_child(Element::new(kind, ns::CARBONS).with_child(forwarded))
}

impl Hub {
    /// Sends `kind` (`sent` or `received`) copies of `message` to `user`'s
    /// carbons-enabled resources other than `except`.
    pub(super) fn carbon_copies(&mut self, user: &Jid, kind: &str, message: &Element, except: &[SessionId]) {
        if !self.config.carbons_enabled || !eligible(message) {
            return;
        }
        let Some(state) = self.users.get(user) else { return };
        let targets: Vec<(SessionId, Jid)> = state
            .sessions
            .iter()
            .filter(|s| s.carbons && !except.contains(&s.id))
            .map(|s| (s.id, s.jid.clone()))
            .collect();
        for (id, jid) in targets {
            let c = copy(kind, user, &jid, message);
            self.deliver(id, c);
        }
    }

    /// XEP-0280 §4–5: `<enable/>` or `<disable/>` from the resource `from` of
    /// `user`. `None` when `iq` is not a carbons request.
    pub(super) fn carbons_iq(&mut self, user: &Jid, iq: &Element) -> Option<()> {
        let payload = iq.first_child()?;
        if payload.ns() != ns::CARBONS || iq.attr("type") != Some("set") {
            return None;
        }
        let on = match payload.name() {
            "enable" => true,
            "disable" => false,
            _ => return None,
        };
        if !self.config.carbons_enabled {
            self.bounce(iq, StanzaError::ServiceUnavailable);
            return Some(());
        }
        let from = iq.attr("from").and_then(|f| Jid::parse(f).ok());
        let state = self.user_mut(user);
        match from.and_then(|f| state.sessions.iter_mut().find(|s| s.jid == f)) {
            Some(s) => {
                s.carbons = on;
                let reply = iq_result(iq, None);
                self.route(reply);
            }
            None => self.bounce(iq, StanzaError::BadRequest),
        }
        Some(())
    }
}
