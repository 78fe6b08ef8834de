//! One task per connection: socket reads into the session, its socket and timer
//! effects carried out here (hub and storage effects go through the router).

use std::cell::RefCell;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use futures_lite::{future, AsyncRead, AsyncWriteExt};
use glommio::channels::local_channel;
use glommio::net::TcpStream;
use meerkat_engine::http::HttpConfig;
use meerkat_engine::stream::c2s::C2sConfig;
use meerkat_runtime_common::{
    next_session_id, BoshSessions, BoshStart, Io, Links, Liveness, Metrics, Session, Shards, ToSession,
};
use tracing::Instrument as _;

use crate::router::{self, Addr, ShardAddr};
use crate::storage::BlockingStorage;

/// What every connection of a listener on one executor shares.
pub(crate) struct ConnCtx {
    pub config: Arc<C2sConfig>,
    pub shards: Shards<ShardAddr>,
    pub storage: BlockingStorage,
    pub metrics: Arc<Metrics>,
    pub live: Liveness,
    /// For an HTTP listener: its settings (`config` is then its C2S settings).
    pub http: Option<Arc<HttpConfig>>,
    /// The live BOSH sessions (of every executor).
    pub bosh: BoshSessions,
}

/// A new connection's id and span: its id, type and peer, and its JID once bound,
/// on every line logged about it.
pub(crate) fn span(ctx: &ConnCtx, peer: Option<std::net::SocketAddr>) -> (u64, tracing::Span) {
    let id = next_session_id();
    let empty = tracing::field::Empty;
    let span = match ctx.http {
        Some(_) => tracing::info_span!("http", id, peer = ?peer, transport = empty, jid = empty),
        None => tracing::info_span!("c2s", id, peer = ?peer, jid = empty),
    };
    (id, span)
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
    Resume,
    Timeout,
    Message(Option<ToSession>),
}

pub(crate) async fn run(mut stream: TcpStream, id: u64, ctx: std::rc::Rc<ConnCtx>) {
    let _live = ctx.live.enter();
    tracing::debug!("connected");
    let (tx, rx) = local_channel::new_unbounded();
    router::register(id, tx);
    let links = Links {
        shards: ctx.shards.clone(),
        storage: ctx.storage.clone(),
        mailbox: Addr {
            executor: router::index(),
            session: id,
        },
    };
    let mut session = match &ctx.http {
        Some(http) => Session::http(
            id,
            http.clone(),
            links.shards.len(),
            ctx.metrics.clone(),
            ctx.bosh.clone(),
            Instant::now(),
        ),
        None => Session::new(
            id,
            ctx.config.clone(),
            links.shards.len(),
            ctx.metrics.clone(),
            Instant::now(),
        ),
    };
    let mut timer: Option<Instant> = None;
    let mut pause: Option<Instant> = None;

    'session: loop {
        while let Some(io) = session.next_io(&links) {
            match io {
                Io::Write(bytes) => {
                    if stream.write_all(&bytes).await.is_err() {
                        session.on_closed(Instant::now());
                    }
                }
                Io::Timer(at) => timer = Some(at),
                Io::PauseReading(until) => pause = Some(until),
                Io::Close => {
                    let _ = stream.shutdown(std::net::Shutdown::Both).await;
                    break 'session;
                }
                Io::StartBosh(start) => start_bosh(*start, &ctx),
            }
        }

        let read = async {
            if let Some(until) = pause {
                glommio::timer::sleep(until.saturating_duration_since(Instant::now())).await;
                return Wake::Resume;
            }
            poll_fn(|cx| {
                READ_BUFFER.with(|buf| {
                    let mut buf = buf.borrow_mut();
                    match Pin::new(&mut stream).poll_read(cx, &mut buf[..]) {
                        Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                            session.on_closed(Instant::now());
                            Poll::Ready(())
                        }
                        Poll::Ready(Ok(n)) => {
                            session.on_bytes(&buf[..n], Instant::now());
                            Poll::Ready(())
                        }
                        Poll::Pending => Poll::Pending,
                    }
                })
            })
            .await;
            Wake::Read
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
            Wake::Read => {}
            Wake::Resume => pause = None,
            Wake::Timeout => {
                timer = None;
                session.on_timeout(now);
            }
            Wake::Message(Some(msg)) => session.on_message(msg, now),
            Wake::Message(None) => session.on_closed(now),
        }
    }
    session.finish(&links, Instant::now());
    router::unregister(id);
    tracing::debug!("disconnected");
}

/// Starts a BOSH session in a task of its own on this executor, reachable by its
/// `sid` from every executor.
fn start_bosh(start: BoshStart, ctx: &std::rc::Rc<ConnCtx>) {
    let id = next_session_id();
    let span = tracing::info_span!(parent: None, "bosh", id, sid = %start.sid, jid = tracing::field::Empty);
    let (tx, rx) = local_channel::new_unbounded();
    router::register(id, tx);
    let mailbox = Addr {
        executor: router::index(),
        session: id,
    };
    ctx.bosh.register(&start.sid, mailbox);
    let links = Links {
        shards: ctx.shards.clone(),
        storage: ctx.storage.clone(),
        mailbox,
    };
    let session = span.in_scope(|| {
        Session::bosh(
            id,
            start,
            links.shards.len(),
            ctx.metrics.clone(),
            ctx.bosh.clone(),
            Instant::now(),
        )
    });
    glommio::spawn_local(run_bosh(session, links, rx, ctx.clone()).instrument(span)).detach();
}

/// A BOSH session's task: its mailbox (requests, hub, storage, the shutdown) and
/// its timer.
async fn run_bosh(
    mut session: Session,
    links: Links<ShardAddr, Addr, BlockingStorage>,
    rx: local_channel::LocalReceiver<ToSession>,
    ctx: std::rc::Rc<ConnCtx>,
) {
    let _live = ctx.live.enter();
    tracing::debug!("BOSH session started");
    let mut timer: Option<Instant> = None;
    'session: loop {
        while let Some(io) = session.next_io(&links) {
            match io {
                Io::Timer(at) => timer = Some(at),
                Io::Close => break 'session,
                Io::Write(_) | Io::PauseReading(_) | Io::StartBosh(_) => {}
            }
        }
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
        let wake = future::or(tick, message).await;
        let now = Instant::now();
        match wake {
            Wake::Timeout => {
                timer = None;
                session.on_timeout(now);
            }
            Wake::Message(Some(msg)) => session.on_message(msg, now),
            Wake::Message(None) | Wake::Read | Wake::Resume => break 'session,
        }
    }
    session.finish(&links, Instant::now());
    router::unregister(links.mailbox.session);
    tracing::debug!("BOSH session ended");
}
