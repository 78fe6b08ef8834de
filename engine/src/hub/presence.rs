//! Presence (RFC 6121 §4) and subscriptions (RFC 6121 §3) in the hub: the outbound
//! part runs in the sender's context, the inbound part in the recipient's; the state
//! machine itself is [`crate::modules::presence`].

use super::{Hub, Pending, SessionId};
use crate::jid::Jid;
use crate::modules::presence::{self, has_from, PresenceFollowUp, PresenceType, SubscriptionKind};
use crate::modules::roster::{self, same_on_wire};
use crate::ns;
use crate::storage::{RosterItem, StorageRequest};
use crate::stream::StanzaError;
use crate::xml::Element;

/// A presence stanza of `kind` (or available when `None`) from `from` to `to`.
fn presence_stanza(kind: Option<&str>, from: &Jid, to: &Jid) -> Element {
    let mut p = Element::new("presence", ns::CLIENT);
    p.set_attr("from", from.to_string());
    p.set_attr("to", to.to_string());
    if let Some(k) = kind {
        p.set_attr("type", k);
    }
    p
}

fn addressed(stanza: &Element, to: &Jid) -> Element {
    let mut p = stanza.clone();
    p.set_attr("to", to.to_string());
    p
}

impl Hub {
    /// Outbound presence from `session` of `user` (RFC 6121 §4 and §3).
    pub(super) fn outbound_presence(&mut self, user: &Jid, session: SessionId, from: &Jid, stanza: Element) {
        let Some(kind) = PresenceType::of(&stanza) else {
            return self.bounce(&stanza, StanzaError::BadRequest);
        };
        let to = match stanza.attr("to").map(Jid::parse) {
            None => None,
            Some(Ok(j)) => Some(j),
            Some(Err(_)) => return self.bounce(&stanza, StanzaError::JidMalformed),
        };
        match (kind, to) {
            (PresenceType::Available, None) => self.broadcast_available(user, session, stanza),
            (PresenceType::Unavailable, None) => self.broadcast_unavailable(user, session, stanza),
            (PresenceType::Subscription(k), Some(to)) => {
                self.outbound_subscription(user, stanza, k, to.bare())
            }
            // RFC 6121 §4.6: directed presence; remembered so that the recipient learns
            // when this resource goes away.
            (PresenceType::Available | PresenceType::Unavailable, Some(to)) => {
                if to.bare() != *user {
                    if let Some(s) = self.user_mut(user).session_mut(session) {
                        if kind == PresenceType::Available {
                            s.directed.insert(to);
                        } else {
                            s.directed.remove(&to);
                        }
                    }
                }
                self.route(stanza);
            }
            (PresenceType::Probe | PresenceType::Error, Some(_)) => self.route(stanza),
            // Subscription, probe or error stanzas without a recipient mean nothing.
            _ => tracing::debug!(%from, "dropping presence without to"),
        }
    }

    /// RFC 6121 §4.2 (initial presence) and §4.4 (presence update).
    fn broadcast_available(&mut self, user: &Jid, session: SessionId, stanza: Element) {
        let priority = presence::priority(&stanza);
        let state = self.user_mut(user);
        let Some(s) = state.session_mut(session) else {
            return;
        };
        let initial = !s.available();
        let was_negative = s.priority < 0;
        s.presence = Some(stanza.clone());
        s.priority = priority;
        let full = s.jid.clone();
        let state = self.user(user);
        let Some(roster) = state.roster() else {
            return;
        };
        let subscribers: Vec<Jid> = roster.subscribers().filter(|j| *j != user).cloned().collect();
        let (probes, pending_in) = if initial {
            (
                roster.subscriptions().filter(|j| *j != user).cloned().collect(),
                roster.pending_in().cloned().collect(),
            )
        } else {
            (Vec::new(), Vec::new())
        };
        // The user's other available resources, for the new resource (an entity is
        // implicitly subscribed to its own presence).
        let own: Vec<Element> = if initial {
            state
                .available()
                .filter(|o| o.id != session)
                .filter_map(|o| o.presence.as_ref().map(|p| addressed(p, &full)))
                .collect()
        } else {
            Vec::new()
        };

        for c in &subscribers {
            self.route(addressed(&stanza, c));
        }
        // §4.2.2, §4.4.2: also to all of the user's available resources, this one
        // included.
        self.route(addressed(&stanza, user));
        if !initial {
            if was_negative && priority >= 0 {
                self.take_offline(user, session);
            }
            return;
        }
        for p in own {
            self.deliver(session, p);
        }
        // §4.2.2: probe the contacts the user is subscribed to. The probe carries the
        // new resource's full JID so that the answers (§4.3.2) go to it alone.
        for c in &probes {
            self.route(presence_stanza(Some("probe"), &full, c));
        }
        // §3.1.3: subscription requests still waiting for an answer.
        for c in &pending_in {
            self.deliver(session, presence_stanza(Some("subscribe"), c, user));
        }
        // XEP-0160 §3: offline messages, for a non-negative priority.
        if priority >= 0 {
            self.take_offline(user, session);
        }
    }

