//! XEP-0388 Extensible SASL Profile (SASL2): the `<authentication/>` feature, the
//! `<authenticate/>` exchange with every mechanism of the legacy profile (and the
//! HT mechanisms of FAST), and a `<success/>` that carries the results of the inline
//! requests: stream resumption (XEP-0198), Bind 2 (XEP-0386) with its inline
//! features, and FAST tokens (XEP-0484). No stream restart follows (§2.6.1): the
//! features of the authenticated stream come right after `<success/>`.

use std::time::Instant;

use base64::Engine as _;

use super::{C2s, Outbound, Pending, Phase};
use crate::jid::Jid;
use crate::ns;
use crate::sasl::ht::HtMechanism;
use crate::sasl::{Mechanism, SaslFailure};
use crate::stream::StreamError;
use crate::xml::Element;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Longest accepted user-agent field, in characters (ids are UUIDs, 36).
const MAX_AGENT_FIELD: usize = 256;

/// XEP-0388 §2.3 `<user-agent/>`: the client installation, kept per session.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct UserAgent {
    /// The stable installation id (a UUID); FAST tokens are kept per id.
    pub id: Option<String>,
    /// `<software/>`.
    pub software: Option<String>,
    /// `<device/>`.
    pub device: Option<String>,
}

impl UserAgent {
    fn parse(el: &Element) -> Self {
        let field = |s: &str| {
            Some(s.trim().to_string()).filter(|s| !s.is_empty() && s.chars().count() <= MAX_AGENT_FIELD)
        };
        Self {
            id: el.attr("id").and_then(field),
            software: el.get_child("software", ns::SASL2).and_then(|e| field(&e.text())),
            device: el.get_child("device", ns::SASL2).and_then(|e| field(&e.text())),
        }
    }
}

/// XEP-0484 `<fast/>` in an `<authenticate/>`: the client authenticates with a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FastUse {
    /// The replay counter (required in TLS 0-RTT data).
    pub count: Option<u64>,
    /// Invalidate the token after this authentication (§3.5).
    pub invalidate: bool,
}

/// One SASL2 exchange: the inline requests of the `<authenticate/>` and, once
/// authenticated, what goes into `<success/>`.
#[derive(Debug, Default)]
pub(super) struct Sasl2Exchange {
    /// XEP-0386 `<bind/>`.
    pub bind: Option<Element>,
    /// XEP-0198 `<resume/>`.
    pub resume: Option<Element>,
    /// XEP-0484 `<request-token mechanism=.../>`.
    pub request_token: Option<HtMechanism>,
    /// XEP-0484 `<fast/>`.
    pub fast: Option<FastUse>,
    /// The request arrived in TLS 1.3 early data.
    pub early: bool,
    /// Authenticated: the SASL additional data for `<success/>`.
    pub additional_data: Option<Vec<u8>>,
    pub authenticated: bool,
    /// The token question is settled (issued, or nothing to issue).
    pub token_settled: bool,
    /// Children of `<success/>` after the authorization identifier.
    pub extra: Vec<Element>,
    /// XEP-0198: the session was resumed; these stanzas go out after `<success/>`.
    pub resumed: Option<Vec<Outbound>>,
}

impl C2s {
    /// XEP-0388 §2.1: the `<authentication/>` feature, with the inline features.
    pub(super) fn sasl2_feature(&self) -> Option<Element> {
        let mechanisms = self.offered_mechanisms();
        let fast = self.fast_feature();
        if mechanisms.is_empty() && fast.is_none() {
            return None;
        }
        let mut auth = Element::new("authentication", ns::SASL2);
        for m in mechanisms {
            auth.push_child(Element::new("mechanism", ns::SASL2).with_text(m.name()));
        }
        let mut inline = Element::new("inline", ns::SASL2);
        inline.push_child(self.bind2_feature());
        if self.config.sm.is_some() {
            inline.push_child(Element::new("sm", ns::SM));
        }
        if let Some(f) = fast {
            inline.push_child(f);
        }
        auth.push_child(inline);
        Some(auth)
    }

