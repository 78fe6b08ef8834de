//! Stream negotiation before a resource is bound: features (RFC 6120 §4.3.2),
//! STARTTLS (§5), SASL (§6), in-band registration (XEP-0077) and binding (§7).

use std::time::Instant;

use base64::Engine as _;

use super::{C2s, Pending, Phase, TlsMode, MAX_SASL_FAILURES};
use crate::jid::Jid;
use crate::ns;
use crate::sasl::{
    Mechanism, SaslContext, SaslFailure, SaslServer, SaslStep, StoredCredentials, DEFAULT_ITERATIONS,
};
use crate::storage::StorageRequest;
use crate::stream::{StanzaError, StreamError};
use crate::tls::TlsSession;
use crate::xml::Element;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

impl C2s {
    /// TLS is negotiated (or direct TLS), so secrets may cross the stream.
    pub(super) fn is_encrypted(&self) -> bool {
        self.tls.is_some() || self.transport_security.is_some()
    }

    /// Channel bindings of this connection (none without TLS, or mid-handshake).
    pub(super) fn channel_bindings(&self) -> crate::sasl::ChannelBindings {
        match (&self.tls, &self.transport_security) {
            (Some(tls), _) => tls.channel_bindings(),
            (None, Some(transport)) => transport.channel_bindings.clone(),
            (None, None) => Default::default(),
        }
    }

    /// STARTTLS is still to be done before authentication.
    pub(super) fn tls_required_first(&self) -> bool {
        self.config.tls_mode == TlsMode::StartTlsRequired && !self.is_encrypted()
    }

    /// Mechanisms this stream offers: `-PLUS` only with channel bindings, PLAIN only
    /// over TLS (RFC 6120 §6.4.1 / RFC 4616 §1).
    pub(super) fn offered_mechanisms(&self) -> Vec<Mechanism> {
        let cb = self.channel_bindings();
        let has_cb = !cb.types().is_empty();
        self.config
            .mechanisms
            .iter()
            .copied()
            .filter(|m| match m {
                Mechanism::Plain => self.is_encrypted(),
                Mechanism::Scram { plus, .. } => !plus || has_cb,
            })
            .collect()
    }

    /// The features for the current phase (RFC 6120 §4.3.2).
    pub(super) fn features(&self) -> Element {
        let mut f = Element::new("features", ns::STREAMS);
        if self.phase == Phase::Bound {
            // After a SASL2 success that bound or resumed (XEP-0388 §2.6.1): what
            // can still be negotiated on the bound stream.
            if self.config.sm.is_some() && self.sm.is_none() {
                f.push_child(Element::new("sm", ns::SM));
            }
            if self.config.csi.is_some() {
                f.push_child(Element::new("csi", ns::CSI));
            }
            return f;
        }
        if self.user.is_some() {
            f.push_child(Element::new("bind", ns::BIND));
            f.push_child(
                Element::new("session", ns::SESSION).with_child(Element::new("optional", ns::SESSION)),
            );
            // RFC 6121 §3.4: the hub honours subscription pre-approvals.
            f.push_child(Element::new("sub", ns::PRE_APPROVAL));
            // XEP-0198 §3: enable after binding, or resume instead of binding.
            if self.config.sm.is_some() {
                f.push_child(Element::new("sm", ns::SM));
            }
            if self.config.csi.is_some() {
                f.push_child(Element::new("csi", ns::CSI));
            }
            return f;
        }
        if !self.is_encrypted() && self.config.tls_mode != TlsMode::None && self.config.tls.is_some() {
            let mut starttls = Element::new("starttls", ns::TLS);
            if self.config.tls_mode == TlsMode::StartTlsRequired {
                starttls.push_child(Element::new("required", ns::TLS));
                f.push_child(starttls);
                return f;
            }
            f.push_child(starttls);
        }
        let mut mechs = Element::new("mechanisms", ns::SASL);
        for m in self.offered_mechanisms() {
            mechs.push_child(Element::new("mechanism", ns::SASL).with_text(m.name()));
        }
        f.push_child(mechs);
        if let Some(sasl2) = self.sasl2_feature() {
            f.push_child(sasl2);
        }
        if self.is_encrypted() {
            let types = self.channel_bindings().types();
            if !types.is_empty() {
                // XEP-0440: tell the client which channel bindings we can verify.
                let mut cb = Element::new("sasl-channel-binding", ns::SASL_CB);
                for t in types {
                    cb.push_child(Element::new("channel-binding", ns::SASL_CB).with_attr("type", t.as_str()));
                }
                f.push_child(cb);
            }
        }
        if self.registration_allowed() {
            f.push_child(Element::new("register", ns::REGISTER_FEATURE));
        }
        f
    }

