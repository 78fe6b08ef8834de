//! What the server crate hands to a runtime.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use meerkat_engine::federation::FederationConfig;
use meerkat_engine::http::HttpConfig;
use meerkat_engine::hub::HubConfig;
use meerkat_engine::storage::Storage;
use meerkat_engine::stream::c2s::{C2sConfig, TlsMode};
use meerkat_engine::stream::component::ComponentConfig;
use meerkat_engine::stream::s2s_in::S2sInConfig;
use meerkat_engine::stream::s2s_out::S2sOutConfig;

use crate::admission::Admission;
use crate::listen::Listener;

/// One C2S listener to open.
#[derive(Debug, Clone)]
pub struct C2sListener {
    /// Address to bind.
    pub addr: SocketAddr,
    /// Settings shared by its connections.
    pub config: Arc<C2sConfig>,
    /// Its connection limits and count.
    pub admission: Arc<Admission>,
}

/// One `[[listen.s2s]]` listener to open.
#[derive(Debug, Clone)]
pub struct S2sListener {
    /// Address to bind.
    pub addr: SocketAddr,
    /// Settings shared by its connections.
    pub config: Arc<S2sInConfig>,
    /// Its connection limits and count.
    pub admission: Arc<Admission>,
}

/// One `[[listen.component]]` listener to open.
#[derive(Debug, Clone)]
pub struct ComponentListener {
    /// Address to bind.
    pub addr: SocketAddr,
    /// Settings shared by its connections.
    pub config: Arc<ComponentConfig>,
    /// Its connection limits and count.
    pub admission: Arc<Admission>,
}

/// Components and S2S: the router's settings, the listeners, outgoing S2S.
#[derive(Debug, Clone)]
pub struct FederationSpec {
    /// The federation router's settings.
    pub router: FederationConfig,
    /// `[[listen.s2s]]`.
    pub s2s: Vec<S2sListener>,
    /// `[[listen.component]]`.
    pub components: Vec<ComponentListener>,
    /// `[s2s.outgoing]`.
    pub outgoing: Arc<S2sOutConfig>,
    /// `[s2s.outgoing] max_send_queue_size`: bytes an outgoing stream may have
    /// waiting for the peer to read (see [`crate::Outbox`]); `None`: no limit.
    pub outgoing_max_send_queue: Option<usize>,
}

/// One `[[listen.http]]` listener to open.
#[derive(Debug, Clone)]
pub struct HttpListener {
    /// Address to bind.
    pub addr: SocketAddr,
    /// Its handlers, TLS and the settings of the C2S streams it carries.
    pub config: Arc<HttpConfig>,
    /// Its connection limits and count.
    pub admission: Arc<Admission>,
}

/// Everything a runtime needs to serve, built by the server crate from the config.
pub struct ServerSpec {
    /// C2S listeners.
    pub c2s: Vec<C2sListener>,
    /// HTTP listeners (metrics, health, WebSocket, BOSH).
    pub http: Vec<HttpListener>,
    /// Components and S2S, when any is configured (the hub then hands stanzas for
    /// other domains to the federation router).
    pub federation: Option<FederationSpec>,
    /// Hub settings; `shard` and `shards` are set by the runtime.
    pub hub: HubConfig,
    /// The storage backend, used from the storage executor only.
    pub storage: Arc<dyn Storage>,
    /// Worker threads (tokio, smol) or executors (glommio); also the number of hub
    /// shards. At least 1.
    pub threads: usize,
}

/// How long sessions get to say goodbye on shutdown.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Why a runtime could not run.
#[derive(Debug)]
pub enum RunError {
    /// A listener could not be bound.
    Bind(SocketAddr, std::io::Error),
    /// The runtime could not start (threads, io_uring, signal handlers).
    Runtime(String),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Bind(a, e) => write!(f, "cannot listen on {a}: {e}"),
            RunError::Runtime(e) => write!(f, "cannot start the runtime: {e}"),
        }
    }
}

impl std::error::Error for RunError {}

