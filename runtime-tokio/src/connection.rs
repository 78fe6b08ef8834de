//! One task per connection: socket reads into the session, its socket and timer
//! effects carried out here (hub, storage and federation effects go through the
//! shared links). Outgoing S2S connections start without a socket and connect when
//! their session asks.

use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use meerkat_engine::federation::DomainPair;
use meerkat_engine::stream::s2s_out::S2sOutConfig;
use meerkat_runtime_common::storage::StorageExecutor;
use meerkat_runtime_common::{
    mailbox, Admitted, BoshSessions, BoshStart, Io, Links, ListenerKind, Liveness, MailboxReceiver, Metrics,
    Outbox, Refused, Resolver, Session, Shards, ToSession, CLOSE_FLUSH, REFUSAL_LINGER,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::Instrument;

use crate::hub_task::{FedTx, Mailbox, ShardTx};

/// What every connection shares.
#[derive(Clone)]
pub(crate) struct Shared {
    pub shards: Shards<ShardTx>,
    pub storage: StorageExecutor,
    pub metrics: Arc<Metrics>,
    pub stop: watch::Receiver<bool>,
    pub live: Liveness,
    pub federation: Option<(FedTx, Resolver)>,
    /// The live BOSH sessions.
    pub bosh: BoshSessions,
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

/// An accepted connection; it counts on its listener until it ends. The session is
/// built here and the task's future holds it once: an `async fn` would keep a second
/// copy of every argument it moves into its body (and this future is most of an idle
/// connection's memory).
pub(crate) fn run(
    socket: TcpStream,
    peer: SocketAddr,
    kind: ListenerKind,
    shared: Shared,
    admitted: Admitted,
    max_send_queue: Option<usize>,
) -> impl Future<Output = ()> + Send + 'static {
    let metrics = shared.metrics.clone();
    let (session, span) = kind.accepted(peer, shared.shards.len(), metrics, &shared.bosh, now());
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
    mut socket: TcpStream,
    kind: &ListenerKind,
    refused: Refused,
) -> impl Future<Output = ()> + Send + 'static {
    let answer = refused.answer(kind);
    async move {
        let Some((_answering, bytes)) = answer else { return };
        let _ = tokio::time::timeout(REFUSAL_LINGER, async {
            socket.write_all(&bytes).await?;
            socket.shutdown().await?;
            // Read until the peer closes, so that closing does not reset the
            // connection under the answer.
            let mut buf = [0u8; 512];
            while socket.read(&mut buf).await? > 0 {}
            Ok::<_, std::io::Error>(())
        })
        .await;
    }
}

/// Starts an outgoing S2S connection for `pair`; returns its mailbox, which the
/// federation router keeps.
pub(crate) fn spawn_outgoing(
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
        now(),
    );
    tokio::spawn(drive(None, session, mailbox.clone(), rx, shared, max_send_queue, None).instrument(span));
    mailbox
}

type Connecting = Pin<Box<dyn Future<Output = std::io::Result<TcpStream>> + Send>>;

