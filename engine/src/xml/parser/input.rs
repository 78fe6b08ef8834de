//! The stream's buffered input, as quick-xml reads it.
//!
//! quick-xml pulls bytes from a [`BufRead`] and takes the end of the data for the end of
//! the document, so it cannot be handed a half-arrived tag. [`Input`] shows it only the
//! bytes up to `limit`, the end of the last complete token found by the scanner; the
//! bytes after it stay buffered until their token is complete.

use std::io::{BufRead, Read};

#[derive(Default)]
pub(super) struct Input {
    /// Input not yet dropped: what quick-xml has not read, and the unfinished token.
    pub buf: Vec<u8>,
    /// Bytes quick-xml has read.
    pub pos: usize,
    /// Bytes quick-xml may read: `buf[pos..limit]` are complete tokens.
    pub limit: usize,
}

impl Input {
    /// True when quick-xml has complete tokens left to read.
    pub fn has_unread(&self) -> bool {
        self.pos < self.limit
    }

    /// Drops the bytes quick-xml has read, returning how many.
    pub fn drop_read(&mut self) -> usize {
        let n = self.pos;
        self.buf.drain(..n);
        self.pos = 0;
        self.limit -= n;
        n
    }
}

impl Read for Input {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for Input {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        Ok(&self.buf[self.pos..self.limit])
    }

    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.limit);
    }
}
