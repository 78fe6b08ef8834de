//! The incoming S2S stream (RFC 6120 §13): a remote server connects, optionally
//! negotiates TLS, then authenticates one or more domain pairs, with SASL EXTERNAL
//! when its certificate proves its domain (XEP-0178) or with Server Dialback
//! (XEP-0220), whose key the federation router verifies with the remote domain's
//! authoritative server. The stream also answers dialback verification requests
//! (`db:verify`) for our own domains, as their authoritative server. Every stanza's
//! `from` and `to` must belong to an authenticated pair (RFC 6120 §13.1, §4.9.3.9).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use rand_core::RngCore;

use super::c2s::TlsMode;
use super::s2s::{S2sConfig, VerifyMode};
use super::wire::{major_version, random_token, Wire, WireEvent};
use super::{Action, StreamError};
use crate::federation::{DialbackRequest, FederationInput};
use crate::hub::{HubInput, SessionId};
use crate::instrument::ConnectionType;
use crate::jid::Jid;
use crate::ns;
use crate::tls::{TlsIdentity, TlsSession};
use crate::xml::{Element, StreamHeader};

/// Settings of a `[[listen.s2s]]` listener.
#[derive(Debug, Clone)]
pub struct S2sInConfig {
    /// What all S2S streams share.
    pub common: Arc<S2sConfig>,
    /// TLS mode ([`TlsMode::None`]: no `tls` table).
    pub tls_mode: TlsMode,
    /// Certificate and key (asking peers for theirs when `verify` is `Peer`).
    pub tls: Option<Arc<TlsIdentity>>,
    /// `tls.verify_mode`.
    pub verify: VerifyMode,
    /// Largest accepted stanza.
    pub max_stanza_size: usize,
    /// Shaper rate in bytes per second, if any.
    pub shaper_max_rate: Option<u64>,
    /// Time a peer has to authenticate a first domain pair.
    pub auth_timeout: Duration,
}

impl S2sInConfig {
    /// A plain-text listener sharing `common`.
    pub fn new(common: Arc<S2sConfig>) -> Self {
        Self {
            common,
            tls_mode: TlsMode::None,
            tls: None,
            verify: VerifyMode::None,
            max_stanza_size: 65_536,
            shaper_max_rate: None,
            auth_timeout: Duration::from_secs(30),
        }
    }
}

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// An incoming S2S connection.
pub struct S2sIn {
    config: Arc<S2sInConfig>,
    rng: Box<dyn RngCore + Send>,
    wire: Wire,
    awaiting_header: bool,
    stream_id: String,
    /// The stream's `to` (ours) and `from` (theirs, if given).
    local: Option<String>,
    remote: Option<String>,
    sasl_done: bool,
    /// Authenticated (local, remote) pairs.
    pairs: HashSet<(String, String)>,
    /// Pairs whose dialback key is being verified.
    verifying: HashSet<(String, String)>,
    auth_deadline: Instant,
    idle_deadline: Instant,
}

impl S2sIn {
    /// A new connection accepted at `now`.
    pub fn new(id: SessionId, config: Arc<S2sInConfig>, rng: Box<dyn RngCore + Send>, now: Instant) -> Self {
        let mut wire = Wire::new(
            id,
            ns::SERVER,
            ConnectionType::S2s,
            config.max_stanza_size,
            config.shaper_max_rate,
        );
        if config.tls_mode == TlsMode::Tls {
            match config.tls.as_deref().map(TlsSession::new) {
                Some(Ok(tls)) => wire.start_tls(tls),
                _ => wire.close(),
            }
        }
        let auth_deadline = now + config.auth_timeout;
        wire.push(Action::SetTimer(auth_deadline));
        Self {
            idle_deadline: now + config.common.stream_timeout,
            config,
            rng,
            wire,
            awaiting_header: true,
            stream_id: String::new(),
            local: None,
            remote: None,
            sasl_done: false,
            pairs: HashSet::new(),
            verifying: HashSet::new(),
            auth_deadline,
        }
    }

