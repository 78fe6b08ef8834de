//! The bytes a connection has to write and the socket has not taken yet.
//!
//! A peer that does not read (a slow or malicious client, a stuck server) must not
//! make the server hold ever more of what is sent to it. The adapters never wait on
//! a write while the session goes on: what the socket does not take at once waits
//! here, the session keeps draining its mailbox (so nothing piles up unseen in the
//! channel behind it), and past `max_send_queue_size` bytes the stream ends with
//! `policy-violation` (RFC 6120 §4.9.3.14) and the connection closes. Before, a
//! blocked write held the session's task while its unbounded mailbox grew.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use meerkat_engine::stream::StreamError;

use crate::Session;

/// `max_send_queue_size` when not configured: room for bursts (an offline-message
/// flush, a roster) to a client on a slow link, not for a client that stopped
/// reading.
pub const DEFAULT_MAX_SEND_QUEUE: usize = 1024 * 1024;

/// How long a closing connection may take to write what it still has (its stream
/// error included) before the socket is dropped anyway.
pub const CLOSE_FLUSH: Duration = Duration::from_secs(5);

/// Unwritten bytes of one connection, in order.
#[derive(Debug)]
pub struct Outbox {
    chunks: VecDeque<Vec<u8>>,
    /// Bytes of the first chunk already written.
    head: usize,
    queued: usize,
    limit: usize,
    overflowed: bool,
}

impl Outbox {
    /// An empty queue that overflows past `limit` bytes (`None`: never).
    pub fn new(limit: Option<usize>) -> Self {
        Self {
            chunks: VecDeque::new(),
            head: 0,
            queued: 0,
            limit: limit.unwrap_or(usize::MAX),
            overflowed: false,
        }
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.queued == 0
    }

    /// Bytes waiting.
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// The next bytes to write (empty when nothing waits).
    pub fn front(&self) -> &[u8] {
        self.chunks.front().map_or(&[], |c| &c[self.head..])
    }

    /// `n` bytes of [`Outbox::front`] were written.
    pub fn consume(&mut self, mut n: usize) {
        self.queued -= n.min(self.queued);
        while n > 0 {
            let Some(first) = self.chunks.front() else { break };
            let left = first.len() - self.head;
            if n < left {
                self.head += n;
                return;
            }
            n -= left;
            self.head = 0;
            self.chunks.pop_front();
        }
        if self.chunks.is_empty() {
            // Give the memory of a burst back.
            self.chunks = VecDeque::new();
        }
    }

    /// Queues `bytes`; true the first time the queue goes past its limit.
    pub fn push(&mut self, bytes: Vec<u8>) -> bool {
        if bytes.is_empty() {
            return false;
        }
        self.queued += bytes.len();
        self.chunks.push_back(bytes);
        if self.queued > self.limit && !self.overflowed {
            self.overflowed = true;
            return true;
        }
        false
    }

    /// Writes what the socket takes now with `write`, a non-blocking write that
    /// returns `WouldBlock` when the socket is full. `Err` only for a broken socket.
    pub fn write_with(
        &mut self,
        mut write: impl FnMut(&[u8]) -> std::io::Result<usize>,
    ) -> std::io::Result<()> {
        while !self.is_empty() {
            match write(self.front()) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => self.consume(n),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl Session {
    /// Bytes the session wants written: queued in `outbox`; when that takes the
    /// queue past its limit, the stream ends with `policy-violation` (whose bytes
    /// and the close come next from the session's effects).
    pub fn queue_write(&mut self, outbox: &mut Outbox, bytes: Vec<u8>, now: Instant) {
        if outbox.push(bytes) {
            tracing::warn!(
                queued = outbox.queued(),
                limit = outbox.limit,
                "the peer does not read what it is sent: closing (max_send_queue_size)"
            );
            self.end_with_error(
                StreamError::PolicyViolation,
                format!("too much unread data ({} bytes waiting)", outbox.queued()),
                now,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_writes_keep_order() {
        let mut o = Outbox::new(None);
        o.push(b"hello ".to_vec());
        o.push(b"world".to_vec());
        let mut written = Vec::new();
        let budget = [4usize, 3, 100];
        let mut i = 0;
        o.write_with(|b| {
            let n = budget.get(i).copied().unwrap_or(0).min(b.len());
            i += 1;
            if n == 0 {
                return Err(std::io::ErrorKind::WouldBlock.into());
            }
            written.extend_from_slice(&b[..n]);
            Ok(n)
        })
        .unwrap();
        assert_eq!(written, b"hello world");
        assert!(o.is_empty());
    }

    #[test]
    fn the_limit_is_reported_once() {
        let mut o = Outbox::new(Some(10));
        assert!(!o.push(vec![0; 10]));
        assert!(o.push(vec![0; 1]));
        assert!(!o.push(vec![0; 100]));
        assert_eq!(o.queued(), 111);
        o.consume(105);
        assert_eq!(o.front().len(), 6);
    }
}
