//! Meerkat on smol: async-io's reactor and timers, an async-executor run by
//! `threads` OS threads, async-channel for messages. No XMPP logic lives here: bytes go
//! into the engine, effects come out (see `meerkat-runtime-common` for what all
//! runtimes share).
//!
//! Tasks: one per listener (accept), one per connection (socket, timer, mailbox,
//! shutdown signal), one per hub shard, and the storage executor's OS thread.

mod connection;
mod hub_task;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use async_executor::Executor;
use async_io::{Async, Timer};
use futures_lite::future;
use hub_task::{FedTx, ShardTx, Tx};
use meerkat_runtime_common::storage::StorageExecutor;
use meerkat_runtime_common::{listen_socket, Listener};
use meerkat_runtime_common::{
    BoshSessions, FedMsg, FederationRouter, HubMsg, Liveness, Metrics, Resolver, Shards, ShutdownFlag, Sink,
    SHUTDOWN_GRACE,
};

pub use meerkat_runtime_common::{C2sListener, HttpListener, RunError, ServerSpec};

/// How often the shutdown flag set by the signal handler is looked at.
const SIGNAL_POLL: Duration = Duration::from_millis(50);

/// Serves `spec` until SIGINT or SIGTERM, then shuts down gracefully: listeners close,
/// sessions get `system-shutdown`, pending storage writes finish.
pub fn run(spec: ServerSpec) -> Result<(), RunError> {
    let flag = ShutdownFlag::install().map_err(|e| RunError::Runtime(format!("signal handlers: {e}")))?;
    let ex = Arc::new(Executor::new());
    // The calling thread runs the executor too: `threads - 1` more.
    let (done_tx, done_rx) = async_channel::bounded::<()>(1);
    let mut workers = Vec::new();
    for i in 1..spec.threads.max(1) {
        let ex = ex.clone();
        let done = done_rx.clone();
        let worker = std::thread::Builder::new()
            .name(format!("meerkat-smol-{i}"))
            .spawn(move || async_io::block_on(ex.run(done.recv())))
            .map_err(|e| RunError::Runtime(format!("smol worker thread: {e}")))?;
        workers.push(worker);
    }
    let stop = async move {
        while !flag.raised() {
            Timer::after(SIGNAL_POLL).await;
        }
    };
    let result = async_io::block_on(ex.run(serve(ex.clone(), spec, stop)));
    drop(done_tx);
    for w in workers {
        let _ = w.join();
    }
    result
}

