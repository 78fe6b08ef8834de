//! XEP-0484 FAST on a C2S connection: the inline `<fast/>` feature, issuing tokens
//! in `<success/>`, authenticating with a token through an HT mechanism
//! ([`crate::sasl::ht`]), rotation before expiry, invalidation, and the `count`
//! replay check, which the server enforces (and requires in TLS 0-RTT data).
//!
//! Tokens live in storage hashed, per user and user-agent id, in two slots
//! (§5.2): the current one and the newest issued. Storage checks the count in the
//! same transaction that records the use, so two connections (on two threads) with
//! one replayed authentication cannot both pass.

use std::time::{Instant, UNIX_EPOCH};

use base64::Engine as _;

use super::{C2s, Pending};
use crate::jid::Jid;
use crate::modules::offline::format_datetime;
use crate::ns;
use crate::sasl::ht::{HtMechanism, TOKEN_LEN};
use crate::sasl::{prepare_authcid, SaslFailure};
use crate::storage::{FastSlot, FastToken, StorageReply, StorageRequest};
use crate::xml::Element;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// An authentication with a token, between its storage requests.
#[derive(Debug)]
pub(super) struct FastAttempt {
    mechanism: HtMechanism,
    user: Jid,
    agent: String,
    mac: Vec<u8>,
    /// The token that matched and the `<success/>` additional data.
    used: Option<(FastSlot, Vec<u8>)>,
    /// The `<token/>` element of a token being issued.
    token: Option<Element>,
}

impl C2s {
    /// The HT mechanisms this connection offers (only over TLS, §6).
    fn fast_mechanisms(&self) -> Vec<HtMechanism> {
        if self.config.fast.is_none() || !self.is_encrypted() {
            return Vec::new();
        }
        let cb = self.channel_bindings();
        HtMechanism::all()
            .into_iter()
            .filter(|m| m.available(&cb))
            .collect()
    }

    /// XEP-0484 §3.1: the inline `<fast/>` feature.
    pub(super) fn fast_feature(&self) -> Option<Element> {
        let mechanisms = self.fast_mechanisms();
        if mechanisms.is_empty() {
            return None;
        }
        let mut fast = Element::new("fast", ns::FAST);
        if self.early_data_offered() {
            fast.set_attr("tls-0rtt", "true");
        }
        for m in mechanisms {
            fast.push_child(Element::new("mechanism", ns::FAST).with_text(m.name()));
        }
        Some(fast)
    }

    /// A new token for `mechanism`: the secret for the client, what storage keeps,
    /// and the `<token/>` element of `<success/>`.
    fn new_token(&mut self, mechanism: HtMechanism, now: Instant) -> (FastToken, Element) {
        let mut raw = [0u8; TOKEN_LEN * 3 / 4];
        self.rng.fill_bytes(&mut raw);
        let secret = B64.encode(raw);
        let access = self.config.fast.as_ref().map(|f| f.access).unwrap_or_default();
        let expiry = self.wall_time(now) + access;
        let stored = FastToken {
            mechanism: mechanism.name(),
            key: mechanism.token_key(&secret),
            expiry: expiry.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            count: 0,
        };
        let element = Element::new("token", ns::FAST)
            .with_attr("expiry", format_datetime(expiry))
            .with_attr("token", secret);
        (stored, element)
    }

    /// XEP-0484 §3.2: a token asked for alongside another mechanism. Returns true
    /// while its storage write is under way.
    pub(super) fn fast_issue_requested(&mut self, mechanism: HtMechanism, now: Instant) -> bool {
        let (Some(user), Some(agent)) = (self.user.clone(), self.user_agent_id().map(str::to_string)) else {
            return false;
        };
        if !self.fast_mechanisms().contains(&mechanism) {
            return false;
        }
        let (token, element) = self.new_token(mechanism, now);
        let attempt = FastAttempt {
            mechanism,
            user: user.clone(),
            agent: agent.clone(),
            mac: Vec::new(),
            used: None,
            token: Some(element),
        };
        self.request(
            Pending::FastWrite(Box::new(attempt)),
            StorageRequest::StoreFastToken { user, agent, token },
        );
        true
    }

    /// XEP-0484 §3.4: `<authenticate mechanism='HT-...'>` with a token.
    pub(super) fn fast_authenticate(
        &mut self,
        mechanism: HtMechanism,
        initial: Option<Vec<u8>>,
        now: Instant,
    ) {
        if !self.fast_mechanisms().contains(&mechanism) {
            return self.sasl_failure(SaslFailure::InvalidMechanism, now);
        }
        let early = self.sasl2.as_ref().is_some_and(|x| x.early);
        let count = self.sasl2.as_ref().and_then(|x| x.fast).and_then(|f| f.count);
        if early && count.is_none() {
            // §3.4: a token in 0-RTT data must carry a count.
            tracing::info!(session = self.id, "FAST in early data without count");
            return self.sasl_failure(SaslFailure::NotAuthorized, now);
        }
        let Some(agent) = self.user_agent_id().map(str::to_string) else {
            // §4.1: FAST needs the user-agent id the token was issued to.
            return self.sasl_failure(SaslFailure::MalformedRequest, now);
        };
        let Some(Ok((authcid, mac))) = initial.map(|ir| HtMechanism::parse_initial_response(&ir)) else {
            return self.sasl_failure(SaslFailure::MalformedRequest, now);
        };
        let domain = self.domain.clone().unwrap_or_default();
        let user = prepare_authcid(&authcid, &domain).and_then(|u| Jid::new(Some(&u), &domain, None).ok());
        let Some(user) = user else {
            return self.sasl_failure(SaslFailure::NotAuthorized, now);
        };
        let attempt = FastAttempt {
            mechanism,
            user: user.clone(),
            agent: agent.clone(),
            mac,
            used: None,
            token: None,
        };
        self.request(
            Pending::FastTokens(Box::new(attempt)),
            StorageRequest::GetFastTokens { user, agent },
        );
    }

