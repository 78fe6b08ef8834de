//! Presence (RFC 6121 §4) and presence subscriptions (RFC 6121 §3): the presence
//! vocabulary and the subscription state machine of RFC 6121 Appendix A, as pure
//! functions over one [`RosterItem`].
//!
//! RFC 6121 splits each subscription stanza into the sender's server's *outbound*
//! processing ([`outbound`], tables A.2.x) and the recipient's server's *inbound*
//! processing ([`inbound`], tables A.3.x). The hub runs them in the two users'
//! contexts; the effects returned here say what the hub must do besides storing the
//! changed item and pushing it (routing, delivery, automatic replies, presence).

use crate::storage::{RosterItem, Subscription};
use crate::xml::Element;

/// RFC 6121 §3: the four subscription-related presence types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionKind {
    /// Ask for the contact's presence (§3.1).
    Subscribe,
    /// Approve a request for one's presence (§3.1.5).
    Subscribed,
    /// Stop receiving the contact's presence (§3.3).
    Unsubscribe,
    /// Deny a request, or cancel a subscription to one's presence (§3.2).
    Unsubscribed,
}

impl SubscriptionKind {
    /// The wire value of `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            SubscriptionKind::Subscribe => "subscribe",
            SubscriptionKind::Subscribed => "subscribed",
            SubscriptionKind::Unsubscribe => "unsubscribe",
            SubscriptionKind::Unsubscribed => "unsubscribed",
        }
    }
}

/// RFC 6121 §4.7.1: the `type` of a presence stanza.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresenceType {
    /// No `type`: the sender is available (§4.7.1).
    Available,
    /// The sender is no longer available.
    Unavailable,
    /// A subscription stanza (§3).
    Subscription(SubscriptionKind),
    /// A request for an entity's current presence (§4.3), normally sent by servers.
    Probe,
    /// An error reply to an earlier presence stanza.
    Error,
}

impl PresenceType {
    /// The type of `presence`; `None` for a value RFC 6121 does not define.
    pub fn of(presence: &Element) -> Option<Self> {
        Some(match presence.attr("type") {
            None => PresenceType::Available,
            Some("unavailable") => PresenceType::Unavailable,
            Some("subscribe") => PresenceType::Subscription(SubscriptionKind::Subscribe),
            Some("subscribed") => PresenceType::Subscription(SubscriptionKind::Subscribed),
            Some("unsubscribe") => PresenceType::Subscription(SubscriptionKind::Unsubscribe),
            Some("unsubscribed") => PresenceType::Subscription(SubscriptionKind::Unsubscribed),
            Some("probe") => PresenceType::Probe,
            Some("error") => PresenceType::Error,
            Some(_) => return None,
        })
    }
}

/// RFC 6121 §4.7.2.3: the priority of an available resource, −128..=127; absent or
/// not a number in that range counts as 0.
pub fn priority(presence: &Element) -> i8 {
    presence
        .get_child("priority", presence.ns())
        .and_then(|p| p.text().trim().parse::<i8>().ok())
        .unwrap_or(0)
}

/// Presence the server sends on a user's behalf after a subscription change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresenceFollowUp {
    /// RFC 6121 §3.1.5: the current presence of each available resource, to the new
    /// subscriber.
    Current,
    /// RFC 6121 §3.2.2, §3.3.3: unavailable presence from each available resource,
    /// to the former subscriber.
    Unavailable,
}

/// What the user's server does with an outbound subscription stanza, besides
/// storing and pushing the changed item.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboundEffect {
    /// Route the stanza (stamped with the user's bare JID) to the contact.
    pub route: bool,
    /// Presence to send to the contact after routing the stanza.
    pub follow_up: Option<PresenceFollowUp>,
}

/// What the contact's server does with an inbound subscription stanza, besides
/// storing and pushing the changed item.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InboundEffect {
    /// Deliver the stanza to the recipient's available resources.
    pub deliver: bool,
    /// Answer automatically on the recipient's behalf (RFC 6121 §3.1.3: `subscribed`
    /// when the sender is already approved).
    pub reply: Option<SubscriptionKind>,
    /// Presence to send to the sender.
    pub follow_up: Option<PresenceFollowUp>,
}

/// True when the item's owner receives the contact's presence (`to` or `both`).
pub fn has_to(item: &RosterItem) -> bool {
    matches!(item.subscription, Subscription::To | Subscription::Both)
}

