//! One task per connection: socket reads into the session, its socket and timer
//! effects carried out here (hub, storage and federation effects go through the
//! router). Outgoing S2S connections start without a socket and connect when their
//! session asks.

use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use futures_lite::{future, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use glommio::net::TcpStream;
use meerkat_engine::federation::DomainPair;
use meerkat_engine::stream::s2s_out::S2sOutConfig;
use meerkat_runtime_common::{
    mailbox, resolve_blocking, Admitted, BoshSessions, BoshStart, Io, Links, ListenerKind, Liveness,
    MailboxReceiver, Metrics, Outbox, Refused, Resolver, Session, Shards, ToSession, CLOSE_FLUSH,
    REFUSAL_LINGER,
};
use tracing::Instrument;

use crate::router::{self, Addr, FedAddr, ShardAddr};
use crate::storage::BlockingStorage;

/// What every connection on one executor shares.
pub(crate) struct ConnCtx {
    pub shards: Shards<ShardAddr>,
    pub storage: BlockingStorage,
    pub metrics: Arc<Metrics>,
    pub live: Liveness,
    /// Whether the server has components or S2S.
    pub federation: bool,
    /// The live BOSH sessions (of every executor).
    pub bosh: BoshSessions,
}

/// Size of the per-executor read buffer. The socket is read only once it is ready
/// (glommio polls readiness through io_uring), so one buffer per thread serves every
/// connection and an idle session holds none.
const READ_BUF: usize = 16 * 1024;

thread_local! {
    static READ_BUFFER: RefCell<Vec<u8>> = RefCell::new(vec![0; READ_BUF]);
}

/// What woke the connection up.
enum Wake {
    Read,
    Wrote,
    Connected(std::io::Result<TcpStream>),
    Resume,
    Timeout,
    Message(ToSession),
}

/// DNS on this executor's blocking thread; the answer comes back on the executor.
fn resolver() -> Resolver {
    Resolver::with_spawner(Arc::new(|query, answer| {
        glommio::spawn_local(async move {
            let result = glommio::executor()
                .spawn_blocking(move || resolve_blocking(&query))
                .await;
            answer(result);
        })
        .detach();
    }))
}

/// An accepted connection; it counts on its listener until it ends. The session is
/// built here and the task's future holds it once: an `async fn` would keep a second
/// copy of every argument it moves into its body (and this future is most of an idle
/// connection's memory).
pub(crate) fn run(
    stream: TcpStream,
    peer: std::net::SocketAddr,
    kind: ListenerKind,
    ctx: Rc<ConnCtx>,
    admitted: Admitted,
    max_send_queue: Option<usize>,
) -> impl Future<Output = ()> {
    let metrics = ctx.metrics.clone();
    let (session, span) = kind.accepted(peer, ctx.shards.len(), metrics, &ctx.bosh, Instant::now());
    let id = session.id();
    let (tx, rx) = mailbox();
    router::register(id, tx);
    drive(Some(stream), session, id, rx, ctx, max_send_queue, Some(admitted)).instrument(span)
}

/// A connection refused by its listener's limits: it gets the stream error (when
/// the listener can speak before TLS and answers are affordable), then the socket
/// closes once the peer has read it, or after [`REFUSAL_LINGER`].
pub(crate) fn refuse(
    mut stream: TcpStream,
    kind: &ListenerKind,
    refused: Refused,
) -> impl std::future::Future<Output = ()> + 'static {
    let answer = refused.answer(kind);
    async move {
        let Some((_answering, bytes)) = answer else { return };
        let answered = async {
            stream.write_all(&bytes).await?;
            stream.shutdown(std::net::Shutdown::Write).await?;
            // Read until the peer closes, so that closing does not reset the
            // connection under the answer.
            let mut buf = [0u8; 512];
            while stream.read(&mut buf).await? > 0 {}
            Ok::<_, std::io::Error>(())
        };
        let linger = async {
            glommio::timer::sleep(REFUSAL_LINGER).await;
            Ok(())
        };
        let _ = future::or(answered, linger).await;
    }
}

