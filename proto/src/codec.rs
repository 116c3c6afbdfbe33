//! The services' codec: prost's, except that a [`HostsChunk`] carrying
//! `hosts_encoded` is written with those bytes as its `hosts` field. The
//! master encodes each part of its shared hosts table once ([`encode_hosts`])
//! and every session sends the same bytes: 10,000 sessions of a 10,000-node
//! cluster no longer copy and encode 10⁸ lines. What reaches the agent is
//! byte for byte what prost would have written for the lines themselves.

use crate::v1::{HostEntry, HostsChunk, MasterMessage, master_message::Msg};
use prost::Message;
use prost::bytes::{BufMut, Bytes};
use prost::encoding::{WireType, encode_key, encode_varint};
use std::any::Any;
use tonic::Status;
use tonic::codec::{BufferSettings, EncodeBuf, Encoder};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

/// `MasterMessage.msg`'s `hosts_chunk`, and `HostsChunk.hosts`.
const CHUNK_FIELD: u32 = 5;
const HOSTS_FIELD: u32 = 2;

/// `entries` as a `HostsChunk`'s field 2, to set as its `hosts_encoded`.
pub fn encode_hosts(entries: &[HostEntry]) -> Bytes {
    let mut buf = Vec::with_capacity(entries.iter().map(|e| e.encoded_len() + 4).sum());
    for e in entries {
        prost::encoding::message::encode(HOSTS_FIELD, e, &mut buf);
    }
    Bytes::from(buf)
}

/// Writes the message holding chunk `c` as prost would write it with
/// `hosts` holding its lines and then those of `hosts_encoded`.
fn write_chunk(c: &HostsChunk, buf: &mut impl BufMut) {
    use prost::encoding::{bool, message, uint64};
    let generation = if c.generation != 0 {
        uint64::encoded_len(1, &c.generation)
    } else {
        0
    };
    let more = if c.more {
        bool::encoded_len(3, &c.more)
    } else {
        0
    };
    let hosts = message::encoded_len_repeated(HOSTS_FIELD, &c.hosts);
    encode_key(CHUNK_FIELD, WireType::LengthDelimited, buf);
    encode_varint(
        (generation + hosts + c.hosts_encoded.len() + more) as u64,
        buf,
    );
    if c.generation != 0 {
        uint64::encode(1, &c.generation, buf);
    }
    message::encode_repeated(HOSTS_FIELD, &c.hosts, buf);
    buf.put_slice(&c.hosts_encoded);
    if c.more {
        bool::encode(3, &c.more, buf);
    }
}

/// Writes `m` as the master's sessions send it: prost's encoding, with a
/// chunk's `hosts_encoded` in place of its lines.
pub fn encode(m: &MasterMessage, buf: &mut impl BufMut) {
    match &m.msg {
        Some(Msg::HostsChunk(c)) if !c.hosts_encoded.is_empty() => write_chunk(c, buf),
        _ => m.encode_raw(buf),
    }
}

/// prost's codec, with pre-encoded hosts chunks written as they are.
#[derive(Debug, Clone)]
pub struct Codec<T, U>(ProstCodec<T, U>);

impl<T, U> Default for Codec<T, U> {
    fn default() -> Self {
        Codec(ProstCodec::default())
    }
}

impl<T, U> tonic::codec::Codec for Codec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ChunkEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ChunkEncoder(self.0.encoder())
    }

    fn decoder(&mut self) -> Self::Decoder {
        self.0.decoder()
    }
}

/// prost's encoder, but for a chunk of lines encoded already.
#[derive(Debug, Clone)]
pub struct ChunkEncoder<T>(ProstEncoder<T>);

impl<T: Message + 'static> Encoder for ChunkEncoder<T> {
    type Item = T;
    type Error = Status;

    fn encode(&mut self, item: T, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        match (&item as &dyn Any).downcast_ref::<MasterMessage>() {
            Some(m) => {
                encode(m, buf);
                Ok(())
            }
            None => self.0.encode(item, buf),
        }
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(i: usize) -> HostEntry {
        HostEntry {
            node_id: format!("node-{i}"),
            address: format!("10.0.{}.{}", i / 250, i % 250),
            names: vec![format!("web-{i}.shop.internal"), format!("web-{i}")],
        }
    }

    fn message(chunk: HostsChunk) -> MasterMessage {
        MasterMessage {
            msg: Some(Msg::HostsChunk(chunk)),
        }
    }

    #[test]
    fn a_chunk_of_lines_encoded_once_is_written_as_prost_writes_the_lines() {
        for (n, generation, more) in [(0, 0, false), (1, 7, true), (64, 300, false), (64, 0, true)]
        {
            let lines: Vec<HostEntry> = (0..n).map(line).collect();
            let plain = message(HostsChunk {
                generation,
                hosts: lines.clone(),
                more,
                hosts_encoded: Bytes::new(),
            });
            let once = HostsChunk {
                generation,
                hosts: Vec::new(),
                more,
                hosts_encoded: encode_hosts(&lines),
            };
            let mut written = Vec::new();
            write_chunk(&once, &mut written);
            assert_eq!(written, plain.encode_to_vec(), "{n} lines");
            // And the agent reads back the lines themselves.
            let read = MasterMessage::decode(written.as_slice()).unwrap();
            assert_eq!(read, plain);
        }
    }

    #[test]
    fn lines_given_besides_come_first() {
        let (a, b): (Vec<_>, Vec<_>) = ((0..3).map(line).collect(), (3..5).map(line).collect());
        let mixed = HostsChunk {
            generation: 2,
            hosts: a.clone(),
            more: false,
            hosts_encoded: encode_hosts(&b),
        };
        let mut written = Vec::new();
        write_chunk(&mixed, &mut written);
        let Some(Msg::HostsChunk(read)) = MasterMessage::decode(written.as_slice()).unwrap().msg
        else {
            panic!("not a chunk")
        };
        assert_eq!(read.hosts, [a, b].concat());
    }
}
