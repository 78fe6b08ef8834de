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
use meerkat_engine::stream::c2s::C2sConfig;
use meerkat_runtime_common::storage::StorageExecutor;
use meerkat_runtime_common::{next_session_id, Io, Links, Liveness, Metrics, Session, Shards, ToSession};

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

pub(crate) async fn run(socket: Async<TcpStream>, peer: SocketAddr, shared: Shared) {
    let _live = shared.live.enter();
    let id = next_session_id();
    let span = tracing::info_span!("c2s", id, %peer);
    let _enter = span.enter();
    tracing::debug!("connected");
    let (tx, rx) = async_channel::unbounded();
    let links = Links {
        shards: shared.shards.clone(),
        storage: shared.storage.clone(),
        mailbox: Tx(tx),
        federation: None::<(
            meerkat_runtime_common::NoFederation,
            meerkat_runtime_common::Resolver,
        )>,
    };
    let mut session = Session::new(
        id,
        shared.config.clone(),
        links.shards.len(),
        shared.metrics.clone(),
        Instant::now(),
    );
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
                // Only outgoing S2S connects, and smol runs no federation yet.
                Io::Connect(_) => session.on_closed(Instant::now()),
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
