//! One task per connection: socket reads into the session, its socket and timer
//! effects carried out here (hub and storage effects go through the shared links).

use std::cell::RefCell;
use std::net::SocketAddr;
use std::sync::Arc;

use meerkat_engine::http::HttpConfig;
use meerkat_engine::stream::c2s::C2sConfig;
use meerkat_runtime_common::storage::StorageExecutor;
use meerkat_runtime_common::{
    next_session_id, BoshSessions, BoshStart, Io, Links, Liveness, Metrics, Session, Shards, ToSession,
};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::Instrument as _;

use crate::hub_task::{ShardTx, Tx};

/// What every connection of a listener shares.
#[derive(Clone)]
pub(crate) struct Shared {
    pub config: Arc<C2sConfig>,
    pub shards: Shards<ShardTx>,
    pub storage: StorageExecutor,
    pub metrics: Arc<Metrics>,
    pub stop: watch::Receiver<bool>,
    pub live: Liveness,
    /// For an HTTP listener: its settings (`config` is then its C2S settings).
    pub http: Option<Arc<HttpConfig>>,
    /// The live BOSH sessions.
    pub bosh: BoshSessions,
}

/// A new connection's id and span: its id, type and peer, and its JID once bound,
/// on every line logged about it.
pub(crate) fn span(shared: &Shared, peer: SocketAddr) -> (u64, tracing::Span) {
    let id = next_session_id();
    let empty = tracing::field::Empty;
    let span = match shared.http {
        Some(_) => tracing::info_span!("http", id, %peer, transport = empty, jid = empty),
        None => tracing::info_span!("c2s", id, %peer, jid = empty),
    };
    (id, span)
}

/// Size of the per-thread read buffer. Reads go through one buffer per worker thread
/// so that an idle connection holds no read buffer of its own.
const READ_BUF: usize = 16 * 1024;

thread_local! {
    static READ_BUFFER: RefCell<Vec<u8>> = RefCell::new(vec![0; READ_BUF]);
}

fn now() -> std::time::Instant {
    Instant::now().into_std()
}

pub(crate) async fn run(mut socket: TcpStream, id: u64, shared: Shared) {
    let _live = shared.live.enter();
    tracing::debug!("connected");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let links = Links {
        shards: shared.shards.clone(),
        storage: shared.storage.clone(),
        mailbox: Tx(tx),
    };
    let mut stop = shared.stop.clone();
    let mut stopping = false;
    let mut session = match &shared.http {
        Some(http) => Session::http(
            id,
            http.clone(),
            links.shards.len(),
            shared.metrics.clone(),
            shared.bosh.clone(),
            now(),
        ),
        None => Session::new(
            id,
            shared.config.clone(),
            links.shards.len(),
            shared.metrics.clone(),
            now(),
        ),
    };
    if *stop.borrow_and_update() {
        stopping = true;
        session.on_message(ToSession::Shutdown, now());
    }
    let mut timer: Option<Instant> = None;
    let mut paused_until: Option<Instant> = None;

    'session: loop {
        while let Some(io) = session.next_io(&links) {
            match io {
                Io::Write(bytes) => {
                    if socket.write_all(&bytes).await.is_err() {
                        session.on_closed(now());
                    }
                }
                Io::Timer(at) => timer = Some(at.into()),
                Io::PauseReading(until) => paused_until = Some(until.into()),
                Io::Close => {
                    let _ = socket.shutdown().await;
                    break 'session;
                }
                Io::StartBosh(start) => start_bosh(*start, &shared),
            }
        }

        tokio::select! {
            ready = socket.readable(), if paused_until.is_none() => {
                if ready.is_err() {
                    session.on_closed(now());
                    continue;
                }
                READ_BUFFER.with(|buf| {
                    let mut buf = buf.borrow_mut();
                    match socket.try_read(&mut buf[..]) {
                        Ok(0) => session.on_closed(now()),
                        Ok(n) => session.on_bytes(&buf[..n], now()),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(_) => session.on_closed(now()),
                    }
                });
            }
            _ = sleep_until(paused_until), if paused_until.is_some() => paused_until = None,
            _ = sleep_until(timer), if timer.is_some() => {
                timer = None;
                session.on_timeout(now());
            }
            _ = stop.changed(), if !stopping => {
                stopping = true;
                session.on_message(ToSession::Shutdown, now());
            }
            Some(msg) = rx.recv() => session.on_message(msg, now()),
        }
    }
    session.finish(&links, now());
    tracing::debug!("disconnected");
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Starts a BOSH session in a task of its own, reachable by its `sid`.
fn start_bosh(start: BoshStart, shared: &Shared) {
    let id = next_session_id();
    let span = tracing::info_span!(parent: None, "bosh", id, sid = %start.sid, jid = tracing::field::Empty);
    let (tx, rx) = mpsc::unbounded_channel();
    shared.bosh.register(&start.sid, Tx(tx.clone()));
    let links = Links {
        shards: shared.shards.clone(),
        storage: shared.storage.clone(),
        mailbox: Tx(tx),
    };
    let session = span.in_scope(|| {
        Session::bosh(
            id,
            start,
            links.shards.len(),
            shared.metrics.clone(),
            shared.bosh.clone(),
            now(),
        )
    });
    tokio::spawn(run_bosh(session, links, rx, shared.clone()).instrument(span));
}

/// A BOSH session's task: its mailbox (requests, hub, storage) and its timer.
async fn run_bosh(
    mut session: Session,
    links: Links<ShardTx, Tx<ToSession>, StorageExecutor>,
    mut rx: mpsc::UnboundedReceiver<ToSession>,
    shared: Shared,
) {
    let _live = shared.live.enter();
    tracing::debug!("BOSH session started");
    let mut stop = shared.stop.clone();
    let mut stopping = *stop.borrow_and_update();
    if stopping {
        session.on_message(ToSession::Shutdown, now());
    }
    let mut timer: Option<Instant> = None;
    'session: loop {
        while let Some(io) = session.next_io(&links) {
            match io {
                Io::Timer(at) => timer = Some(at.into()),
                Io::Close => break 'session,
                Io::Write(_) | Io::PauseReading(_) | Io::StartBosh(_) => {}
            }
        }
        tokio::select! {
            _ = sleep_until(timer), if timer.is_some() => {
                timer = None;
                session.on_timeout(now());
            }
            _ = stop.changed(), if !stopping => {
                stopping = true;
                session.on_message(ToSession::Shutdown, now());
            }
            msg = rx.recv() => match msg {
                Some(msg) => session.on_message(msg, now()),
                None => break 'session,
            },
        }
    }
    session.finish(&links, now());
    tracing::debug!("BOSH session ended");
}