    /// The authenticated (local, remote) domain pairs.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(l, r)| (l.as_str(), r.as_str()))
    }

    fn default_from(&self) -> String {
        self.local
            .clone()
            .or_else(|| self.config.common.hosts.first().cloned())
            .unwrap_or_default()
    }

    fn stream_error(&mut self, error: StreamError, text: Option<&str>) {
        let from = self.default_from();
        self.wire.stream_error(error, text, &from);
    }

    /// Bytes read from the socket.
    pub fn handle_bytes(&mut self, bytes: &[u8], now: Instant) {
        self.wire.receive(bytes, now);
        self.idle_deadline = now + self.config.common.stream_timeout;
        loop {
            let from = self.default_from();
            let Some(event) = self.wire.next_event(&from) else {
                break;
            };
            match event {
                WireEvent::Header(h) => self.on_header(&h),
                WireEvent::Element(el) => self.on_element(el),
                WireEvent::Close => self.wire.close_stream(),
            }
        }
        self.wire.flush();
    }

    fn on_header(&mut self, h: &StreamHeader) {
        if !self.awaiting_header {
            return self.stream_error(StreamError::NotWellFormed, Some("unexpected stream header"));
        }
        let to = h
            .attr("to")
            .and_then(|t| Jid::domain_jid(t).ok())
            .map(|j| j.domain().to_string());
        let served = match to {
            Some(d) if self.config.common.serves(&d) => Some(d),
            // RFC 6120 §4.7.2: a peer may leave `to` out of its first header (old
            // dialback servers); we answer for our first domain.
            None => self.config.common.hosts.first().cloned(),
            Some(_) => None,
        };
        let remote = h
            .attr("from")
            .and_then(|f| Jid::domain_jid(f).ok())
            .map(|j| j.domain().to_string());
        self.stream_id = random_token(&mut *self.rng, 16);
        let version = major_version(h.attr("version")) == Some(1);
        let from = served.clone().unwrap_or_else(|| self.default_from());
        let id = self.stream_id.clone();
        let mut attrs = vec![("from", from.as_str()), ("id", id.as_str())];
        if let Some(r) = &remote {
            attrs.push(("to", r.as_str()));
        }
        if version {
            attrs.push(("version", "1.0"));
        }
        self.wire.send_header(&attrs, &[("db", ns::DIALBACK)]);
        if h.name != "stream" || h.name_ns != ns::STREAMS || h.default_ns.as_deref() != Some(ns::SERVER) {
            return self.stream_error(
                StreamError::InvalidNamespace,
                Some("an S2S stream is jabber:server"),
            );
        }
        let Some(local) = served else {
            return self.stream_error(StreamError::HostUnknown, None);
        };
        if let Some(r) = &remote {
            if !self.config.common.policy.allows(r) {
                return self.stream_error(
                    StreamError::PolicyViolation,
                    Some("S2S with your domain is not allowed"),
                );
            }
        }
        self.wire.host_type = local.clone();
        self.local = Some(local);
        self.remote = remote;
        self.awaiting_header = false;
        if version {
            let features = self.features();
            self.wire.send(&features);
        }
    }

    fn tls_required_first(&self) -> bool {
        self.config.tls_mode == TlsMode::StartTlsRequired && !self.wire.is_encrypted()
    }

    /// XEP-0178 §3: EXTERNAL is offered when the peer's certificate authenticates the
    /// domain of its stream header.
    fn external_possible(&self) -> bool {
        if self.sasl_done || self.config.verify != VerifyMode::Peer {
            return false;
        }
        let (Some(tls), Some(remote)) = (self.wire.tls(), &self.remote) else {
            return false;
        };
        tls.peer_certificates()
            .is_some_and(|certs| self.config.common.certificate_authenticates(certs, remote))
    }

    fn features(&self) -> Element {
        let mut f = Element::new("features", ns::STREAMS);
        let tls_configured = self.config.tls.is_some()
            && matches!(
                self.config.tls_mode,
                TlsMode::StartTls | TlsMode::StartTlsRequired
            );
        if !self.wire.is_encrypted() && tls_configured {
            let mut starttls = Element::new("starttls", ns::TLS);
            if self.config.tls_mode == TlsMode::StartTlsRequired {
                starttls.push_child(Element::new("required", ns::TLS));
                f.push_child(starttls);
                return f;
            }
            f.push_child(starttls);
        }
        if self.external_possible() {
            f.push_child(
                Element::new("mechanisms", ns::SASL)
                    .with_child(Element::new("mechanism", ns::SASL).with_text("EXTERNAL")),
            );
        }
        // XEP-0220 §2.4.2: dialback, with error reporting.
        f.push_child(
            Element::new("dialback", ns::DIALBACK_FEATURE)
                .with_child(Element::new("errors", ns::DIALBACK_FEATURE)),
        );
        f
    }

    fn on_element(&mut self, el: Element) {
        if el.is("starttls", ns::TLS) {
            return self.on_starttls();
        }
        if el.ns() == ns::SASL {
            return self.on_sasl(&el);
        }
        if el.ns() == ns::DIALBACK {
            return match el.name() {
                "result" => self.on_dialback_result(&el),
                "verify" => self.on_dialback_verify(&el),
                _ => self.stream_error(StreamError::UnsupportedStanzaType, None),
            };
        }
        self.on_stanza(el);
    }

    fn on_starttls(&mut self) {
        let identity = match (&self.config.tls, self.wire.is_encrypted(), self.config.tls_mode) {
            (Some(identity), false, TlsMode::StartTls | TlsMode::StartTlsRequired) => identity.clone(),
            _ => {
                self.wire.send(&Element::new("failure", ns::TLS));
                return self.wire.close_stream();
            }
        };
        match TlsSession::new(&identity) {
            Ok(tls) => {
                self.wire.send(&Element::new("proceed", ns::TLS));
                self.wire.start_tls(tls);
                self.awaiting_header = true;
            }
            Err(e) => {
                tracing::warn!(session = self.wire.id, error = %e, "cannot start TLS");
                self.wire.send(&Element::new("failure", ns::TLS));
                self.wire.close_stream();
            }
        }
    }

    /// XEP-0178 §3 steps 9–11: SASL EXTERNAL with the authorization identity (or the
    /// header's `from`) checked against the certificate.
    fn on_sasl(&mut self, el: &Element) {
        let failure = |this: &mut Self, condition: &str| {
            let f = Element::new("failure", ns::SASL).with_child(Element::new(condition, ns::SASL));
            this.wire.send(&f);
        };
        if el.name() != "auth" || el.attr("mechanism") != Some("EXTERNAL") || !self.external_possible() {
            return failure(self, "invalid-mechanism");
        }
        let text = el.text();
        let authzid = match text.trim() {
            "" | "=" => None,
            t => match B64.decode(t).ok().and_then(|b| String::from_utf8(b).ok()) {
                Some(s) => Some(s),
                None => return failure(self, "incorrect-encoding"),
            },
        };
        let domain = authzid.or_else(|| self.remote.clone());
        let authenticated = match (&domain, self.wire.tls().and_then(|t| t.peer_certificates())) {
            (Some(d), Some(certs)) => {
                Some(d) == self.remote.as_ref() && self.config.common.certificate_authenticates(certs, d)
            }
            _ => false,
        };
        let (Some(domain), Some(local), true) = (domain, self.local.clone(), authenticated) else {
            tracing::info!(session = self.wire.id, "SASL EXTERNAL refused");
            return failure(self, "not-authorized");
        };
        tracing::info!(session = self.wire.id, remote = %domain, "S2S authenticated with SASL EXTERNAL");
        self.wire.send(&Element::new("success", ns::SASL));
        self.sasl_done = true;
        self.pairs.insert((local, domain));
        self.wire.restart();
        self.awaiting_header = true;
    }

    /// XEP-0220 §2.2.1: a dialback key from the originating server; the router asks
    /// its authoritative server (§2.3).
    fn on_dialback_result(&mut self, el: &Element) {
        if el.attr("type").is_some() {
            return; // A result for the other direction has no business here.
        }
        if self.tls_required_first() {
            return self.stream_error(StreamError::PolicyViolation, Some("STARTTLS is required"));
        }
        let (Some(remote), Some(local)) = (domain_attr(el, "from"), domain_attr(el, "to")) else {
            return self.stream_error(StreamError::ImproperAddressing, None);
        };
        if !self.config.common.serves(&local) {
            return self.dialback_error("result", &local, &remote, None, "item-not-found");
        }
        if !self.config.common.policy.allows(&remote) {
            return self.dialback_error("result", &local, &remote, None, "forbidden");
        }
        let pair = (local.clone(), remote.clone());
        if self.pairs.contains(&pair) {
            // Already authenticated (by SASL EXTERNAL, or an earlier key): say so.
            let answer = Element::new("result", ns::DIALBACK)
                .with_attr("from", local)
                .with_attr("to", remote)
                .with_attr("type", "valid");
            return self.wire.send(&answer);
        }
        if !self.verifying.insert(pair) {
            return;
        }
        self.wire.push(Action::Federation(FederationInput::DialbackVerify(
            DialbackRequest {
                in_conn: self.wire.id,
                local,
                remote,
                stream_id: self.stream_id.clone(),
                key: el.text().trim().to_string(),
            },
        )));
    }

    /// XEP-0220 §2.4.3: a dialback error element.
    fn dialback_error(&mut self, name: &str, local: &str, remote: &str, id: Option<&str>, condition: &str) {
        let mut e = Element::new(name, ns::DIALBACK)
            .with_attr("from", local)
            .with_attr("to", remote)
            .with_attr("type", "error");
        if let Some(id) = id {
            e.set_attr("id", id);
        }
        e.push_child(
            Element::new("error", ns::SERVER)
                .with_attr("type", "cancel")
                .with_child(Element::new(condition, ns::STANZAS)),
        );
        self.wire.send(&e);
    }

    /// XEP-0220 §2.3.2: we are the authoritative server of `to`; the key is right if
    /// we would have made it for the same receiving domain and stream id.
    fn on_dialback_verify(&mut self, el: &Element) {
        let (Some(receiving), Some(originating), Some(id)) =
            (domain_attr(el, "from"), domain_attr(el, "to"), el.attr("id"))
        else {
            return self.stream_error(StreamError::ImproperAddressing, None);
        };
        if !self.config.common.serves(&originating) {
            return self.dialback_error("verify", &originating, &receiving, Some(id), "item-not-found");
        }
        let expected = self.config.common.dialback_key(&receiving, &originating, id);
        let valid = el.text().trim() == expected;
        let answer = Element::new("verify", ns::DIALBACK)
            .with_attr("from", originating)
            .with_attr("to", receiving)
            .with_attr("id", id)
            .with_attr("type", if valid { "valid" } else { "invalid" });
        self.wire.send(&answer);
    }

    /// The authoritative server's answer, through the router.
    pub fn handle_dialback_verified(&mut self, request: &DialbackRequest, valid: bool, _now: Instant) {
        let pair = (request.local.clone(), request.remote.clone());
        if self.wire.is_closed() || !self.verifying.remove(&pair) {
            return;
        }
        tracing::info!(
            session = self.wire.id,
            local = %request.local,
            remote = %request.remote,
            valid,
            "S2S dialback result"
        );
        let answer = Element::new("result", ns::DIALBACK)
            .with_attr("from", request.local.as_str())
            .with_attr("to", request.remote.as_str())
            .with_attr("type", if valid { "valid" } else { "invalid" });
        self.wire.send(&answer);
        if valid {
            self.pairs.insert(pair);
        }
        self.wire.flush();
    }

    /// RFC 6120 §13.1: a stanza needs an authenticated pair for its domains.
    fn on_stanza(&mut self, mut el: Element) {
        if el.ns() != ns::SERVER || !matches!(el.name(), "message" | "presence" | "iq") {
            return self.stream_error(StreamError::UnsupportedStanzaType, None);
        }
        if self.pairs.is_empty() {
            return self.stream_error(StreamError::NotAuthorized, Some("authenticate first"));
        }
        let from = el.attr("from").and_then(|f| Jid::parse(f).ok());
        let to = el.attr("to").and_then(|t| Jid::parse(t).ok());
        let (Some(from), Some(to)) = (from, to) else {
            return self.stream_error(
                StreamError::ImproperAddressing,
                Some("a stanza needs from and to"),
            );
        };
        let pair = (to.domain().to_string(), from.domain().to_string());
        if !self.pairs.contains(&pair) {
            let remote_known = self.pairs.iter().any(|(_, r)| r == from.domain());
            tracing::warn!(session = self.wire.id, from = %from, to = %to, "stanza outside the authenticated pairs");
            return if remote_known {
                self.stream_error(
                    StreamError::HostUnknown,
                    Some("to is not a domain of this stream"),
                )
            } else {
                self.stream_error(
                    StreamError::InvalidFrom,
                    Some("from is not an authenticated domain"),
                )
            };
        }
        el.rename_ns(ns::SERVER, ns::CLIENT);
        self.wire.push(Action::Hub(HubInput::External(el)));
    }

    /// The deadline set by `Action::SetTimer` passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.wire.is_closed() {
            return;
        }
        if self.pairs.is_empty() && now >= self.auth_deadline {
            self.stream_error(
                StreamError::ConnectionTimeout,
                Some("authentication took too long"),
            );
        } else if now >= self.idle_deadline {
            // RFC 6120 §4.4: an idle S2S stream may be closed; the peer opens a new one.
            self.wire.close_stream();
        } else {
            let next = if self.pairs.is_empty() {
                self.auth_deadline
            } else {
                self.idle_deadline
            };
            self.wire.push(Action::SetTimer(next));
        }
        self.wire.flush();
    }

    /// The server is stopping.
    pub fn handle_shutdown(&mut self, _now: Instant) {
        self.stream_error(StreamError::SystemShutdown, None);
        self.wire.flush();
    }

    /// The runtime ends the stream with `error` (a server limit was reached; see
    /// [`super::ConnectionInput::StreamError`]).
    pub fn handle_stream_error(&mut self, error: StreamError, text: &str, _now: Instant) {
        self.stream_error(error, Some(text));
        self.wire.flush();
    }

    /// The socket closed.
    pub fn handle_closed(&mut self, _now: Instant) {
        self.wire.lost();
    }

    /// The next action.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.wire.poll_action()
    }
}

/// The domain in attribute `name` (a bare domain JID).
fn domain_attr(el: &Element, name: &str) -> Option<String> {
    el.attr(name)
        .and_then(|v| Jid::domain_jid(v).ok())
        .map(|j| j.domain().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `listen.s2s` takes a named shaper like every listener: a peer reading faster
    /// than `max_rate` is paused in proportion to its excess.
    #[test]
    fn shaper_pauses_a_fast_peer() {
        let t0 = Instant::now();
        let mut config = S2sInConfig::new(Arc::new(S2sConfig::new(vec!["localhost".into()], "s")));
        config.shaper_max_rate = Some(100);
        let mut s2s = S2sIn::new(1, Arc::new(config), Box::new(rand_core::OsRng), t0);
        s2s.handle_bytes(&[b' '; 150], t0);
        let pauses: Vec<Instant> = std::iter::from_fn(|| s2s.poll_action())
            .filter_map(|a| match a {
                Action::PauseReading(until) => Some(until),
                _ => None,
            })
            .collect();
        assert_eq!(pauses, vec![t0 + Duration::from_millis(500)]);
    }
}