/// True when the contact receives the owner's presence (`from` or `both`).
pub fn has_from(item: &RosterItem) -> bool {
    matches!(item.subscription, Subscription::From | Subscription::Both)
}

fn set_to(item: &mut RosterItem, on: bool) {
    let from = has_from(item);
    item.subscription = combine(on, from);
}

fn set_from(item: &mut RosterItem, on: bool) {
    let to = has_to(item);
    item.subscription = combine(to, on);
}

fn combine(to: bool, from: bool) -> Subscription {
    match (to, from) {
        (false, false) => Subscription::None,
        (true, false) => Subscription::To,
        (false, true) => Subscription::From,
        (true, true) => Subscription::Both,
    }
}

/// RFC 6121 Appendix A.2: the user (owner of `item`) sends `kind` to the contact.
///
/// `subscribe` and the two cancellations are always routed, so that a contact's
/// server whose state drifted can resynchronise; `subscribed` is routed only when it
/// answers a pending request (§3.1.5); otherwise it records a pre-approval (§3.4).
///
/// A request or an approval puts the contact in the user's roster (§3.1.2, §3.1.5,
/// §3.4: the user's server adds or updates the item and pushes it); the
/// cancellations never do (§3.2.2, §3.3.2 only change an existing item).
pub fn outbound(item: &mut RosterItem, kind: SubscriptionKind) -> OutboundEffect {
    match kind {
        // A.2.1: None → None+PendingOut, None+PendingIn → None+PendingOut+PendingIn,
        // From → From+PendingOut; other states unchanged.
        SubscriptionKind::Subscribe => {
            item.in_roster = true;
            if !has_to(item) {
                item.ask_out = true;
            }
            OutboundEffect {
                route: true,
                follow_up: None,
            }
        }
        // A.2.3: PendingIn → From (To+PendingIn → Both); §3.4 pre-approval otherwise.
        SubscriptionKind::Subscribed => {
            if item.pending_in {
                item.pending_in = false;
                item.approved = false;
                item.in_roster = true;
                set_from(item, true);
                OutboundEffect {
                    route: true,
                    follow_up: Some(PresenceFollowUp::Current),
                }
            } else {
                if !has_from(item) {
                    item.approved = true;
                    item.in_roster = true;
                }
                OutboundEffect::default()
            }
        }
        // A.2.2: To → None, Both → From, PendingOut cleared.
        SubscriptionKind::Unsubscribe => {
            item.ask_out = false;
            set_to(item, false);
            OutboundEffect {
                route: true,
                follow_up: None,
            }
        }
        // A.2.4: From → None, Both → To, PendingIn cleared; §3.4: also cancels a
        // pre-approval. §3.2.2: the former subscriber gets unavailable presence.
        SubscriptionKind::Unsubscribed => {
            let had_from = has_from(item);
            item.pending_in = false;
            item.approved = false;
            set_from(item, false);
            OutboundEffect {
                route: true,
                follow_up: had_from.then_some(PresenceFollowUp::Unavailable),
            }
        }
    }
}

