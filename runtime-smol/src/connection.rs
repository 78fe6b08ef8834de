//! One task per connection: socket reads into the session, its socket and timer
//! effects carried out here (hub, storage and federation effects go through the
//! shared links). Outgoing S2S connections start without a socket and connect when
//! their session asks.

use std::cell::RefCell;
use std::future::Future;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use async_channel::Receiver;
use async_executor::Executor;
use async_io::{Async, Timer};
use futures_lite::{future, AsyncReadExt, AsyncWriteExt};
use meerkat_engine::federation::DomainPair;
use meerkat_engine::stream::s2s_out::S2sOutConfig;
use meerkat_runtime_common::storage::StorageExecutor;
use tracing::Instrument;

use meerkat_runtime_common::{
    mailbox, Admitted, BoshSessions, BoshStart, Io, Links, ListenerKind, Liveness, MailboxReceiver, Metrics,
    Outbox, Refused, Resolver, Session, Shards, ToSession, CLOSE_FLUSH, REFUSAL_LINGER,
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
    /// The live BOSH sessions.
    pub bosh: BoshSessions,
    /// Where BOSH sessions' tasks run.
    pub ex: Arc<Executor<'static>>,
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
    Writable(std::io::Result<()>),
    Connected(std::io::Result<Async<TcpStream>>),
    Resume,
    Timeout,
    Stop,
    Message(ToSession),
}

/// An accepted connection; it counts on its listener until it ends. The session is
/// built here and the task's future holds it once: an `async fn` would keep a second
/// copy of every argument it moves into its body (and this future is most of an idle
/// connection's memory).
pub(crate) fn run(
    socket: Async<TcpStream>,
    peer: SocketAddr,
    kind: ListenerKind,
    shared: Shared,
    admitted: Admitted,
    max_send_queue: Option<usize>,
) -> impl Future<Output = ()> + Send + 'static {
    let metrics = shared.metrics.clone();
    let (session, span) = kind.accepted(peer, shared.shards.len(), metrics, &shared.bosh, Instant::now());
    let (mailbox, rx) = mailbox();
    drive(
        Some(socket),
        session,
        mailbox,
        rx,
        shared,
        max_send_queue,
        Some(admitted),
    )
    .instrument(span)
}

/// A connection refused by its listener's limits: it gets the stream error (when
/// the listener can speak before TLS and answers are affordable), then the socket
/// closes once the peer has read it, or after [`REFUSAL_LINGER`].
pub(crate) fn refuse(
    socket: Async<TcpStream>,
    kind: &ListenerKind,
    refused: Refused,
) -> impl Future<Output = ()> + Send + 'static {
    let answer = refused.answer(kind);
    async move {
        let Some((_answering, bytes)) = answer else { return };
        let answered = async {
            (&socket).write_all(&bytes).await?;
            socket.get_ref().shutdown(std::net::Shutdown::Write)?;
            // Read until the peer closes, so that closing does not reset the
            // connection under the answer.
            let mut buf = [0u8; 512];
            while (&socket).read(&mut buf).await? > 0 {}
            Ok::<_, std::io::Error>(())
        };
        let linger = async {
            Timer::after(REFUSAL_LINGER).await;
            Ok(())
        };
        let _ = future::or(answered, linger).await;
    }
}

/// Starts an outgoing S2S connection for `pair` on `ex`; returns its mailbox, which
/// the federation router keeps.
pub(crate) fn spawn_outgoing(
    ex: &Executor<'static>,
    id: u64,
    pair: DomainPair,
    config: Arc<S2sOutConfig>,
    max_send_queue: Option<usize>,
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
    ex.spawn(drive(None, session, mailbox.clone(), rx, shared, max_send_queue, None).instrument(span))
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
    max_send_queue: Option<usize>,
    admitted: Option<Admitted>,
) -> impl Future<Output = ()> + Send + 'static {
    // Only an HTTP connection starts BOSH sessions, whose tasks need everything a
    // connection shares; the others keep just their links.
    let spawner = session.may_start_bosh().then(|| Box::new(shared.clone()));
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
        // Counts on the listener until the connection ends.
        let _admitted = admitted;
        tracing::debug!("started");
        let mut stopping = false;
        let mut timer = Timer::never();
        let mut pause: Option<Timer> = None;
        let mut connecting: Option<Connecting> = None;
        let mut outbox = Outbox::new(max_send_queue);

        'session: loop {
            while let Some(io) = session.next_io(&links) {
                match io {
                    Io::Write(bytes) => match &socket {
                        // Written now as far as the socket takes it; the rest waits in
                        // the outbox (bounded) while the session goes on.
                        Some(s) => {
                            session.queue_write(&mut outbox, bytes, Instant::now());
                            if outbox.write_with(|b| s.get_ref().write(b)).is_err() {
                                session.on_closed(Instant::now());
                            }
                        }
                        None => session.on_closed(Instant::now()),
                    },
                    Io::Timer(at) => timer.set_at(at),
                    Io::PauseReading(until) => pause = Some(Timer::at(until)),
                    Io::StartBosh(start) => {
                        if let Some(shared) = &spawner {
                            start_bosh(*start, shared);
                        }
                    }
                    Io::Connect(addr) => {
                        socket = None;
                        connecting = Some(Box::pin(Async::<TcpStream>::connect(addr)));
                    }
                    Io::Close => {
                        if let Some(s) = &socket {
                            // What is still queued (a stream error at least) gets a
                            // bounded time to leave.
                            let flushed = async {
                                while !outbox.is_empty() {
                                    s.writable().await?;
                                    outbox.write_with(|b| s.get_ref().write(b))?;
                                }
                                Ok::<_, std::io::Error>(())
                            };
                            let limit = async {
                                Timer::after(CLOSE_FLUSH).await;
                                Ok(())
                            };
                            let _ = future::or(flushed, limit).await;
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
            let write = async {
                match &socket {
                    Some(s) if !outbox.is_empty() => Wake::Writable(s.writable().await),
                    _ => future::pending().await,
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
            let wake = future::or(
                read,
                future::or(write, future::or(tick, future::or(stop, message))),
            )
            .await;
            let now = Instant::now();
            match wake {
                Wake::Readable(Err(_)) | Wake::Writable(Err(_)) => session.on_closed(now),
                Wake::Writable(Ok(())) => {
                    if let Some(s) = &socket {
                        if outbox.write_with(|b| s.get_ref().write(b)).is_err() {
                            session.on_closed(now);
                        }
                    }
                }
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

/// Starts a BOSH session in a task of its own, reachable by its `sid`.
fn start_bosh(start: BoshStart, shared: &Shared) {
    let (tx, rx) = mailbox();
    let metrics = shared.metrics.clone();
    let sender = |_| tx.clone();
    let (session, span) = start.start(shared.shards.len(), metrics, &shared.bosh, sender, Instant::now());
    // No socket and no send queue: its HTTP requests carry its bytes.
    let task = drive(None, session, tx, rx, shared.clone(), None, None).instrument(span);
    shared.ex.spawn(task).detach();
}
