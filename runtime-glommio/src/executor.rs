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
    BoshSessions, C2sListener, HttpListener, HubMsg, HubShard, Liveness, Metrics, RunError, Shards, Sink,
    ToSession, SHUTDOWN_GRACE,
};

use crate::connection::{self, ConnCtx};
use crate::router::{self, Addr, Mesh, ShardAddr};
use crate::storage::BlockingStorage;
use tracing::Instrument as _;

/// Messages in flight between two executors before a sender waits.
const MESH_CAPACITY: usize = 4096;

/// Pending connections per listener socket (as tokio's and glommio's default).
const LISTEN_BACKLOG: i32 = 1024;

/// How often the stop condition is checked.
const STOP_POLL: Duration = Duration::from_millis(50);

/// Memory glommio reserves per executor for registered I/O buffers. Meerkat does no
/// file I/O through glommio, so the 10 MiB default would be wasted.
const IO_MEMORY: usize = 1 << 20;

/// What every executor gets.
#[derive(Clone)]
pub(crate) struct Shared {
    pub c2s: Vec<C2sListener>,
    pub hub: HubConfig,
    pub storage: Arc<dyn Storage>,
    pub metrics: Arc<Metrics>,
    pub live: Liveness,
    pub http: Vec<HttpListener>,
    pub bosh: BoshSessions,
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
    let hub = {
        let (shards, storage) = (shards.clone(), storage.clone());
        let mut shard = HubShard::<Addr>::new(&shared.hub, index, threads);
        glommio::spawn_local(async move {
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
                        if !shard.on_message(msg, &shards, &storage) {
                            break;
                        }
                    }
                    Some(None) => break,
                    None => shard.on_timeout(&shards, &storage),
                }
            }
        })
    };

    let mut acceptors = Vec::new();
    let mut stop_listeners = Vec::new();
    for l in &shared.c2s {
        let listener = reuseport_listener(l.addr).map_err(|e| RunError::Bind(l.addr, e))?;
        if index == 0 {
            tracing::info!(addr = %l.addr, tls = ?l.config.tls_mode, executors = threads, "c2s listener up");
        }
        let ctx = Rc::new(ConnCtx {
            config: l.config.clone(),
            shards: shards.clone(),
            storage: storage.clone(),
            metrics: shared.metrics.clone(),
            live: shared.live.clone(),
            http: None,
            bosh: shared.bosh.clone(),
        });
        let (stop_tx, stop_rx) = local_channel::new_bounded::<()>(1);
        stop_listeners.push(stop_tx);
        acceptors.push(glommio::spawn_local(accept_loop(listener, ctx, stop_rx)));
    }
    for l in &shared.http {
        let listener = reuseport_listener(l.addr).map_err(|e| RunError::Bind(l.addr, e))?;
        if index == 0 {
            tracing::info!(addr = %l.addr, tls = l.config.tls.is_some(), executors = threads, "http listener up");
        }
        let ctx = Rc::new(ConnCtx {
            config: l.config.c2s.clone(),
            shards: shards.clone(),
            storage: storage.clone(),
            metrics: shared.metrics.clone(),
            live: shared.live.clone(),
            http: Some(l.config.clone()),
            bosh: shared.bosh.clone(),
        });
        let (stop_tx, stop_rx) = local_channel::new_bounded::<()>(1);
        stop_listeners.push(stop_tx);
        acceptors.push(glommio::spawn_local(accept_loop(listener, ctx, stop_rx)));
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
    Ok(())
}

/// A listening socket on `addr` shared with the other executors (SO_REUSEPORT), that
/// also binds while connections of a previous run linger in TIME_WAIT (SO_REUSEADDR,
/// which glommio's own `TcpListener::bind` does not set: a restart after a busy run
/// would fail with "address in use").
fn reuseport_listener(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    use std::os::fd::{FromRawFd, IntoRawFd};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    // SAFETY: the descriptor is a bound, listening TCP socket we own and hand over.
    Ok(unsafe { TcpListener::from_raw_fd(socket.into_raw_fd()) })
}

async fn accept_loop(listener: TcpListener, ctx: Rc<ConnCtx>, stop: local_channel::LocalReceiver<()>) {
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
                let _ = stream.set_nodelay(true);
                let (id, span) = connection::span(&ctx, stream.peer_addr().ok());
                glommio::spawn_local(connection::run(stream, id, ctx.clone()).instrument(span)).detach();
            }
            Next::Accepted(Err(e)) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                glommio::timer::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
