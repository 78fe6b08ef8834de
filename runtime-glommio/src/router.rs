//! Where messages go on an executor: to a session of this executor (its local
//! channel), to this executor's hub shard, or across the mesh to another executor.
//! The router is per thread: [`Addr`] and [`ShardAddr`] are plain, `Send` addresses,
//! resolved by the router of whichever executor sends.

use std::cell::RefCell;
use std::collections::HashMap;

use glommio::channels::local_channel::LocalSender;
use meerkat_engine::hub::SessionId;
use meerkat_runtime_common::{FedMsg, HubMsg, MailboxSender, Sink, ToSession};

/// What crosses the mesh between executors.
pub(crate) enum Mesh {
    /// For the receiving executor's hub shard (boxed: the mesh's slots are
    /// allocated up front, and a hub input is five times larger than the rest).
    Hub(Box<HubMsg<Addr>>),
    /// For one of the receiving executor's sessions.
    Session(SessionId, ToSession),
    /// For the federation router (on executor [`FEDERATION_EXECUTOR`]).
    Fed(Box<FedMsg<Addr>>),
}

/// The executor that runs the federation router and its outgoing connections.
pub(crate) const FEDERATION_EXECUTOR: usize = 0;

/// The federation router, wherever the sender is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FedAddr;

/// A session: the executor it lives on and its id.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Addr {
    pub executor: usize,
    pub session: SessionId,
}

/// A hub shard; shard `i` lives on executor `i`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ShardAddr(pub usize);

pub(crate) struct Router {
    /// This executor's index (and shard).
    index: usize,
    sessions: HashMap<SessionId, MailboxSender<ToSession>>,
    hub: LocalSender<HubMsg<Addr>>,
    /// To the task that feeds the mesh (sending on it may wait; we may not).
    mesh: LocalSender<(usize, Mesh)>,
    /// The federation router's inbox, on its executor.
    fed: Option<LocalSender<FedMsg<Addr>>>,
}

thread_local! {
    static ROUTER: RefCell<Option<Router>> = const { RefCell::new(None) };
}

fn with<R>(f: impl FnOnce(&mut Router) -> R) -> R {
    ROUTER.with(|r| {
        f(r.borrow_mut()
            .as_mut()
            .expect("router installed on every executor"))
    })
}

/// Installs this executor's router.
pub(crate) fn install(index: usize, hub: LocalSender<HubMsg<Addr>>, mesh: LocalSender<(usize, Mesh)>) {
    ROUTER.with(|r| {
        *r.borrow_mut() = Some(Router {
            index,
            sessions: HashMap::new(),
            hub,
            mesh,
            fed: None,
        })
    });
}

/// Installs the federation router's inbox (on [`FEDERATION_EXECUTOR`]).
pub(crate) fn install_federation(fed: LocalSender<FedMsg<Addr>>) {
    with(|r| r.fed = Some(fed));
}

/// This executor's index.
pub(crate) fn index() -> usize {
    with(|r| r.index)
}

/// A new connection's mailbox.
pub(crate) fn register(session: SessionId, tx: MailboxSender<ToSession>) {
    with(|r| r.sessions.insert(session, tx));
}

pub(crate) fn unregister(session: SessionId) {
    with(|r| r.sessions.remove(&session));
}

/// Sends `msg` to every session of this executor (the shutdown).
pub(crate) fn broadcast(msg: impl Fn() -> ToSession) {
    with(|r| {
        for tx in r.sessions.values() {
            tx.send(msg());
        }
    });
}

/// A message that came over the mesh.
pub(crate) fn from_mesh(msg: Mesh) {
    with(|r| match msg {
        Mesh::Hub(m) => {
            let _ = r.hub.try_send(*m);
        }
        Mesh::Session(session, m) => r.to_local(session, m),
        Mesh::Fed(m) => {
            if let Some(fed) = &r.fed {
                let _ = fed.try_send(*m);
            }
        }
    });
}

impl Router {
    fn to_local(&self, session: SessionId, msg: ToSession) {
        if let Some(tx) = self.sessions.get(&session) {
            tx.send(msg);
        }
    }
}

impl Sink<ToSession> for Addr {
    fn send(&self, msg: ToSession) {
        with(|r| {
            if self.executor == r.index {
                r.to_local(self.session, msg);
            } else {
                let _ = r.mesh.try_send((self.executor, Mesh::Session(self.session, msg)));
            }
        });
    }
}

impl Sink<HubMsg<Addr>> for ShardAddr {
    fn send(&self, msg: HubMsg<Addr>) {
        with(|r| {
            if self.0 == r.index {
                let _ = r.hub.try_send(msg);
            } else {
                let _ = r.mesh.try_send((self.0, Mesh::Hub(Box::new(msg))));
            }
        });
    }
}

impl Sink<FedMsg<Addr>> for FedAddr {
    fn send(&self, msg: FedMsg<Addr>) {
        with(|r| match &r.fed {
            Some(fed) => {
                let _ = fed.try_send(msg);
            }
            None => {
                let _ = r.mesh.try_send((FEDERATION_EXECUTOR, Mesh::Fed(Box::new(msg))));
            }
        });
    }
}
