//! The client-to-server stream (RFC 6120): stream open and restarts, features,
//! STARTTLS and direct TLS, SASL, resource binding, then stanzas to and from the hub.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand_core::RngCore;

use super::Action;
use crate::hub::{RequestId, SessionId};
use crate::sasl::Mechanism;
use crate::storage::StorageReply;
use crate::tls::TlsIdentity;
use crate::xml::Element;

/// MongooseIM's `tls.mode` for a C2S listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// STARTTLS offered, optional.
    StartTls,
    /// STARTTLS offered and required before authentication.
    StartTlsRequired,
    /// Direct TLS (XEP-0368): TLS from the first byte.
    Tls,
    /// No TLS at all (no `tls` section); PLAIN is then never offered.
    None,
}

/// Settings of a C2S listener, shared by its connections.
#[derive(Debug, Clone)]
pub struct C2sConfig {
    /// Served domains.
    pub hosts: Vec<String>,
    /// TLS mode.
    pub tls_mode: TlsMode,
    /// Certificate and key; required unless `tls_mode` is `None`.
    pub tls: Option<Arc<TlsIdentity>>,
    /// Largest accepted top-level element (`max_stanza_size`).
    pub max_stanza_size: usize,
    /// Shaper rate in bytes per second (`shaper = "NAME"` resolved), if any.
    pub shaper_max_rate: Option<u64>,
    /// SASL mechanisms to offer, in order (`[auth] sasl_mechanisms`), before the
    /// channel-binding and TLS filters are applied.
    pub mechanisms: Vec<Mechanism>,
    /// XEP-0077 in-band registration allowed (`[modules.mod_register]`).
    pub registration: bool,
    /// Time a connection may take to authenticate and bind before it is closed.
    pub auth_timeout: Duration,
    /// Whitespace keepalive interval once bound (RFC 6120 §4.6.1).
    pub keepalive_interval: Duration,
}

/// A C2S connection.
pub struct C2s {
    _id: SessionId,
}

impl C2s {
    /// A new connection accepted at `now`. `rng` provides stream ids, resources and
    /// SASL nonces.
    pub fn new(id: SessionId, config: Arc<C2sConfig>, rng: Box<dyn RngCore + Send>, now: Instant) -> Self {
        let _ = (config, rng, now);
        Self { _id: id }
    }

    /// Bytes read from the socket.
    pub fn handle_bytes(&mut self, bytes: &[u8], now: Instant) {
        let _ = (bytes, now);
    }

    /// The deadline set by `Action::SetTimer` has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        let _ = now;
    }

    /// A stanza the hub delivers to this session.
    pub fn handle_routed(&mut self, stanza: Element, now: Instant) {
        let _ = (stanza, now);
    }

    /// The hub replaced this session by a new one with the same full JID.
    pub fn handle_replaced(&mut self, now: Instant) {
        let _ = now;
    }

    /// The server is shutting down (`system-shutdown`).
    pub fn handle_shutdown(&mut self, now: Instant) {
        let _ = now;
    }

    /// The peer closed the socket or it failed.
    pub fn handle_closed(&mut self, now: Instant) {
        let _ = now;
    }

    /// The answer to an `Action::Request`.
    pub fn handle_reply(&mut self, id: RequestId, reply: StorageReply, now: Instant) {
        let _ = (id, reply, now);
    }

    /// The next action, `None` when there is nothing more to do now.
    pub fn poll_action(&mut self) -> Option<Action> {
        None
    }
}