    /// A top-level element in the SASL2 namespace.
    pub(super) fn on_sasl2(&mut self, el: Element, now: Instant) {
        if el.name() == "abort" {
            if matches!(
                self.pending,
                Some((_, Pending::Credentials | Pending::FastTokens(_)))
            ) {
                self.pending = None;
            }
            if self.sasl2.as_ref().is_some_and(|x| !x.authenticated) {
                return self.sasl_failure(SaslFailure::Aborted, now);
            }
            return self.stream_error(StreamError::PolicyViolation, Some("nothing to abort"));
        }
        if self.pending.is_some()
            || self.resuming.is_some()
            || self.sasl2.as_ref().is_some_and(|x| x.authenticated)
        {
            return self.stream_error(StreamError::PolicyViolation, Some("SASL2 request while busy"));
        }
        match el.name() {
            "authenticate" => self.on_authenticate(el, now),
            "response" if self.sasl2.is_some() => {
                let data = match B64.decode(el.text().trim()) {
                    Ok(d) => d,
                    Err(_) => return self.sasl_failure(SaslFailure::IncorrectEncoding, now),
                };
                let Some(server) = &mut self.sasl else {
                    return self.sasl_failure(SaslFailure::MalformedRequest, now);
                };
                let step = server.response(&data, &mut *self.rng);
                self.on_sasl_step(step, now);
            }
            _ => self.stream_error(StreamError::UnsupportedStanzaType, None),
        }
    }

    /// XEP-0388 §2.3: `<authenticate mechanism=...>`.
    fn on_authenticate(&mut self, el: Element, now: Instant) {
        let mut exchange = Sasl2Exchange {
            early: self.in_early_data,
            ..Sasl2Exchange::default()
        };
        for child in el.children() {
            match (child.name(), child.ns()) {
                ("bind", ns::BIND2) => exchange.bind = Some(child.clone()),
                ("resume", ns::SM) => exchange.resume = Some(child.clone()),
                ("request-token", ns::FAST) => {
                    exchange.request_token = child.attr("mechanism").and_then(HtMechanism::parse)
                }
                ("fast", ns::FAST) => {
                    exchange.fast = Some(FastUse {
                        count: child.attr("count").and_then(|c| c.parse().ok()),
                        invalidate: matches!(child.attr("invalidate"), Some("true" | "1")),
                    })
                }
                ("user-agent", ns::SASL2) => self.user_agent = Some(Box::new(UserAgent::parse(child))),
                _ => {}
            }
        }
        let initial = match el.get_child("initial-response", ns::SASL2) {
            None => None,
            Some(ir) => match B64.decode(ir.text().trim()) {
                Ok(d) => Some(d),
                Err(_) => {
                    self.sasl2 = Some(Box::new(exchange));
                    return self.sasl_failure(SaslFailure::IncorrectEncoding, now);
                }
            },
        };
        let name = el.attr("mechanism").unwrap_or_default().to_string();
        let early = exchange.early;
        self.sasl2 = Some(Box::new(exchange));
        if self.tls_required_first() {
            return self.sasl_failure(SaslFailure::EncryptionRequired, now);
        }
        if self.auth_backoff_applies(now) {
            return self.sasl_failure(SaslFailure::TemporaryAuthFailure, now);
        }
        if let Some(ht) = HtMechanism::parse(&name) {
            return self.fast_authenticate(ht, initial, now);
        }
        if early {
            // Early data can be replayed: only a FAST token with a fresh count may
            // authenticate in it (XEP-0484 §3.4, checked in fast_authenticate).
            tracing::info!(session = self.id, mechanism = %name, "refusing non-FAST authentication in early data");
            return self.sasl_failure(SaslFailure::NotAuthorized, now);
        }
        let mech = Mechanism::parse(&name).filter(|m| self.offered_mechanisms().contains(m));
        let Some(mech) = mech else {
            return self.sasl_failure(SaslFailure::InvalidMechanism, now);
        };
        self.start_mechanism(mech, initial, now);
    }

