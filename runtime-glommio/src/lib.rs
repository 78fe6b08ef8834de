//! Meerkat on glommio: io_uring, thread per core. Each executor has its own listener
//! socket per configured address (SO_REUSEPORT: the kernel spreads connections over
//! executors), its own hub shard and its own storage thread; executors talk through
//! a glommio channel mesh. No XMPP logic lives here (see `meerkat-runtime-common`).
//!
//! A session lives on the executor that accepted it; its user's state lives on the
//! shard [`shard_of`](meerkat_engine::hub::shard_of) names, often another executor.
//! [`router`] carries messages between them: local channels within an executor,
//! the mesh across executors.
//!
//! Linux only; [`preflight`] checks on start that io_uring is usable and the
//! locked-memory limit is enough, and says what to change if not.
#![cfg(target_os = "linux")]

mod connection;
mod executor;
pub mod preflight;
mod router;
mod storage;

use meerkat_runtime_common::{BoshSessions, Liveness, Metrics, ShutdownFlag};

pub use meerkat_runtime_common::{C2sListener, HttpListener, RunError, ServerSpec};

/// Serves `spec` on `spec.threads` executors until SIGINT or SIGTERM, then shuts down
/// gracefully: listeners close, sessions get `system-shutdown`, pending storage writes
/// finish.
pub fn run(spec: ServerSpec) -> Result<(), RunError> {
    let flag = ShutdownFlag::install().map_err(|e| RunError::Runtime(format!("signal handlers: {e}")))?;
    let stop = move || flag.raised();
    serve(spec, stop)
}

/// Serves `spec` until `stop()` returns true (checked every 50 ms on each executor).
/// Exposed so that tests and embedders can stop the server without a signal.
pub fn serve(spec: ServerSpec, stop: impl Fn() -> bool + Clone + Send + 'static) -> Result<(), RunError> {
    let threads = spec.threads.max(1);
    preflight::check(threads).map_err(|e| RunError::Runtime(e.to_string()))?;
    // Bind once here so that a taken port is an error before any executor starts;
    // each executor then binds its own SO_REUSEPORT socket to the same address.
    let federation_addrs = spec.federation.iter().flat_map(|f| {
        f.s2s
            .iter()
            .map(|l| l.addr)
            .chain(f.components.iter().map(|l| l.addr))
    });
    let http_addrs = spec.http.iter().map(|l| l.addr);
    for addr in spec
        .c2s
        .iter()
        .map(|l| l.addr)
        .chain(http_addrs)
        .chain(federation_addrs)
    {
        glommio_free_bind_check(addr).map_err(|e| RunError::Bind(addr, e))?;
    }
    let metrics = std::sync::Arc::new(Metrics::new(&spec.hub.hosts));
    let live = Liveness::default();
    let shared = executor::Shared {
        c2s: spec.c2s.clone(),
        http: spec.http.clone(),
        bosh: BoshSessions::default(),
        federation: spec.federation.clone(),
        hub: spec.hub.clone(),
        storage: metrics.measured(spec.storage.clone()),
        metrics: metrics.clone(),
        live,
    };
    let result = executor::run_all(threads, shared, stop);
    metrics.log_summary();
    result
}

/// A listener address in use by another process is reported before the executors
/// start: a plain bind without SO_REUSEPORT fails if anyone holds the port.
fn glommio_free_bind_check(addr: std::net::SocketAddr) -> std::io::Result<()> {
    std::net::TcpListener::bind(addr).map(drop)
}