    /// The client's tokens: find the one it used, check expiry and count, then
    /// record the use (with a rotation or invalidation) in one storage write.
    pub(super) fn on_fast_tokens(
        &mut self,
        mut attempt: Box<FastAttempt>,
        reply: StorageReply,
        now: Instant,
    ) {
        let StorageReply::FastTokens(tokens) = reply else {
            tracing::warn!(session = self.id, ?reply, "FAST token lookup failed");
            return self.sasl_failure(SaslFailure::TemporaryAuthFailure, now);
        };
        let cb = self.channel_bindings();
        let name = attempt.mechanism.name();
        let wall = self
            .wall_time(now)
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut expired = false;
        let mut found = None;
        // §5.2: the newest token first, then the current one.
        let mut ordered = tokens;
        ordered.sort_by_key(|(slot, _)| *slot == FastSlot::Current);
        for (slot, token) in ordered {
            // §3.4: a token works only with the mechanism it was issued for.
            if token.mechanism != name {
                continue;
            }
            if attempt.mechanism.verify_initiator(&token.key, &attempt.mac, &cb) != Ok(true) {
                continue;
            }
            if token.expiry <= wall {
                expired = true;
                continue;
            }
            found = Some((slot, token));
            break;
        }
        let Some((slot, token)) = found else {
            // §4.2: an expired token is credentials-expired, so the client falls back.
            let failure = if expired {
                SaslFailure::CredentialsExpired
            } else {
                SaslFailure::NotAuthorized
            };
            return self.sasl_failure(failure, now);
        };
        let fast = self
            .sasl2
            .as_ref()
            .and_then(|x| x.fast)
            .unwrap_or(super::sasl2::FastUse {
                count: None,
                invalidate: false,
            });
        if fast.count.is_some_and(|c| c <= token.count) {
            tracing::info!(session = self.id, user = %attempt.user, "FAST count replayed");
            return self.sasl_failure(SaslFailure::NotAuthorized, now);
        }
        let Ok(responder) = attempt.mechanism.responder(&token.key, &cb) else {
            return self.sasl_failure(SaslFailure::NotAuthorized, now);
        };
        // §3.3: a new token when asked for, or when this one is close to expiry
        // (not when invalidating without asking, §3.5).
        let rotate_before = self
            .config
            .fast
            .as_ref()
            .map_or(0, |f| f.rotate_before_expire.as_secs());
        let requested = self.sasl2.as_ref().and_then(|x| x.request_token);
        let due = !fast.invalidate && token.expiry.saturating_sub(wall) <= rotate_before;
        let issue = match requested {
            Some(m) if self.fast_mechanisms().contains(&m) => Some(m),
            _ if due => Some(attempt.mechanism),
            _ => None,
        };
        let issue = issue.map(|m| self.new_token(m, now));
        if let Some(x) = self.sasl2.as_mut() {
            // The token question is settled by this write.
            x.token_settled = true;
        }
        attempt.used = Some((slot, responder));
        let request = StorageRequest::UseFastToken {
            user: attempt.user.clone(),
            agent: attempt.agent.clone(),
            slot,
            key: token.key,
            count: fast.count,
            invalidate: fast.invalidate,
            issue: issue.as_ref().map(|(t, _)| t.clone()),
        };
        attempt.token = issue.map(|(_, e)| e);
        self.request(Pending::FastWrite(attempt), request);
    }

    /// The token write is done: authentication (with a token) succeeds, or the
    /// issued token goes into `<success/>`.
    pub(super) fn on_fast_written(&mut self, attempt: Box<FastAttempt>, reply: StorageReply, now: Instant) {
        let FastAttempt {
            user, used, token, ..
        } = *attempt;
        match (used, reply) {
            (Some((_, responder)), StorageReply::Done) => {
                if let (Some(t), Some(x)) = (token, self.sasl2.as_mut()) {
                    x.extra.push(t);
                    self.fast_event(true);
                }
                self.fast_event(false);
                self.auth_event("FAST", true);
                tracing::info!(session = self.id, user = %user, "authenticated with a FAST token");
                self.sasl = None;
                self.sasl2_authenticated(user, Some(responder), now);
            }
            (Some(_), StorageReply::Conflict) => {
                // Another connection used the same count first: a replay.
                tracing::info!(session = self.id, user = %user, "FAST count replayed (storage)");
                self.sasl_failure(SaslFailure::NotAuthorized, now);
            }
            (Some(_), other) => {
                tracing::info!(session = self.id, reply = ?other, "FAST token gone");
                self.sasl_failure(SaslFailure::NotAuthorized, now);
            }
            (None, reply) => {
                match (token, reply) {
                    (Some(t), StorageReply::Done) => {
                        if let Some(x) = self.sasl2.as_mut() {
                            x.extra.push(t);
                        }
                        self.fast_event(true);
                    }
                    (_, other) => {
                        tracing::warn!(session = self.id, reply = ?other, "storing a FAST token failed")
                    }
                }
                self.sasl2_continue(now);
            }
        }
    }

    /// A token issued (`true`) or used to authenticate (`false`).
    fn fast_event(&mut self, issued: bool) {
        let host_type = self.domain.clone().unwrap_or_default();
        let event = if issued {
            crate::instrument::Event::FastTokenIssued { host_type }
        } else {
            crate::instrument::Event::FastTokenUsed { host_type }
        };
        self.actions.push_back(super::Action::Instrument(event));
    }
}
