//! Moving a message body from one socket to another, as its framing says:
//! a known length passes through as it is, the chunked coding is read and
//! written again (or written plain to an HTTP/1.0 client), and a body
//! delimited by the backend's close is chunked for an HTTP/1.1 client.
//!
//! Whatever is already waiting to be sent (a response head) goes out in
//! the same write as the first piece of the body: a small response costs
//! one write.

use super::h1::{CHUNKED_END, Chunk, ChunkedDecoder, Framing, chunk_start};
use bytes::{Buf, BytesMut};
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Read size for bodies.
const READ_SIZE: usize = 16 * 1024;

/// Bytes gathered in `out` are written once they reach this.
const WRITE_AT: usize = 16 * 1024;

/// Why a body stopped moving.
#[derive(Debug)]
pub(super) enum BodyError {
    /// The sending side closed early, failed, or broke the framing.
    Source(String),
    /// The receiving side failed.
    Sink(io::Error),
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::Source(why) => f.write_str(why),
            BodyError::Sink(e) => write!(f, "{e}"),
        }
    }
}

/// Where a body goes, and how it is written there.
pub(super) struct Sink<'a, W> {
    pub io: &'a mut W,
    /// Written before the body (and with its first piece); emptied.
    pub out: &'a mut Vec<u8>,
    /// Write the body in the chunked coding.
    pub chunked: bool,
}

impl<W: AsyncWrite + Unpin> Sink<'_, W> {
    fn put(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        if self.chunked {
            chunk_start(self.out, data.len());
            self.out.extend_from_slice(data);
            self.out.extend_from_slice(b"\r\n");
        } else {
            self.out.extend_from_slice(data);
        }
    }

    async fn flush(&mut self) -> Result<(), BodyError> {
        if !self.out.is_empty() {
            self.io.write_all(self.out).await.map_err(BodyError::Sink)?;
            self.out.clear();
        }
        Ok(())
    }

    async fn end(&mut self) -> Result<(), BodyError> {
        if self.chunked {
            self.out.extend_from_slice(CHUNKED_END);
        }
        self.flush().await
    }
}

/// Moves a body of `framing` from `src` (what is already in `buf` first)
/// to `sink`. On success, `buf` holds what followed the body, and the
/// body's length is returned.
pub(super) async fn relay<R, W>(
    src: &mut R,
    buf: &mut BytesMut,
    framing: Framing,
    mut sink: Sink<'_, W>,
) -> Result<u64, BodyError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut left = match framing {
        Framing::Length(n) => n,
        _ => 0,
    };
    let mut chunks = ChunkedDecoder::default();
    let mut moved = 0u64;
    loop {
        let ended = match framing {
            Framing::Empty => true,
            Framing::Length(_) => {
                let n = (buf.len() as u64).min(left) as usize;
                sink.put(&buf[..n]);
                moved += n as u64;
                buf.advance(n);
                left -= n as u64;
                left == 0
            }
            Framing::Chunked => loop {
                match chunks.step(buf).map_err(BodyError::Source)? {
                    Chunk::Data(n) => {
                        sink.put(&buf[..n]);
                        moved += n as u64;
                        buf.advance(n);
                    }
                    Chunk::Need => break false,
                    Chunk::End => break true,
                }
            },
            Framing::Close => {
                sink.put(buf);
                moved += buf.len() as u64;
                buf.clear();
                false
            }
        };
        if ended {
            return sink.end().await.map(|()| moved);
        }
        if sink.out.len() >= WRITE_AT || buf.is_empty() {
            sink.flush().await?;
        }
        if buf.capacity() - buf.len() < READ_SIZE / 4 {
            buf.reserve(READ_SIZE);
        }
        match src.read_buf(buf).await {
            Ok(0) if framing == Framing::Close => return sink.end().await.map(|()| moved),
            Ok(0) => return Err(BodyError::Source("closed before the body's end".into())),
            Ok(_) => {}
            Err(e) => return Err(BodyError::Source(e.to_string())),
        }
    }
}

/// Reads a body of exactly `len` bytes into memory (what is in `buf`
/// first).
pub(super) async fn read_whole<R: AsyncRead + Unpin>(
    src: &mut R,
    buf: &mut BytesMut,
    len: usize,
) -> Result<bytes::Bytes, BodyError> {
    while buf.len() < len {
        buf.reserve(len - buf.len());
        match src.read_buf(buf).await {
            Ok(0) => return Err(BodyError::Source("closed before the body's end".into())),
            Ok(_) => {}
            Err(e) => return Err(BodyError::Source(e.to_string())),
        }
    }
    Ok(buf.split_to(len).freeze())
}
