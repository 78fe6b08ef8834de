//! What Meerkat's runtime adapters (tokio, smol, glommio) share, so that each adapter
//! is left with sockets, timers, tasks and channels only.
//!
//! - [`ServerSpec`]: everything a runtime needs to serve, built by the server crate;
//! - [`Session`]: one connection's engine state machine, with the bookkeeping every
//!   adapter would otherwise repeat (which hub shard the session belongs to, metrics),
//!   turned into runtime-neutral [`Effect`]s;
//! - [`HubShard`]: one shard of the engine's hub with the mailboxes of its sessions;
//! - [`storage::StorageExecutor`]: the storage thread;
//! - [`Metrics`]: counters and histograms fed by instrumentation events, rendered
//!   for Prometheus;
//! - [`BoshSessions`]: the live BOSH sessions by `sid`;
//! - [`Liveness`]: counts open connections, for graceful shutdown;
//! - [`mailbox`]: a session's mailbox, light while empty;
//! - [`ShutdownFlag`]: SIGTERM/SIGINT for runtimes without signal support.
//!
//! Nothing here knows a runtime: no sockets, no timers, no tasks. The only thread is
//! the storage executor's, because storage backends block.

mod admission;
pub mod bosh;
mod federation;
mod hub_shard;
mod listen;
mod liveness;
mod mailbox;
pub mod metrics;
mod outbox;
mod resolver;
mod session;
mod signals;
mod spec;
pub mod storage;

pub use admission::{
    Admission, Admitted, Answering, ConnectionLimits, Refusal, Refused, DEFAULT_BACKLOG, MAX_ANSWERING,
    REFUSAL_LINGER,
};
pub use bosh::{BoshSessions, BoshStart};
pub use federation::{FedMsg, FederationRouter};
pub use hub_shard::{HubMsg, HubOut, HubShard, Shards, Sink};
pub use listen::{listen_socket, refusal_bytes, Listener};
pub use liveness::{Liveness, LivenessGuard};
pub use mailbox::{mailbox, MailboxReceiver, MailboxSender, Recv};
pub use metrics::{Metrics, Transport};
pub use outbox::{Outbox, CLOSE_FLUSH, DEFAULT_MAX_SEND_QUEUE};
pub use resolver::{configure_dns, resolve_blocking, DnsOptions, Resolver, Spawner};
pub use session::{next_session_id, Effect, FederationReply, Io, Links, NoFederation, Session, ToSession};
pub use signals::ShutdownFlag;
pub use spec::{
    listeners, C2sListener, ComponentListener, FederationSpec, HttpListener, ListenerKind, RunError,
    S2sListener, ServerSpec, SHUTDOWN_GRACE,
};