/// Which state machine a listener's connections run.
#[derive(Debug, Clone)]
pub enum ListenerKind {
    /// `[[listen.c2s]]`.
    C2s(Arc<C2sConfig>),
    /// `[[listen.s2s]]`.
    S2sIn(Arc<S2sInConfig>),
    /// `[[listen.component]]`.
    Component(Arc<ComponentConfig>),
    /// `[[listen.http]]`: metrics, health, WebSocket and BOSH.
    Http(Arc<HttpConfig>),
}

impl ListenerKind {
    /// The name used in logs and spans.
    pub fn name(&self) -> &'static str {
        match self {
            ListenerKind::C2s(_) => "c2s",
            ListenerKind::S2sIn(_) => "s2s_in",
            ListenerKind::Component(_) => "component",
            ListenerKind::Http(_) => "http",
        }
    }

    /// The listener's `tls.mode` (`None` without TLS).
    pub fn tls_mode(&self) -> TlsMode {
        match self {
            ListenerKind::C2s(c) => c.tls_mode,
            ListenerKind::S2sIn(c) => c.tls_mode,
            ListenerKind::Component(c) => c.tls_mode,
            // HTTPS starts with the TLS handshake, like direct TLS.
            ListenerKind::Http(c) if c.tls.is_some() => TlsMode::Tls,
            ListenerKind::Http(_) => TlsMode::None,
        }
    }

    /// The session of a connection `id` accepted at `now` on this listener;
    /// `bosh` finds the server's live BOSH sessions (HTTP listeners).
    pub fn session(
        &self,
        id: meerkat_engine::hub::SessionId,
        shards: usize,
        metrics: Arc<crate::Metrics>,
        bosh: &crate::BoshSessions,
        now: std::time::Instant,
    ) -> crate::Session {
        match self {
            ListenerKind::Http(c) => crate::Session::http(id, c.clone(), shards, metrics, bosh.clone(), now),
            ListenerKind::C2s(c) => crate::Session::new(id, c.clone(), shards, metrics, now),
            ListenerKind::S2sIn(c) => crate::Session::s2s_in(id, c.clone(), shards, metrics, now),
            ListenerKind::Component(c) => crate::Session::component(id, c.clone(), shards, metrics, now),
        }
    }
    /// The session and logging span of a connection accepted from `peer`: a fresh
    /// id, the listener's kind, the peer, and (recorded later) the transport and
    /// the JID on every line logged about it.
    pub fn accepted(
        &self,
        peer: SocketAddr,
        shards: usize,
        metrics: Arc<crate::Metrics>,
        bosh: &crate::BoshSessions,
        now: std::time::Instant,
    ) -> (crate::Session, tracing::Span) {
        let id = crate::next_session_id();
        let empty = tracing::field::Empty;
        let span = tracing::info_span!("conn", kind = self.name(), id, %peer, transport = empty, jid = empty);
        let session = span.in_scope(|| {
            let mut session = self.session(id, shards, metrics, bosh, now);
            session.set_peer(peer.ip());
            session
        });
        (session, span)
    }
}

impl ServerSpec {
    /// Every listener to open: C2S, HTTP, then S2S and components.
    pub fn listeners(&self) -> Vec<Listener> {
        listeners(&self.c2s, &self.http, self.federation.as_ref())
    }
}

/// Every listener to open: `c2s`, `http`, then the S2S and component listeners of
/// `federation`.
pub fn listeners(
    c2s: &[C2sListener],
    http: &[HttpListener],
    federation: Option<&FederationSpec>,
) -> Vec<Listener> {
    let mut out: Vec<Listener> = c2s
        .iter()
        .map(|l| Listener {
            addr: l.addr,
            kind: ListenerKind::C2s(l.config.clone()),
            admission: l.admission.clone(),
        })
        .collect();
    out.extend(http.iter().map(|l| Listener {
        addr: l.addr,
        kind: ListenerKind::Http(l.config.clone()),
        admission: l.admission.clone(),
    }));
    if let Some(f) = federation {
        out.extend(f.s2s.iter().map(|l| Listener {
            addr: l.addr,
            kind: ListenerKind::S2sIn(l.config.clone()),
            admission: l.admission.clone(),
        }));
        out.extend(f.components.iter().map(|l| Listener {
            addr: l.addr,
            kind: ListenerKind::Component(l.config.clone()),
            admission: l.admission.clone(),
        }));
    }
    out
}