/// A write of what the socket takes now: glommio's `poll_write` first tries a
/// non-blocking send, and otherwise only registers interest (no data is held), so
/// polling it once with a no-op waker is a `try_write`.
fn try_send(stream: &mut TcpStream, bytes: &[u8]) -> std::io::Result<usize> {
    let mut cx = Context::from_waker(Waker::noop());
    match Pin::new(stream).poll_write(&mut cx, bytes) {
        Poll::Ready(result) => result,
        Poll::Pending => Err(std::io::ErrorKind::WouldBlock.into()),
    }
}

/// Starts an outgoing S2S connection for `pair` on this executor; returns its
/// mailbox, which the federation router keeps.
pub(crate) fn spawn_outgoing(
    id: u64,
    pair: DomainPair,
    config: Arc<S2sOutConfig>,
    max_send_queue: Option<usize>,
    ctx: Rc<ConnCtx>,
) -> Addr {
    let (tx, rx) = mailbox();
    router::register(id, tx);
    let span = tracing::info_span!("conn", kind = "s2s_out", id, remote = %pair.remote);
    let session = Session::s2s_out(
        id,
        pair,
        config,
        ctx.shards.len(),
        ctx.metrics.clone(),
        Instant::now(),
    );
    glommio::spawn_local(drive(None, session, id, rx, ctx, max_send_queue, None).instrument(span)).detach();
    Addr {
        executor: router::index(),
        session: id,
    }
}

type Connecting = Pin<Box<dyn std::future::Future<Output = std::io::Result<TcpStream>>>>;

