//! A running job as its page shows it: each node's output so far (kept to
//! the stored limit, so the record is built from it) and its result once
//! it has one. Every change bumps a version and stamps the node with it,
//! so a tab's stream sends only the nodes that changed since the version
//! it last saw, and a stream that resumes sends those nodes whole.

use cluster_model::JobNodeResult;
use cluster_model::job::OutputStream;
use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use tokio::sync::watch;

/// One node of a running job.
#[derive(Debug, Clone, Default)]
pub struct LiveNode {
    /// The version of this node's last change.
    pub changed: u64,
    /// Sent to its agent (a `--batch` window may hold it back).
    pub started: bool,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub truncated: bool,
    /// Its result once it has one (its output is the two fields above).
    pub result: Option<JobNodeResult>,
}

/// What a page renders and a stream compares against.
#[derive(Debug, Default)]
pub struct Shown {
    pub version: u64,
    pub nodes: BTreeMap<String, LiveNode>,
    /// The record is stored: the page can read it from there.
    pub finished: bool,
}

pub struct LiveJob {
    state: Mutex<Shown>,
    version: watch::Sender<u64>,
    cap: usize,
}

impl LiveJob {
    /// A job whose nodes keep at most `cap` bytes per stream.
    pub fn new(nodes: impl IntoIterator<Item = String>, cap: usize) -> LiveJob {
        let nodes = nodes
            .into_iter()
            .map(|n| (n, LiveNode::default()))
            .collect();
        LiveJob {
            state: Mutex::new(Shown {
                version: 0,
                nodes,
                finished: false,
            }),
            version: watch::Sender::new(0),
            cap,
        }
    }

    pub fn read(&self) -> MutexGuard<'_, Shown> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes on every change (coalesced).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    fn change(&self, f: impl FnOnce(&mut Shown, u64)) {
        let mut st = self.read();
        st.version += 1;
        let v = st.version;
        f(&mut st, v);
        drop(st);
        self.version.send_replace(v);
    }

    /// The node's command was sent to its agent.
    pub fn started(&self, node: &str) {
        self.change(|st, v| {
            let n = st.nodes.entry(node.to_owned()).or_default();
            n.changed = v;
            n.started = true;
        });
    }

    /// A chunk of a node's output, kept up to the limit (the rest is
    /// marked as cut).
    pub fn output(&self, node: &str, stream: OutputStream, data: &[u8]) {
        let cap = self.cap;
        self.change(|st, v| {
            let n = st.nodes.entry(node.to_owned()).or_default();
            n.changed = v;
            let buf = match stream {
                OutputStream::Stdout => &mut n.stdout,
                OutputStream::Stderr => &mut n.stderr,
            };
            let room = cap.saturating_sub(buf.len());
            if data.len() > room {
                n.truncated = true;
            }
            buf.extend_from_slice(&data[..data.len().min(room)]);
        });
    }

    /// A node's result, its output taken from what it streamed (any in
    /// `result` itself is added first, for nodes that never started);
    /// returns the whole result.
    pub fn finish(&self, mut result: JobNodeResult) -> JobNodeResult {
        let mut whole = None;
        self.change(|st, v| {
            let n = st.nodes.entry(result.node.clone()).or_default();
            n.changed = v;
            if !result.stdout.is_empty() {
                n.stdout = std::mem::take(&mut result.stdout);
            }
            if !result.stderr.is_empty() {
                n.stderr = std::mem::take(&mut result.stderr);
            }
            n.truncated |= result.truncated;
            let mut full = result;
            full.stdout = n.stdout.clone();
            full.stderr = n.stderr.clone();
            full.truncated = n.truncated;
            n.result = Some(JobNodeResult {
                stdout: Vec::new(),
                stderr: Vec::new(),
                ..full.clone()
            });
            whole = Some(full);
        });
        whole.expect("set above")
    }

    /// Whether a node has its result.
    pub fn is_done(&self, node: &str) -> bool {
        self.read()
            .nodes
            .get(node)
            .is_some_and(|n| n.result.is_some())
    }

    /// Every node that has a result, whole, in name order.
    pub fn results(&self) -> Vec<JobNodeResult> {
        self.read()
            .nodes
            .values()
            .filter_map(|n| {
                n.result.as_ref().map(|r| JobNodeResult {
                    stdout: n.stdout.clone(),
                    stderr: n.stderr.clone(),
                    truncated: n.truncated,
                    ..r.clone()
                })
            })
            .collect()
    }

    /// The record is stored.
    pub fn finished(&self) {
        self.change(|st, _| st.finished = true);
    }
}

