//! The outgoing S2S stream (RFC 6120 §13) for one domain pair: finding the peer
//! (static addresses, or DNS SRV for `_xmpps-server._tcp` and `_xmpp-server._tcp`
//! with fallback to the domain itself, RFC 6120 §3.2, XEP-0368), connecting,
//! STARTTLS or direct TLS, authentication with SASL EXTERNAL when both certificates
//! allow it (XEP-0178) or Server Dialback (XEP-0220), then stanzas from the
//! federation router. It also carries the router's dialback verification requests
//! to the peer, as a receiving server asking the authoritative one (XEP-0220 §2.3).
//!
//! The runtime only resolves names and opens sockets (`Action::Resolve`,
//! `Action::Connect`); every decision (order, fallback, timeouts) is made here.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use rand_core::RngCore;

use super::s2s::{S2sClientTls, S2sConfig, VerifyMode};
use super::wire::{Wire, WireEvent};
use super::{Action, StreamError};
use crate::federation::srv::{self, SrvRecord, Target};
use crate::federation::{DialbackRequest, DomainPair, FederationInput, OutFailure};
use crate::hub::SessionId;
use crate::instrument::ConnectionType;
use crate::ns;
use crate::tls::TlsSession;
use crate::xml::{Element, StreamHeader};

/// The standard S2S port (RFC 6120 §14.7).
pub const DEFAULT_PORT: u16 = 5269;

/// A DNS question for the runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsQuery {
    /// SRV records of this name (`_xmpp-server._tcp.example.com`).
    Srv(String),
    /// A and AAAA records of this host.
    Host(String),
}

/// The runtime's answer to a [`DnsQuery`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsAnswer {
    /// SRV records (empty: the name has none).
    Srv(Vec<SrvRecord>),
    /// Addresses of the host (empty: none).
    Addresses(Vec<IpAddr>),
    /// The query failed (timeout, server failure).
    Failed,
}

/// `ip_versions`: which address families to use, in order of preference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpVersion {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

/// Settings of outgoing S2S (`[s2s.outgoing]`).
#[derive(Debug, Clone)]
pub struct S2sOutConfig {
    /// What all S2S streams share.
    pub common: Arc<S2sConfig>,
    /// TLS (`None`: no `tls` table, streams stay in clear).
    pub tls: Option<S2sClientTls>,
    /// `tls.mode = "starttls_required"`: a peer not offering STARTTLS is a failure.
    pub tls_required: bool,
    /// `tls.mode = "tls"`: direct TLS to static and fallback addresses.
    pub direct_tls: bool,
    /// `port`: used when DNS gives no SRV record and for static addresses without one.
    pub port: u16,
    /// `address`: static addresses per remote domain, skipping DNS.
    pub addresses: HashMap<String, Vec<(IpAddr, Option<u16>)>>,
    /// `ip_versions`, in order of preference.
    pub ip_versions: Vec<IpVersion>,
    /// `connection_timeout`: for each TCP connect.
    pub connection_timeout: Duration,
    /// Largest accepted stanza.
    pub max_stanza_size: usize,
    /// Shaper rate in bytes per second, if any.
    pub shaper_max_rate: Option<u64>,
}

impl S2sOutConfig {
    /// Plain-text outgoing S2S sharing `common`, with MongooseIM's defaults.
    pub fn new(common: Arc<S2sConfig>) -> Self {
        Self {
            common,
            tls: None,
            tls_required: false,
            direct_tls: false,
            port: DEFAULT_PORT,
            addresses: HashMap::new(),
            ip_versions: vec![IpVersion::V4, IpVersion::V6],
            connection_timeout: Duration::from_secs(10),
            max_stanza_size: 65_536,
            shaper_max_rate: None,
        }
    }
}

/// Where the connection is.
#[derive(Debug)]
enum Phase {
    /// Waiting for the SRV records of `_xmpps-server` (first) then `_xmpp-server`.
    ResolvingSrv { xmpps: Option<Vec<SrvRecord>> },
    /// Waiting for the addresses of `current`; `rest` are the next targets.
    ResolvingHost { current: Target },
    /// Waiting for a TCP connect to the first of `addrs`.
    Connecting {
        addrs: VecDeque<SocketAddr>,
        direct_tls: bool,
    },
    /// Our header is sent; waiting for theirs and their features.
    Negotiating,
    /// `<starttls/>` sent, waiting for `<proceed/>`.
    StartingTls,
    /// SASL EXTERNAL `<auth/>` sent.
    SaslExternal,
    /// Dialback key sent, waiting for `db:result` with a type.
    Dialback,
    /// Authenticated: stanzas flow.
    Established,
    /// Over.
    Closed,
}