/// The connection's task. A plain `async` block rather than an `async fn`, so that
/// the arguments are not stored twice.
fn drive(
    mut stream: Option<TcpStream>,
    mut session: Session,
    id: u64,
    mut rx: MailboxReceiver<ToSession>,
    ctx: Rc<ConnCtx>,
    max_send_queue: Option<usize>,
    admitted: Option<Admitted>,
) -> impl Future<Output = ()> {
    let live = ctx.live.enter();
    let links = Links {
        shards: ctx.shards.clone(),
        storage: ctx.storage.clone(),
        mailbox: Addr {
            executor: router::index(),
            session: id,
        },
        federation: ctx.federation.then(|| (FedAddr, resolver())),
    };
    // Only an HTTP connection starts BOSH sessions, which need the executor's
    // context; the others keep just their links.
    let spawner = session.may_start_bosh().then_some(ctx);
    async move {
        let _live = live;
        // Counts on the listener until the connection ends.
        let _admitted = admitted;
        tracing::debug!("started");
        let mut timer: Option<Instant> = None;
        let mut pause: Option<Instant> = None;
        let mut connecting: Option<Connecting> = None;
        let mut outbox = Outbox::new(max_send_queue);

        'session: loop {
            while let Some(io) = session.next_io(&links) {
                match io {
                    Io::Write(bytes) => match &mut stream {
                        // Written now as far as the socket takes it; the rest waits in
                        // the outbox (bounded) while the session goes on.
                        Some(s) => {
                            session.queue_write(&mut outbox, bytes, Instant::now());
                            if outbox.write_with(|b| try_send(s, b)).is_err() {
                                session.on_closed(Instant::now());
                            }
                        }
                        None => session.on_closed(Instant::now()),
                    },
                    Io::Timer(at) => timer = Some(at),
                    Io::PauseReading(until) => pause = Some(until),
                    Io::StartBosh(start) => {
                        if let Some(ctx) = &spawner {
                            start_bosh(*start, ctx);
                        }
                    }
                    Io::Connect(addr) => {
                        stream = None;
                        connecting = Some(Box::pin(async move {
                            TcpStream::connect(addr).await.map_err(std::io::Error::from)
                        }));
                    }
                    Io::Close => {
                        if let Some(s) = &mut stream {
                            // What is still queued (a stream error at least) gets a
                            // bounded time to leave.
                            let flushed = async {
                                while !outbox.is_empty() {
                                    let n = s.write(outbox.front()).await?;
                                    outbox.consume(n);
                                }
                                Ok::<_, std::io::Error>(())
                            };
                            let limit = async {
                                glommio::timer::sleep(CLOSE_FLUSH).await;
                                Ok(())
                            };
                            let _ = future::or(flushed, limit).await;
                            let _ = s.shutdown(std::net::Shutdown::Both).await;
                        }
                        break 'session;
                    }
                }
            }

            let read = async {
                if let Some(c) = connecting.as_mut() {
                    return Wake::Connected(c.await);
                }
                let Some(s) = stream.as_mut() else {
                    return future::pending().await;
                };
                let resume = async {
                    match pause {
                        Some(until) => {
                            glommio::timer::sleep(until.saturating_duration_since(Instant::now())).await;
                            Wake::Resume
                        }
                        None => future::pending().await,
                    }
                };
                // One poll for both directions (they share the socket): queued output
                // leaves as the socket takes it, input is read unless the shaper paused.
                let io = poll_fn(|cx| {
                    if !outbox.is_empty() {
                        match Pin::new(&mut *s).poll_write(cx, outbox.front()) {
                            Poll::Ready(Ok(n)) if n > 0 => {
                                outbox.consume(n);
                                return Poll::Ready(Wake::Wrote);
                            }
                            Poll::Ready(_) => {
                                session.on_closed(Instant::now());
                                return Poll::Ready(Wake::Wrote);
                            }
                            Poll::Pending => {}
                        }
                    }
                    if pause.is_some() {
                        return Poll::Pending;
                    }
                    READ_BUFFER.with(|buf| {
                        let mut buf = buf.borrow_mut();
                        match Pin::new(&mut *s).poll_read(cx, &mut buf[..]) {
                            Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                                session.on_closed(Instant::now());
                                Poll::Ready(Wake::Read)
                            }
                            Poll::Ready(Ok(n)) => {
                                session.on_bytes(&buf[..n], Instant::now());
                                Poll::Ready(Wake::Read)
                            }
                            Poll::Pending => Poll::Pending,
                        }
                    })
                });
                future::or(io, resume).await
            };
            let tick = async {
                match timer {
                    Some(at) => {
                        glommio::timer::sleep(at.saturating_duration_since(Instant::now())).await;
                        Wake::Timeout
                    }
                    None => future::pending().await,
                }
            };
            let message = async { Wake::Message(rx.recv().await) };
            let wake = future::or(read, future::or(tick, message)).await;
            let now = Instant::now();
            match wake {
                Wake::Read | Wake::Wrote => {}
                Wake::Connected(result) => {
                    connecting = None;
                    let connected = match result {
                        Ok(s) => {
                            let _ = s.set_nodelay(true);
                            stream = Some(s);
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
                    timer = None;
                    // A connect still under way when its deadline passes is abandoned.
                    connecting = None;
                    session.on_timeout(now);
                }
                Wake::Message(msg) => session.on_message(msg, now),
            }
        }
        session.finish(&links, Instant::now());
        while let Some(msg) = rx.try_recv() {
            session.leftover(msg, &links);
        }
        router::unregister(id);
        tracing::debug!("disconnected");
    }
}

/// Starts a BOSH session in a task of its own on this executor, reachable by its
/// `sid` from every executor.
fn start_bosh(start: BoshStart, ctx: &Rc<ConnCtx>) {
    let (tx, rx) = mailbox();
    let sender = |id| {
        router::register(id, tx);
        Addr {
            executor: router::index(),
            session: id,
        }
    };
    let metrics = ctx.metrics.clone();
    let (session, span) = start.start(ctx.shards.len(), metrics, &ctx.bosh, sender, Instant::now());
    let id = session.id();
    // No socket and no send queue: its HTTP requests carry its bytes.
    glommio::spawn_local(drive(None, session, id, rx, ctx.clone(), None, None).instrument(span)).detach();
}
