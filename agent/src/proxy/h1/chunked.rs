//! The chunked transfer coding (RFC 9112 §7.1): read out of a buffer a
//! piece at a time, and written.

use super::write::StrOut;
use bytes::{Buf, BytesMut};
use std::fmt::Write as _;

/// A chunk-size line (extensions included) longer than this is refused.
pub(super) const MAX_CHUNK_LINE: usize = 4096;
/// Trailer section of a chunked body, at most (it is read and dropped).
const MAX_TRAILERS: usize = 64 * 1024;
/// Starts a chunk of `len` bytes in the chunked coding.
pub fn chunk_start(out: &mut Vec<u8>, len: usize) {
    write!(StrOut(out), "{len:x}\r\n").expect("writing to a Vec");
}

/// The last chunk and the end of the chunked body.
pub const CHUNKED_END: &[u8] = b"0\r\n\r\n";

/// Reads the chunked coding (RFC 9112 §7.1) out of a buffer, a piece at a
/// time: the chunk framing is consumed here, the data is left for the
/// caller to take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChunkedDecoder {
    state: ChunkState,
    /// Trailer bytes seen so far.
    trailers: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum ChunkState {
    /// Expecting a chunk-size line.
    #[default]
    Size,
    /// Bytes of data left in the current chunk.
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// Trailer lines, up to an empty one.
    Trailers,
    Done,
}

/// What the decoder found at the front of the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunk {
    /// This many bytes at the front of the buffer are data: take them.
    Data(usize),
    /// More input is needed.
    Need,
    /// The body ended (trailers consumed).
    End,
}

impl ChunkedDecoder {
    /// Consumes framing from the front of `buf` until data, the end, or
    /// the end of `buf`. Data reported must be removed from `buf` by the
    /// caller before the next call.
    pub fn step(&mut self, buf: &mut BytesMut) -> Result<Chunk, String> {
        loop {
            match self.state {
                ChunkState::Done => return Ok(Chunk::End),
                ChunkState::Data(0) => self.state = ChunkState::DataEnd,
                ChunkState::Data(left) => {
                    if buf.is_empty() {
                        return Ok(Chunk::Need);
                    }
                    let n = (buf.len() as u64).min(left) as usize;
                    self.state = ChunkState::Data(left - n as u64);
                    return Ok(Chunk::Data(n));
                }
                ChunkState::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(Chunk::Need);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err("a chunk's data is not followed by CRLF".into());
                    }
                    buf.advance(2);
                    self.state = ChunkState::Size;
                }
                ChunkState::Size => {
                    let Some(end) = find_crlf(buf) else {
                        if buf.len() > MAX_CHUNK_LINE {
                            return Err("a chunk-size line is too long".into());
                        }
                        return Ok(Chunk::Need);
                    };
                    let size = chunk_size(&buf[..end])?;
                    buf.advance(end + 2);
                    self.state = if size == 0 {
                        ChunkState::Trailers
                    } else {
                        ChunkState::Data(size)
                    };
                }
                ChunkState::Trailers => {
                    let Some(end) = find_crlf(buf) else {
                        if self.trailers + buf.len() > MAX_TRAILERS {
                            return Err("the trailer section is too large".into());
                        }
                        return Ok(Chunk::Need);
                    };
                    self.trailers += end + 2;
                    if self.trailers > MAX_TRAILERS {
                        return Err("the trailer section is too large".into());
                    }
                    buf.advance(end + 2);
                    if end == 0 {
                        self.state = ChunkState::Done;
                    }
                }
            }
        }
    }
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

/// The size of a chunk-size line (`1a;ext=1`), extensions ignored.
fn chunk_size(line: &[u8]) -> Result<u64, String> {
    let digits = line
        .split(|b| *b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii_end();
    if digits.is_empty() || digits.len() > 15 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return Err(format!(
            "bad chunk size {:?}",
            String::from_utf8_lossy(&line[..line.len().min(32)])
        ));
    }
    let s = std::str::from_utf8(digits).map_err(|e| e.to_string())?;
    u64::from_str_radix(s, 16).map_err(|e| e.to_string())
}
