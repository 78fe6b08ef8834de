//! Meerkat on tokio: accept loops, one task per connection, one task per hub shard,
//! timers. No XMPP logic lives here: bytes go into the engine, effects come out
//! (see `meerkat-runtime-common` for what all runtimes share).
//!
//! Tasks: one per listener (accept), one per connection (socket, timer, mailbox,
//! shutdown signal), one per hub shard (`threads` of them, spread over tokio's
//! workers), and the storage executor's OS thread.

mod connection;
mod hub_task;

use std::sync::Arc;
use std::time::Duration;

use hub_task::{ShardTx, Tx};
use meerkat_runtime_common::storage::StorageExecutor;
use meerkat_runtime_common::{BoshSessions, HubMsg, Liveness, Metrics, Shards, Sink, SHUTDOWN_GRACE};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tracing::Instrument as _;

pub use meerkat_runtime_common::{C2sListener, HttpListener, RunError, ServerSpec};

/// Serves `spec` until SIGINT or SIGTERM, then shuts down gracefully: listeners close,
/// sessions get `system-shutdown`, pending storage writes finish.
pub fn run(spec: ServerSpec) -> Result<(), RunError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(spec.threads.max(1))
        .enable_all()
        .build()
        .map_err(|e| RunError::Runtime(format!("tokio: {e}")))?;
    rt.block_on(serve(spec, shutdown_signal()))
}

/// Serves `spec` on the current tokio runtime until `shutdown` completes. Exposed so
/// that tests and embedders can run a server inside their own runtime.
pub async fn serve(
    spec: ServerSpec,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), RunError> {
    let metrics = Arc::new(Metrics::new(&spec.hub.hosts));
    let (storage, storage_thread) = StorageExecutor::start(metrics.measured(spec.storage.clone()));
    let bosh = BoshSessions::default();
    let shards = spec.threads.max(1);
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..shards).map(|_| mpsc::unbounded_channel()).unzip();
    let senders: Shards<ShardTx> = senders.into_iter().map(Tx).collect();
    let mut hubs = Vec::new();
    for (i, rx) in receivers.into_iter().enumerate() {
        let run = hub_task::run(spec.hub.clone(), i, senders.clone(), storage.clone(), rx);
        hubs.push(tokio::spawn(run));
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let live = Liveness::default();

    let mut acceptors = Vec::new();
    for l in &spec.c2s {
        let listener = TcpListener::bind(l.addr)
            .await
            .map_err(|e| RunError::Bind(l.addr, e))?;
        tracing::info!(addr = %l.addr, tls = ?l.config.tls_mode, "c2s listener up");
        let ctx = connection::Shared {
            config: l.config.clone(),
            shards: senders.clone(),
            storage: storage.clone(),
            metrics: metrics.clone(),
            stop: stop_rx.clone(),
            live: live.clone(),
            http: None,
            bosh: bosh.clone(),
        };
        acceptors.push(tokio::spawn(accept_loop(listener, ctx)));
    }
    for l in &spec.http {
        let listener = TcpListener::bind(l.addr)
            .await
            .map_err(|e| RunError::Bind(l.addr, e))?;
        tracing::info!(addr = %l.addr, tls = l.config.tls.is_some(), "http listener up");
        let ctx = connection::Shared {
            config: l.config.c2s.clone(),
            shards: senders.clone(),
            storage: storage.clone(),
            metrics: metrics.clone(),
            stop: stop_rx.clone(),
            live: live.clone(),
            http: Some(l.config.clone()),
            bosh: bosh.clone(),
        };
        acceptors.push(tokio::spawn(accept_loop(listener, ctx)));
    }

    shutdown.await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    for a in acceptors {
        let _ = a.await;
    }
    // Sessions were told; wait (bounded) until they have all said goodbye.
    let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
    while live.open() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for s in senders.iter() {
        s.send(HubMsg::Stop);
    }
    for h in hubs {
        let _ = h.await;
    }
    drop(storage);
    // Pending storage writes finish before we return.
    let _ = tokio::task::spawn_blocking(move || storage_thread.join()).await;
    metrics.log_summary();
    Ok(())
}

async fn accept_loop(listener: TcpListener, ctx: connection::Shared) {
    let mut stop = ctx.stop.clone();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    let _ = socket.set_nodelay(true);
                    let (id, span) = connection::span(&ctx, peer);
                    tokio::spawn(connection::run(socket, id, ctx.clone()).instrument(span));
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
