//! One task per connection: socket reads into the session, its socket and timer
//! effects carried out here (hub, storage and federation effects go through the
//! shared links). Outgoing S2S connections start without a socket and connect when
//! their session asks.

use std::cell::RefCell;
use std::future::Future;
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use async_channel::Receiver;
use async_executor::Executor;
use async_io::{Async, Timer};
use futures_lite::{future, AsyncWriteExt};
use meerkat_engine::federation::DomainPair;
use meerkat_engine::stream::s2s_out::S2sOutConfig;
use meerkat_runtime_common::storage::StorageExecutor;
use tracing::Instrument;

use meerkat_runtime_common::{
    mailbox, next_session_id, Io, Links, ListenerKind, Liveness, MailboxReceiver, Metrics, Resolver, Session,
    Shards, ToSession,
};

use crate::hub_task::{FedTx, Mailbox, ShardTx};

/// What every connection shares.
#[derive(Clone)]
pub(crate) struct Shared {
    pub shards: Shards<ShardTx>,
    pub storage: StorageExecutor,
    pub metrics: Arc<Metrics>,
    /// Closed when the server stops.
    pub stop: Receiver<()>,
    pub live: Liveness,
    pub federation: Option<(FedTx, Resolver)>,
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
    Connected(std::io::Result<Async<TcpStream>>),
    Resume,
    Timeout,
    Stop,
    Message(ToSession),
}

/// An accepted connection. The session is built here and the task's future holds
/// it once: an `async fn` would keep a second copy of every argument it moves into
/// its body (and this future is most of an idle connection's memory).
pub(crate) fn run(
    socket: Async<TcpStream>,
    peer: SocketAddr,
    kind: ListenerKind,
    shared: Shared,
) -> impl Future<Output = ()> + Send + 'static {
    let id = next_session_id();
    let session = kind.session(id, shared.shards.len(), shared.metrics.clone(), Instant::now());
    let span = tracing::info_span!("conn", kind = kind.name(), id, %peer);
    let (mailbox, rx) = mailbox();
    drive(Some(socket), session, mailbox, rx, shared).instrument(span)
}

/// Starts an outgoing S2S connection for `pair` on `ex`; returns its mailbox, which
/// the federation router keeps.
pub(crate) fn spawn_outgoing(
    ex: &Executor<'static>,
    id: u64,
    pair: DomainPair,
    config: Arc<S2sOutConfig>,
    shared: Shared,
) -> Mailbox {
    let (mailbox, rx) = mailbox();
    let span = tracing::info_span!("conn", kind = "s2s_out", id, remote = %pair.remote);
    let session = Session::s2s_out(
        id,
        pair,
        config,
        shared.shards.len(),
        shared.metrics.clone(),
        Instant::now(),
    );
    ex.spawn(drive(None, session, mailbox.clone(), rx, shared).instrument(span))
        .detach();
    mailbox
}

type Connecting = Pin<Box<dyn Future<Output = std::io::Result<Async<TcpStream>>> + Send>>;

/// The connection's task. A plain `async` block rather than an `async fn`, so that
/// the arguments are not stored twice.
fn drive(
    mut socket: Option<Async<TcpStream>>,
    mut session: Session,
    mailbox: Mailbox,
    mut rx: MailboxReceiver<ToSession>,
    shared: Shared,
) -> impl Future<Output = ()> + Send + 'static {
    let Shared {
        shards,
        storage,
        stop,
        live,
        federation,
        ..
    } = shared;
    let links = Links {
        shards,
        storage,
        mailbox,
        federation,
    };
    let live = live.enter();
    async move {
        let _live = live;
        tracing::debug!("started");
        let mut stopping = false;
        let mut timer = Timer::never();
        let mut pause: Option<Timer> = None;
        let mut connecting: Option<Connecting> = None;

        'session: loop {
            while let Some(io) = session.next_io(&links) {
                match io {
                    Io::Write(bytes) => {
                        let ok = match &socket {
                            Some(s) => {
                                let mut s = s;
                                s.write_all(&bytes).await.is_ok()
                            }
                            None => false,
                        };
                        if !ok {
                            session.on_closed(Instant::now());
                        }
                    }
                    Io::Timer(at) => timer.set_at(at),
                    Io::PauseReading(until) => pause = Some(Timer::at(until)),
                    Io::Connect(addr) => {
                        socket = None;
                        connecting = Some(Box::pin(Async::<TcpStream>::connect(addr)));
                    }
                    Io::Close => {
                        if let Some(s) = &socket {
                            let _ = s.get_ref().shutdown(std::net::Shutdown::Both);
                        }
                        break 'session;
                    }
                }
            }

            let read = async {
                if let Some(c) = connecting.as_mut() {
                    return Wake::Connected(c.await);
                }
                match (pause.as_mut(), &socket) {
                    (Some(t), _) => {
                        t.await;
                        Wake::Resume
                    }
                    (None, Some(s)) => Wake::Readable(s.readable().await),
                    (None, None) => future::pending().await,
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
                let _ = stop.recv().await;
                Wake::Stop
            };
            let message = async { Wake::Message(rx.recv().await) };
            let wake = future::or(read, future::or(tick, future::or(stop, message))).await;
            let now = Instant::now();
            match wake {
                Wake::Readable(Err(_)) => session.on_closed(now),
                Wake::Readable(Ok(())) => READ_BUFFER.with(|buf| {
                    let Some(s) = &socket else { return };
                    let mut buf = buf.borrow_mut();
                    match s.get_ref().read(&mut buf[..]) {
                        Ok(0) => session.on_closed(now),
                        Ok(n) => session.on_bytes(&buf[..n], now),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(_) => session.on_closed(now),
                    }
                }),
                Wake::Connected(result) => {
                    connecting = None;
                    let connected = match result {
                        Ok(s) => {
                            let _ = s.get_ref().set_nodelay(true);
                            socket = Some(s);
                            true
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "connect failed");
                            false
                        }
                    };
                    session.on_connected(connected, now);
                }
                Wake::Resume => pause = None,
                Wake::Timeout => {
                    timer = Timer::never();
                    // A connect still under way when its deadline passes is abandoned.
                    connecting = None;
                    session.on_timeout(now);
                }
                Wake::Stop => {
                    stopping = true;
                    session.on_message(ToSession::Shutdown, now);
                }
                Wake::Message(msg) => session.on_message(msg, now),
            }
        }
        session.finish(&links, Instant::now());
        while let Some(msg) = rx.try_recv() {
            session.leftover(msg, &links);
        }
        tracing::debug!("disconnected");
    }
}