/// An outgoing S2S connection for one domain pair.
pub struct S2sOut {
    config: Arc<S2sOutConfig>,
    pair: DomainPair,
    rng: Box<dyn RngCore + Send>,
    wire: Wire,
    phase: Phase,
    targets: VecDeque<Target>,
    /// RFC 6120 §3.2.1: without SRV records, the domain itself is tried.
    srv_found: bool,
    timed_out: bool,
    deadline: Option<Instant>,
    stream_id: Option<String>,
    /// The peer's current features.
    features: Option<Element>,
    sasl_tried: bool,
    sasl_done: bool,
    /// Verification requests to send, and those sent awaiting an answer.
    verifies: Vec<DialbackRequest>,
    verifies_sent: Vec<DialbackRequest>,
    /// Stanzas handed to us before the stream could carry them.
    unsent: Vec<Element>,
    /// The router was told the connection ended.
    reported: bool,
}

impl S2sOut {
    /// A connection `id` for `pair`, starting at `now` by finding the peer.
    pub fn new(
        id: SessionId,
        pair: DomainPair,
        config: Arc<S2sOutConfig>,
        rng: Box<dyn RngCore + Send>,
        now: Instant,
    ) -> Self {
        let mut wire = Wire::new(
            id,
            ns::SERVER,
            ConnectionType::S2s,
            config.max_stanza_size,
            config.shaper_max_rate,
        );
        wire.host_type = pair.local.clone();
        let mut out = Self {
            config,
            rng,
            wire,
            phase: Phase::Closed,
            targets: VecDeque::new(),
            srv_found: false,
            timed_out: false,
            deadline: None,
            stream_id: None,
            features: None,
            sasl_tried: false,
            sasl_done: false,
            verifies: Vec::new(),
            verifies_sent: Vec::new(),
            unsent: Vec::new(),
            reported: false,
            pair,
        };
        out.start(now);
        out
    }

    /// The domain pair.
    pub fn pair(&self) -> &DomainPair {
        &self.pair
    }

    /// True once stanzas flow.
    pub fn is_established(&self) -> bool {
        matches!(self.phase, Phase::Established)
    }

    fn start(&mut self, now: Instant) {
        if let Some(addrs) = self.config.addresses.get(&self.pair.remote) {
            let addrs: VecDeque<SocketAddr> = addrs
                .iter()
                .map(|(ip, port)| SocketAddr::new(*ip, port.unwrap_or(self.config.port)))
                .collect();
            self.srv_found = true;
            return self.connect_to(addrs, self.config.direct_tls, now);
        }
        self.phase = Phase::ResolvingSrv { xmpps: None };
        self.query(
            DnsQuery::Srv(format!("_xmpps-server._tcp.{}", self.pair.remote)),
            now,
        );
    }

    fn query(&mut self, q: DnsQuery, now: Instant) {
        self.arm(now + self.config.common.state_timeout);
        self.wire.push(Action::Resolve(q));
    }

    fn arm(&mut self, at: Instant) {
        self.deadline = Some(at);
        self.wire.push(Action::SetTimer(at));
    }

