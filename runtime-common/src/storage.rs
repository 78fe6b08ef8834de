//! The storage executor: one OS thread that runs requests in arrival order, so that
//! a user's writes are never reordered, and answers each requester through the
//! callback it gave. Storage backends block (SQLite); the thread keeps them off the
//! runtimes' event loops.

use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use meerkat_engine::hub::RequestId;
use meerkat_engine::storage::{Storage, StorageReply, StorageRequest};

/// Where an answer goes: usually a send on the requester's channel.
pub type ReplyTo = Box<dyn FnOnce(RequestId, StorageReply) + Send>;

struct Job {
    id: RequestId,
    request: StorageRequest,
    reply_to: ReplyTo,
}

/// Something that runs storage requests and calls back with the answer. The shared
/// [`StorageExecutor`] is one; glommio submits to its executors' blocking threads.
pub trait SubmitStorage: Clone {
    /// Queues `request`; `reply_to` is called with the answer (on a thread of the
    /// implementation's choosing). Requests submitted through one handle run in order.
    fn submit(&self, id: RequestId, request: StorageRequest, reply_to: ReplyTo);
}

/// A handle for submitting requests; cheap to clone, usable from any thread.
#[derive(Clone)]
pub struct StorageExecutor {
    tx: mpsc::Sender<Job>,
}

/// Joins the storage thread once every [`StorageExecutor`] is dropped.
pub struct StorageThread(JoinHandle<()>);

impl StorageExecutor {
    /// Starts the thread.
    pub fn start(storage: Arc<dyn Storage>) -> (Self, StorageThread) {
        let (tx, rx) = mpsc::channel::<Job>();
        let handle = std::thread::Builder::new()
            .name("meerkat-storage".into())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    let reply = storage.execute(job.request);
                    (job.reply_to)(job.id, reply);
                }
            })
            .expect("spawning the storage thread");
        (Self { tx }, StorageThread(handle))
    }
}

impl SubmitStorage for StorageExecutor {
    /// `reply_to` is called on the storage thread.
    fn submit(&self, id: RequestId, request: StorageRequest, reply_to: ReplyTo) {
        if self
            .tx
            .send(Job {
                id,
                request,
                reply_to,
            })
            .is_err()
        {
            tracing::warn!(id, "storage executor gone; request dropped");
        }
    }
}

impl StorageThread {
    /// Waits until every queued request has run (all executors must be dropped).
    pub fn join(self) {
        let _ = self.0.join();
    }
}
