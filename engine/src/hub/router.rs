//! Addressing (RFC 6120 §10, RFC 6121 §8.5): where a stanza goes given its `to`,
//! and inbound handling of messages, including offline storage (XEP-0160).

use super::user::Work;
use super::{Hub, Pending};
use crate::jid::Jid;
use crate::modules::{offline, MessageType};
use crate::storage::StorageRequest;
use crate::stream::StanzaError;
use crate::xml::Element;

impl Hub {
    /// Routes a stanza whose `from` and `to` are final: to a remote domain, to the
    /// server itself, or onto the addressed user's queue as inbound work.
    pub(super) fn route(&mut self, stanza: Element) {
        let Some(to) = stanza.attr("to") else {
            tracing::debug!("dropping a routed stanza without to");
            return;
        };
        let to = match Jid::parse(to) {
            Ok(j) => j,
            // RFC 6120 §8.3.3.8.
            Err(_) => return self.bounce(&stanza, StanzaError::JidMalformed),
        };
        if !self.serves(to.domain()) {
            return self.route_remote(stanza);
        }
        if to.local().is_none() {
            return self.for_server(&to, stanza);
        }
        self.enqueue(&to.bare(), Work::Inbound { to: Some(to), stanza });
    }

    /// RFC 6120 §8.3.1: sends the error reply to `stanza`'s sender, unless `stanza` is
    /// itself an error (§8.3.1: never answer an error with an error).
    pub(super) fn bounce(&mut self, stanza: &Element, error: StanzaError) {
        if stanza.attr("type") == Some("error") || stanza.attr("from").is_none() {
            return;
        }
        self.route(error.reply_to(stanza));
    }

    /// A domain we do not serve (RFC 6120 §10.4): the federation router takes it. Without
    /// one, RFC 6120 §10.4.3 says a server that cannot reach the remote domain answers
    /// `remote-server-not-found`. That is done for messages and iq requests; presence
    /// (broadcasts, probes) is dropped, as an error per broadcast would only be noise
    /// for the client.
    fn route_remote(&mut self, stanza: Element) {
        if self.config.federation {
            return self.actions.push_back(super::HubAction::External { stanza });
        }
        let request = match stanza.name() {
            "message" => true,
            "iq" => matches!(stanza.attr("type"), Some("get" | "set")),
            _ => false,
        };
        if request {
            self.bounce(&stanza, StanzaError::RemoteServerNotFound);
        } else {
            tracing::debug!(to = stanza.attr("to"), "dropping presence to a remote domain");
        }
    }

    /// A stanza to one of our domains itself (RFC 6120 §10.5.1, §10.5.2: the server
    /// handles it). Iq requests go to the modules; messages are not delivered to
    /// anyone and get `service-unavailable`; presence is ignored; iq results and
    /// errors are dropped.
    fn for_server(&mut self, to: &Jid, stanza: Element) {
        match stanza.name() {
            "iq" if matches!(stanza.attr("type"), Some("get" | "set")) => {
                if to.resource().is_some() {
                    self.bounce(&stanza, StanzaError::ServiceUnavailable);
                } else {
                    self.server_iq(stanza);
                }
            }
            "message" => self.bounce(&stanza, StanzaError::ServiceUnavailable),
            _ => {}
        }
    }

    /// RFC 6120 §10.3.1: a message without `to` is for the sender's own bare JID.
    /// XEP-0280: the sender's other resources get a `<sent/>` copy.
    pub(super) fn outbound_message(&mut self, user: &Jid, session: super::SessionId, mut stanza: Element) {
        if stanza.attr("to").is_none() {
            stanza.set_attr("to", user.to_string());
        }
        self.carbon_copies(user, "sent", &stanza, &[session]);
        self.route(stanza);
    }

    /// Inbound work on `user`'s queue.
    pub(super) fn inbound(&mut self, user: &Jid, to: Option<Jid>, stanza: Element) {
        match stanza.name() {
            "message" => match to {
                Some(to) => self.inbound_message(user, &to, stanza),
                None => tracing::debug!("dropping a message without to"),
            },
            "presence" => self.inbound_presence(user, to.as_ref(), stanza),
            _ => self.inbound_iq(user, to.as_ref(), stanza),
        }
    }

    /// RFC 6121 §8.5: a message to `user` (bare or full JID `to`).
    fn inbound_message(&mut self, user: &Jid, to: &Jid, stanza: Element) {
        let kind = MessageType::of(&stanza);
        let state = self.user(user);
        // RFC 6121 §8.5.1: no such user.
        if !state.exists() {
            return self.bounce(&stanza, StanzaError::ServiceUnavailable);
        }
        if !to.is_bare() {
            // RFC 6121 §8.5.3.1: the resource is bound.
            if let Some(s) = state.session_by_jid(to) {
                let id = s.id;
                self.carbon_copies(user, "received", &stanza, &[id]);
                return self.deliver(id, stanza);
            }
            // RFC 6121 §8.5.3.2.1: no such resource.
            match kind {
                MessageType::Chat | MessageType::Normal => {}
                MessageType::Groupchat => return self.bounce(&stanza, StanzaError::ServiceUnavailable),
                MessageType::Headline | MessageType::Error => return,
            }
        }
        // RFC 6121 §8.5.2: to the bare JID (or treated so).
        match kind {
            MessageType::Error => {}
            MessageType::Groupchat => self.bounce(&stanza, StanzaError::ServiceUnavailable),
            MessageType::Headline => {
                let targets: Vec<_> = state
                    .available()
                    .filter(|s| s.priority >= 0)
                    .map(|s| s.id)
                    .collect();
                for id in targets {
                    self.deliver(id, stanza.clone());
                }
            }
            MessageType::Chat | MessageType::Normal => {
                let targets = state.most_available();
                if targets.is_empty() {
                    return self.store_offline(user, stanza);
                }
                self.carbon_copies(user, "received", &stanza, &targets);
                for id in targets {
                    self.deliver(id, stanza.clone());
                }
            }
        }
    }

    /// XEP-0160 §3: keeps a message for a user with no available resource of
    /// non-negative priority, stamped per XEP-0203; without offline storage the
    /// sender gets `service-unavailable` (RFC 6121 §8.5.2.2.1). Messages not worth
    /// storing (no body, headline...) are dropped.
    fn store_offline(&mut self, user: &Jid, stanza: Element) {
        if !offline::is_storable(&stanza) {
            return;
        }
        if !self.config.offline_enabled {
            return self.bounce(&stanza, StanzaError::ServiceUnavailable);
        }
        let stored = offline::with_delay(&stanza, user.domain(), self.now);
        self.request(
            StorageRequest::StoreOffline {
                owner: user.clone(),
                stanza: stored.to_xml(),
                limit: self.config.offline_limit,
            },
            Pending::StoreOffline(stanza),
        );
    }

    /// XEP-0160 §3: offline messages go to a resource when it becomes available with
    /// non-negative priority.
    pub(super) fn take_offline(&mut self, user: &Jid, session: super::SessionId) {
        if !self.config.offline_enabled {
            return;
        }
        self.request(
            StorageRequest::TakeOffline { owner: user.clone() },
            Pending::TakeOffline {
                session,
                owner: user.clone(),
            },
        );
    }
}