    /// RFC 6121 §4.5: unavailable presence, to the same set as the broadcasts and to
    /// the entities that got directed presence (§4.6.3).
    fn broadcast_unavailable(&mut self, user: &Jid, session: SessionId, stanza: Element) {
        let state = self.user_mut(user);
        let Some(s) = state.session_mut(session) else {
            return;
        };
        let was_available = s.available();
        s.presence = None;
        let directed = std::mem::take(&mut s.directed);
        let subscribers: Vec<Jid> = if was_available {
            self.user(user)
                .roster()
                .map(|r| r.subscribers().filter(|j| *j != user).cloned().collect())
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        if was_available {
            for c in &subscribers {
                self.route(addressed(&stanza, c));
            }
            self.route(addressed(&stanza, user));
        }
        for d in directed {
            if !subscribers.contains(&d.bare()) {
                self.route(addressed(&stanza, &d));
            }
        }
    }

    /// The session ended: RFC 6121 §4.5.2 unavailable presence on its behalf.
    pub(super) fn unbind_session(&mut self, user: &Jid, session: SessionId) {
        let Some(s) = self.user(user).session(session) else {
            return;
        };
        if s.available() || !s.directed.is_empty() {
            let mut p = Element::new("presence", ns::CLIENT);
            p.set_attr("from", s.jid.to_string());
            p.set_attr("type", "unavailable");
            self.broadcast_unavailable(user, session, p);
        }
        self.user_mut(user).sessions.retain(|s| s.id != session);
    }

    /// RFC 6121 §3.1.2, §3.1.5, §3.2.2, §3.3.2: the user's server's part of a
    /// subscription stanza to `contact`.
    fn outbound_subscription(
        &mut self,
        user: &Jid,
        mut stanza: Element,
        kind: SubscriptionKind,
        contact: Jid,
    ) {
        // The stanza leaves with the user's bare JID, to the contact's bare JID.
        stanza.set_attr("from", user.to_string());
        stanza.set_attr("to", contact.to_string());
        let Some(roster) = self.user(user).roster() else {
            return;
        };
        let before = roster.get(&contact).cloned();
        // A contact never seen joins the roster only if `kind` says so (§3.1.2).
        let mut item = before
            .clone()
            .unwrap_or_else(|| RosterItem::hidden(contact.clone()));
        let effect = presence::outbound(&mut item, kind);
        self.commit_item(user, before, item, false);
        if effect.route {
            self.route(stanza);
        }
        self.follow_up(user, &contact, effect.follow_up);
    }

    /// Inbound presence on `user`'s queue.
    pub(super) fn inbound_presence(&mut self, user: &Jid, to: Option<&Jid>, stanza: Element) {
        match PresenceType::of(&stanza) {
            Some(PresenceType::Subscription(kind)) => self.inbound_subscription(user, stanza, kind),
            Some(PresenceType::Probe) => self.inbound_probe(user, stanza),
            // RFC 6121 §8.5.2.1.2 and §8.5.3.1: to every available resource, or to
            // the addressed resource; otherwise silently ignored (§8.5.2.2.2).
            Some(PresenceType::Available | PresenceType::Unavailable | PresenceType::Error) => {
                let state = self.user(user);
                let targets: Vec<SessionId> = match to.filter(|t| !t.is_bare()) {
                    Some(full) => state.session_by_jid(full).map(|s| s.id).into_iter().collect(),
                    None => state.available().map(|s| s.id).collect(),
                };
                for id in targets {
                    self.deliver(id, stanza.clone());
                }
            }
            None => {}
        }
    }

    /// RFC 6121 §3.1.3, §3.1.6, §3.2.3, §3.3.3: the contact's server's part.
    fn inbound_subscription(&mut self, user: &Jid, stanza: Element, kind: SubscriptionKind) {
        let Some(sender) = stanza.attr("from").and_then(|f| Jid::parse(f).ok()) else {
            return;
        };
        let sender = sender.bare();
        let Some(roster) = self.user(user).roster() else {
            // RFC 6121 §8.5.1: no such user; a request is refused, the rest ignored.
            if kind == SubscriptionKind::Subscribe {
                self.route(presence_stanza(Some("unsubscribed"), user, &sender));
            }
            return;
        };
        let before = roster.get(&sender).cloned();
        // §3.1.3: a request from a contact not in the roster is remembered, not added.
        let mut item = before
            .clone()
            .unwrap_or_else(|| RosterItem::hidden(sender.clone()));
        let effect = presence::inbound(&mut item, kind);
        self.commit_item(user, before, item, false);
        if effect.deliver {
            let targets: Vec<SessionId> = self.user(user).available().map(|s| s.id).collect();
            for id in targets {
                self.deliver(id, stanza.clone());
            }
        }
        if let Some(reply) = effect.reply {
            self.route(presence_stanza(Some(reply.as_str()), user, &sender));
        }
        self.follow_up(user, &sender, effect.follow_up);
    }

    /// RFC 6121 §4.3.2: answers a probe with the current presence of each available
    /// resource, if the prober may see it; otherwise with `unsubscribed`, which lets
    /// the prober's server correct a stale subscription. An offline user is not
    /// answered (the second option of §4.3.2).
    fn inbound_probe(&mut self, user: &Jid, stanza: Element) {
        let Some(prober) = stanza.attr("from").and_then(|f| Jid::parse(f).ok()) else {
            return;
        };
        let state = self.user(user);
        let allowed = state
            .roster()
            .is_some_and(|r| prober.bare() == *user || r.get(&prober.bare()).is_some_and(has_from));
        if !allowed {
            return self.route(presence_stanza(Some("unsubscribed"), user, &prober.bare()));
        }
        let answers: Vec<Element> = state
            .available()
            .filter(|s| s.jid != prober)
            .filter_map(|s| s.presence.as_ref().map(|p| addressed(p, &prober)))
            .collect();
        for p in answers {
            self.route(p);
        }
    }

    /// Presence sent on the user's behalf after a subscription change.
    fn follow_up(&mut self, user: &Jid, contact: &Jid, follow_up: Option<PresenceFollowUp>) {
        let stanzas: Vec<Element> = match follow_up {
            None => return,
            // RFC 6121 §3.1.5: current presence from each available resource.
            Some(PresenceFollowUp::Current) => self
                .user(user)
                .available()
                .filter_map(|s| s.presence.as_ref().map(|p| addressed(p, contact)))
                .collect(),
            // RFC 6121 §3.2.2, §3.3.3: unavailable from each available resource.
            Some(PresenceFollowUp::Unavailable) => self
                .user(user)
                .available()
                .map(|s| presence_stanza(Some("unavailable"), &s.jid, contact))
                .collect(),
        };
        for p in stanzas {
            self.route(p);
        }
    }

    /// Stores a roster record that changed from `before` to `after` and, if it is in
    /// the roster, pushes it to the user's interested resources (RFC 6121 §2.1.6)
    /// when clients would see a difference. `explicit` marks a roster set by the
    /// user: always pushed (§2.3.2). A record outside the roster that no longer
    /// remembers a request (see [`RosterItem::in_roster`]) is deleted.
    pub(super) fn commit_item(
        &mut self,
        user: &Jid,
        before: Option<RosterItem>,
        after: RosterItem,
        explicit: bool,
    ) {
        if !after.in_roster && !after.pending_in {
            if before.is_some() {
                self.remove_item(user, &after.jid);
            }
            return;
        }
        if before.as_ref() != Some(&after) {
            if let Some(r) = self.user_mut(user).roster_mut() {
                r.insert(after.clone());
            }
            self.request(
                StorageRequest::PutRosterItem {
                    owner: user.clone(),
                    item: after.clone(),
                },
                Pending::Write,
            );
        }
        let changed = match &before {
            Some(b) => !b.in_roster || !same_on_wire(b, &after),
            None => true,
        };
        if after.in_roster && (explicit || changed) {
            self.push_item(user, roster::item_element(&after));
        }
    }

    /// Deletes the record for `contact` from memory and storage.
    pub(super) fn remove_item(&mut self, user: &Jid, contact: &Jid) {
        if let Some(r) = self.user_mut(user).roster_mut() {
            r.remove(contact);
        }
        self.request(
            StorageRequest::DeleteRosterItem {
                owner: user.clone(),
                contact: contact.clone(),
            },
            Pending::Write,
        );
    }

    /// RFC 6121 §2.1.6: a roster push to every interested resource of `user`.
    pub(super) fn push_item(&mut self, user: &Jid, item: Element) {
        let targets: Vec<(SessionId, Jid)> = self
            .user(user)
            .sessions
            .iter()
            .filter(|s| s.interested)
            .map(|s| (s.id, s.jid.clone()))
            .collect();
        if targets.is_empty() {
            return;
        }
        let id = self.push_id();
        for (session, jid) in targets {
            self.deliver(session, roster::push(&jid, &id, item.clone()));
        }
    }

    /// RFC 6121 §2.5.2: removing a contact cancels the subscriptions both ways, as if
    /// the user had sent `unsubscribe` and `unsubscribed` (with §3.2.2's unavailable
    /// presence to a former subscriber).
    pub(super) fn cancel_subscriptions(&mut self, user: &Jid, item: &RosterItem) {
        if presence::has_to(item) || item.ask_out {
            self.route(presence_stanza(Some("unsubscribe"), user, &item.jid));
        }
        if has_from(item) || item.pending_in {
            self.route(presence_stanza(Some("unsubscribed"), user, &item.jid));
        }
        if has_from(item) {
            self.follow_up(user, &item.jid, Some(PresenceFollowUp::Unavailable));
        }
    }
}
