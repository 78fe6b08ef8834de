//! One task per connection: socket reads into the session, its socket and timer
//! effects carried out here (hub and storage effects go through the shared links).

use std::cell::RefCell;
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Instant;

use async_channel::Receiver;
use async_io::{Async, Timer};
use futures_lite::{future, AsyncWriteExt};
use meerkat_engine::http::HttpConfig;
use meerkat_engine::stream::c2s::C2sConfig;
use meerkat_runtime_common::storage::StorageExecutor;
use meerkat_runtime_common::{
    next_session_id, BoshSessions, BoshStart, Io, Links, Liveness, Metrics, Session, Shards, ToSession,
};
use tracing::Instrument as _;

use crate::hub_task::{ShardTx, Tx};

/// What every connection of a listener shares.
#[derive(Clone)]
pub(crate) struct Shared {
    pub config: Arc<C2sConfig>,
    pub shards: Shards<ShardTx>,
    pub storage: StorageExecutor,
    pub metrics: Arc<Metrics>,
    /// Closed when the server stops.
    pub stop: Receiver<()>,
    pub live: Liveness,
    /// For an HTTP listener: its settings (`config` is then its C2S settings).
    pub http: Option<Arc<HttpConfig>>,
    /// The live BOSH sessions.
    pub bosh: BoshSessions,
    /// Where BOSH sessions' tasks run.
    pub ex: Arc<async_executor::Executor<'static>>,
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

/// Size of the per-thread read buffer. Reads go through one buffer per executor
/// thread so that an idle connection holds no read buffer of its own.
const READ_BUF: usize = 16 * 1024;

thread_local! {
    static READ_BUFFER: RefCell<Vec<u8>> = RefCell::new(vec![0; READ_BUF]);
}

/// What woke the connection up.
enum Wake {
    Readable(std::io::Result<()>),
    Resume,
    Timeout,
    Stop,
    Message(Option<ToSession>),
}

pub(crate) async fn run(socket: Async<TcpStream>, id: u64, shared: Shared) {
    let _live = shared.live.enter();
    tracing::debug!("connected");
    let (tx, rx) = async_channel::unbounded();
    let links = Links {
        shards: shared.shards.clone(),
        storage: shared.storage.clone(),
        mailbox: Tx(tx),
    };
    let mut session = match &shared.http {
        Some(http) => Session::http(
            id,
            http.clone(),
            links.shards.len(),
            shared.metrics.clone(),
            shared.bosh.clone(),
            Instant::now(),
        ),
        None => Session::new(
            id,
            shared.config.clone(),
            links.shards.len(),
            shared.metrics.clone(),
            Instant::now(),
        ),
    };
    let mut stopping = false;
    let mut timer = Timer::never();
    let mut pause: Option<Timer> = None;

    'session: loop {
        while let Some(io) = session.next_io(&links) {
            match io {
                Io::Write(bytes) => {
                    if (&socket).write_all(&bytes).await.is_err() {
                        session.on_closed(Instant::now());
                    }
                }
                Io::Timer(at) => timer.set_at(at),
                Io::PauseReading(until) => pause = Some(Timer::at(until)),
                Io::Close => {
                    let _ = socket.get_ref().shutdown(std::net::Shutdown::Both);
                    break 'session;
                }
                Io::StartBosh(start) => start_bosh(*start, &shared),
            }
        }

        let read = async {
            match pause.as_mut() {
                Some(t) => {
                    t.await;
                    Wake::Resume
                }
                None => Wake::Readable(socket.readable().await),
            }
        };
        let tick = async {
            (&mut timer).await;
            Wake::Timeout
        };
        let stop = async {
            if stopping {
                future::pending::<()>().await;
            }
            let _ = shared.stop.recv().await;
            Wake::Stop
        };
        let message = async { Wake::Message(rx.recv().await.ok()) };
        let wake = future::or(read, future::or(tick, future::or(stop, message))).await;
        let now = Instant::now();
        match wake {
            Wake::Readable(Err(_)) => session.on_closed(now),
            Wake::Readable(Ok(())) => READ_BUFFER.with(|buf| {
                let mut buf = buf.borrow_mut();
                match socket.get_ref().read(&mut buf[..]) {
                    Ok(0) => session.on_closed(now),
                    Ok(n) => session.on_bytes(&buf[..n], now),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => session.on_closed(now),
                }
            }),
            Wake::Resume => pause = None,
            Wake::Timeout => {
                timer = Timer::never();
                session.on_timeout(now);
            }
            Wake::Stop => {
                stopping = true;
                session.on_message(ToSession::Shutdown, now);
            }
            Wake::Message(Some(msg)) => session.on_message(msg, now),
            Wake::Message(None) => session.on_closed(now),
        }
    }
    session.finish(&links, Instant::now());
    tracing::debug!("disconnected");
}

/// Starts a BOSH session in a task of its own, reachable by its `sid`.
fn start_bosh(start: BoshStart, shared: &Shared) {
    let id = next_session_id();
    let span = tracing::info_span!(parent: None, "bosh", id, sid = %start.sid, jid = tracing::field::Empty);
    let (tx, rx) = async_channel::unbounded();
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
            Instant::now(),
        )
    });
    shared
        .ex
        .spawn(run_bosh(session, links, rx, shared.clone()).instrument(span))
        .detach();
}

/// A BOSH session's task: its mailbox (requests, hub, storage) and its timer.
async fn run_bosh(
    mut session: Session,
    links: Links<ShardTx, Tx<ToSession>, StorageExecutor>,
    rx: Receiver<ToSession>,
    shared: Shared,
) {
    let _live = shared.live.enter();
    tracing::debug!("BOSH session started");
    let mut stopping = false;
    let mut timer = Timer::never();
    'session: loop {
        while let Some(io) = session.next_io(&links) {
            match io {
                Io::Timer(at) => timer.set_at(at),
                Io::Close => break 'session,
                Io::Write(_) | Io::PauseReading(_) | Io::StartBosh(_) => {}
            }
        }
        let tick = async {
            (&mut timer).await;
            Wake::Timeout
        };
        let stop = async {
            if stopping {
                future::pending::<()>().await;
            }
            let _ = shared.stop.recv().await;
            Wake::Stop
        };
        let message = async { Wake::Message(rx.recv().await.ok()) };
        let wake = future::or(tick, future::or(stop, message)).await;
        let now = Instant::now();
        match wake {
            Wake::Timeout => {
                timer = Timer::never();
                session.on_timeout(now);
            }
            Wake::Stop => {
                stopping = true;
                session.on_message(ToSession::Shutdown, now);
            }
            Wake::Message(Some(msg)) => session.on_message(msg, now),
            Wake::Message(None) | Wake::Readable(_) | Wake::Resume => break 'session,
        }
    }
    session.finish(&links, Instant::now());
    tracing::debug!("BOSH session ended");
}