/// Serves `spec` on `ex` (which some threads must be running) until `shutdown`
/// completes. Exposed so that tests and embedders can run a server in their own
/// executor.
pub async fn serve(
    ex: Arc<Executor<'static>>,
    spec: ServerSpec,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), RunError> {
    let metrics = Arc::new(Metrics::new(&spec.hub.hosts));
    let (storage, storage_thread) = StorageExecutor::start(metrics.measured(spec.storage.clone()));
    let shards = spec.threads.max(1);
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..shards).map(|_| async_channel::unbounded()).unzip();
    let senders: Shards<ShardTx> = senders.into_iter().map(Tx).collect();
    let (fed_tx, fed_rx) = async_channel::unbounded::<FedMsg<hub_task::Mailbox>>();
    let fed_tx: Option<FedTx> = spec.federation.as_ref().map(|_| Tx(fed_tx));
    let mut hub = spec.hub.clone();
    hub.federation = spec.federation.is_some();
    let mut hubs = Vec::new();
    for (i, rx) in receivers.into_iter().enumerate() {
        hubs.push(ex.spawn(hub_task::run(
            hub.clone(),
            i,
            senders.clone(),
            storage.clone(),
            fed_tx.clone(),
            rx,
        )));
    }
    // Closing this channel is the shutdown signal: every receiver sees it.
    let (stop_tx, stop_rx) = async_channel::bounded::<()>(1);
    let live = Liveness::default();
    let shared = connection::Shared {
        shards: senders.clone(),
        storage: storage.clone(),
        metrics: metrics.clone(),
        stop: stop_rx.clone(),
        live: live.clone(),
        federation: fed_tx.clone().map(|f| (f, Resolver::start())),
        bosh: BoshSessions::default(),
        ex: ex.clone(),
    };

    let mut router = None;
    if let Some(f) = &spec.federation {
        let task = federation_task(ex.clone(), f, fed_rx, senders.clone(), shared.clone());
        router = Some(ex.spawn(task));
    }
    let mut acceptors = Vec::new();
    for l in spec.listeners() {
        let addr = l.addr;
        let listener = listen_socket(addr, l.admission.limits().backlog, false)
            .and_then(Async::<TcpListener>::new)
            .map_err(|e| RunError::Bind(addr, e))?;
        tracing::info!(%addr, "{} listener up", l.kind.name());
        acceptors.push(ex.spawn(accept_loop(ex.clone(), listener, l, shared.clone())));
    }

    shutdown.await;
    tracing::info!("shutting down");
    drop(stop_tx);
    for a in acceptors {
        a.await;
    }
    // Sessions were told; wait (bounded) until they have all said goodbye.
    let deadline = std::time::Instant::now() + SHUTDOWN_GRACE;
    while live.open() > 0 && std::time::Instant::now() < deadline {
        Timer::after(Duration::from_millis(10)).await;
    }
    for s in senders.iter() {
        s.send(HubMsg::Stop);
    }
    for h in hubs {
        h.await;
    }
    if let (Some(router), Some((fed, _))) = (router, &shared.federation) {
        fed.send(FedMsg::Stop);
        router.await;
    }
    drop(shared);
    drop(storage);
    // Pending storage writes finish before we return.
    let _ = blocking_join(storage_thread).await;
    metrics.log_summary();
    Ok(())
}

/// Joins the storage thread without blocking the executor.
async fn blocking_join(thread: meerkat_runtime_common::storage::StorageThread) {
    let (tx, rx) = async_channel::bounded::<()>(1);
    std::thread::spawn(move || {
        thread.join();
        let _ = tx.send_blocking(());
    });
    let _ = rx.recv().await;
}

/// The federation router's task; it opens outgoing S2S connections as it needs them.
fn federation_task(
    ex: Arc<Executor<'static>>,
    spec: &meerkat_runtime_common::FederationSpec,
    rx: async_channel::Receiver<FedMsg<hub_task::Mailbox>>,
    shards: Shards<ShardTx>,
    shared: connection::Shared,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let mut router = FederationRouter::new(spec.router.clone());
    let (outgoing, max_send_queue) = (spec.outgoing.clone(), spec.outgoing_max_send_queue);
    async move {
        while let Ok(msg) = rx.recv().await {
            let open = |id, pair| {
                connection::spawn_outgoing(&ex, id, pair, outgoing.clone(), max_send_queue, shared.clone())
            };
            if !router.on_message(msg, &shards, open) {
                break;
            }
        }
    }
}

async fn accept_loop(
    ex: Arc<Executor<'static>>,
    listener: Async<TcpListener>,
    l: Listener,
    ctx: connection::Shared,
) {
    enum Next {
        Stop,
        Accepted(std::io::Result<(Async<std::net::TcpStream>, std::net::SocketAddr)>),
    }
    loop {
        let next = future::or(
            async {
                let _ = ctx.stop.recv().await;
                Next::Stop
            },
            async { Next::Accepted(listener.accept().await) },
        )
        .await;
        match next {
            Next::Stop => break,
            Next::Accepted(Ok((socket, peer))) => match l.admission.admit(peer.ip()) {
                Ok(admitted) => {
                    let _ = socket.get_ref().set_nodelay(true);
                    let limit = l.admission.limits().max_send_queue;
                    let kind = l.kind.clone();
                    ex.spawn(connection::run(socket, peer, kind, ctx.clone(), admitted, limit))
                        .detach();
                }
                Err(refused) => ex.spawn(connection::refuse(socket, &l.kind, refused)).detach(),
            },
            Next::Accepted(Err(e)) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                Timer::after(Duration::from_millis(50)).await;
            }
        }
    }
}
