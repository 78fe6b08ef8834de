//! The external component stream (XEP-0114, Jabber Component Protocol): the
//! component opens a `jabber:component:accept` stream to the domain it wants to
//! serve, proves it knows the listener's password with `<handshake/>` (§3), and from
//! then on sends stanzas from its domain and receives those addressed to it.
//!
//! TLS as on every Meerkat listener: direct TLS from the first byte (`tls.mode =
//! "tls"`), or STARTTLS offered in stream features when the component opens a
//! version 1.0 stream (`tls.mode = "starttls"`, or `"starttls_required"`, which
//! refuses the handshake in clear).

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand_core::RngCore;
use sha1::Digest;

use super::c2s::TlsMode;
use super::wire::{major_version, random_token, Wire, WireEvent};
use super::{Action, StreamError};
use crate::federation::FederationInput;
use crate::hub::{HubInput, SessionId};
use crate::instrument::ConnectionType;
use crate::jid::Jid;
use crate::ns;
use crate::tls::{TlsIdentity, TlsSession};
use crate::xml::{Element, StreamHeader};

/// `conflict_behaviour`: what happens when a second component connects for a domain
/// already served by one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConflictBehaviour {
    /// The new one is refused (`conflict`), MongooseIM's default.
    Disconnect,
    /// The old one is closed (`conflict`) and the new one takes over.
    KickOld,
}

/// Settings of a `[[listen.component]]` listener.
#[derive(Debug, Clone)]
pub struct ComponentConfig {
    /// Served domains: no component may claim one.
    pub hosts: Vec<String>,
    /// The shared secret of the handshake.
    pub password: String,
    /// `check_from`: stanzas must come from the component's domain.
    pub check_from: bool,
    /// `hidden_components`: left out of the server's disco#items.
    pub hidden: bool,
    /// `conflict_behaviour`.
    pub conflict: ConflictBehaviour,
    /// TLS mode ([`TlsMode::None`]: no `tls` table).
    pub tls_mode: TlsMode,
    /// Certificate and key, unless `tls_mode` is `None`.
    pub tls: Option<Arc<TlsIdentity>>,
    /// Largest accepted stanza.
    pub max_stanza_size: usize,
    /// Shaper rate in bytes per second, if any.
    pub shaper_max_rate: Option<u64>,
    /// Time to complete the handshake.
    pub handshake_timeout: Duration,
}

