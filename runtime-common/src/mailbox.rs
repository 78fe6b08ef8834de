//! A connection's mailbox: what the hub shards, the storage thread and the federation
//! router send to one session, read by that session's task.
//!
//! Every connection has one, and most of the time it is empty, so it is built to
//! cost little while empty: one small allocation shared by both ends (a lock, a
//! queue that allocates only while it holds messages, the receiver's waker), where
//! runtimes' general-purpose unbounded channels keep a block of slots and several
//! wait lists per channel (over 1 KiB with tokio's). Many senders, one receiver,
//! unbounded, runtime-neutral: the receiver is polled with a [`Waker`], as any future.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use crate::Sink;

/// A new mailbox: the senders' end (cloned for whoever needs to reach the session)
/// and the receiver's.
pub fn mailbox<T>() -> (MailboxSender<T>, MailboxReceiver<T>) {
    let shared = Arc::new(Mutex::new(State {
        queue: VecDeque::new(),
        waker: None,
        closed: false,
    }));
    (MailboxSender(shared.clone()), MailboxReceiver(shared))
}

struct State<T> {
    queue: VecDeque<T>,
    /// The receiver's, while it waits.
    waker: Option<Waker>,
    /// The receiver is gone: messages are dropped.
    closed: bool,
}

fn lock<T>(state: &Mutex<State<T>>) -> MutexGuard<'_, State<T>> {
    // A panic while holding the lock leaves the queue consistent (every operation
    // on it is a single push, pop or swap).
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// The sending end of a [`mailbox`].
pub struct MailboxSender<T>(Arc<Mutex<State<T>>>);

impl<T> Clone for MailboxSender<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> std::fmt::Debug for MailboxSender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MailboxSender")
    }
}

impl<T> MailboxSender<T> {
    /// Queues `msg` and wakes the receiver; `msg` is dropped if the receiver is gone.
    pub fn send(&self, msg: T) {
        let waker = {
            let mut state = lock(&self.0);
            if state.closed {
                return;
            }
            state.queue.push_back(msg);
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T: Send + 'static> Sink<T> for MailboxSender<T> {
    fn send(&self, msg: T) {
        MailboxSender::send(self, msg)
    }
}

/// The receiving end of a [`mailbox`].
pub struct MailboxReceiver<T>(Arc<Mutex<State<T>>>);

impl<T> MailboxReceiver<T> {
    /// The next message, waiting for one (never ends: the session holds a sender of
    /// its own).
    pub fn recv(&mut self) -> Recv<'_, T> {
        Recv(self)
    }

    /// The next message if there is one now.
    pub fn try_recv(&mut self) -> Option<T> {
        pop(&mut lock(&self.0))
    }

    /// The next message, or registers `cx`'s waker to be woken by the next send.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<T> {
        let mut state = lock(&self.0);
        match pop(&mut state) {
            Some(msg) => Poll::Ready(msg),
            None => {
                match &mut state.waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    slot => *slot = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        }
    }
}

/// An idle session's queue keeps no room: the next message allocates it again.
fn pop<T>(state: &mut State<T>) -> Option<T> {
    let msg = state.queue.pop_front();
    if state.queue.is_empty() && state.queue.capacity() > 0 {
        state.queue = VecDeque::new();
    }
    msg
}

impl<T> Drop for MailboxReceiver<T> {
    fn drop(&mut self) {
        let (queue, waker) = {
            let mut state = lock(&self.0);
            state.closed = true;
            (std::mem::take(&mut state.queue), state.waker.take())
        };
        // Dropped outside the lock: a message may own another mailbox's sender.
        drop(queue);
        drop(waker);
    }
}

/// The future of [`MailboxReceiver::recv`].
pub struct Recv<'a, T>(&'a mut MailboxReceiver<T>);

impl<T> Future for Recv<'_, T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        self.get_mut().0.poll_recv(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn messages_come_out_in_order_and_a_waiting_receiver_is_woken() {
        let (tx, mut rx) = mailbox();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        assert_eq!(rx.poll_recv(&mut cx), Poll::Pending);
        let other = tx.clone();
        tx.send(1);
        other.send(2);
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "woken once, by the first send");
        assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(1));
        assert_eq!(rx.try_recv(), Some(2));
        assert_eq!(rx.try_recv(), None);
    }

    #[test]
    fn an_empty_mailbox_holds_no_queue() {
        let (tx, mut rx) = mailbox();
        for i in 0..100 {
            tx.send(i);
        }
        while rx.try_recv().is_some() {}
        assert_eq!(lock(&rx.0).queue.capacity(), 0);
    }

    #[test]
    fn messages_to_a_dropped_receiver_are_dropped() {
        let (tx, rx) = mailbox();
        let kept = Arc::new(());
        tx.send(kept.clone());
        drop(rx);
        assert_eq!(
            Arc::strong_count(&kept),
            1,
            "the queued message went with the receiver"
        );
        tx.send(kept.clone());
        assert_eq!(Arc::strong_count(&kept), 1, "and later ones are not kept");
    }

    #[test]
    fn senders_on_other_threads_reach_the_receiver() {
        let (tx, mut rx) = mailbox();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let tx = tx.clone();
                std::thread::spawn(move || (0..1000).for_each(|i| tx.send(t * 1000 + i)))
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        let mut got: Vec<i32> = std::iter::from_fn(|| rx.try_recv()).collect();
        got.sort();
        assert_eq!(got, (0..4000).collect::<Vec<_>>());
    }
}
