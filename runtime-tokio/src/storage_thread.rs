//! The storage executor: one OS thread that runs requests in arrival order, so that
//! a user's writes are never reordered, and answers each requester.

use std::sync::Arc;
use std::thread::JoinHandle;

use meerkat_engine::hub::RequestId;
use meerkat_engine::storage::{Storage, StorageReply, StorageRequest};
use tokio::sync::mpsc;

/// Where an answer goes.
pub(crate) type ReplyTo = Box<dyn FnOnce(RequestId, StorageReply) + Send>;

/// A queued request.
pub(crate) struct Job {
    pub id: RequestId,
    pub request: StorageRequest,
    pub reply_to: ReplyTo,
}

pub(crate) fn start(storage: Arc<dyn Storage>) -> (mpsc::UnboundedSender<Job>, JoinHandle<()>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Job>();
    let handle = std::thread::Builder::new()
        .name("meerkat-storage".into())
        .spawn(move || {
            while let Some(job) = rx.blocking_recv() {
                let reply = storage.execute(job.request);
                (job.reply_to)(job.id, reply);
            }
        })
        .expect("spawning the storage thread");
    (tx, handle)
}