/// The connection's task. A plain `async` block rather than an `async fn`, so that
/// the arguments are not stored twice.
fn drive(
    mut socket: Option<TcpStream>,
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
        mut stop,
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
        if *stop.borrow_and_update() {
            stopping = true;
            session.on_message(ToSession::Shutdown, now());
        }
        let mut timer: Option<Instant> = None;
        let mut paused_until: Option<Instant> = None;
        let mut connecting: Option<Connecting> = None;
        let mut outbox = Outbox::new(max_send_queue);
        // One timer entry for both deadlines (the session's timer and the end of a
        // shaper pause), reset only when the nearer one changes; and one pending
        // `changed()` for the whole session: the state an idle connection waits in
        // stays small, and waking up does not churn the timer wheel.
        let sleep = tokio::time::sleep_until(Instant::now());
        tokio::pin!(sleep);
        let mut armed: Option<Instant> = None;
        let stop_changed = stop.changed();
        tokio::pin!(stop_changed);

        'session: loop {
            while let Some(io) = session.next_io(&links) {
                match io {
                    Io::Write(bytes) => match &socket {
                        // Written now as far as the socket takes it; the rest waits in
                        // the outbox (bounded) while the session goes on.
                        Some(s) => {
                            session.queue_write(&mut outbox, bytes, now());
                            if outbox.write_with(|b| s.try_write(b)).is_err() {
                                session.on_closed(now());
                            }
                        }
                        None => session.on_closed(now()),
                    },
                    Io::Timer(at) => timer = Some(at.into()),
                    Io::PauseReading(until) => paused_until = Some(until.into()),
                    Io::StartBosh(start) => {
                        if let Some(shared) = &spawner {
                            start_bosh(*start, shared);
                        }
                    }
                    Io::Connect(addr) => {
                        socket = None;
                        connecting = Some(Box::pin(TcpStream::connect(addr)));
                    }
                    Io::Close => {
                        if let Some(s) = &mut socket {
                            // What is still queued (a stream error at least) gets a
                            // bounded time to leave. Boxed: inline, this one-off state
                            // (a second timer entry) would be the largest of the
                            // task's future, which every idle connection holds.
                            let flushed = Box::pin(tokio::time::timeout(CLOSE_FLUSH, async {
                                while !outbox.is_empty() {
                                    s.writable().await?;
                                    outbox.write_with(|b| s.try_write(b))?;
                                }
                                s.shutdown().await
                            }));
                            let _ = flushed.await;
                        }
                        break 'session;
                    }
                }
            }
            let deadline = match (timer, paused_until) {
                (Some(t), Some(p)) => Some(t.min(p)),
                (t, p) => t.or(p),
            };
            if deadline != armed {
                if let Some(d) = deadline {
                    sleep.as_mut().reset(d);
                }
                armed = deadline;
            }

            tokio::select! {
                ready = poll_fn(|cx| match &socket {
                    Some(s) => s.poll_read_ready(cx),
                    None => Poll::Pending,
                }), if socket.is_some() && paused_until.is_none() => {
                    if ready.is_err() {
                        session.on_closed(now());
                        continue;
                    }
                    let Some(s) = &socket else { continue };
                    READ_BUFFER.with(|buf| {
                        let mut buf = buf.borrow_mut();
                        match s.try_read(&mut buf[..]) {
                            Ok(0) => session.on_closed(now()),
                            Ok(n) => session.on_bytes(&buf[..n], now()),
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                            Err(_) => session.on_closed(now()),
                        }
                    });
                }
                ready = poll_fn(|cx| match &socket {
                    Some(s) => s.poll_write_ready(cx),
                    None => Poll::Pending,
                }), if socket.is_some() && !outbox.is_empty() => {
                    let written = ready.and_then(|()| match &socket {
                        Some(s) => outbox.write_with(|b| s.try_write(b)),
                        None => Ok(()),
                    });
                    if written.is_err() {
                        session.on_closed(now());
                    }
                }
                result = async { connecting.as_mut().expect("guarded").await }, if connecting.is_some() => {
                    connecting = None;
                    let connected = match result {
                        Ok(s) => {
                            let _ = s.set_nodelay(true);
                            socket = Some(s);
                            true
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "connect failed");
                            false
                        }
                    };
                    session.on_connected(connected, now());
                }
                () = &mut sleep, if armed.is_some() => {
                    armed = None;
                    let at = Instant::now();
                    if paused_until.is_some_and(|p| p <= at) {
                        paused_until = None;
                    }
                    if timer.is_some_and(|t| t <= at) {
                        timer = None;
                        // A connect still under way when its deadline passes is abandoned.
                        connecting = None;
                        session.on_timeout(now());
                    }
                }
                _ = &mut stop_changed, if !stopping => {
                    stopping = true;
                    session.on_message(ToSession::Shutdown, now());
                }
                msg = rx.recv() => session.on_message(msg, now()),
            }
        }
        session.finish(&links, now());
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
    let (session, span) = start.start(shared.shards.len(), metrics, &shared.bosh, sender, now());
    // No socket and no send queue: its HTTP requests carry its bytes.
    tokio::spawn(drive(None, session, tx, rx, shared.clone(), None, None).instrument(span));
}
