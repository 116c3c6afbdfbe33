//! The master's session messages as a simulated agent reads them: only
//! what it answers with (a state's generation and whether parts follow, a
//! job's id). prost steps over every other field without decoding it, so
//! the hosts lines — 10⁸ of them when 10,000 agents each take a
//! 10,000-line table — are skipped, not built as strings and dropped.
//!
//! A real agent decodes its lines on its own machine; here one process
//! plays every agent on the master's cores, and decoding 10⁸ lines there
//! measured the load generator, not the master. The master still encodes,
//! encrypts and sends every byte, and each simulated agent still reads
//! and decrypts every byte before it acknowledges.

use super::pb;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;
use tonic::{Request, Status, Streaming};

/// `cluster.v1.MasterMessage`, with the fields a simulated agent reads.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct MasterMessage {
    /// Tag 4 (`CancelJob`) is left out: a simulated agent finishes every
    /// job at once, so there is nothing to cancel; it is skipped as an
    /// unknown field and the message reads as empty.
    #[prost(oneof = "In", tags = "1, 2, 3, 5")]
    pub(crate) msg: Option<In>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub(crate) enum In {
    #[prost(message, tag = "1")]
    Snapshot(Snapshot),
    #[prost(message, tag = "2")]
    Delta(Delta),
    #[prost(message, tag = "3")]
    Run(RunJob),
    #[prost(message, tag = "5")]
    HostsChunk(HostsChunk),
}

/// `cluster.v1.Snapshot`: `generation` (1) and `hosts_more` (6).
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Snapshot {
    #[prost(uint64, tag = "1")]
    pub(crate) generation: u64,
    #[prost(bool, tag = "6")]
    pub(crate) hosts_more: bool,
}

/// `cluster.v1.Delta`: `generation` (1) and `hosts_more` (8).
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Delta {
    #[prost(uint64, tag = "1")]
    pub(crate) generation: u64,
    #[prost(bool, tag = "8")]
    pub(crate) hosts_more: bool,
}

/// `cluster.v1.HostsChunk`: `generation` (1) and `more` (3).
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct HostsChunk {
    #[prost(uint64, tag = "1")]
    pub(crate) generation: u64,
    #[prost(bool, tag = "3")]
    pub(crate) more: bool,
}

/// `cluster.v1.RunJob`: `job_id` (1).
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct RunJob {
    #[prost(string, tag = "1")]
    pub(crate) job_id: String,
}

/// `AgentService.Session` with the master's messages read as above.
pub(crate) async fn session(
    channel: Channel,
    outbound: impl tokio_stream::Stream<Item = pb::AgentMessage> + Send + 'static,
) -> Result<Streaming<MasterMessage>, Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(format!("the channel is not ready: {e}")))?;
    let codec = tonic_prost::ProstCodec::<pb::AgentMessage, MasterMessage>::default();
    let path = PathAndQuery::from_static("/cluster.v1.AgentService/Session");
    Ok(grpc
        .streaming(Request::new(outbound), path, codec)
        .await?
        .into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    /// Every field the light types keep reads as the full types wrote it,
    /// and the hosts lines are stepped over.
    #[test]
    fn reads_what_the_master_writes() {
        let entry = pb::HostEntry {
            node_id: "sim-00001".into(),
            address: "127.0.0.1".into(),
            names: vec!["sim-00001".into()],
        };
        let cases = [
            (
                pb::master_message::Msg::Snapshot(pb::Snapshot {
                    generation: 7,
                    hosts: vec![entry.clone(); 3],
                    hosts_more: true,
                    ..Default::default()
                }),
                Some(In::Snapshot(Snapshot {
                    generation: 7,
                    hosts_more: true,
                })),
            ),
            (
                pb::master_message::Msg::Delta(pb::Delta {
                    generation: 8,
                    hosts_upsert: vec![entry.clone()],
                    hosts_removed: vec!["sim-00002".into()],
                    ..Default::default()
                }),
                Some(In::Delta(Delta {
                    generation: 8,
                    hosts_more: false,
                })),
            ),
            (
                pb::master_message::Msg::HostsChunk(pb::HostsChunk {
                    generation: 9,
                    hosts: vec![entry; 64],
                    more: false,
                    ..Default::default()
                }),
                Some(In::HostsChunk(HostsChunk {
                    generation: 9,
                    more: false,
                })),
            ),
            (
                pb::master_message::Msg::Run(pb::RunJob {
                    job_id: "j-1".into(),
                    argv: vec!["true".into()],
                    ..Default::default()
                }),
                Some(In::Run(RunJob {
                    job_id: "j-1".into(),
                })),
            ),
            (
                pb::master_message::Msg::Cancel(pb::CancelJob {
                    job_id: "j-1".into(),
                }),
                None,
            ),
        ];
        for (full, light) in cases {
            let bytes = pb::MasterMessage { msg: Some(full) }.encode_to_vec();
            let read = MasterMessage::decode(bytes.as_slice()).expect("decodes");
            assert_eq!(read.msg, light);
        }
    }
}
