//! One task per connection: socket reads into the engine, actions out to the socket,
//! the hub, storage and timers.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use meerkat_engine::hub::{RequestId, SessionId};
use meerkat_engine::storage::StorageReply;
use meerkat_engine::stream::c2s::{C2s, C2sConfig};
use meerkat_engine::stream::Action;
use meerkat_engine::Element;
use rand_core::OsRng;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::hub_task::HubMsg;
use crate::storage_thread::Job;
use crate::Metrics;

/// What a connection task receives besides socket bytes. Payloads are boxed: tokio's
/// channel allocates 32 slots per connection up front, each as large as this enum, so
/// a small enum is memory saved on every idle session.
pub(crate) enum ConnMsg {
    /// A stanza from the hub.
    Routed(Box<Element>),
    /// A serialised stanza from the hub (offline messages).
    RoutedRaw(Box<str>),
    /// Replaced by a newer session with the same full JID.
    Replaced,
    /// A storage answer.
    Reply(Box<(RequestId, StorageReply)>),
    /// The server is stopping.
    Shutdown,
}

/// What every connection of a listener shares.
#[derive(Clone)]
pub(crate) struct Shared {
    pub config: Arc<C2sConfig>,
    pub hub: mpsc::UnboundedSender<HubMsg>,
    pub storage: mpsc::UnboundedSender<Job>,
    pub metrics: Arc<Metrics>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Size of the per-thread read buffer. Reads go through one buffer per worker thread
/// so that an idle connection holds no read buffer of its own.
const READ_BUF: usize = 16 * 1024;

thread_local! {
    static READ_BUFFER: RefCell<Vec<u8>> = RefCell::new(vec![0; READ_BUF]);
}

/// Why the read side stopped.
enum ReadOutcome {
    Data,
    Eof,
    WouldBlock,
}

pub(crate) async fn run(mut socket: TcpStream, peer: SocketAddr, shared: Shared) {
    let id: SessionId = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let span = tracing::info_span!("c2s", id, %peer);
    let _enter = span.enter();
    tracing::debug!("connected");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _ = shared.hub.send(HubMsg::Attach {
        session: id,
        tx: tx.clone(),
    });
    let mut c2s = C2s::new(
        id,
        shared.config.clone(),
        Box::new(OsRng),
        Instant::now().into_std(),
    );
    let mut timer: Option<Instant> = None;
    let mut paused_until: Option<Instant> = None;

    'session: loop {
        // Drain every action the last input produced.
        while let Some(action) = c2s.poll_action() {
            match action {
                Action::Transmit(bytes) => {
                    if socket.write_all(&bytes).await.is_err() {
                        c2s.handle_closed(Instant::now().into_std());
                    }
                }
                Action::Hub(input) => {
                    let _ = shared.hub.send(HubMsg::Input(input));
                }
                Action::Request(rid, request) => {
                    let tx = tx.clone();
                    let reply_to = Box::new(move |rid, reply| {
                        let _ = tx.send(ConnMsg::Reply(Box::new((rid, reply))));
                    });
                    let _ = shared.storage.send(Job {
                        id: rid,
                        request,
                        reply_to,
                    });
                }
                Action::SetTimer(at) => timer = Some(at.into()),
                Action::PauseReading(until) => paused_until = Some(until.into()),
                Action::Instrument(event) => shared.metrics.record(&event),
                Action::Close => {
                    let _ = socket.shutdown().await;
                    break 'session;
                }
            }
        }

        tokio::select! {
            ready = socket.readable(), if paused_until.is_none() => {
                if ready.is_err() {
                    c2s.handle_closed(Instant::now().into_std());
                    continue;
                }
                let now = Instant::now().into_std();
                let outcome = READ_BUFFER.with(|buf| {
                    let mut buf = buf.borrow_mut();
                    match socket.try_read(&mut buf[..]) {
                        Ok(0) => ReadOutcome::Eof,
                        Ok(n) => {
                            c2s.handle_bytes(&buf[..n], now);
                            ReadOutcome::Data
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => ReadOutcome::WouldBlock,
                        Err(_) => ReadOutcome::Eof,
                    }
                });
                match outcome {
                    ReadOutcome::Data | ReadOutcome::WouldBlock => {}
                    ReadOutcome::Eof => {
                        c2s.handle_closed(now);
                        // Send the Unbind the engine produced, then stop.
                        while let Some(action) = c2s.poll_action() {
                            if let Action::Hub(input) = action {
                                let _ = shared.hub.send(HubMsg::Input(input));
                            }
                        }
                        break 'session;
                    }
                }
            }
            _ = sleep_until(paused_until), if paused_until.is_some() => paused_until = None,
            _ = sleep_until(timer), if timer.is_some() => {
                timer = None;
                c2s.handle_timeout(Instant::now().into_std());
            }
            msg = rx.recv() => {
                let now = Instant::now().into_std();
                match msg {
                    Some(ConnMsg::Routed(stanza)) => c2s.handle_routed(*stanza, now),
                    Some(ConnMsg::RoutedRaw(xml)) => c2s.handle_routed_raw(&xml, now),
                    Some(ConnMsg::Replaced) => c2s.handle_replaced(now),
                    Some(ConnMsg::Reply(reply)) => {
                        let (rid, reply) = *reply;
                        c2s.handle_reply(rid, reply, now);
                    }
                    Some(ConnMsg::Shutdown) | None => c2s.handle_shutdown(now),
                }
            }
        }
    }
    // Whatever the engine still has to tell the hub (an Unbind) goes before Detach.
    c2s.handle_closed(Instant::now().into_std());
    while let Some(action) = c2s.poll_action() {
        if let Action::Hub(input) = action {
            let _ = shared.hub.send(HubMsg::Input(input));
        }
    }
    let _ = shared.hub.send(HubMsg::Detach { session: id });
    tracing::debug!("disconnected");
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