/// The text of `buf[from..]` that ends on a character's boundary, and the
/// offset it reaches: a multi-byte character split across two chunks is
/// sent whole with the second. Bytes that are not UTF-8 show as U+FFFD;
/// with `all`, an incomplete character at the end does too.
pub fn text_from(buf: &[u8], from: usize, all: bool) -> (String, usize) {
    let from = from.min(buf.len());
    let rest = &buf[from..];
    let end = if all {
        rest.len()
    } else {
        rest.len() - incomplete_tail(rest)
    };
    (
        String::from_utf8_lossy(&rest[..end]).into_owned(),
        from + end,
    )
}

/// How many bytes at the end of `b` begin a character that needs more.
fn incomplete_tail(b: &[u8]) -> usize {
    for back in 1..=3.min(b.len()) {
        let c = b[b.len() - back];
        if c & 0xC0 == 0x80 {
            continue; // a continuation byte: look further back
        }
        let need = match c {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => 1,
        };
        return if need > back { back } else { 0 };
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use cluster_model::JobStatus;

    fn done(node: &str) -> JobNodeResult {
        JobNodeResult {
            node: node.into(),
            status: JobStatus::Ok,
            exit_code: 0,
            duration_ms: 5,
            error: String::new(),
            stdout: Vec::new(),
            stderr: Vec::new(),
            truncated: false,
        }
    }

    #[test]
    fn output_is_kept_to_the_limit_and_marked_cut() {
        let job = LiveJob::new(["n1".to_string()], 8);
        job.output("n1", OutputStream::Stdout, b"hello ");
        job.output("n1", OutputStream::Stdout, b"world");
        job.output("n1", OutputStream::Stderr, b"oops");
        let whole = job.finish(done("n1"));
        assert_eq!(whole.stdout, b"hello wo");
        assert_eq!(whole.stderr, b"oops");
        assert!(whole.truncated);
        assert_eq!(job.results(), vec![whole]);
    }

    #[test]
    fn each_change_stamps_its_node_with_a_new_version() {
        let job = LiveJob::new(["a".to_string(), "b".to_string()], 64);
        let mut rx = job.subscribe();
        job.output("a", OutputStream::Stdout, b"1");
        job.output("b", OutputStream::Stdout, b"2");
        job.finish(done("a"));
        assert!(rx.has_changed().unwrap());
        assert_eq!(*rx.borrow_and_update(), 3);
        let st = job.read();
        assert_eq!((st.nodes["a"].changed, st.nodes["b"].changed), (3, 2));
        assert!(st.nodes["a"].result.is_some() && st.nodes["b"].result.is_none());
    }

    #[test]
    fn a_character_split_across_chunks_is_sent_whole() {
        let s = "añb".as_bytes(); // ñ is two bytes
        assert_eq!(text_from(&s[..2], 0, false), ("a".into(), 1));
        assert_eq!(text_from(s, 1, false), ("ñb".into(), 4));
        // At the end of the output, what is left shows as it is.
        assert_eq!(text_from(&s[..2], 0, true), ("a\u{fffd}".into(), 2));
        // Bytes that are not UTF-8 never stall the stream.
        assert_eq!(text_from(b"a\xffb", 0, false), ("a\u{fffd}b".into(), 3));
        assert_eq!(text_from(b"\xff\xff\xff\xff\xff", 0, false).1, 5);
        assert_eq!(text_from(b"x", 5, false), (String::new(), 1));
    }
}
