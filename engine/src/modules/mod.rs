//! Module protocol logic used by the hub: roster (RFC 6121 §2), presence and
//! subscriptions (RFC 6121 §3–4), offline messages (XEP-0160), disco (XEP-0030),
//! ping (XEP-0199), software version (XEP-0092).
//!
//! Modules are pure: they read and build stanzas and roster items, and say what
//! should happen; the hub owns the state, the storage requests and the routing.
//! A module that answers iqs addressed to the server exposes a `handle` function
//! returning `None` when the iq is not for it, so the hub can offer an iq to each
//! module in turn and answer `service-unavailable` when nobody claims it.

pub mod disco;
pub mod offline;
pub mod ping;
pub mod presence;
pub mod roster;
pub mod version;

use crate::stream::StanzaError;
use crate::xml::Element;

/// The answer of a module to an iq it claims: a `result` reply, or the error to send.
pub type IqAnswer = Result<Element, StanzaError>;

/// RFC 6120 §8.2.3: the `result` reply to the iq `request`: same `id`, `from` and
/// `to` swapped, with `payload` as its only child (if any).
pub fn iq_result(request: &Element, payload: Option<Element>) -> Element {
    let mut reply = Element::new("iq", request.ns()).with_attr("type", "result");
    if let Some(id) = request.attr("id") {
        reply.set_attr("id", id);
    }
    if let Some(to) = request.attr("to") {
        reply.set_attr("from", to);
    }
    if let Some(from) = request.attr("from") {
        reply.set_attr("to", from);
    }
    if let Some(p) = payload {
        reply.push_child(p);
    }
    reply
}

/// True when `iq` is a `get` whose payload is `<name xmlns='ns'/>`.
pub(crate) fn is_get_of(iq: &Element, name: &str, ns: &str) -> bool {
    iq.attr("type") == Some("get") && iq.first_child().is_some_and(|p| p.is(name, ns))
}

/// RFC 6121 §5.2.2: the `type` of a message stanza.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    /// One-to-one conversation.
    Chat,
    /// A message sent in a multi-user chat room.
    Groupchat,
    /// An alert or notice that expects no reply.
    Headline,
    /// No `type`, `normal`, or a value we do not know (RFC 6121 §5.2.2: treated as
    /// `normal`).
    Normal,
    /// An error reply to an earlier message.
    Error,
}

impl MessageType {
    /// The type of `message`.
    pub fn of(message: &Element) -> Self {
        match message.attr("type") {
            Some("chat") => MessageType::Chat,
            Some("groupchat") => MessageType::Groupchat,
            Some("headline") => MessageType::Headline,
            Some("error") => MessageType::Error,
            _ => MessageType::Normal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ns;

    #[test]
    fn iq_result_swaps_addresses_and_keeps_id() {
        let iq = Element::new("iq", ns::CLIENT)
            .with_attr("id", "p1")
            .with_attr("type", "get")
            .with_attr("from", "a@localhost/r")
            .with_attr("to", "localhost")
            .with_child(Element::new("ping", ns::PING));
        assert_eq!(
            iq_result(&iq, None).to_xml_in(ns::CLIENT),
            "<iq type='result' id='p1' from='localhost' to='a@localhost/r'/>"
        );
    }

    #[test]
    fn unknown_message_type_is_normal() {
        let m = Element::new("message", ns::CLIENT).with_attr("type", "bogus");
        assert_eq!(MessageType::of(&m), MessageType::Normal);
        assert_eq!(
            MessageType::of(&m.clone().with_attr("type", "error")),
            MessageType::Error
        );
    }
}