    /// The runtime's answer to `Action::Resolve`.
    pub fn handle_resolved(&mut self, answer: DnsAnswer, now: Instant) {
        match std::mem::replace(&mut self.phase, Phase::Closed) {
            Phase::ResolvingSrv { xmpps: None } => {
                let records = match answer {
                    DnsAnswer::Srv(r) => r,
                    _ => Vec::new(),
                };
                self.phase = Phase::ResolvingSrv { xmpps: Some(records) };
                self.query(
                    DnsQuery::Srv(format!("_xmpp-server._tcp.{}", self.pair.remote)),
                    now,
                );
            }
            Phase::ResolvingSrv { xmpps: Some(xmpps) } => {
                let xmpp = match answer {
                    DnsAnswer::Srv(r) => r,
                    _ => Vec::new(),
                };
                self.srv_found = !xmpps.is_empty() || !xmpp.is_empty();
                self.targets = srv::order(&xmpps, &xmpp, &mut *self.rng).into();
                if !self.srv_found {
                    // RFC 6120 §3.2.2: no SRV record, so the domain at the default port.
                    self.targets.push_back(Target {
                        host: self.pair.remote.clone(),
                        port: self.config.port,
                        direct_tls: self.config.direct_tls,
                    });
                }
                self.next_target(now);
            }
            Phase::ResolvingHost { current } => {
                let mut addrs: Vec<IpAddr> = match answer {
                    DnsAnswer::Addresses(a) => a,
                    _ => Vec::new(),
                };
                // `ip_versions`: only the families asked for, in the order asked.
                let rank = |ip: &IpAddr| {
                    let v = if ip.is_ipv4() {
                        IpVersion::V4
                    } else {
                        IpVersion::V6
                    };
                    self.config.ip_versions.iter().position(|x| *x == v)
                };
                addrs.retain(|ip| rank(ip).is_some());
                addrs.sort_by_key(|ip| rank(ip));
                let addrs = addrs
                    .into_iter()
                    .map(|ip| SocketAddr::new(ip, current.port))
                    .collect();
                self.connect_to(addrs, current.direct_tls, now);
            }
            other => self.phase = other,
        }
        self.wire.flush();
    }

    fn next_target(&mut self, now: Instant) {
        match self.targets.pop_front() {
            Some(target) => {
                let host = target.host.clone();
                if let Ok(ip) = host.parse::<IpAddr>() {
                    let addr = SocketAddr::new(ip, target.port);
                    return self.connect_to(VecDeque::from([addr]), target.direct_tls, now);
                }
                self.phase = Phase::ResolvingHost { current: target };
                self.query(DnsQuery::Host(host), now);
            }
            None => {
                let failure = if self.timed_out {
                    OutFailure::Timeout
                } else {
                    OutFailure::NotFound
                };
                self.fail(failure, "no reachable address");
            }
        }
    }

    fn connect_to(&mut self, mut addrs: VecDeque<SocketAddr>, direct_tls: bool, now: Instant) {
        match addrs.pop_front() {
            Some(addr) => {
                self.phase = Phase::Connecting { addrs, direct_tls };
                self.arm(now + self.config.connection_timeout);
                self.wire.push(Action::Connect(addr));
            }
            None => self.next_target(now),
        }
    }

    /// The TCP connection asked for is up: open the stream.
    pub fn handle_connected(&mut self, now: Instant) {
        let Phase::Connecting { direct_tls, .. } = self.phase else {
            return;
        };
        if direct_tls {
            match self.client_tls(true) {
                Some(tls) => self.wire.start_tls(tls),
                None => return self.fail(OutFailure::NotFound, "direct TLS without a TLS configuration"),
            }
        }
        self.open_stream(now);
        self.wire.flush();
    }

    /// The TCP connect failed: the next address, target, or failure.
    pub fn handle_connect_failed(&mut self, now: Instant) {
        if let Phase::Connecting { addrs, direct_tls } = std::mem::replace(&mut self.phase, Phase::Closed) {
            self.connect_to(addrs, direct_tls, now);
        }
        self.wire.flush();
    }

    fn client_tls(&self, direct: bool) -> Option<TlsSession> {
        let tls = self.config.tls.as_ref()?;
        let config = if direct {
            tls.direct.clone()
        } else {
            tls.starttls.clone()
        };
        TlsSession::client(config, &self.pair.remote).ok()
    }

    fn open_stream(&mut self, now: Instant) {
        self.phase = Phase::Negotiating;
        self.features = None;
        self.arm(now + self.config.common.state_timeout);
        let (local, remote) = (self.pair.local.clone(), self.pair.remote.clone());
        self.wire.send_header(
            &[("from", &local), ("to", &remote), ("version", "1.0")],
            &[("db", ns::DIALBACK)],
        );
    }

    /// Bytes read from the socket.
    pub fn handle_bytes(&mut self, bytes: &[u8], now: Instant) {
        self.wire.receive(bytes, now);
        loop {
            let from = self.pair.local.clone();
            let Some(event) = self.wire.next_event(&from) else {
                break;
            };
            match event {
                WireEvent::Header(h) => self.on_header(&h),
                WireEvent::Element(el) => self.on_element(el, now),
                WireEvent::Close => self.wire.close_stream(),
            }
        }
        if self.wire.is_closed() {
            self.finish();
        } else if self.is_established() {
            self.arm(now + self.config.common.stream_timeout);
        }
        self.wire.flush();
    }

