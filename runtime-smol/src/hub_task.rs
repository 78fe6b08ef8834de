//! One task per hub shard, and the async-channel senders behind the shared [`Sink`]s.

use async_channel::{Receiver, Sender};
use meerkat_engine::hub::HubConfig;
use meerkat_runtime_common::storage::StorageExecutor;
use meerkat_runtime_common::{FedMsg, HubMsg, HubShard, MailboxSender, Shards, Sink, ToSession};

/// An unbounded async-channel's sending end as a [`Sink`].
pub(crate) struct Tx<T>(pub Sender<T>);

impl<T> Clone for Tx<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T: Send + 'static> Sink<T> for Tx<T> {
    fn send(&self, msg: T) {
        let _ = self.0.try_send(msg);
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
    shards: Shards<ShardTx>,
    storage: StorageExecutor,
    federation: Option<FedTx>,
    rx: Receiver<HubMsg<Mailbox>>,
) {
    let mut shard = HubShard::new(&config, index, shards.len());
    loop {
        // The shard's next deadline (a detached session's resumption timeout).
        let wait = shard
            .next_deadline()
            .map(|d| d.duration_since(std::time::SystemTime::now()).unwrap_or_default());
        let next = futures_lite::future::or(async { Some(rx.recv().await) }, async {
            match wait {
                Some(w) => {
                    async_io::Timer::after(w).await;
                    None
                }
                None => std::future::pending().await,
            }
        })
        .await;
        match next {
            Some(Ok(msg)) => {
                if !shard.on_message(msg, &shards, &storage, federation.as_ref()) {
                    break;
                }
            }
            Some(Err(_)) => break,
            None => shard.on_timeout(&shards, &storage, federation.as_ref()),
        }
    }
}
