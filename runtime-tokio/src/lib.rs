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

use hub_task::{FedTx, ShardTx, Tx};
use meerkat_runtime_common::storage::StorageExecutor;
use meerkat_runtime_common::{listen_socket, Listener};
use meerkat_runtime_common::{
    BoshSessions, FedMsg, FederationRouter, HubMsg, Liveness, Metrics, Resolver, Shards, Sink, SHUTDOWN_GRACE,
};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

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
    let shards = spec.threads.max(1);
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..shards).map(|_| mpsc::unbounded_channel()).unzip();
    let senders: Shards<ShardTx> = senders.into_iter().map(Tx).collect();
    let (fed_tx, fed_rx) = mpsc::unbounded_channel::<FedMsg<hub_task::Mailbox>>();
    let fed_tx: Option<FedTx> = spec.federation.as_ref().map(|_| Tx(fed_tx));
    let mut hub = spec.hub.clone();
    hub.federation = spec.federation.is_some();
    let mut hubs = Vec::new();
    for (i, rx) in receivers.into_iter().enumerate() {
        let run = hub_task::run(
            hub.clone(),
            i,
            senders.clone(),
            storage.clone(),
            fed_tx.clone(),
            rx,
        );
        hubs.push(tokio::spawn(run));
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let live = Liveness::default();
    let shared = connection::Shared {
        shards: senders.clone(),
        storage: storage.clone(),
        metrics: metrics.clone(),
        stop: stop_rx.clone(),
        live: live.clone(),
        federation: fed_tx.clone().map(|f| (f, Resolver::start())),
        bosh: BoshSessions::default(),
    };

    let mut router = None;
    if let Some(f) = &spec.federation {
        let router_task = federation_task(f, fed_rx, senders.clone(), shared.clone());
        router = Some(tokio::spawn(router_task));
    }
    let mut acceptors = Vec::new();
    for l in spec.listeners() {
        let addr = l.addr;
        let listener = listen_socket(addr, l.admission.limits().backlog, false)
            .and_then(TcpListener::from_std)
            .map_err(|e| RunError::Bind(addr, e))?;
        tracing::info!(%addr, "{} listener up", l.kind.name());
        acceptors.push(tokio::spawn(accept_loop(listener, l, shared.clone())));
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
    if let (Some(router), Some((fed, _))) = (router, &shared.federation) {
        fed.send(FedMsg::Stop);
        let _ = router.await;
    }
    drop(shared);
    drop(storage);
    // Pending storage writes finish before we return.
    let _ = tokio::task::spawn_blocking(move || storage_thread.join()).await;
    metrics.log_summary();
    Ok(())
}

/// The federation router's task; it opens outgoing S2S connections as it needs them.
fn federation_task(
    spec: &meerkat_runtime_common::FederationSpec,
    mut rx: mpsc::UnboundedReceiver<FedMsg<hub_task::Mailbox>>,
    shards: Shards<ShardTx>,
    shared: connection::Shared,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let mut router = FederationRouter::new(spec.router.clone());
    let (outgoing, max_send_queue) = (spec.outgoing.clone(), spec.outgoing_max_send_queue);
    async move {
        while let Some(msg) = rx.recv().await {
            let open = |id, pair| {
                connection::spawn_outgoing(id, pair, outgoing.clone(), max_send_queue, shared.clone())
            };
            if !router.on_message(msg, &shards, open) {
                break;
            }
        }
    }
}

async fn accept_loop(listener: TcpListener, l: Listener, ctx: connection::Shared) {
    let mut stop = ctx.stop.clone();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => match l.admission.admit(peer.ip()) {
                    Ok(admitted) => {
                        let _ = socket.set_nodelay(true);
                        let limit = l.admission.limits().max_send_queue;
                        tokio::spawn(connection::run(socket, peer, l.kind.clone(), ctx.clone(), admitted, limit));
                    }
                    Err(refused) => {
                        tokio::spawn(connection::refuse(socket, &l.kind, refused));
                    }
                },
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
