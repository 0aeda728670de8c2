//! [`InBuf`]: the receive buffer shared by the NATS connection and the HTTP server.
//!
//! Bytes `start..end` are received and not yet consumed; the rest of the `Vec` is already
//! initialised room, so a read goes straight into it without zeroing memory first, and
//! consuming never moves bytes (they move only when room runs short).

/// A receive buffer that reads in chunks of about `chunk` bytes.
#[derive(Debug)]
pub(crate) struct InBuf {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    chunk: usize,
}

impl InBuf {
    /// An empty buffer; memory comes with the first [`room`](InBuf::room).
    pub(crate) fn new(chunk: usize) -> Self {
        InBuf {
            buf: Vec::new(),
            start: 0,
            end: 0,
            chunk: chunk.max(16),
        }
    }

    /// The received bytes not yet consumed.
    pub(crate) fn data(&self) -> &[u8] {
        self.buf.get(self.start..self.end).unwrap_or_default()
    }

    /// True when no received byte waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Marks `n` received bytes as used.
    pub(crate) fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Room to read into (at least a quarter chunk): moves the unconsumed bytes to the
    /// front, and grows (doubling, at least a chunk) only when that is not enough.
    pub(crate) fn room(&mut self) -> &mut [u8] {
        if self.buf.len() - self.end < self.chunk / 4 {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.buf.len() - self.end < self.chunk / 4 {
                let grown = self.buf.len() + self.buf.len().max(self.chunk);
                self.buf.resize(grown, 0);
            }
        }
        self.buf.get_mut(self.end..).unwrap_or_default()
    }

    /// Records that `n` bytes were read into [`room`](InBuf::room).
    pub(crate) fn filled(&mut self, n: usize) {
        self.end = (self.end + n).min(self.buf.len());
    }

    /// Gives memory back when empty and larger than `keep` bytes (after a large message).
    pub(crate) fn shrink(&mut self, keep: usize) {
        if self.is_empty() && self.buf.len() > keep {
            self.buf = Vec::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::InBuf;

    #[test]
    fn reads_consumes_compacts_and_grows() {
        let mut b = InBuf::new(16);
        let room = b.room();
        assert_eq!(room.len(), 16);
        room[..10].copy_from_slice(b"0123456789");
        b.filled(10);
        b.consume(4);
        assert_eq!(b.data(), b"456789");
        // 6 bytes of room left (< 16/4? no): still room without moving.
        assert_eq!(b.room().len(), 6);
        b.filled(6);
        b.room()[..1].copy_from_slice(b"x"); // short of room: compacts, then has room
        b.filled(1);
        assert_eq!(&b.data()[..6], b"456789");
        assert_eq!(b.data().len(), 13);
        b.consume(13);
        assert!(b.is_empty());
        b.shrink(8);
        assert_eq!(b.room().len(), 16, "memory comes back on demand");
    }
}
