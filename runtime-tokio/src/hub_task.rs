//! One task per hub shard, and the tokio channels behind the shared [`Sink`]s.

use meerkat_engine::hub::HubConfig;
use meerkat_runtime_common::storage::StorageExecutor;
use meerkat_runtime_common::{FedMsg, HubMsg, HubShard, MailboxSender, Sink, ToSession};
use tokio::sync::mpsc;

/// A tokio channel's sending end as a [`Sink`].
pub(crate) struct Tx<T>(pub mpsc::UnboundedSender<T>);

impl<T> Clone for Tx<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T: Send + 'static> Sink<T> for Tx<T> {
    fn send(&self, msg: T) {
        let _ = self.0.send(msg);
    }
}

/// A session's mailbox (runtime-common's, light while empty).
pub(crate) type Mailbox = MailboxSender<ToSession>;
/// A hub shard's inbox.
pub(crate) type ShardTx = Tx<HubMsg<Mailbox>>;
/// The federation router's inbox.
pub(crate) type FedTx = Tx<FedMsg<Mailbox>>;

pub(crate) async fn run(
    config: HubConfig,
    index: usize,
    shards: meerkat_runtime_common::Shards<ShardTx>,
    storage: StorageExecutor,
    federation: Option<FedTx>,
    mut rx: mpsc::UnboundedReceiver<HubMsg<Mailbox>>,
) {
    let mut shard = HubShard::new(&config, index, shards.len());
    loop {
        // The shard's next deadline (a detached session's resumption timeout).
        let wait = shard
            .next_deadline()
            .map(|d| d.duration_since(std::time::SystemTime::now()).unwrap_or_default());
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(msg) => if !shard.on_message(msg, &shards, &storage, federation.as_ref()) { break },
                None => break,
            },
            _ = tokio::time::sleep(wait.unwrap_or_default()), if wait.is_some() => {
                shard.on_timeout(&shards, &storage, federation.as_ref());
            }
        }
    }
}