    fn registration_allowed(&self) -> bool {
        self.config.registration && (self.is_encrypted() || self.config.tls_mode == TlsMode::None)
    }

    /// Dispatches a top-level element by phase.
    pub(super) fn on_element(&mut self, el: Element, now: Instant) {
        if self.in_early_data && !(self.phase == Phase::Negotiating && el.ns() == ns::SASL2) {
            // TLS 1.3 early data may carry the stream header and a SASL2
            // authentication, nothing else (XEP-0484 §3.4, RFC 8446 §8).
            return self.stream_error(
                StreamError::PolicyViolation,
                Some("only authentication in early data"),
            );
        }
        match (self.phase.clone(), el.ns()) {
            (Phase::Authenticated | Phase::Bound, ns::SM) => self.on_sm_element(el, now),
            (Phase::Authenticated | Phase::Bound, ns::CSI) => self.on_csi(&el, now),
            (Phase::Negotiating, _) => self.on_negotiation_element(el, now),
            (Phase::Authenticated, _) => self.on_authenticated_element(el, now),
            (Phase::Bound, _) => self.on_stanza(el, now),
            (Phase::AwaitingHeader | Phase::Closed, _) => {}
        }
    }

    fn on_negotiation_element(&mut self, el: Element, now: Instant) {
        if el.is("starttls", ns::TLS) {
            return self.on_starttls();
        }
        if el.ns() == ns::SASL && self.sasl2.is_none() {
            return self.on_sasl(el, now);
        }
        if el.ns() == ns::SASL2 && self.sasl.as_ref().is_none_or(|_| self.sasl2.is_some()) {
            return self.on_sasl2(el, now);
        }
        if el.is("iq", ns::CLIENT) {
            if let Some(q) = el.first_child() {
                if q.is("query", ns::REGISTER) && self.registration_allowed() {
                    return self.on_register(el.clone(), now);
                }
            }
        }
        // RFC 6120 §4.9.3.12: anything else before authentication.
        self.stream_error(StreamError::NotAuthorized, None);
    }

    /// RFC 6120 §5.4.2: `<proceed/>`, then TLS from the next byte on.
    fn on_starttls(&mut self) {
        let identity = match (&self.config.tls, self.is_encrypted(), self.config.tls_mode) {
            (Some(identity), false, TlsMode::StartTls | TlsMode::StartTlsRequired) => identity.clone(),
            _ => {
                self.send(&Element::new("failure", ns::TLS));
                self.write_close_tag();
                return self.close();
            }
        };
        match TlsSession::new(&identity) {
            Ok(tls) => {
                self.send(&Element::new("proceed", ns::TLS));
                // <proceed/> goes out in clear; everything after it is encrypted.
                self.flush();
                self.tls = Some(tls);
                self.restart_parser();
                self.phase = Phase::AwaitingHeader;
            }
            Err(e) => {
                tracing::warn!(session = self.id, error = %e, "cannot start TLS");
                self.send(&Element::new("failure", ns::TLS));
                self.write_close_tag();
                self.close();
            }
        }
    }

