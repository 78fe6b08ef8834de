//! One executor: its listeners, its hub shard, its end of the mesh, and its part of
//! the shutdown.

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::future;
use glommio::channels::channel_mesh::{Full, MeshBuilder};
use glommio::channels::local_channel;
use glommio::net::TcpListener;
use glommio::{LocalExecutorPoolBuilder, PoolPlacement};
use meerkat_engine::hub::HubConfig;
use meerkat_engine::storage::Storage;
use meerkat_runtime_common::{
    BoshSessions, C2sListener, FedMsg, FederationRouter, FederationSpec, HttpListener, HubMsg, HubShard,
    Liveness, Metrics, RunError, Shards, Sink, ToSession, SHUTDOWN_GRACE,
};

use crate::connection::{self, ConnCtx};
use crate::router::{self, Addr, FedAddr, Mesh, ShardAddr, FEDERATION_EXECUTOR};
use crate::storage::BlockingStorage;
use meerkat_runtime_common::Listener;

/// Messages in flight between two executors before a sender waits.
const MESH_CAPACITY: usize = 4096;

/// How often the stop condition is checked.
const STOP_POLL: Duration = Duration::from_millis(50);

/// Memory glommio reserves per executor for registered I/O buffers. Meerkat does no
/// file I/O through glommio, so the 10 MiB default would be wasted.
const IO_MEMORY: usize = 1 << 20;

/// What every executor gets.
#[derive(Clone)]
pub(crate) struct Shared {
    pub c2s: Vec<C2sListener>,
    pub http: Vec<HttpListener>,
    pub bosh: BoshSessions,
    pub federation: Option<FederationSpec>,
    pub hub: HubConfig,
    pub storage: Arc<dyn Storage>,
    pub metrics: Arc<Metrics>,
    pub live: Liveness,
}

pub(crate) fn run_all(
    threads: usize,
    shared: Shared,
    stop: impl Fn() -> bool + Clone + Send + 'static,
) -> Result<(), RunError> {
    let mesh = MeshBuilder::<Mesh, Full>::full(threads, MESH_CAPACITY);
    let handles = LocalExecutorPoolBuilder::new(PoolPlacement::Unbound(threads))
        .name("meerkat-glommio")
        .io_memory(IO_MEMORY)
        .blocking_thread_pool_placement(PoolPlacement::Unbound(1))
        .on_all_shards(move || async move { executor_main(threads, shared, mesh, stop).await })
        .map_err(|e| RunError::Runtime(format!("glommio executors: {e}")))?;
    for result in handles.join_all() {
        match result {
            Ok(r) => r?,
            Err(e) => return Err(RunError::Runtime(format!("glommio executor: {e}"))),
        }
    }
    Ok(())
}

