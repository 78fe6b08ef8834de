//! One task per connection: socket reads into the session, its socket and timer
//! effects carried out here (hub, storage and federation effects go through the
//! shared links). Outgoing S2S connections start without a socket and connect when
//! their session asks.

use std::cell::RefCell;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use meerkat_engine::federation::DomainPair;
use meerkat_engine::stream::s2s_out::S2sOutConfig;
use meerkat_runtime_common::storage::StorageExecutor;
use meerkat_runtime_common::{
    Admitted, BoshSessions, BoshStart, Io, Links, ListenerKind, Liveness, Metrics, Outbox, Refused, Resolver,
    Session, Shards, ToSession, CLOSE_FLUSH, REFUSAL_LINGER,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::Instrument as _;

use crate::hub_task::{FedTx, Mailbox, ShardTx, Tx};

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

/// An accepted connection; it counts on its listener until it ends.
pub(crate) async fn run(
    socket: TcpStream,
    peer: SocketAddr,
    kind: ListenerKind,
    shared: Shared,
    admitted: Admitted,
    max_send_queue: Option<usize>,
) {
    let metrics = shared.metrics.clone();
    let (session, span) = kind.accepted(peer, shared.shards.len(), metrics, &shared.bosh, now());
    let (tx, rx) = mpsc::unbounded_channel();
    drive(Some(socket), session, Tx(tx), rx, shared, max_send_queue)
        .instrument(span)
        .await;
    drop(admitted);
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
    let (tx, rx) = mpsc::unbounded_channel();
    let mailbox = Tx(tx);
    let session = Session::s2s_out(
        id,
        pair.clone(),
        config,
        shared.shards.len(),
        shared.metrics.clone(),
        now(),
    );
    let span = tracing::info_span!("conn", kind = "s2s_out", id, remote = %pair.remote);
    tokio::spawn(drive(None, session, mailbox.clone(), rx, shared, max_send_queue).instrument(span));
    mailbox
}

type Connecting = Pin<Box<dyn Future<Output = std::io::Result<TcpStream>> + Send>>;

async fn drive(
    mut socket: Option<TcpStream>,
    mut session: Session,
    mailbox: Mailbox,
    mut rx: mpsc::UnboundedReceiver<ToSession>,
    shared: Shared,
    max_send_queue: Option<usize>,
) {
    let _live = shared.live.enter();
    tracing::debug!("started");
    let links = Links {
        shards: shared.shards.clone(),
        storage: shared.storage.clone(),
        mailbox,
        federation: shared.federation.clone(),
    };
    let mut stop = shared.stop.clone();
    let mut stopping = false;
    if *stop.borrow_and_update() {
        stopping = true;
        session.on_message(ToSession::Shutdown, now());
    }
    let mut timer: Option<Instant> = None;
    let mut paused_until: Option<Instant> = None;
    let mut connecting: Option<Connecting> = None;
    let mut outbox = Outbox::new(max_send_queue);

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
                Io::StartBosh(start) => start_bosh(*start, &shared),
                Io::Connect(addr) => {
                    socket = None;
                    connecting = Some(Box::pin(TcpStream::connect(addr)));
                }
                Io::Close => {
                    if let Some(s) = &mut socket {
                        // What is still queued (a stream error at least) gets a
                        // bounded time to leave.
                        let flushed = tokio::time::timeout(CLOSE_FLUSH, async {
                            while !outbox.is_empty() {
                                s.writable().await?;
                                outbox.write_with(|b| s.try_write(b))?;
                            }
                            s.shutdown().await
                        });
                        let _ = flushed.await;
                    }
                    break 'session;
                }
            }
        }

        tokio::select! {
            ready = readable(&socket), if socket.is_some() && paused_until.is_none() => {
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
            ready = writable(&socket), if socket.is_some() && !outbox.is_empty() => {
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
            _ = sleep_until(paused_until), if paused_until.is_some() => paused_until = None,
            _ = sleep_until(timer), if timer.is_some() => {
                timer = None;
                // A connect still under way when its deadline passes is abandoned.
                connecting = None;
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
    while let Ok(msg) = rx.try_recv() {
        session.leftover(msg, &links);
    }
    tracing::debug!("disconnected");
}

async fn readable(socket: &Option<TcpStream>) -> std::io::Result<()> {
    match socket {
        Some(s) => s.readable().await,
        None => std::future::pending().await,
    }
}

async fn writable(socket: &Option<TcpStream>) -> std::io::Result<()> {
    match socket {
        Some(s) => s.writable().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Starts a BOSH session in a task of its own, reachable by its `sid`.
fn start_bosh(start: BoshStart, shared: &Shared) {
    let (tx, rx) = mpsc::unbounded_channel();
    let metrics = shared.metrics.clone();
    let mailbox = |_| Tx(tx.clone());
    let (session, span) = start.start(shared.shards.len(), metrics, &shared.bosh, mailbox, now());
    // No socket and no send queue: its HTTP requests carry its bytes.
    tokio::spawn(drive(None, session, Tx(tx), rx, shared.clone(), None).instrument(span));
}