    fn on_header(&mut self, h: &StreamHeader) {
        if h.name != "stream" || h.name_ns != ns::STREAMS || h.default_ns.as_deref() != Some(ns::SERVER) {
            return self.stream_error(StreamError::InvalidNamespace, None);
        }
        self.stream_id = h.attr("id").map(str::to_string);
        if super::wire::major_version(h.attr("version")) != Some(1) {
            // A pre-1.0 peer sends no features: dialback straight away.
            self.features = Some(Element::new("features", ns::STREAMS));
            self.authenticate();
        }
    }

    fn on_element(&mut self, el: Element, now: Instant) {
        if el.is("features", ns::STREAMS) {
            self.features = Some(el);
            return self.after_features(now);
        }
        if el.is("error", ns::STREAMS) {
            let condition = el.first_child().map(|c| c.name().to_string()).unwrap_or_default();
            tracing::info!(session = self.wire.id, remote = %self.pair.remote, condition, "stream error from peer");
            self.wire.close_stream();
            return;
        }
        match (&self.phase, el.ns(), el.name()) {
            (Phase::StartingTls, ns::TLS, "proceed") => match self.client_tls(false) {
                Some(tls) => {
                    self.wire.start_tls(tls);
                    self.open_stream(now);
                }
                None => self.fail(OutFailure::NotFound, "cannot start TLS"),
            },
            (Phase::StartingTls, ns::TLS, _) => self.fail(OutFailure::NotFound, "STARTTLS refused"),
            (Phase::SaslExternal, ns::SASL, "success") => {
                tracing::info!(session = self.wire.id, remote = %self.pair.remote, "authenticated with SASL EXTERNAL");
                self.sasl_done = true;
                self.wire.restart();
                self.open_stream(now);
            }
            (Phase::SaslExternal, ns::SASL, _) => {
                // XEP-0178 §3: fall back to dialback if the peer offers it.
                self.authenticate();
            }
            (_, ns::DIALBACK, "result") => self.on_dialback_result(&el, now),
            (_, ns::DIALBACK, "verify") => self.on_dialback_verify(&el),
            _ => {
                tracing::debug!(
                    session = self.wire.id,
                    name = el.name(),
                    "unexpected element on outgoing S2S"
                );
            }
        }
    }

    /// Features arrived (after the header, TLS or SASL).
    fn after_features(&mut self, now: Instant) {
        let features = self
            .features
            .clone()
            .unwrap_or_else(|| Element::new("features", ns::STREAMS));
        if !self.wire.is_encrypted() {
            let offered = features.get_child("starttls", ns::TLS).is_some();
            if offered && self.config.tls.is_some() {
                self.phase = Phase::StartingTls;
                self.arm(now + self.config.common.state_timeout);
                return self.wire.send(&Element::new("starttls", ns::TLS));
            }
            if self.config.tls_required {
                return self.fail(OutFailure::NotFound, "the peer offers no STARTTLS");
            }
        }
        if self.is_established() {
            return;
        }
        self.send_verifies();
        if self.sasl_done {
            // XEP-0178 §3 step 12: the restarted stream is authenticated.
            return self.established(now);
        }
        self.authenticate();
    }

    /// SASL EXTERNAL if our certificate can do it and theirs was verified
    /// (XEP-0178), else dialback (XEP-0220 §2.1).
    fn authenticate(&mut self) {
        let features = self
            .features
            .clone()
            .unwrap_or_else(|| Element::new("features", ns::STREAMS));
        let external_offered = features
            .get_child("mechanisms", ns::SASL)
            .is_some_and(|m| m.children().any(|c| c.text().trim() == "EXTERNAL"));
        let our_side = self
            .config
            .tls
            .as_ref()
            .is_some_and(|t| t.verify == VerifyMode::Peer && t.has_certificate)
            && self.wire.is_encrypted();
        if external_offered && our_side && !self.sasl_tried {
            self.sasl_tried = true;
            self.phase = Phase::SaslExternal;
            let authzid = base64::engine::general_purpose::STANDARD.encode(&self.pair.local);
            return self.wire.send(
                &Element::new("auth", ns::SASL)
                    .with_attr("mechanism", "EXTERNAL")
                    .with_text(authzid),
            );
        }
        let Some(stream_id) = self.stream_id.clone() else {
            return self.fail(OutFailure::NotFound, "no stream id for dialback");
        };
        self.phase = Phase::Dialback;
        let key = self
            .config
            .common
            .dialback_key(&self.pair.remote, &self.pair.local, &stream_id);
        let result = Element::new("result", ns::DIALBACK)
            .with_attr("from", self.pair.local.as_str())
            .with_attr("to", self.pair.remote.as_str())
            .with_text(key);
        self.wire.send(&result);
    }