impl ComponentConfig {
    /// A plain-text listener for `hosts` with `password` and MongooseIM's defaults.
    pub fn new(hosts: Vec<String>, password: impl Into<String>) -> Self {
        Self {
            hosts,
            password: password.into(),
            check_from: true,
            hidden: false,
            conflict: ConflictBehaviour::Disconnect,
            tls_mode: TlsMode::None,
            tls: None,
            max_stanza_size: 65_536,
            shaper_max_rate: None,
            handshake_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the component's stream header.
    AwaitingHeader,
    /// Header answered; waiting for `<handshake/>` (or `<starttls/>`).
    Handshake,
    /// Handshake right; the router is asked whether the domain is free.
    Registering,
    /// Registered: stanzas flow.
    Ready,
}

/// A component connection.
pub struct Component {
    config: Arc<ComponentConfig>,
    rng: Box<dyn RngCore + Send>,
    wire: Wire,
    phase: Phase,
    domain: Option<String>,
    stream_id: String,
    deadline: Instant,
}

impl Component {
    /// A new connection accepted at `now`.
    pub fn new(
        id: SessionId,
        config: Arc<ComponentConfig>,
        rng: Box<dyn RngCore + Send>,
        now: Instant,
    ) -> Self {
        let mut wire = Wire::new(
            id,
            ns::COMPONENT_ACCEPT,
            ConnectionType::Component,
            config.max_stanza_size,
            config.shaper_max_rate,
        );
        let deadline = now + config.handshake_timeout;
        if config.tls_mode == TlsMode::Tls {
            match config.tls.as_deref().map(TlsSession::new) {
                Some(Ok(tls)) => wire.start_tls(tls),
                _ => wire.close(),
            }
        }
        wire.push(Action::SetTimer(deadline));
        Self {
            config,
            rng,
            wire,
            phase: Phase::AwaitingHeader,
            domain: None,
            stream_id: String::new(),
            deadline,
        }
    }

    /// The component's domain, once it named one.
    pub fn domain(&self) -> Option<&str> {
        self.domain.as_deref()
    }

    fn default_from(&self) -> String {
        self.domain
            .clone()
            .or_else(|| self.config.hosts.first().cloned())
            .unwrap_or_default()
    }

    fn stream_error(&mut self, error: StreamError, text: Option<&str>) {
        let from = self.default_from();
        self.wire.stream_error(error, text, &from);
        self.unregister();
    }

    /// Bytes read from the socket.
    pub fn handle_bytes(&mut self, bytes: &[u8], _now: Instant) {
        self.wire.receive(bytes, _now);
        loop {
            let from = self.default_from();
            let Some(event) = self.wire.next_event(&from) else {
                break;
            };
            match event {
                WireEvent::Header(h) => self.on_header(&h),
                WireEvent::Element(el) => self.on_element(el),
                WireEvent::Close => {
                    self.wire.close_stream();
                    self.unregister();
                }
            }
        }
        if self.wire.is_closed() {
            self.unregister();
        }
        self.wire.flush();
    }

    fn on_header(&mut self, h: &StreamHeader) {
        if self.phase != Phase::AwaitingHeader {
            return self.stream_error(StreamError::NotWellFormed, Some("unexpected stream header"));
        }
        let domain = h
            .attr("to")
            .and_then(|to| Jid::domain_jid(to).ok())
            .map(|j| j.domain().to_string());
        self.stream_id = random_token(&mut *self.rng, 16);
        let from = domain.clone().unwrap_or_else(|| self.default_from());
        let version = major_version(h.attr("version")) == Some(1);
        let id = self.stream_id.clone();
        let mut attrs = vec![("from", from.as_str()), ("id", id.as_str())];
        if version {
            attrs.push(("version", "1.0"));
        }
        self.wire.send_header(&attrs, &[]);
        if h.name != "stream"
            || h.name_ns != ns::STREAMS
            || h.default_ns.as_deref() != Some(ns::COMPONENT_ACCEPT)
        {
            return self.stream_error(
                StreamError::InvalidNamespace,
                Some("a component stream is jabber:component:accept"),
            );
        }
        // XEP-0114 §3.1: a name the server does not accept is host-unknown; the
        // server's own domains are never a component's.
        let Some(domain) = domain.filter(|d| !self.config.hosts.contains(d)) else {
            return self.stream_error(StreamError::HostUnknown, None);
        };
        if let Some(previous) = &self.domain {
            if *previous != domain {
                return self.stream_error(StreamError::HostUnknown, Some("the domain changed on restart"));
            }
        }
        self.wire.host_type = domain.clone();
        self.domain = Some(domain);
        self.phase = Phase::Handshake;
        if version {
            let mut features = Element::new("features", ns::STREAMS);
            if self.starttls_offered() {
                let mut starttls = Element::new("starttls", ns::TLS);
                if self.config.tls_mode == TlsMode::StartTlsRequired {
                    starttls.push_child(Element::new("required", ns::TLS));
                }
                features.push_child(starttls);
            }
            self.wire.send(&features);
        }
    }

    fn starttls_offered(&self) -> bool {
        !self.wire.is_encrypted()
            && self.config.tls.is_some()
            && matches!(
                self.config.tls_mode,
                TlsMode::StartTls | TlsMode::StartTlsRequired
            )
    }

    fn on_element(&mut self, el: Element) {
        match self.phase {
            Phase::Handshake if el.is("starttls", ns::TLS) => self.on_starttls(),
            Phase::Handshake if el.name() == "handshake" => self.on_handshake(&el),
            Phase::Ready => self.on_stanza(el),
            Phase::Registering => {
                self.stream_error(StreamError::NotAuthorized, Some("wait for the handshake answer"))
            }
            _ => self.stream_error(StreamError::NotAuthorized, Some("handshake first")),
        }
    }

    /// RFC 6120 §5.4.2 on a component stream.
    fn on_starttls(&mut self) {
        let identity = match (&self.config.tls, self.starttls_offered()) {
            (Some(identity), true) => identity.clone(),
            _ => {
                self.wire.send(&Element::new("failure", ns::TLS));
                self.wire.close_stream();
                return self.unregister();
            }
        };
        match TlsSession::new(&identity) {
            Ok(tls) => {
                self.wire.send(&Element::new("proceed", ns::TLS));
                self.wire.start_tls(tls);
                self.phase = Phase::AwaitingHeader;
            }
            Err(e) => {
                tracing::warn!(session = self.wire.id, error = %e, "cannot start TLS");
                self.wire.send(&Element::new("failure", ns::TLS));
                self.wire.close_stream();
            }
        }
    }

    /// XEP-0114 §3.2: the handshake is the hex SHA-1 of the stream id followed by
    /// the password; a wrong one is `not-authorized`.
    fn on_handshake(&mut self, el: &Element) {
        if self.config.tls_mode == TlsMode::StartTlsRequired && !self.wire.is_encrypted() {
            return self.stream_error(StreamError::PolicyViolation, Some("STARTTLS is required"));
        }
        let expected = handshake_digest(&self.stream_id, &self.config.password);
        let given = el.text();
        if !constant_time_eq(given.trim().to_ascii_lowercase().as_bytes(), expected.as_bytes()) {
            tracing::info!(session = self.wire.id, domain = ?self.domain, "component handshake failed");
            return self.stream_error(StreamError::NotAuthorized, None);
        }
        let Some(domain) = self.domain.clone() else { return };
        self.phase = Phase::Registering;
        self.wire.push(Action::Federation(FederationInput::ComponentUp {
            conn: self.wire.id,
            domain,
            hidden: self.config.hidden,
            kick_old: self.config.conflict == ConflictBehaviour::KickOld,
        }));
    }

    /// The router's answer to the registration.
    pub fn handle_component_answer(&mut self, accepted: bool, _now: Instant) {
        if self.phase != Phase::Registering || self.wire.is_closed() {
            return;
        }
        if accepted {
            tracing::info!(session = self.wire.id, domain = ?self.domain, "component connected");
            self.phase = Phase::Ready;
            self.wire.send(&Element::new("handshake", ns::COMPONENT_ACCEPT));
        } else {
            // Not registered: nothing to unregister.
            self.phase = Phase::Handshake;
            let from = self.default_from();
            self.wire.stream_error(
                StreamError::Conflict,
                Some("another component serves this domain"),
                &from,
            );
        }
        self.wire.flush();
    }

    /// XEP-0114 §3.3: stanzas from the component, `from` of its domain (when
    /// `check_from`) and a `to`.
    fn on_stanza(&mut self, mut el: Element) {
        if el.ns() != ns::COMPONENT_ACCEPT || !matches!(el.name(), "message" | "presence" | "iq") {
            return self.stream_error(StreamError::UnsupportedStanzaType, None);
        }
        let from = el.attr("from").and_then(|f| Jid::parse(f).ok());
        let to = el.attr("to").and_then(|t| Jid::parse(t).ok());
        let (Some(from), Some(_)) = (from, to) else {
            return self.stream_error(
                StreamError::ImproperAddressing,
                Some("a component stanza needs a valid from and to"),
            );
        };
        if self.config.check_from && Some(from.domain()) != self.domain.as_deref() {
            return self.stream_error(
                StreamError::InvalidFrom,
                Some("from must be of the component's domain"),
            );
        }
        el.rename_ns(ns::COMPONENT_ACCEPT, ns::CLIENT);
        self.wire.push(Action::Hub(HubInput::External(el)));
    }

    /// A stanza routed to the component.
    pub fn handle_routed(&mut self, stanza: Element, _now: Instant) {
        if self.phase == Phase::Ready && !self.wire.is_closed() {
            self.wire.send(&stanza);
            self.wire.flush();
        }
    }

    /// The deadline set by `Action::SetTimer` passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if !self.wire.is_closed() && self.phase != Phase::Ready && now >= self.deadline {
            self.stream_error(StreamError::ConnectionTimeout, Some("handshake took too long"));
            self.wire.flush();
        }
    }

    /// A newer component took the domain (`kick_old`).
    pub fn handle_replaced(&mut self, _now: Instant) {
        // The router already forgot us.
        self.phase = Phase::Handshake;
        let from = self.default_from();
        self.wire
            .stream_error(StreamError::Conflict, Some("replaced by a new connection"), &from);
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
        self.unregister();
    }

    fn unregister(&mut self) {
        if matches!(self.phase, Phase::Ready | Phase::Registering) {
            self.phase = Phase::Handshake;
            self.wire.push(Action::Federation(FederationInput::ComponentDown {
                conn: self.wire.id,
            }));
        }
    }

    /// The next action.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.wire.poll_action()
    }
}

/// XEP-0114 §3.2: lower-case hex SHA-1 of the stream id and the password.
pub fn handshake_digest(stream_id: &str, password: &str) -> String {
    let digest = sha1::Sha1::new()
        .chain_update(stream_id.as_bytes())
        .chain_update(password.as_bytes())
        .finalize();
    super::wire::hex(&digest)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
