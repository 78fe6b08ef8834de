//! What the server crate hands to a runtime.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use meerkat_engine::http::HttpConfig;
use meerkat_engine::hub::HubConfig;
use meerkat_engine::storage::Storage;
use meerkat_engine::stream::c2s::C2sConfig;

/// One C2S listener to open.
#[derive(Debug, Clone)]
pub struct C2sListener {
    /// Address to bind.
    pub addr: SocketAddr,
    /// Settings shared by its connections.
    pub config: Arc<C2sConfig>,
}

/// One `[[listen.http]]` listener to open.
#[derive(Debug, Clone)]
pub struct HttpListener {
    /// Address to bind.
    pub addr: SocketAddr,
    /// Its handlers, TLS and the settings of the C2S streams it carries.
    pub config: Arc<HttpConfig>,
}

/// Everything a runtime needs to serve, built by the server crate from the config.
pub struct ServerSpec {
    /// C2S listeners.
    pub c2s: Vec<C2sListener>,
    /// HTTP listeners (metrics, health, WebSocket, BOSH).
    pub http: Vec<HttpListener>,
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