    /// XEP-0388 §2.5: a challenge.
    pub(super) fn sasl2_challenge(&mut self, data: &[u8]) {
        let challenge = Element::new("challenge", ns::SASL2).with_text(B64.encode(data));
        self.send(&challenge);
    }

    /// XEP-0388 §2.6.2: `<failure/>` with the RFC 6120 condition; inline requests
    /// are not processed.
    pub(super) fn sasl2_failure_element(failure: SaslFailure) -> Element {
        Element::new("failure", ns::SASL2).with_child(Element::new(failure.condition(), ns::SASL))
    }

    /// The mechanism exchange succeeded for `user`: the inline requests run, then
    /// `<success/>` goes out.
    pub(super) fn sasl2_authenticated(&mut self, user: Jid, additional_data: Option<Vec<u8>>, now: Instant) {
        // §2.3: a stream `from` must name the identity that authenticated.
        if self.header_from.as_ref().is_some_and(|f| f.bare() != user) {
            tracing::info!(session = self.id, user = %user, "SASL2 identity differs from the stream's from");
            return self.sasl_failure(SaslFailure::InvalidAuthzid, now);
        }
        self.user = Some(user);
        if let Some(x) = &mut self.sasl2 {
            x.authenticated = true;
            x.additional_data = additional_data;
        }
        self.sasl2_continue(now);
    }

    /// Runs the next inline request of the authenticated exchange; those that wait
    /// for storage or the hub come back here when answered.
    pub(super) fn sasl2_continue(&mut self, now: Instant) {
        loop {
            let Some(x) = self.sasl2.as_mut() else { return };
            if !x.token_settled {
                x.token_settled = true;
                if let Some(mechanism) = x.request_token {
                    if self.fast_issue_requested(mechanism, now) {
                        return;
                    }
                }
                continue;
            }
            if let Some(resume) = x.resume.take() {
                self.ask_resume(&resume, true, now);
                if self.resuming.is_some() {
                    return;
                }
                continue;
            }
            if x.resumed.is_none() {
                if let Some(bind) = x.bind.take() {
                    let bound = self.bind2(&bind, now);
                    if let Some(x) = self.sasl2.as_mut() {
                        x.extra.push(bound);
                    }
                    continue;
                }
            }
            return self.sasl2_success(now);
        }
    }

    /// XEP-0198 in SASL2: the `<resumed/>` or `<failed/>` answer, into `<success/>`.
    pub(super) fn sasl2_resume_answer(
        &mut self,
        answer: Element,
        resend: Option<Vec<Outbound>>,
        now: Instant,
    ) {
        if let Some(x) = self.sasl2.as_mut() {
            x.extra.push(answer);
            x.resumed = resend;
        }
        self.sasl2_continue(now);
    }

    /// XEP-0388 §2.6.1: `<success/>`, then the features of the authenticated stream.
    fn sasl2_success(&mut self, now: Instant) {
        let Some(x) = self.sasl2.take() else { return };
        let Some(user) = self.user.clone() else { return };
        let mut success = Element::new("success", ns::SASL2);
        if let Some(data) = &x.additional_data {
            success.push_child(Element::new("additional-data", ns::SASL2).with_text(B64.encode(data)));
        }
        let identity = self.jid.clone().unwrap_or(user);
        success
            .push_child(Element::new("authorization-identifier", ns::SASL2).with_text(identity.to_string()));
        for e in x.extra {
            success.push_child(e);
        }
        self.send(&success);
        if self.phase != Phase::Bound {
            self.phase = Phase::Authenticated;
        }
        let features = self.features();
        self.send(&features);
        if let Some(resend) = x.resumed {
            self.resend(resend, now);
        }
    }
}
