//! The bound session (RFC 6120 §8): stanzas from the client are checked and stamped,
//! then passed to the hub; storage answers come back here.

use std::time::Instant;

use super::negotiation::iq_result;
use super::{Action, C2s, Pending};
use crate::hub::HubInput;
use crate::jid::Jid;
use crate::ns;
use crate::sasl::{SaslStep, StoredCredentials, DEFAULT_ITERATIONS};
use crate::storage::{StorageReply, StorageRequest};
use crate::stream::{StanzaError, StreamError};
use crate::xml::Element;

impl C2s {
    /// A stanza from the bound client.
    pub(super) fn on_stanza(&mut self, mut el: Element, now: Instant) {
        if el.ns() != ns::CLIENT || !matches!(el.name(), "message" | "presence" | "iq") {
            // RFC 6120 §4.9.3.24: not a stanza we know.
            return self.stream_error(StreamError::UnsupportedStanzaType, None);
        }
        // XEP-0198 §4: every stanza counts as handled, whatever becomes of it.
        self.sm_count_inbound();
        let Some(jid) = self.jid.clone() else { return };
        // RFC 6120 §8.1.2.1: the server stamps `from`; a client may only name itself.
        if let Some(from) = el.attr("from") {
            match Jid::parse(from) {
                Ok(f) if f == jid || f == jid.bare() => {}
                _ => return self.stream_error(StreamError::InvalidFrom, Some("from must be your own JID")),
            }
        }
        el.set_attr("from", jid.to_string());
        if let Some(to) = el.attr("to") {
            match Jid::parse(to) {
                Ok(parsed) => {
                    let canonical = parsed.to_string();
                    if canonical != to {
                        el.set_attr("to", canonical);
                    }
                }
                Err(_) => {
                    // RFC 6120 §8.3.3.8; no error answers an error (§8.3.1).
                    if el.attr("type") != Some("error") {
                        self.send(&StanzaError::JidMalformed.reply_to(&el));
                    }
                    return;
                }
            }
        }
        if el.name() == "iq" {
            if !self.check_iq(&el) {
                return;
            }
            if self.is_own_account_iq(&el) {
                return self.on_account_iq(el);
            }
            if self.is_session_establishment(&el) {
                // RFC 3921 §3 session establishment, which clients send after binding
                // when `<session/>` is advertised (optional, RFC 6121 Appendix E):
                // the session already exists.
                return self.send(&iq_result(&el, None));
            }
        }
        self.touch(now);
        self.actions.push_back(Action::Hub(HubInput::Stanza {
            session: self.id,
            stanza: el,
        }));
    }

    /// RFC 6120 §8.2.3: an iq has an id, a known type, and get/set carry one child.
    fn check_iq(&mut self, iq: &Element) -> bool {
        let ok = iq.attr("id").is_some()
            && match iq.attr("type") {
                Some("get" | "set") => iq.children().count() == 1,
                Some("result") => iq.children().count() <= 1,
                Some("error") => true,
                _ => false,
            };
        if !ok && iq.attr("type") != Some("error") {
            self.send(&StanzaError::BadRequest.reply_to(iq));
        }
        ok
    }

    /// XEP-0077 §3.2–3.3 after login: password change and account removal, to the
    /// server (no `to`, or our domain).
    fn is_own_account_iq(&self, iq: &Element) -> bool {
        let to_server = match iq.attr("to") {
            None => true,
            Some(to) => Some(to) == self.domain.as_deref(),
        };
        to_server
            && iq.attr("type") == Some("set")
            && iq.first_child().is_some_and(|q| q.is("query", ns::REGISTER))
    }

    /// An iq set of `<session/>` to the server (RFC 3921 §3).
    fn is_session_establishment(&self, iq: &Element) -> bool {
        let to_server = iq.attr("to").is_none_or(|to| Some(to) == self.domain.as_deref());
        to_server
            && iq.attr("type") == Some("set")
            && iq.first_child().is_some_and(|c| c.is("session", ns::SESSION))
    }

    fn on_account_iq(&mut self, iq: Element) {
        let Some(user) = self.user.clone() else { return };
        if !self.config.registration {
            return self.send(&StanzaError::ServiceUnavailable.reply_to(&iq));
        }
        let query = iq
            .first_child()
            .cloned()
            .unwrap_or_else(|| Element::new("query", ns::REGISTER));
        if query.get_child("remove", ns::REGISTER).is_some() {
            return self.request(
                Pending::AccountChange {
                    iq: Box::new(iq),
                    remove: true,
                },
                StorageRequest::RemoveUser { user },
            );
        }
        let username = query.get_child("username", ns::REGISTER).map(|e| e.text());
        let password = query
            .get_child("password", ns::REGISTER)
            .map(|e| e.text())
            .filter(|p| !p.is_empty());
        match (username, password) {
            (Some(u), Some(p)) if Jid::new(Some(&u), user.domain(), None).ok().as_ref() == Some(&user) => {
                let credentials = StoredCredentials::derive(&p, DEFAULT_ITERATIONS, &mut *self.rng);
                self.request(
                    Pending::AccountChange {
                        iq: Box::new(iq),
                        remove: false,
                    },
                    StorageRequest::SetCredentials { user, credentials },
                );
            }
            _ => self.send(&StanzaError::BadRequest.reply_to(&iq)),
        }
    }

    /// A storage answer for the pending request `what`.
    pub(super) fn on_reply(&mut self, what: Pending, reply: StorageReply, now: Instant) {
        match (what, reply) {
            (Pending::Credentials, StorageReply::Credentials(creds)) => {
                let step = match &mut self.sasl {
                    Some(s) => s.credentials(creds, &mut *self.rng),
                    None => return,
                };
                self.on_sasl_step(step, now);
            }
            (Pending::Credentials, other) => {
                tracing::warn!(session = self.id, reply = ?other, "credentials lookup failed");
                self.on_sasl_step(
                    SaslStep::Failure(crate::sasl::SaslFailure::TemporaryAuthFailure),
                    now,
                );
            }
            (Pending::FastTokens(attempt), reply) => self.on_fast_tokens(attempt, reply, now),
            (Pending::FastWrite(attempt), reply) => self.on_fast_written(attempt, reply, now),
            (Pending::Register { iq }, StorageReply::Done) => self.send(&iq_result(&iq, None)),
            (Pending::Register { iq }, StorageReply::Conflict) => {
                self.send(&StanzaError::Conflict.reply_to(&iq))
            }
            (Pending::Register { iq }, _) => self.send(&StanzaError::InternalServerError.reply_to(&iq)),
            (Pending::AccountChange { iq, remove }, StorageReply::Done) => {
                self.send(&iq_result(&iq, None));
                if remove {
                    // XEP-0077 §3.3: the account is gone, so is the stream.
                    self.stream_error(StreamError::NotAuthorized, Some("account removed"));
                }
            }
            (Pending::AccountChange { iq, .. }, _) => {
                self.send(&StanzaError::InternalServerError.reply_to(&iq))
            }
        }
    }
}