    fn on_sasl(&mut self, el: Element, now: Instant) {
        // RFC 6120 §6.4.4: the client may abort at any time, even while we look up its
        // credentials; the late answer is then ignored (no request is pending).
        if el.name() == "abort" {
            if matches!(self.pending, Some((_, Pending::Credentials))) {
                self.pending = None;
            }
            return self.sasl_failure(SaslFailure::Aborted, now);
        }
        if self.pending.is_some() {
            return self.stream_error(StreamError::PolicyViolation, Some("SASL request while busy"));
        }
        match el.name() {
            "auth" => {
                if self.tls_required_first() {
                    return self.sasl_failure(SaslFailure::EncryptionRequired, now);
                }
                if self.auth_backoff_applies(now) {
                    return self.sasl_failure(SaslFailure::TemporaryAuthFailure, now);
                }
                let mech = el
                    .attr("mechanism")
                    .and_then(Mechanism::parse)
                    .filter(|m| self.offered_mechanisms().contains(m));
                let Some(mech) = mech else {
                    return self.sasl_failure(SaslFailure::InvalidMechanism, now);
                };
                let initial = match decode_sasl_payload(&el.text()) {
                    Ok(d) => d,
                    Err(f) => return self.sasl_failure(f, now),
                };
                self.start_mechanism(mech, initial, now);
            }
            "response" => {
                let data = match decode_sasl_payload(&el.text()) {
                    Ok(d) => d.unwrap_or_default(),
                    Err(f) => return self.sasl_failure(f, now),
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

    /// Starts an exchange of `mech` (checked offered) with the client's initial
    /// response, for either SASL profile.
    pub(super) fn start_mechanism(&mut self, mech: Mechanism, initial: Option<Vec<u8>>, now: Instant) {
        let context = SaslContext {
            domain: self.domain.clone().unwrap_or_default(),
            advertised: self.offered_mechanisms(),
            channel_bindings: self.channel_bindings(),
        };
        let (server, step) = SaslServer::start_with_server_secret(
            mech,
            initial.as_deref(),
            context,
            &self.config.sasl_secret,
            &mut *self.rng,
        );
        self.sasl = Some(Box::new(server));
        self.on_sasl_step(step, now);
    }

    pub(super) fn on_sasl_step(&mut self, step: SaslStep, now: Instant) {
        match step {
            SaslStep::NeedCredentials { username } => {
                let domain = self.domain.clone().unwrap_or_default();
                match Jid::new(Some(&username), &domain, None) {
                    Ok(user) => self.request(Pending::Credentials, StorageRequest::GetCredentials { user }),
                    Err(_) => {
                        // Not a possible localpart, so not a user; same answer as a bad password.
                        let step = self
                            .sasl
                            .as_mut()
                            .map(|s| s.credentials(None, &mut *self.rng))
                            .unwrap_or(SaslStep::Failure(SaslFailure::NotAuthorized));
                        self.on_sasl_step(step, now);
                    }
                }
            }
            SaslStep::Challenge(data) if self.sasl2.is_some() => self.sasl2_challenge(&data),
            SaslStep::Challenge(data) => {
                let challenge = Element::new("challenge", ns::SASL).with_text(B64.encode(data));
                self.send(&challenge);
            }
            SaslStep::Success {
                username,
                additional_data,
            } => {
                let mechanism = self.sasl.take().map(|s| s.mechanism().name()).unwrap_or("");
                let domain = self.domain.clone().unwrap_or_default();
                let Ok(user) = Jid::new(Some(&username), &domain, None) else {
                    return self.sasl_failure(SaslFailure::NotAuthorized, now);
                };
                if self.sasl2.is_some() {
                    self.auth_event(mechanism, true);
                    tracing::info!(session = self.id, user = %user, mechanism, "authenticated (SASL2)");
                    return self.sasl2_authenticated(user, additional_data, now);
                }
                // RFC 6120 §6.4.6: no additional data, an empty element; additional
                // data of zero length, `=`.
                let success = match additional_data {
                    None => Element::new("success", ns::SASL),
                    Some(d) if d.is_empty() => Element::new("success", ns::SASL).with_text("="),
                    Some(d) => Element::new("success", ns::SASL).with_text(B64.encode(d)),
                };
                self.send(&success);
                self.auth_event(mechanism, true);
                tracing::info!(session = self.id, user = %user, mechanism, "authenticated");
                self.user = Some(user);
                // RFC 6120 §6.4.6: the stream restarts.
                self.restart_parser();
                self.phase = Phase::AwaitingHeader;
            }
            SaslStep::Failure(f) => self.sasl_failure(f, now),
        }
    }

    pub(super) fn sasl_failure(&mut self, failure: SaslFailure, now: Instant) {
        let mechanism = self.sasl.take().map(|s| s.mechanism().name()).unwrap_or("");
        self.auth_event(mechanism, false);
        tracing::info!(session = self.id, peer = ?self.peer.as_deref(), condition = failure.condition(), "SASL failure");
        if failure == SaslFailure::NotAuthorized {
            // Wrong credentials (password, token): they count against the address.
            if let (Some(backoff), Some(peer)) = (&self.config.auth_backoff, self.peer.as_deref()) {
                backoff.record_failure(*peer, now);
            }
        }
        let el = match self.sasl2.take() {
            // XEP-0388 §2.6.2: the inline requests are dropped with the exchange.
            Some(_) => Self::sasl2_failure_element(failure),
            None => Element::new("failure", ns::SASL).with_child(Element::new(failure.condition(), ns::SASL)),
        };
        self.send(&el);
        if failure != SaslFailure::Aborted {
            self.sasl_failures += 1;
        }
        if self.sasl_failures >= MAX_SASL_FAILURES {
            self.stream_error(
                StreamError::PolicyViolation,
                Some("too many authentication failures"),
            );
        }
    }

    /// True when this connection's address must wait before its next
    /// authentication is checked (see [`crate::sasl::backoff`]); the attempt then
    /// gets `temporary-auth-failure` without being looked at.
    pub(super) fn auth_backoff_applies(&self, now: Instant) -> bool {
        let (Some(backoff), Some(&peer)) = (&self.config.auth_backoff, self.peer.as_deref()) else {
            return false;
        };
        match backoff.blocked_until(peer, now) {
            Some(until) => {
                tracing::info!(
                    session = self.id,
                    %peer,
                    wait_ms = (until - now).as_millis() as u64,
                    "authentication refused: the address must wait after failed attempts"
                );
                true
            }
            None => false,
        }
    }

    pub(super) fn auth_event(&mut self, mechanism: &'static str, success: bool) {
        let host_type = self.domain.clone().unwrap_or_default();
        self.actions
            .push_back(super::Action::Instrument(crate::instrument::Event::Auth {
                mechanism,
                success,
                host_type,
            }));
    }

    /// XEP-0077 §3.1: registration form and account creation before authentication.
    fn on_register(&mut self, iq: Element, _now: Instant) {
        match iq.attr("type") {
            Some("get") => {
                let query = Element::new("query", ns::REGISTER)
                    .with_child(
                        Element::new("instructions", ns::REGISTER)
                            .with_text("Choose a username and password."),
                    )
                    .with_child(Element::new("username", ns::REGISTER))
                    .with_child(Element::new("password", ns::REGISTER));
                self.send(&iq_result(&iq, Some(query)));
            }
            Some("set") => {
                let query = iq
                    .first_child()
                    .cloned()
                    .unwrap_or_else(|| Element::new("query", ns::REGISTER));
                let username = query.get_child("username", ns::REGISTER).map(|e| e.text());
                let password = query.get_child("password", ns::REGISTER).map(|e| e.text());
                let (Some(username), Some(password)) = (username, password) else {
                    return self.send(&StanzaError::NotAcceptable.reply_to(&iq));
                };
                let domain = self.domain.clone().unwrap_or_default();
                let Ok(user) = Jid::new(Some(&username), &domain, None) else {
                    // XEP-0077 §3.1: an unacceptable username.
                    return self.send(&StanzaError::JidMalformed.reply_to(&iq));
                };
                if password.is_empty() {
                    return self.send(&StanzaError::NotAcceptable.reply_to(&iq));
                }
                let credentials = StoredCredentials::derive(&password, DEFAULT_ITERATIONS, &mut *self.rng);
                self.request(
                    Pending::Register { iq: Box::new(iq) },
                    StorageRequest::CreateUser { user, credentials },
                );
            }
            _ => self.send(&StanzaError::BadRequest.reply_to(&iq)),
        }
    }

    /// After SASL success and the restart: only binding (and the legacy session iq).
    fn on_authenticated_element(&mut self, el: Element, now: Instant) {
        if !el.is("iq", ns::CLIENT) {
            return self.stream_error(StreamError::NotAuthorized, Some("bind a resource first"));
        }
        let child = el.first_child().cloned();
        match (el.attr("type"), child) {
            (Some("set"), Some(bind)) if bind.is("bind", ns::BIND) => self.on_bind(&el, &bind, now),
            (Some("set"), Some(s)) if s.is("session", ns::SESSION) => self.send(&iq_result(&el, None)),
            _ => self.send(&StanzaError::NotAuthorized.reply_to(&el)),
        }
    }

    /// RFC 6120 §7: bind the client's resource, or one we make.
    fn on_bind(&mut self, iq: &Element, bind: &Element, now: Instant) {
        let Some(user) = self.user.clone() else { return };
        let requested = bind
            .get_child("resource", ns::BIND)
            .map(|r| r.text())
            .filter(|r| !r.is_empty());
        let resource = requested.unwrap_or_else(|| format!("meerkat-{}", self.random_token(6)));
        let jid = match user.with_resource(&resource) {
            Ok(j) => j,
            Err(_) => return self.send(&StanzaError::BadRequest.reply_to(iq)),
        };
        let result_bind = Element::new("bind", ns::BIND)
            .with_child(Element::new("jid", ns::BIND).with_text(jid.to_string()));
        self.send(&iq_result(iq, Some(result_bind)));
        self.bind_session(jid, now);
    }
}

/// RFC 6120 §6.4.2: empty text is "no initial response", `=` is an empty one.
fn decode_sasl_payload(text: &str) -> Result<Option<Vec<u8>>, SaslFailure> {
    let t = text.trim();
    match t {
        "" => Ok(None),
        "=" => Ok(Some(Vec::new())),
        _ => B64
            .decode(t)
            .map(Some)
            .map_err(|_| SaslFailure::IncorrectEncoding),
    }
}

/// An iq result for `iq` (same id; `to` is the requester when known).
pub(super) fn iq_result(iq: &Element, payload: Option<Element>) -> Element {
    let mut r = Element::new("iq", iq.ns()).with_attr("type", "result");
    if let Some(id) = iq.attr("id") {
        r.set_attr("id", id);
    }
    if let Some(from) = iq.attr("from") {
        r.set_attr("to", from);
    }
    if let Some(p) = payload {
        r.push_child(p);
    }
    r
}