async fn executor_main(
    threads: usize,
    shared: Shared,
    mesh: MeshBuilder<Mesh, Full>,
    stop: impl Fn() -> bool,
) -> Result<(), RunError> {
    let (senders, mut receivers) = mesh
        .join()
        .await
        .map_err(|_| RunError::Runtime("glommio channel mesh".into()))?;
    let index = senders.peer_id();
    let (hub_tx, hub_rx) = local_channel::new_unbounded::<HubMsg<Addr>>();
    let (mesh_tx, mesh_rx) = local_channel::new_unbounded::<(usize, Mesh)>();
    router::install(index, hub_tx, mesh_tx);

    for (_, rx) in receivers.streams() {
        glommio::spawn_local(async move {
            while let Some(msg) = rx.recv().await {
                router::from_mesh(msg);
            }
        })
        .detach();
    }
    glommio::spawn_local(async move {
        while let Some((peer, msg)) = mesh_rx.recv().await {
            let _ = senders.send_to(peer, msg).await;
        }
    })
    .detach();

    let storage = BlockingStorage::new(shared.storage.clone());
    let shards: Shards<ShardAddr> = (0..threads).map(ShardAddr).collect();
    let federated = shared.federation.is_some();
    let hub = {
        let (shards, storage) = (shards.clone(), storage.clone());
        let mut config = shared.hub.clone();
        config.federation = federated;
        let mut shard = HubShard::<Addr>::new(&config, index, threads);
        glommio::spawn_local(async move {
            let federation = federated.then_some(FedAddr);
            loop {
                // The shard's next deadline (a detached session's resumption timeout).
                let wait = shard
                    .next_deadline()
                    .map(|d| d.duration_since(std::time::SystemTime::now()).unwrap_or_default());
                let next = future::or(async { Some(hub_rx.recv().await) }, async {
                    match wait {
                        Some(w) => {
                            glommio::timer::sleep(w).await;
                            None
                        }
                        None => future::pending().await,
                    }
                })
                .await;
                match next {
                    Some(Some(msg)) => {
                        if !shard.on_message(msg, &shards, &storage, federation.as_ref()) {
                            break;
                        }
                    }
                    Some(None) => break,
                    None => shard.on_timeout(&shards, &storage, federation.as_ref()),
                }
            }
        })
    };
    let ctx = Rc::new(ConnCtx {
        shards: shards.clone(),
        storage: storage.clone(),
        metrics: shared.metrics.clone(),
        live: shared.live.clone(),
        federation: federated,
        bosh: shared.bosh.clone(),
    });
    // The federation router and its outgoing connections live on one executor.
    let mut router_task = None;
    if let (Some(spec), FEDERATION_EXECUTOR) = (&shared.federation, index) {
        let (fed_tx, fed_rx) = local_channel::new_unbounded::<FedMsg<Addr>>();
        router::install_federation(fed_tx);
        let mut federation = FederationRouter::<Addr>::new(spec.router.clone());
        let (outgoing, shards, ctx) = (spec.outgoing.clone(), shards.clone(), ctx.clone());
        let max_send_queue = spec.outgoing_max_send_queue;
        router_task = Some(glommio::spawn_local(async move {
            while let Some(msg) = fed_rx.recv().await {
                let open = |id, pair| {
                    connection::spawn_outgoing(id, pair, outgoing.clone(), max_send_queue, ctx.clone())
                };
                if !federation.on_message(msg, &shards, open) {
                    break;
                }
            }
        }));
    }

    let mut acceptors = Vec::new();
    let mut stop_listeners = Vec::new();
    for l in meerkat_runtime_common::listeners(&shared.c2s, &shared.http, shared.federation.as_ref()) {
        let addr = l.addr;
        let listener =
            reuseport_listener(addr, l.admission.limits().backlog).map_err(|e| RunError::Bind(addr, e))?;
        if index == 0 {
            tracing::info!(%addr, executors = threads, "{} listener up", l.kind.name());
        }
        let (stop_tx, stop_rx) = local_channel::new_bounded::<()>(1);
        stop_listeners.push(stop_tx);
        acceptors.push(glommio::spawn_local(accept_loop(
            listener,
            l,
            ctx.clone(),
            stop_rx,
        )));
    }

    while !stop() {
        glommio::timer::sleep(STOP_POLL).await;
    }
    if index == 0 {
        tracing::info!("shutting down");
    }
    drop(stop_listeners);
    for a in acceptors {
        a.await;
    }
    router::broadcast(|| ToSession::Shutdown);
    // Wait (bounded) until every executor's sessions have said goodbye, then until
    // this shard's storage requests are answered and written.
    let deadline = Instant::now() + SHUTDOWN_GRACE;
    while shared.live.open() > 0 && Instant::now() < deadline {
        glommio::timer::sleep(Duration::from_millis(10)).await;
    }
    // Unbinds from other executors may still be crossing the mesh.
    glommio::timer::sleep(Duration::from_millis(100)).await;
    while storage.in_flight() > 0 && Instant::now() < deadline {
        glommio::timer::sleep(Duration::from_millis(10)).await;
    }
    ShardAddr(index).send(HubMsg::Stop);
    hub.await;
    if let Some(task) = router_task {
        FedAddr.send(FedMsg::Stop);
        task.await;
    }
    Ok(())
}

/// A listening socket on `addr` shared with the other executors (SO_REUSEPORT; the
/// listener's [`meerkat_runtime_common::Admission`] counts for all of them), that
/// also binds while connections of a previous run linger in TIME_WAIT (SO_REUSEADDR,
/// which glommio's own `TcpListener::bind` does not set: a restart after a busy run
/// would fail with "address in use").
fn reuseport_listener(addr: std::net::SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    use std::os::fd::{FromRawFd, IntoRawFd};
    let socket = meerkat_runtime_common::listen_socket(addr, backlog, true)?;
    // SAFETY: the descriptor is a bound, listening TCP socket we own and hand over.
    Ok(unsafe { TcpListener::from_raw_fd(socket.into_raw_fd()) })
}

async fn accept_loop(
    listener: TcpListener,
    l: Listener,
    ctx: Rc<ConnCtx>,
    stop: local_channel::LocalReceiver<()>,
) {
    enum Next {
        Stop,
        Accepted(glommio::Result<glommio::net::TcpStream, ()>),
    }
    loop {
        let next = future::or(
            async {
                stop.recv().await;
                Next::Stop
            },
            async { Next::Accepted(listener.accept().await) },
        )
        .await;
        match next {
            Next::Stop => break,
            Next::Accepted(Ok(stream)) => {
                let peer = match stream.peer_addr() {
                    Ok(peer) => peer,
                    // Gone already.
                    Err(_) => continue,
                };
                match l.admission.admit(peer.ip()) {
                    Ok(admitted) => {
                        let _ = stream.set_nodelay(true);
                        let limit = l.admission.limits().max_send_queue;
                        let run = connection::run(stream, peer, l.kind.clone(), ctx.clone(), admitted, limit);
                        glommio::spawn_local(run).detach();
                    }
                    Err(refused) => {
                        glommio::spawn_local(connection::refuse(stream, &l.kind, refused)).detach();
                    }
                }
            }
            Next::Accepted(Err(e)) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                glommio::timer::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
