//! Big snapshots and deltas in small messages: the master splits one into
//! a head and `HostsChunk`s ([`in_parts`]); the agent puts them back
//! together before applying ([`HostsAssembly`]).

use cluster_proto as pb;

use super::WireError;

/// Hosts lines one message carries at most when an agent takes them in
/// parts: at about 100 bytes a line, a message stays near the transport's
/// 8 KiB buffer, which then never grows — a buffer sized to one big
/// snapshot would be kept for the session's whole life, on both sides
/// (10,000 agents × a 10,000-line snapshot held 3.3 GiB on the master).
pub const HOSTS_CHUNK_LINES: usize = 64;

/// `msg` as the messages that carry it to an agent that takes hosts lines
/// in parts: itself when it is small (or neither a snapshot nor a delta);
/// else the snapshot or delta with its first lines and `hosts_more`, then
/// `HostsChunk`s, the last with `more` false.
pub fn in_parts(mut msg: pb::MasterMessage) -> Vec<pb::MasterMessage> {
    use pb::master_message::Msg;
    let (generation, lines, more) = match &mut msg.msg {
        Some(Msg::Snapshot(s)) => (s.generation, &mut s.hosts, &mut s.hosts_more),
        Some(Msg::Delta(d)) => (d.generation, &mut d.hosts_upsert, &mut d.hosts_more),
        _ => return vec![msg],
    };
    if lines.len() <= HOSTS_CHUNK_LINES {
        return vec![msg];
    }
    let rest = lines.split_off(HOSTS_CHUNK_LINES);
    *more = true;
    let chunks = rest.len().div_ceil(HOSTS_CHUNK_LINES);
    let mut rest = rest.into_iter();
    let mut out = Vec::with_capacity(1 + chunks);
    out.push(msg);
    for i in 0..chunks {
        out.push(pb::MasterMessage {
            msg: Some(Msg::HostsChunk(pb::HostsChunk {
                generation,
                hosts: rest.by_ref().take(HOSTS_CHUNK_LINES).collect(),
                more: i + 1 < chunks,
                ..Default::default()
            })),
        });
    }
    out
}

/// Puts back together what [`in_parts`] split, on the agent.
#[derive(Debug, Default)]
pub struct HostsAssembly {
    /// A snapshot or delta whose last chunk has not come yet.
    pending: Option<pb::MasterMessage>,
}

impl HostsAssembly {
    /// The message once whole — as it came, or completed by its last
    /// chunk; `None` while chunks are still to come. A chunk out of place
    /// (none awaited, another generation) or anything else between the
    /// parts is an error.
    pub fn take(&mut self, msg: pb::MasterMessage) -> Result<Option<pb::MasterMessage>, WireError> {
        use pb::master_message::Msg;
        let out_of_place =
            || WireError::invalid("hosts_chunk", "a hosts chunk out of place".to_owned());
        match msg.msg {
            Some(Msg::HostsChunk(chunk)) => {
                let Some(pending) = self.pending.as_mut() else {
                    return Err(out_of_place());
                };
                let (generation, lines, more) = match &mut pending.msg {
                    Some(Msg::Snapshot(s)) => (s.generation, &mut s.hosts, &mut s.hosts_more),
                    Some(Msg::Delta(d)) => (d.generation, &mut d.hosts_upsert, &mut d.hosts_more),
                    _ => return Err(out_of_place()),
                };
                if generation != chunk.generation {
                    self.pending = None;
                    return Err(out_of_place());
                }
                lines.extend(chunk.hosts);
                if chunk.more {
                    return Ok(None);
                }
                *more = false;
                Ok(self.pending.take())
            }
            _ if self.pending.is_some() => {
                self.pending = None;
                Err(WireError::invalid(
                    "hosts_chunk",
                    "a message between the parts of a snapshot or delta".to_owned(),
                ))
            }
            Some(Msg::Snapshot(ref s)) if s.hosts_more => {
                self.pending = Some(msg);
                Ok(None)
            }
            Some(Msg::Delta(ref d)) if d.hosts_more => {
                self.pending = Some(msg);
                Ok(None)
            }
            _ => Ok(Some(msg)),
        }
    }
}

#[cfg(test)]
mod parts_tests {
    use super::*;
    use pb::master_message::Msg;

    fn snapshot(lines: usize) -> pb::MasterMessage {
        pb::MasterMessage {
            msg: Some(Msg::Snapshot(pb::Snapshot {
                generation: 7,
                hosts: (0..lines)
                    .map(|i| pb::HostEntry {
                        node_id: format!("n{i}"),
                        address: "10.0.0.1".into(),
                        names: vec![format!("n{i}")],
                    })
                    .collect(),
                ..Default::default()
            })),
        }
    }

    #[test]
    fn a_big_snapshot_goes_in_small_parts_and_comes_back_whole() {
        for lines in [0, 1, HOSTS_CHUNK_LINES, HOSTS_CHUNK_LINES + 1, 10_000] {
            let whole = snapshot(lines);
            let parts = in_parts(whole.clone());
            assert_eq!(parts.len(), lines.saturating_sub(1) / HOSTS_CHUNK_LINES + 1);
            assert!(
                parts
                    .iter()
                    .all(|p| prost::Message::encoded_len(p) < 8 * 1024)
            );
            let mut assembly = HostsAssembly::default();
            let mut out = Vec::new();
            for p in parts {
                out.extend(assembly.take(p).unwrap());
            }
            assert_eq!(out, [whole], "{lines} lines");
        }
    }

    #[test]
    fn a_chunk_out_of_place_or_a_message_between_parts_is_refused() {
        let parts = in_parts(snapshot(200));
        let mut assembly = HostsAssembly::default();
        assert!(
            assembly.take(parts[1].clone()).is_err(),
            "no snapshot awaited it"
        );
        assert_eq!(assembly.take(parts[0].clone()).unwrap(), None);
        assert!(assembly.take(snapshot(1)).is_err(), "between the parts");
        // After an error it starts afresh.
        assert_eq!(assembly.take(snapshot(1)).unwrap(), Some(snapshot(1)));
    }
}
