//! Meerkat on tokio: accept loops, one driver per connection, timers and the storage
//! executor. No XMPP logic lives here: bytes go into the engine, actions come out.

use std::net::SocketAddr;
use std::sync::Arc;

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

/// Everything the runtime needs to serve, built by the server crate from the config.
pub struct ServerSpec {
    /// C2S listeners.
    pub c2s: Vec<C2sListener>,
    /// Hub settings.
    pub hub: HubConfig,
    /// The storage backend, used from the storage executor only.
    pub storage: Arc<dyn Storage>,
}

/// Why the runtime could not run.
#[derive(Debug)]
pub enum RunError {
    /// A listener could not be bound.
    Bind(SocketAddr, std::io::Error),
    /// The tokio runtime could not start.
    Runtime(std::io::Error),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Bind(a, e) => write!(f, "cannot listen on {a}: {e}"),
            RunError::Runtime(e) => write!(f, "cannot start the tokio runtime: {e}"),
        }
    }
}

impl std::error::Error for RunError {}

/// Serves `spec` until SIGINT or SIGTERM, then shuts down gracefully.
pub fn run(spec: ServerSpec) -> Result<(), RunError> {
    let _ = spec;
    todo!("runtime")
}