    /// XEP-0220 §2.1.2: the receiving server's verdict on our key.
    fn on_dialback_result(&mut self, el: &Element, now: Instant) {
        if !matches!(self.phase, Phase::Dialback) {
            return;
        }
        match el.attr("type") {
            Some("valid") => self.established(now),
            other => {
                let reason = format!("dialback {}", other.unwrap_or("without type"));
                self.fail(OutFailure::NotFound, &reason);
            }
        }
    }

    fn established(&mut self, now: Instant) {
        tracing::info!(session = self.wire.id, local = %self.pair.local, remote = %self.pair.remote, "outgoing S2S established");
        self.phase = Phase::Established;
        self.arm(now + self.config.common.stream_timeout);
        self.wire
            .push(Action::Federation(FederationInput::OutEstablished {
                conn: self.wire.id,
            }));
        for stanza in std::mem::take(&mut self.unsent) {
            self.wire.send(&stanza);
        }
    }

    /// XEP-0220 §2.3.2: the authoritative server's answer to a verification we sent.
    fn on_dialback_verify(&mut self, el: &Element) {
        let id = el.attr("id").unwrap_or_default();
        let Some(i) = self.verifies_sent.iter().position(|r| r.stream_id == id) else {
            return;
        };
        let request = self.verifies_sent.remove(i);
        let valid = el.attr("type") == Some("valid");
        self.wire
            .push(Action::Federation(FederationInput::DialbackVerified {
                request,
                valid,
            }));
    }

    /// A verification request from the router (XEP-0220 §2.3.1).
    pub fn handle_verify(&mut self, request: DialbackRequest, _now: Instant) {
        if matches!(self.phase, Phase::Closed) {
            let request = request.clone();
            return self
                .wire
                .push(Action::Federation(FederationInput::DialbackVerified {
                    request,
                    valid: false,
                }));
        }
        self.verifies.push(request);
        if self.stream_open() {
            self.send_verifies();
        }
        self.wire.flush();
    }

    /// True once the peer's header and features are in and TLS (if any) is up, so
    /// that `db:verify` can be sent.
    fn stream_open(&self) -> bool {
        matches!(
            self.phase,
            Phase::SaslExternal | Phase::Dialback | Phase::Established
        )
    }

    fn send_verifies(&mut self) {
        for request in std::mem::take(&mut self.verifies) {
            let verify = Element::new("verify", ns::DIALBACK)
                .with_attr("from", request.local.as_str())
                .with_attr("to", request.remote.as_str())
                .with_attr("id", request.stream_id.as_str())
                .with_text(request.key.as_str());
            self.wire.send(&verify);
            self.verifies_sent.push(request);
        }
    }

    /// A stanza from the router.
    pub fn handle_routed(&mut self, stanza: Element, now: Instant) {
        if self.is_established() && !self.wire.is_closed() {
            self.wire.send(&stanza);
            self.arm(now + self.config.common.stream_timeout);
            self.wire.flush();
        } else {
            self.unsent.push(stanza);
        }
    }

