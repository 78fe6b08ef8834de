//! The task that owns the engine's `Hub`: it feeds it inputs from connections and
//! storage answers, and carries out its actions.

use std::collections::HashMap;
use std::time::SystemTime;

use meerkat_engine::hub::{Hub, HubAction, HubConfig, HubInput, RequestId, SessionId};
use meerkat_engine::storage::StorageReply;
use tokio::sync::{mpsc, oneshot};

use crate::connection::ConnMsg;
use crate::storage_thread::Job;

/// A message to the hub task.
pub(crate) enum HubMsg {
    /// A connection started; stanzas for it go to `tx`.
    Attach {
        session: SessionId,
        tx: mpsc::UnboundedSender<ConnMsg>,
    },
    /// A connection ended.
    Detach { session: SessionId },
    /// An input for the engine's hub.
    Input(HubInput),
    /// Tell every connection to close; answer on `done` when all are gone.
    Shutdown { done: oneshot::Sender<()> },
}

pub(crate) async fn run(
    config: HubConfig,
    mut rx: mpsc::UnboundedReceiver<HubMsg>,
    storage: mpsc::UnboundedSender<Job>,
) {
    let mut hub = Hub::new(config);
    let mut connections: HashMap<SessionId, mpsc::UnboundedSender<ConnMsg>> = HashMap::new();
    let (reply_tx, mut reply_rx) = mpsc::unbounded_channel::<(RequestId, StorageReply)>();
    let mut shutdown_done: Option<oneshot::Sender<()>> = None;
    loop {
        let input = tokio::select! {
            biased;
            Some((id, reply)) = reply_rx.recv() => HubInput::Reply { id, reply },
            msg = rx.recv() => match msg {
                None => break,
                Some(HubMsg::Attach { session, tx }) => {
                    connections.insert(session, tx);
                    continue;
                }
                Some(HubMsg::Detach { session }) => {
                    connections.remove(&session);
                    if connections.is_empty() {
                        if let Some(done) = shutdown_done.take() {
                            let _ = done.send(());
                        }
                    }
                    continue;
                }
                Some(HubMsg::Shutdown { done }) => {
                    for tx in connections.values() {
                        let _ = tx.send(ConnMsg::Shutdown);
                    }
                    if connections.is_empty() {
                        let _ = done.send(());
                    } else {
                        shutdown_done = Some(done);
                    }
                    continue;
                }
                Some(HubMsg::Input(input)) => input,
            },
        };
        hub.handle(input, SystemTime::now());
        while let Some(action) = hub.poll_action() {
            match action {
                HubAction::Deliver { session, stanza } => {
                    if let Some(tx) = connections.get(&session) {
                        let _ = tx.send(ConnMsg::Routed(Box::new(stanza)));
                    }
                }
                HubAction::DeliverRaw { session, xml } => {
                    if let Some(tx) = connections.get(&session) {
                        let _ = tx.send(ConnMsg::RoutedRaw(xml.into_boxed_str()));
                    }
                }
                HubAction::Replaced { session } => {
                    if let Some(tx) = connections.get(&session) {
                        let _ = tx.send(ConnMsg::Replaced);
                    }
                }
                HubAction::Request { id, request } => {
                    let reply_tx = reply_tx.clone();
                    let job = Job {
                        id,
                        request,
                        reply_to: Box::new(move |id, reply| {
                            let _ = reply_tx.send((id, reply));
                        }),
                    };
                    let _ = storage.send(job);
                }
            }
        }
    }
}
