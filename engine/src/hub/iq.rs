//! Iq stanzas in the hub (RFC 6120 §8.2.3): checks on what clients send, iqs the
//! server answers for its domain (disco, ping, version) and iqs it answers on behalf
//! of an account (RFC 6121 §8.5.2.1.3: roster, disco).

use super::user::Work;
use super::{Hub, SessionId};
use crate::jid::Jid;
use crate::modules::presence::has_from;
use crate::modules::roster::{self, RosterSet};
use crate::modules::{disco, iq_result, ping, version};
use crate::ns;
use crate::storage::RosterItem;
use crate::stream::StanzaError;
use crate::xml::Element;

impl Hub {
    /// An iq from one of `user`'s sessions. RFC 6120 §8.2.3: `get` and `set` carry an
    /// `id` and exactly one payload element, and `type` is one of the four values;
    /// otherwise `bad-request`.
    pub(super) fn outbound_iq(&mut self, user: &Jid, stanza: Element) {
        let request = match stanza.attr("type") {
            Some("get" | "set") => true,
            Some("result" | "error") => false,
            _ => return self.bounce(&stanza, StanzaError::BadRequest),
        };
        if request && (stanza.attr("id").is_none() || stanza.children().count() != 1) {
            return self.bounce(&stanza, StanzaError::BadRequest);
        }
        if stanza.attr("to").is_some() {
            return self.route(stanza);
        }
        if self.carbons_iq(user, &stanza).is_some() {
            return;
        }
        // RFC 6120 §10.3.3: no `to`, so the server answers on behalf of the account:
        // the roster is the account's, the rest is the server's.
        if !request {
            return;
        }
        let roster = stanza.first_child().is_some_and(|p| p.is("query", ns::ROSTER));
        if roster {
            self.enqueue(user, Work::Inbound { to: None, stanza });
        } else {
            self.server_iq(stanza);
        }
    }

    /// A `get` or `set` for the server itself: offered to each module, and
    /// `service-unavailable` when none claims it (RFC 6120 §8.3.3.18).
    pub(super) fn server_iq(&mut self, stanza: Element) {
        let answer = disco::handle_server(&stanza, &self.config, &self.components)
            .or_else(|| ping::handle(&stanza))
            .or_else(|| version::handle(&stanza, &self.config))
            .unwrap_or(Err(StanzaError::ServiceUnavailable));
        match answer {
            Ok(reply) => self.route(reply),
            Err(e) => self.bounce(&stanza, e),
        }
    }

    /// Inbound iq on `user`'s queue: to a full JID it is delivered (RFC 6121
    /// §8.5.3.1) or answered `service-unavailable` (§8.5.3.2.2); to the bare JID it is
    /// answered by the server for the account (§8.5.2.1.3).
    pub(super) fn inbound_iq(&mut self, user: &Jid, to: Option<&Jid>, stanza: Element) {
        let request = matches!(stanza.attr("type"), Some("get" | "set"));
        if let Some(full) = to.filter(|t| !t.is_bare()) {
            match self.user(user).session_by_jid(full) {
                Some(s) => {
                    let id = s.id;
                    self.deliver(id, stanza);
                }
                None if request => self.bounce(&stanza, StanzaError::ServiceUnavailable),
                None => {}
            }
            return;
        }
        if request {
            self.account_iq(user, stanza);
        }
    }

    /// An iq request to `user`'s bare JID (or from `user` without `to`).
    fn account_iq(&mut self, user: &Jid, stanza: Element) {
        let state = self.user(user);
        let Some(roster) = state.roster() else {
            // RFC 6121 §8.5.1: no such user.
            return self.bounce(&stanza, StanzaError::ServiceUnavailable);
        };
        let Some(sender) = stanza.attr("from").and_then(|f| Jid::parse(f).ok()) else {
            return;
        };
        let own = sender.bare() == *user;
        let payload = stanza.first_child();
        if payload.is_some_and(|p| p.is("query", ns::ROSTER)) {
            // RFC 6121 §2.1.3: only the user may see or change their roster.
            return if own {
                self.roster_iq(user, &sender, stanza)
            } else {
                self.bounce(&stanza, StanzaError::ServiceUnavailable)
            };
        }
        if disco::is_account_info_get(&stanza) {
            // XEP-0030: the account's identity is for the user and subscribers.
            let subscribed = roster.get(&sender.bare()).is_some_and(has_from);
            return if own || subscribed {
                self.route(disco::account_info(&stanza))
            } else {
                self.bounce(&stanza, StanzaError::ServiceUnavailable)
            };
        }
        self.bounce(&stanza, StanzaError::ServiceUnavailable);
    }

    /// RFC 6121 §2: roster get and set from the user's resource `sender`.
    fn roster_iq(&mut self, user: &Jid, sender: &Jid, stanza: Element) {
        let session: Option<SessionId> = self.user(user).session_by_jid(sender).map(|s| s.id);
        if stanza.attr("type") == Some("get") {
            // §2.1.3: the roster, and from now on the resource gets pushes (§2.1.6).
            if let Some(id) = session {
                if let Some(s) = self.user_mut(user).session_mut(id) {
                    s.interested = true;
                }
            }
            let query = match self.user(user).roster() {
                Some(r) => roster::query(r.visible()),
                None => roster::query([]),
            };
            return self.route(iq_result(&stanza, Some(query)));
        }
        let Some(query) = stanza.first_child() else {
            return self.bounce(&stanza, StanzaError::BadRequest);
        };
        match roster::parse_set(query) {
            Err(e) => self.bounce(&stanza, e),
            // §2.3, §2.4: add or update; the subscription state (and a pending
            // request from a contact not yet in the roster) is kept.
            Ok(RosterSet::Update { jid, name, groups }) => {
                let before = self.user(user).roster().and_then(|r| r.get(&jid)).cloned();
                let mut item = before.clone().unwrap_or_else(|| RosterItem::new(jid));
                item.in_roster = true;
                item.name = name;
                item.groups = groups;
                self.commit_item(user, before, item, true);
                self.route(iq_result(&stanza, None));
            }
            // §2.5: delete, cancelling the subscriptions both ways first (§2.5.2);
            // a pending request is denied with them, so nothing is left to keep.
            // §2.5.3: a contact with only a pending request is not in the roster.
            Ok(RosterSet::Remove(jid)) => {
                let Some(before) = self.user(user).roster().and_then(|r| r.item(&jid)).cloned() else {
                    return self.bounce(&stanza, StanzaError::ItemNotFound);
                };
                self.cancel_subscriptions(user, &before);
                self.remove_item(user, &jid);
                self.push_item(user, roster::removed_element(&jid));
                self.route(iq_result(&stanza, None));
            }
        }
    }
}