/// RFC 6121 Appendix A.3: the contact (owner of `item`) receives `kind` from the
/// user `item.jid`. Inbound stanzas never put the user in the contact's roster
/// (§3.1.3: a request from someone not in the roster is remembered, not added).
pub fn inbound(item: &mut RosterItem, kind: SubscriptionKind) -> InboundEffect {
    match kind {
        // A.3.1 and §3.1.3.
        SubscriptionKind::Subscribe => {
            if has_from(item) {
                // Already subscribed: answer on the contact's behalf.
                InboundEffect {
                    deliver: false,
                    reply: Some(SubscriptionKind::Subscribed),
                    follow_up: Some(PresenceFollowUp::Current),
                }
            } else if item.approved {
                // §3.4: pre-approved, so approve without asking the contact.
                item.approved = false;
                item.pending_in = false;
                set_from(item, true);
                InboundEffect {
                    deliver: false,
                    reply: Some(SubscriptionKind::Subscribed),
                    follow_up: Some(PresenceFollowUp::Current),
                }
            } else if !item.pending_in {
                item.pending_in = true;
                InboundEffect {
                    deliver: true,
                    ..InboundEffect::default()
                }
            } else {
                // Already pending: it is redelivered at each login anyway.
                InboundEffect::default()
            }
        }
        // A.3.3 and §3.1.6: only an answer to a pending request counts.
        SubscriptionKind::Subscribed => {
            if item.ask_out && !has_to(item) {
                item.ask_out = false;
                set_to(item, true);
                InboundEffect {
                    deliver: true,
                    ..InboundEffect::default()
                }
            } else {
                InboundEffect::default()
            }
        }
        // A.3.2 and §3.3.3: From → None, Both → To, PendingIn cleared; the former
        // subscriber gets unavailable presence.
        SubscriptionKind::Unsubscribe => {
            let had_from = has_from(item);
            if had_from || item.pending_in {
                item.pending_in = false;
                set_from(item, false);
                InboundEffect {
                    deliver: true,
                    reply: None,
                    follow_up: had_from.then_some(PresenceFollowUp::Unavailable),
                }
            } else {
                InboundEffect::default()
            }
        }
        // A.3.4 and §3.2.3: To → None, Both → From, PendingOut cleared.
        SubscriptionKind::Unsubscribed => {
            if has_to(item) || item.ask_out {
                item.ask_out = false;
                set_to(item, false);
                InboundEffect {
                    deliver: true,
                    ..InboundEffect::default()
                }
            } else {
                InboundEffect::default()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jid::Jid;
    use crate::ns;
    use SubscriptionKind::*;

    /// Appendix A state names: "None", "None+PO", "None+PI", "None+PO+PI", "To",
    /// "To+PI", "From", "From+PO", "Both".
    fn state(name: &str) -> RosterItem {
        let mut item = RosterItem::new(Jid::parse("c@example.net").unwrap());
        let mut parts = name.split('+');
        item.subscription = Subscription::parse(&parts.next().unwrap().to_lowercase()).unwrap();
        for p in parts {
            match p {
                "PO" => item.ask_out = true,
                "PI" => item.pending_in = true,
                _ => panic!("bad state {name}"),
            }
        }
        item
    }

    fn name(item: &RosterItem) -> String {
        let mut s = match item.subscription {
            Subscription::None => "None",
            Subscription::To => "To",
            Subscription::From => "From",
            Subscription::Both => "Both",
            Subscription::Remove => "Remove",
        }
        .to_string();
        if item.ask_out {
            s.push_str("+PO");
        }
        if item.pending_in {
            s.push_str("+PI");
        }
        s
    }

    const STATES: [&str; 9] = [
        "None",
        "None+PO",
        "None+PI",
        "None+PO+PI",
        "To",
        "To+PI",
        "From",
        "From+PO",
        "Both",
    ];

    fn check_out(kind: SubscriptionKind, expected: [&str; 9]) {
        for (from, to) in STATES.iter().zip(expected) {
            let mut item = state(from);
            outbound(&mut item, kind);
            assert_eq!(name(&item), to, "outbound {kind:?} from {from}");
        }
    }

    fn check_in(kind: SubscriptionKind, expected: [&str; 9]) {
        for (from, to) in STATES.iter().zip(expected) {
            let mut item = state(from);
            inbound(&mut item, kind);
            assert_eq!(name(&item), to, "inbound {kind:?} from {from}");
        }
    }

    #[test]
    fn table_a_2_1_outbound_subscribe() {
        check_out(
            Subscribe,
            [
                "None+PO",
                "None+PO",
                "None+PO+PI",
                "None+PO+PI",
                "To",
                "To+PI",
                "From+PO",
                "From+PO",
                "Both",
            ],
        );
    }

    #[test]
    fn table_a_2_2_outbound_unsubscribe() {
        check_out(
            Unsubscribe,
            [
                "None", "None", "None+PI", "None+PI", "None", "None+PI", "From", "From", "From",
            ],
        );
    }

    #[test]
    fn table_a_2_3_outbound_subscribed() {
        check_out(
            Subscribed,
            [
                "None", "None+PO", "From", "From+PO", "To", "Both", "From", "From+PO", "Both",
            ],
        );
    }

    #[test]
    fn table_a_2_4_outbound_unsubscribed() {
        check_out(
            Unsubscribed,
            [
                "None", "None+PO", "None", "None+PO", "To", "To", "None", "None+PO", "To",
            ],
        );
    }

    #[test]
    fn table_a_3_1_inbound_subscribe() {
        check_in(
            Subscribe,
            [
                "None+PI",
                "None+PO+PI",
                "None+PI",
                "None+PO+PI",
                "To+PI",
                "To+PI",
                "From",
                "From+PO",
                "Both",
            ],
        );
    }

    #[test]
    fn table_a_3_2_inbound_unsubscribe() {
        check_in(
            Unsubscribe,
            [
                "None", "None+PO", "None", "None+PO", "To", "To", "None", "None+PO", "To",
            ],
        );
    }

    #[test]
    fn table_a_3_3_inbound_subscribed() {
        check_in(
            Subscribed,
            [
                "None", "To", "None+PI", "To+PI", "To", "To+PI", "From", "Both", "Both",
            ],
        );
    }

    #[test]
    fn table_a_3_4_inbound_unsubscribed() {
        check_in(
            Unsubscribed,
            [
                "None", "None", "None+PI", "None+PI", "None", "None+PI", "From", "From", "From",
            ],
        );
    }

    #[test]
    fn effects_of_approval_and_cancellation() {
        let mut item = state("None+PI");
        assert_eq!(
            outbound(&mut item, Subscribed),
            OutboundEffect {
                route: true,
                follow_up: Some(PresenceFollowUp::Current)
            }
        );
        let mut item = state("Both");
        assert_eq!(
            outbound(&mut item, Unsubscribed).follow_up,
            Some(PresenceFollowUp::Unavailable)
        );
        let mut item = state("From");
        let e = inbound(&mut item, Subscribe);
        assert_eq!(e.reply, Some(Subscribed));
        assert!(!e.deliver);
        let mut item = state("Both");
        assert_eq!(
            inbound(&mut item, Unsubscribe).follow_up,
            Some(PresenceFollowUp::Unavailable)
        );
        let mut item = state("None");
        assert_eq!(inbound(&mut item, Subscribed), InboundEffect::default());
    }

    #[test]
    fn pre_approval_is_recorded_then_used() {
        let mut item = state("None");
        assert_eq!(outbound(&mut item, Subscribed), OutboundEffect::default());
        assert!(item.approved);
        let e = inbound(&mut item, Subscribe);
        assert_eq!(e.reply, Some(Subscribed));
        assert_eq!(name(&item), "From");
        assert!(!item.approved);
        // Unsubscribed cancels a pre-approval (RFC 6121 §3.4).
        let mut item = state("To");
        outbound(&mut item, Subscribed);
        assert!(item.approved);
        outbound(&mut item, Unsubscribed);
        assert!(!item.approved);
    }

    /// RFC 6121 §3.1.2, §3.1.5, §3.4: the user's request or approval adds the
    /// contact to the roster; cancellations do not, and nothing inbound does (§3.1.3).
    #[test]
    fn only_outbound_requests_and_approvals_join_the_roster() {
        for start in ["None", "None+PI"] {
            let hidden = || RosterItem {
                in_roster: false,
                ..state(start)
            };
            for kind in [Subscribe, Subscribed, Unsubscribe, Unsubscribed] {
                let mut item = hidden();
                inbound(&mut item, kind);
                assert!(!item.in_roster, "inbound {kind:?} from hidden {start}");
                let mut item = hidden();
                outbound(&mut item, kind);
                assert_eq!(
                    item.in_roster,
                    matches!(kind, Subscribe | Subscribed),
                    "outbound {kind:?} from hidden {start}"
                );
            }
        }
    }

    #[test]
    fn presence_types_and_priority() {
        let p = Element::new("presence", ns::CLIENT);
        assert_eq!(PresenceType::of(&p), Some(PresenceType::Available));
        assert_eq!(
            PresenceType::of(&p.clone().with_attr("type", "unsubscribed")),
            Some(PresenceType::Subscription(Unsubscribed))
        );
        assert_eq!(PresenceType::of(&p.clone().with_attr("type", "bogus")), None);
        assert_eq!(priority(&p), 0);
        let with = |v: &str| {
            p.clone()
                .with_child(Element::new("priority", ns::CLIENT).with_text(v))
        };
        assert_eq!(priority(&with("-5")), -5);
        assert_eq!(priority(&with(" 127 ")), 127);
        assert_eq!(priority(&with("128")), 0);
        assert_eq!(priority(&with("x")), 0);
    }
}