    /// The deadline set by `Action::SetTimer` passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.deadline.is_none_or(|d| now < d) || matches!(self.phase, Phase::Closed) {
            return;
        }
        self.deadline = None;
        match std::mem::replace(&mut self.phase, Phase::Closed) {
            Phase::Connecting { addrs, direct_tls } => {
                self.timed_out = true;
                self.connect_to(addrs, direct_tls, now);
            }
            Phase::ResolvingSrv { xmpps } => {
                // A silent resolver counts as no records.
                self.phase = Phase::ResolvingSrv { xmpps };
                self.handle_resolved(DnsAnswer::Failed, now);
            }
            Phase::ResolvingHost { current } => {
                self.phase = Phase::ResolvingHost { current };
                self.handle_resolved(DnsAnswer::Failed, now);
            }
            Phase::Established => {
                // RFC 6120 §4.4: an idle stream is closed; a new one opens on demand.
                self.phase = Phase::Established;
                self.wire.close_stream();
                self.finish();
            }
            other => {
                self.phase = other;
                self.timed_out = true;
                self.fail(OutFailure::Timeout, "negotiation step timed out");
            }
        }
        self.wire.flush();
    }

    /// The server is stopping.
    pub fn handle_shutdown(&mut self, _now: Instant) {
        if matches!(self.phase, Phase::Closed) {
            return;
        }
        if self.stream_id.is_some() || self.stream_open() {
            self.wire.close_stream();
        } else {
            self.wire.close();
        }
        self.finish();
        self.wire.flush();
    }

    /// The runtime ends the stream with `error` (a server limit was reached, e.g.
    /// the peer does not read; see [`super::ConnectionInput::StreamError`]). Stanzas
    /// not yet written go back to the router.
    pub fn handle_stream_error(&mut self, error: StreamError, text: &str, _now: Instant) {
        if matches!(self.phase, Phase::Closed) {
            return;
        }
        self.stream_error(error, Some(text));
        self.wire.flush();
    }

    /// The socket closed.
    pub fn handle_closed(&mut self, _now: Instant) {
        self.wire.lost();
        self.finish();
    }

    fn stream_error(&mut self, error: StreamError, text: Option<&str>) {
        let from = self.pair.local.clone();
        self.wire.stream_error(error, text, &from);
        self.finish();
    }

    /// Gives up: the router bounces what waits for this pair.
    fn fail(&mut self, failure: OutFailure, why: &str) {
        tracing::info!(session = self.wire.id, remote = %self.pair.remote, why, ?failure, "outgoing S2S failed");
        if self.stream_id.is_some() && !self.wire.is_closed() {
            self.wire.close_stream();
        } else {
            self.wire.close();
        }
        self.finish_with(Some(failure));
    }

    fn finish(&mut self) {
        let failure = match self.phase {
            Phase::Established => None,
            _ if self.timed_out => Some(OutFailure::Timeout),
            _ => Some(OutFailure::NotFound),
        };
        self.finish_with(failure);
    }

    /// Reports the end to the router, once: pending verifications fail, stanzas not
    /// written go back.
    fn finish_with(&mut self, failure: Option<OutFailure>) {
        if self.reported {
            return;
        }
        self.reported = true;
        let failure = if matches!(self.phase, Phase::Established) {
            None
        } else {
            failure
        };
        self.phase = Phase::Closed;
        self.wire.lost();
        for request in self.verifies.drain(..).chain(self.verifies_sent.drain(..)) {
            self.wire
                .push(Action::Federation(FederationInput::DialbackVerified {
                    request,
                    valid: false,
                }));
        }
        let unsent = std::mem::take(&mut self.unsent);
        self.wire.push(Action::Federation(FederationInput::OutClosed {
            conn: self.wire.id,
            failure,
            unsent,
        }));
    }

    /// The next action.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.wire.poll_action()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn out(config: S2sOutConfig) -> (S2sOut, Instant) {
        let t0 = Instant::now();
        let pair = DomainPair {
            local: "localhost".into(),
            remote: "remote.example".into(),
        };
        let out = S2sOut::new(1, pair, Arc::new(config), Box::new(rand_core::OsRng), t0);
        (out, t0)
    }

    fn config() -> S2sOutConfig {
        S2sOutConfig::new(Arc::new(S2sConfig::new(vec!["localhost".into()], "secret")))
    }

    /// The runtime requests, in order: DNS queries and connects.
    fn requests(out: &mut S2sOut) -> Vec<String> {
        std::iter::from_fn(|| out.poll_action())
            .filter_map(|a| match a {
                Action::Resolve(DnsQuery::Srv(n)) => Some(format!("SRV {n}")),
                Action::Resolve(DnsQuery::Host(n)) => Some(format!("A {n}")),
                Action::Connect(addr) => Some(format!("connect {addr}")),
                Action::Federation(FederationInput::OutClosed { failure, .. }) => {
                    Some(format!("closed {failure:?}"))
                }
                _ => None,
            })
            .collect()
    }

    fn srv(priority: u16, port: u16, target: &str) -> SrvRecord {
        SrvRecord {
            priority,
            weight: 0,
            port,
            target: target.into(),
        }
    }

    /// RFC 6120 §3.2.1 and XEP-0368: both SRV services asked, direct TLS first among
    /// equals, each target resolved and its addresses tried in turn; when all fail,
    /// the router hears remote-server-not-found.
    #[test]
    fn srv_targets_are_tried_in_order_then_the_stream_fails() {
        let (mut o, t) = out(config());
        assert_eq!(requests(&mut o), ["SRV _xmpps-server._tcp.remote.example"]);
        o.handle_resolved(DnsAnswer::Srv(vec![srv(5, 5223, "tls.remote.example")]), t);
        assert_eq!(requests(&mut o), ["SRV _xmpp-server._tcp.remote.example"]);
        o.handle_resolved(
            DnsAnswer::Srv(vec![
                srv(5, 5269, "a.remote.example"),
                srv(1, 5270, "b.remote.example"),
            ]),
            t,
        );
        assert_eq!(requests(&mut o), ["A b.remote.example"]);
        let ips = |last: u8| DnsAnswer::Addresses(vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))]);
        o.handle_resolved(ips(1), t);
        assert_eq!(requests(&mut o), ["connect 192.0.2.1:5270"]);
        o.handle_connect_failed(t);
        assert_eq!(requests(&mut o), ["A tls.remote.example"]);
        o.handle_resolved(ips(2), t);
        assert_eq!(requests(&mut o), ["connect 192.0.2.2:5223"]);
        o.handle_connect_failed(t);
        assert_eq!(requests(&mut o), ["A a.remote.example"]);
        o.handle_resolved(DnsAnswer::Addresses(vec![]), t);
        assert_eq!(requests(&mut o), ["closed Some(NotFound)"]);
    }

    /// RFC 6120 §3.2.2: without SRV records, the domain itself at the configured port;
    /// `ip_versions` keeps only the families asked for, in that order.
    #[test]
    fn no_srv_falls_back_to_the_domain_and_ip_versions_filter() {
        let mut c = config();
        c.port = 5299;
        c.ip_versions = vec![IpVersion::V6];
        let (mut o, t) = out(c);
        requests(&mut o);
        o.handle_resolved(DnsAnswer::Srv(vec![]), t);
        requests(&mut o);
        o.handle_resolved(DnsAnswer::Failed, t);
        assert_eq!(requests(&mut o), ["A remote.example"]);
        o.handle_resolved(
            DnsAnswer::Addresses(vec!["192.0.2.1".parse().unwrap(), "2001:db8::1".parse().unwrap()]),
            t,
        );
        assert_eq!(requests(&mut o), ["connect [2001:db8::1]:5299"]);
    }

    /// A connect that never answers is abandoned at `connection_timeout`, and a
    /// stream that got nowhere reports remote-server-timeout.
    #[test]
    fn silent_connects_time_out() {
        let mut c = config();
        c.addresses.insert(
            "remote.example".into(),
            vec![
                (IpAddr::V4(Ipv4Addr::LOCALHOST), Some(5270)),
                (IpAddr::V4(Ipv4Addr::LOCALHOST), None),
            ],
        );
        let (mut o, t) = out(c);
        assert_eq!(
            requests(&mut o),
            ["connect 127.0.0.1:5270"],
            "static addresses skip DNS"
        );
        o.handle_timeout(t + Duration::from_secs(9));
        assert!(requests(&mut o).is_empty(), "not yet");
        o.handle_timeout(t + Duration::from_secs(10));
        assert_eq!(requests(&mut o), ["connect 127.0.0.1:5269"]);
        o.handle_timeout(t + Duration::from_secs(20));
        assert_eq!(requests(&mut o), ["closed Some(Timeout)"]);
    }

    /// A single "." SRV record means no service: no connect at all.
    #[test]
    fn a_refusing_srv_record_fails_without_connecting() {
        let (mut o, t) = out(config());
        requests(&mut o);
        o.handle_resolved(DnsAnswer::Srv(vec![]), t);
        requests(&mut o);
        o.handle_resolved(DnsAnswer::Srv(vec![srv(0, 0, ".")]), t);
        assert_eq!(requests(&mut o), ["closed Some(NotFound)"]);
    }
}
