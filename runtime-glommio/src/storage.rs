//! Storage on glommio: requests run on the executor's blocking thread (one per
//! executor, so an executor's requests run in the order it sent them), and the
//! answer comes back on the executor, where the router can deliver it.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;

use meerkat_engine::hub::RequestId;
use meerkat_engine::storage::{Storage, StorageRequest};
use meerkat_runtime_common::storage::{ReplyTo, SubmitStorage};

#[derive(Clone)]
pub(crate) struct BlockingStorage {
    storage: Arc<dyn Storage>,
    in_flight: Rc<Cell<usize>>,
}

impl BlockingStorage {
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        Self {
            storage,
            in_flight: Rc::new(Cell::new(0)),
        }
    }

    /// Requests submitted and not answered yet.
    pub fn in_flight(&self) -> usize {
        self.in_flight.get()
    }
}

impl SubmitStorage for BlockingStorage {
    /// `reply_to` is called on this executor.
    fn submit(&self, id: RequestId, request: StorageRequest, reply_to: ReplyTo) {
        let storage = self.storage.clone();
        let in_flight = self.in_flight.clone();
        in_flight.set(in_flight.get() + 1);
        glommio::spawn_local(async move {
            let reply = glommio::executor()
                .spawn_blocking(move || storage.execute(request))
                .await;
            reply_to(id, reply);
            in_flight.set(in_flight.get() - 1);
        })
        .detach();
    }
}
