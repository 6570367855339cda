//! Writing chunks: the chunked transfer coding, without copying the data, and in most
//! cases without an allocation per chunk.

use bytes::Bytes;
use std::cell::Cell;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use tokio::net::TcpStream;

/// Bytes on their way out, written without copying the data: a response head, then one
/// chunk of the chunked transfer coding (its size line, its data, the CRLF that ends
/// it); either part may be absent. The data is a list of shared buffers (an event's
/// bytes are the same buffer for every subscriber), written together in vectored writes.
#[derive(Default)]
pub(super) struct Chunk {
    head: Bytes,
    size_line: SizeLine,
    data: Vec<Bytes>,
    suffix: &'static [u8],
    /// How much of the parts, in order, is written.
    written: usize,
    /// How much there is to write.
    len: usize,
}

/// The most buffers given to one vectored write; what is left goes in the next.
const MAX_SLICES: usize = 64;

/// The longest emptied list of buffers kept for reuse.
const MAX_SPARE: usize = 1024;

thread_local! {
    /// The emptied list of a written chunk, for the next chunk made on this thread: most
    /// chunks then allocate nothing, and an idle stream holds no list.
    static SPARE: Cell<Vec<Bytes>> = const { Cell::new(Vec::new()) };
}

/// An empty list for the buffers of a chunk; give it back with [`recycle`] if it ends
/// up unused.
pub(super) fn piece_list() -> Vec<Bytes> {
    SPARE.take()
}

/// Keeps `list`'s allocation for the next [`piece_list`] on this thread.
pub(super) fn recycle(mut list: Vec<Bytes>) {
    list.clear();
    if list.capacity() <= MAX_SPARE {
        SPARE.set(list);
    }
}

impl Chunk {
    /// A response head alone.
    pub(super) fn new(head: Bytes) -> Self {
        Chunk {
            len: head.len(),
            head,
            ..Chunk::default()
        }
    }

    /// `data` as one chunk.
    pub(super) fn data(data: Vec<Bytes>) -> Self {
        let mut chunk = Chunk::default();
        chunk.append_data(data);
        chunk
    }

    /// The zero-size chunk that ends the body.
    pub(super) fn last() -> Self {
        let mut chunk = Chunk::default();
        chunk.set_chunk(Vec::new(), 0);
        chunk
    }

    /// Adds `more` to the chunk's data, after the head if there is one; nothing of the
    /// chunk is written yet.
    pub(super) fn append_data(&mut self, mut more: Vec<Bytes>) {
        let mut data = std::mem::take(&mut self.data);
        if data.is_empty() {
            data = more;
        } else {
            data.append(&mut more);
            recycle(more);
        }
        let size = data.iter().map(Bytes::len).sum();
        // An empty chunk would end the body.
        if size > 0 {
            self.set_chunk(data, size);
        }
    }

    fn set_chunk(&mut self, data: Vec<Bytes>, size: usize) {
        debug_assert_eq!(self.written, 0);
        self.size_line = SizeLine::new(size);
        self.data = data;
        self.suffix = b"\r\n";
        self.len = self.head.len() + self.size_line.as_bytes().len() + size + self.suffix.len();
    }

    fn parts(&self) -> impl Iterator<Item = &[u8]> {
        [&self.head[..], self.size_line.as_bytes()]
            .into_iter()
            .chain(self.data.iter().map(|data| &data[..]))
            .chain(std::iter::once(self.suffix))
    }

    pub(super) fn is_written(&self) -> bool {
        self.written == self.len
    }

    /// Writes some of what is left.
    pub(super) fn poll_write(
        &mut self,
        stream: &mut TcpStream,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        let mut skip = self.written;
        let mut slices = [io::IoSlice::new(&[]); MAX_SLICES];
        let mut count = 0;
        for part in self.parts() {
            if skip >= part.len() {
                skip -= part.len();
                continue;
            }
            slices[count] = io::IoSlice::new(&part[skip..]);
            skip = 0;
            count += 1;
            if count == MAX_SLICES {
                break;
            }
        }
        match Pin::new(stream).poll_write_vectored(cx, &slices[..count]) {
            Poll::Ready(Ok(0)) => Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
            Poll::Ready(Ok(n)) => {
                self.written += n;
                if self.is_written() {
                    // Nothing of a written chunk is kept while the stream idles.
                    recycle(std::mem::take(&mut self.data));
                    *self = Chunk::default();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The size line of a chunk: its length in hexadecimal and CRLF, kept inline.
#[derive(Default)]
struct SizeLine {
    bytes: [u8; 18],
    len: u8,
}

impl SizeLine {
    fn new(size: usize) -> Self {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let digits = (usize::BITS - size.leading_zeros()).div_ceil(4).max(1) as usize;
        let mut line = SizeLine {
            bytes: [0; 18],
            len: (digits + 2) as u8,
        };
        for (index, byte) in line.bytes[..digits].iter_mut().enumerate() {
            *byte = HEX[(size >> (4 * (digits - 1 - index))) & 0xf];
        }
        line.bytes[digits..digits + 2].copy_from_slice(b"\r\n");
        line
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_of(chunk: &Chunk) -> Vec<u8> {
        chunk.parts().collect::<Vec<_>>().concat()
    }

    #[test]
    fn chunks_frame_their_data() {
        let mut chunk = Chunk::new(Bytes::from_static(b"HTTP/1.1 200 OK\r\n\r\n"));
        chunk.append_data(vec![Bytes::new()]);
        chunk.append_data(vec![Bytes::from_static(b"retry: 1000\n\n")]);
        assert_eq!(
            bytes_of(&chunk),
            b"HTTP/1.1 200 OK\r\n\r\nd\r\nretry: 1000\n\n\r\n"
        );
        assert_eq!(
            bytes_of(&Chunk::data(vec![Bytes::from_static(b"x")])),
            b"1\r\nx\r\n"
        );
        let pieces = vec![Bytes::from_static(b"ab"), Bytes::from_static(b"cde")];
        let mut chunk = Chunk::data(pieces);
        assert_eq!(bytes_of(&chunk), b"5\r\nabcde\r\n");
        chunk.append_data(vec![Bytes::from_static(b"fghijklmnopq")]);
        assert_eq!(bytes_of(&chunk), b"11\r\nabcdefghijklmnopq\r\n");
        assert_eq!(bytes_of(&Chunk::last()), b"0\r\n\r\n");
        for (size, line) in [
            (0, "0\r\n"),
            (9, "9\r\n"),
            (0x10, "10\r\n"),
            (65_536, "10000\r\n"),
        ] {
            assert_eq!(SizeLine::new(size).as_bytes(), line.as_bytes());
        }
        let largest = format!("{:x}\r\n", usize::MAX);
        assert_eq!(SizeLine::new(usize::MAX).as_bytes(), largest.as_bytes());
    }
}
