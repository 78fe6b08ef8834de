//! Meerkat on tokio: accept loops, one driver per connection, timers and the storage
//! executor. No XMPP logic lives here: bytes go into the engine, actions come out.
//!
//! Tasks: one per listener (accept), one per connection (socket + timer + inbox),
//! one for the hub (it owns the engine's `Hub`), and one OS thread for storage, which
//! executes requests in the order they were sent.

mod connection;
mod hub_task;
mod metrics;
mod storage_thread;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use meerkat_engine::hub::HubConfig;
use meerkat_engine::storage::Storage;
use meerkat_engine::stream::c2s::C2sConfig;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

pub use metrics::Metrics;

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

/// How long sessions get to say goodbye on shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Serves `spec` until SIGINT or SIGTERM, then shuts down gracefully: listeners close,
/// sessions get `system-shutdown`, pending storage writes finish.
pub fn run(spec: ServerSpec) -> Result<(), RunError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(RunError::Runtime)?;
    rt.block_on(serve(spec, shutdown_signal()))
}

/// Serves `spec` on the current tokio runtime until `shutdown` completes. Exposed so
/// that tests and embedders can run a server inside their own runtime.
pub async fn serve(
    spec: ServerSpec,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), RunError> {
    let metrics = Arc::new(Metrics::default());
    let (storage_tx, storage_thread) = storage_thread::start(spec.storage.clone());
    let (hub_tx, hub_rx) = mpsc::unbounded_channel();
    let hub = tokio::spawn(hub_task::run(spec.hub.clone(), hub_rx, storage_tx.clone()));
    let (stop_tx, stop_rx) = watch::channel(false);

    let mut acceptors = Vec::new();
    for l in &spec.c2s {
        let listener = TcpListener::bind(l.addr)
            .await
            .map_err(|e| RunError::Bind(l.addr, e))?;
        tracing::info!(addr = %l.addr, tls = ?l.config.tls_mode, "c2s listener up");
        let ctx = connection::Shared {
            config: l.config.clone(),
            hub: hub_tx.clone(),
            storage: storage_tx.clone(),
            metrics: metrics.clone(),
        };
        acceptors.push(tokio::spawn(accept_loop(listener, ctx, stop_rx.clone())));
    }

    shutdown.await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    for a in acceptors {
        let _ = a.await;
    }
    // Tell every session, then wait (bounded) for the hub to see them all gone.
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let _ = hub_tx.send(hub_task::HubMsg::Shutdown { done: done_tx });
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, done_rx).await;
    drop(hub_tx);
    let _ = hub.await;
    drop(storage_tx);
    // Pending storage writes finish before we return.
    let _ = tokio::task::spawn_blocking(move || storage_thread.join()).await;
    metrics.log_summary();
    Ok(())
}

async fn accept_loop(listener: TcpListener, ctx: connection::Shared, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    let _ = socket.set_nodelay(true);
                    tokio::spawn(connection::run(socket, peer, ctx.clone()));
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
