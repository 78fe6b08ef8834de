//! What the server crate hands to a runtime.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use meerkat_engine::federation::FederationConfig;
use meerkat_engine::hub::HubConfig;
use meerkat_engine::storage::Storage;
use meerkat_engine::stream::c2s::C2sConfig;
use meerkat_engine::stream::component::ComponentConfig;
use meerkat_engine::stream::s2s_in::S2sInConfig;
use meerkat_engine::stream::s2s_out::S2sOutConfig;

/// One C2S listener to open.
#[derive(Debug, Clone)]
pub struct C2sListener {
    /// Address to bind.
    pub addr: SocketAddr,
    /// Settings shared by its connections.
    pub config: Arc<C2sConfig>,
}

/// One `[[listen.s2s]]` listener to open.
#[derive(Debug, Clone)]
pub struct S2sListener {
    /// Address to bind.
    pub addr: SocketAddr,
    /// Settings shared by its connections.
    pub config: Arc<S2sInConfig>,
}

/// One `[[listen.component]]` listener to open.
#[derive(Debug, Clone)]
pub struct ComponentListener {
    /// Address to bind.
    pub addr: SocketAddr,
    /// Settings shared by its connections.
    pub config: Arc<ComponentConfig>,
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
}

/// Everything a runtime needs to serve, built by the server crate from the config.
pub struct ServerSpec {
    /// C2S listeners.
    pub c2s: Vec<C2sListener>,
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
