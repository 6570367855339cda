//! Writing chunks: the chunked transfer coding, without a copy or an allocation per chunk.

use bytes::Bytes;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use tokio::net::TcpStream;

/// Bytes on their way out, written without copying the data: a response head, then one
/// chunk of the chunked transfer coding (its size line, its data, the CRLF that ends
/// it); either part may be absent. Nothing is allocated per chunk.
#[derive(Default)]
pub(super) struct Chunk {
    head: Bytes,
    size_line: SizeLine,
    data: Bytes,
    suffix: &'static [u8],
    /// How much of the parts, in order, is written.
    written: usize,
}

impl Chunk {
    /// A response head alone.
    pub(super) fn new(head: Bytes) -> Self {
        Chunk {
            head,
            ..Chunk::default()
        }
    }

    /// `data` as one chunk.
    pub(super) fn data(data: Bytes) -> Self {
        let mut chunk = Chunk::default();
        chunk.append_data(data);
        chunk
    }

    /// The zero-size chunk that ends the body.
    pub(super) fn last() -> Self {
        let mut chunk = Chunk::default();
        chunk.set_chunk(Bytes::new());
        chunk
    }

    /// Adds `data` as the chunk after the head (nothing written yet, no chunk yet).
    pub(super) fn append_data(&mut self, data: Bytes) {
        // An empty chunk would end the body.
        if !data.is_empty() {
            self.set_chunk(data);
        }
    }

    fn set_chunk(&mut self, data: Bytes) {
        debug_assert!(self.written == 0 && self.suffix.is_empty());
        self.size_line = SizeLine::new(data.len());
        self.data = data;
        self.suffix = b"\r\n";
    }

    fn parts(&self) -> [&[u8]; 4] {
        [
            &self.head,
            self.size_line.as_bytes(),
            &self.data,
            self.suffix,
        ]
    }

    pub(super) fn is_written(&self) -> bool {
        self.written == self.parts().iter().map(|part| part.len()).sum::<usize>()
    }

    /// Writes some of what is left.
    pub(super) fn poll_write(
        &mut self,
        stream: &mut TcpStream,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        let mut skip = self.written;
        let mut slices = [io::IoSlice::new(&[]); 4];
        let mut count = 0;
        for part in self.parts() {
            if skip >= part.len() {
                skip -= part.len();
                continue;
            }
            slices[count] = io::IoSlice::new(&part[skip..]);
            skip = 0;
            count += 1;
        }
        match Pin::new(stream).poll_write_vectored(cx, &slices[..count]) {
            Poll::Ready(Ok(0)) => Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
            Poll::Ready(Ok(n)) => {
                self.written += n;
                if self.is_written() {
                    // Nothing of a written chunk is kept while the stream idles.
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
        chunk.parts().concat()
    }

    #[test]
    fn chunks_frame_their_data() {
        let mut chunk = Chunk::new(Bytes::from_static(b"HTTP/1.1 200 OK\r\n\r\n"));
        chunk.append_data(Bytes::new());
        chunk.append_data(Bytes::from_static(b"retry: 1000\n\n"));
        assert_eq!(
            bytes_of(&chunk),
            b"HTTP/1.1 200 OK\r\n\r\nd\r\nretry: 1000\n\n\r\n"
        );
        assert_eq!(
            bytes_of(&Chunk::data(Bytes::from_static(b"x"))),
            b"1\r\nx\r\n"
        );
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
