//! The access log: one line per request, as JSON (one object a line) or
//! as nginx's `combined` format followed by the host, the upstream, the
//! upstream's address, the request time and the upstream's time.
//!
//! The request path never waits on it: a finished request formats its
//! line and offers it to a bounded queue ([`QUEUE_LINES`]); a full queue
//! drops the line and counts it (`cluster_agent_proxy_access_log_dropped_total`).
//! One thread of its own writes the lines, flushes whenever the queue is
//! empty, and reopens the file when it was moved or deleted (logrotate
//! without `copytruncate`), checked each second.

use super::forward::Client;
use super::h1::RequestHead;
use super::upstream::Upstream;
use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant, SystemTime};

/// Lines waiting to be written, at most; more are dropped (and counted).
pub const QUEUE_LINES: usize = 16 * 1024;

/// How often the writer checks whether its file was moved or deleted.
const REOPEN_CHECK: Duration = Duration::from_secs(1);

/// How the lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object a line.
    Json,
    /// nginx's `combined`, then `"host" "upstream" upstream_addr
    /// request_time upstream_time` (`-` for what a request has not).
    Combined,
}

/// Where the lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Stdout,
    File(PathBuf),
}

/// A running access log; cloned into the proxy, dropped with it (the
/// writer writes what is queued and ends).
pub struct AccessLog {
    tx: SyncSender<Vec<u8>>,
    format: Format,
    dropped: Arc<AtomicU64>,
}

/// One finished request, as the log shows it.
#[derive(Serialize)]
pub(super) struct Entry<'a> {
    /// Unix time in seconds, with milliseconds.
    #[serde(skip)]
    pub time: SystemTime,
    pub client: &'a str,
    pub method: &'a str,
    /// The request target as received.
    pub target: &'a str,
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub protocol: &'static str,
    pub host: &'a str,
    pub status: u16,
    /// Body bytes sent to the client (nginx's `$body_bytes_sent`).
    pub bytes: u64,
    pub referer: &'a str,
    pub user_agent: &'a str,
    /// The upstream routed to, `""` when none was.
    pub upstream: &'a str,
    /// The server that answered, `""` when none did.
    pub upstream_addr: &'a str,
    /// From the request's head read to its response's last byte.
    #[serde(serialize_with = "seconds")]
    pub request_time: Duration,
    /// From sending to the server to its response head; absent when no
    /// server answered.
    #[serde(serialize_with = "maybe_seconds")]
    pub upstream_time: Option<Duration>,
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1e3).round() / 1e3)
}

fn maybe_seconds<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => seconds(d, s),
        None => s.serialize_none(),
    }
}

impl AccessLog {
    /// Opens `target` (a file is created if missing and appended to) and
    /// starts the writer. Fails, naming the file, when it cannot be
    /// opened.
    pub fn open(target: Target, format: Format) -> io::Result<AccessLog> {
        let out = Output::open(&target)?;
        let (tx, rx) = sync_channel(QUEUE_LINES);
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || write_lines(out, target, rx))?;
        Ok(AccessLog {
            tx,
            format,
            dropped: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Lines dropped because the queue was full (or the writer gone).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub(super) fn dropped_counter(&self) -> Arc<AtomicU64> {
        self.dropped.clone()
    }

    /// Formats `e` and queues it, or drops it when the queue is full.
    pub(super) fn record(&self, e: &Entry<'_>) {
        let line = match self.format {
            Format::Json => json_line(e),
            Format::Combined => combined_line(e),
        };
        match self.tx.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl AccessLog {
    /// The line of a request the proxy answered, `routed` to an upstream
    /// or not, that took `took` from its head read to its last byte.
    pub(super) fn record_request<IO>(
        &self,
        client: &Client<IO>,
        req: &RequestHead,
        routed: Option<&Upstream>,
        took: Duration,
    ) {
        let (upstream_addr, upstream_time) = match &client.answered_by {
            Some((server, time)) => (&*server.addr, Some(*time)),
            None => ("", None),
        };
        self.record(&Entry {
            time: SystemTime::now(),
            client: &client.ip,
            method: req.method(),
            target: req.target(),
            protocol: if req.minor == 0 {
                "HTTP/1.0"
            } else {
                "HTTP/1.1"
            },
            host: text(req.host()),
            status: client.status,
            bytes: client.sent,
            referer: text(req.fields.get(b"referer")),
            user_agent: text(req.fields.get(b"user-agent")),
            upstream: routed.map_or("", |u| &u.name),
            upstream_addr,
            request_time: took,
            upstream_time,
        });
    }

    /// The line of a request refused before its head could be read (400,
    /// 431, 501): nothing of it is known but who sent it.
    pub(super) fn record_refused(&self, client: &str, status: u16, bytes: u64, took: Duration) {
        self.record(&Entry {
            time: SystemTime::now(),
            client,
            method: "",
            target: "",
            protocol: "",
            host: "",
            status,
            bytes,
            referer: "",
            user_agent: "",
            upstream: "",
            upstream_addr: "",
            request_time: took,
            upstream_time: None,
        });
    }
}

/// A header's value as text, `""` when absent or not UTF-8.
fn text(v: Option<&[u8]>) -> &str {
    v.and_then(|v| std::str::from_utf8(v).ok()).unwrap_or("")
}

/// `{"time": …, …}` and a newline.
fn json_line(e: &Entry<'_>) -> Vec<u8> {
    #[derive(Serialize)]
    struct Line<'a> {
        time: f64,
        #[serde(flatten)]
        entry: &'a Entry<'a>,
    }
    let time = e
        .time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| (d.as_millis() as f64) / 1e3);
    let mut out = serde_json::to_vec(&Line { time, entry: e }).unwrap_or_default();
    out.push(b'\n');
    out
}

/// nginx's `combined` and the extra fields.
fn combined_line(e: &Entry<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    let dash = |s: &str| {
        if s.is_empty() {
            "-".to_owned()
        } else {
            escape(s)
        }
    };
    let upstream_time = e
        .upstream_time
        .map_or("-".to_owned(), |d| format!("{:.3}", d.as_secs_f64()));
    // A request refused unread has no request line: "-", as nginx logs it.
    let request = if e.method.is_empty() {
        "-".to_owned()
    } else {
        format!("{} {} {}", escape(e.method), escape(e.target), e.protocol)
    };
    let _ = writeln!(
        out,
        "{} - - [{}] \"{}\" {} {} \"{}\" \"{}\" \"{}\" \"{}\" {} {:.3} {}",
        escape(e.client),
        clf_time(e.time),
        request,
        e.status,
        e.bytes,
        dash(e.referer),
        dash(e.user_agent),
        dash(e.host),
        dash(e.upstream),
        dash(e.upstream_addr),
        e.request_time.as_secs_f64(),
        upstream_time,
    );
    out
}

/// As nginx escapes a logged value: `"`, `\` and bytes outside printable
/// ASCII as `\xHH`, so a value can neither end its field nor its line.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b) {
            out.push_str(&format!("\\x{b:02X}"));
        } else {
            out.push(b as char);
        }
    }
    out
}

/// `02/Dec/2026:20:04:15 +0000`: the common log format's time, in UTC.
fn clf_time(t: SystemTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    // `2026-12-02T20:04:15Z`
    let rfc = humantime::format_rfc3339_seconds(t).to_string();
    let month = rfc[5..7].parse::<usize>().map_or("???", |m| MONTHS[m - 1]);
    format!(
        "{}/{month}/{}:{} +0000",
        &rfc[8..10],
        &rfc[0..4],
        &rfc[11..19]
    )
}

/// The writer's end: stdout, or a file with what it was opened as.
enum Output {
    Stdout(io::BufWriter<io::Stdout>),
    File {
        file: io::BufWriter<File>,
        dev_ino: (u64, u64),
    },
}

impl Output {
    fn open(target: &Target) -> io::Result<Output> {
        Ok(match target {
            Target::Stdout => Output::Stdout(io::BufWriter::new(io::stdout())),
            Target::File(path) => {
                let file = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| {
                        io::Error::new(
                            e.kind(),
                            format!("cannot open the access log {}: {e}", path.display()),
                        )
                    })?;
                let meta = file.metadata()?;
                Output::File {
                    file: io::BufWriter::with_capacity(64 * 1024, file),
                    dev_ino: (meta.dev(), meta.ino()),
                }
            }
        })
    }

    fn writer(&mut self) -> &mut dyn Write {
        match self {
            Output::Stdout(w) => w,
            Output::File { file, .. } => file,
        }
    }

    /// Whether the path no longer names the file being written.
    fn moved(&self, target: &Target) -> bool {
        match (self, target) {
            (Output::File { dev_ino, .. }, Target::File(path)) => {
                std::fs::metadata(path).map_or(true, |m| (m.dev(), m.ino()) != *dev_ino)
            }
            _ => false,
        }
    }
}

fn write_lines(mut out: Output, target: Target, rx: Receiver<Vec<u8>>) {
    let mut checked = Instant::now();
    loop {
        let line = match rx.recv_timeout(REOPEN_CHECK) {
            Ok(line) => Some(line),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        if let Some(line) = line {
            write_or_warn(&mut out, &line);
            // Everything queued meanwhile, then one flush.
            while let Ok(line) = rx.try_recv() {
                write_or_warn(&mut out, &line);
            }
        }
        if let Err(e) = out.writer().flush() {
            tracing::warn!(error = %e, "proxy: cannot write the access log");
        }
        if checked.elapsed() >= REOPEN_CHECK {
            checked = Instant::now();
            if out.moved(&target) {
                match Output::open(&target) {
                    Ok(new) => out = new,
                    Err(e) => tracing::warn!(error = %e, "proxy: cannot reopen the access log"),
                }
            }
        }
    }
    let _ = out.writer().flush();
}

fn write_or_warn(out: &mut Output, line: &[u8]) {
    if let Err(e) = out.writer().write_all(line) {
        tracing::warn!(error = %e, "proxy: cannot write the access log");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry<'static> {
        Entry {
            time: SystemTime::UNIX_EPOCH + Duration::from_millis(1_796_243_055_250),
            client: "127.0.0.9",
            method: "GET",
            target: "/a?b=\"1\"",
            protocol: "HTTP/1.1",
            host: "shop.example",
            status: 200,
            bytes: 1234,
            referer: "",
            user_agent: "curl/8.0\n",
            upstream: "app",
            upstream_addr: "10.0.0.5:8080",
            request_time: Duration::from_micros(12_345),
            upstream_time: Some(Duration::from_micros(10_001)),
        }
    }

    #[test]
    fn combined_is_nginxs_with_values_escaped_then_the_extra_fields() {
        let line = String::from_utf8(combined_line(&entry())).unwrap();
        assert_eq!(
            line,
            "127.0.0.9 - - [02/Dec/2026:20:24:15 +0000] \"GET /a?b=\\x221\\x22 HTTP/1.1\" 200 1234 \
             \"-\" \"curl/8.0\\x0A\" \"shop.example\" \"app\" 10.0.0.5:8080 0.012 0.010\n"
        );
        let mut e = entry();
        e.upstream_time = None;
        e.upstream = "";
        e.upstream_addr = "";
        let line = String::from_utf8(combined_line(&e)).unwrap();
        assert!(
            line.ends_with("\"shop.example\" \"-\" - 0.012 -\n"),
            "{line}"
        );
    }

    #[test]
    fn json_is_one_object_a_line() {
        let line = json_line(&entry());
        assert_eq!(line.last(), Some(&b'\n'));
        assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1);
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["time"], 1_796_243_055.25);
        assert_eq!(v["user_agent"], "curl/8.0\n");
        assert_eq!(v["upstream_time"], 0.01);
        assert_eq!(v["request_time"], 0.012);
        assert_eq!(v["status"], 200);
        assert_eq!(v["bytes"], 1234);
    }

    #[test]
    fn a_full_queue_drops_and_counts_and_never_blocks() {
        // A writer that has fallen behind: nothing reads the queue.
        let (tx, _rx) = sync_channel(2);
        let log = AccessLog {
            tx,
            format: Format::Json,
            dropped: Arc::new(AtomicU64::new(0)),
        };
        for _ in 0..5 {
            log.record(&entry());
        }
        assert_eq!(log.dropped(), 3);
    }

    #[test]
    fn the_writer_writes_every_line_queued_then_ends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let log = AccessLog::open(Target::File(path.clone()), Format::Json).unwrap();
        for _ in 0..1000 {
            log.record(&entry());
        }
        let dropped = log.dropped() as usize;
        drop(log);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = std::fs::read_to_string(&path).unwrap();
            if text.lines().count() + dropped == 1000 {
                for line in text.lines() {
                    serde_json::from_str::<serde_json::Value>(line).unwrap();
                }
                break;
            }
            assert!(Instant::now() < deadline, "{} lines", text.lines().count());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn a_moved_file_is_reopened_at_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let log = AccessLog::open(Target::File(path.clone()), Format::Combined).unwrap();
        log.record(&entry());
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::fs::read_to_string(&path).unwrap().is_empty() {
            assert!(Instant::now() < deadline, "the first line never came");
            std::thread::sleep(Duration::from_millis(10));
        }
        std::fs::rename(&path, dir.path().join("access.log.1")).unwrap();
        // Lines go on, and reach a new file at the path once the writer
        // has seen the move.
        loop {
            log.record(&entry());
            if std::fs::read_to_string(&path).is_ok_and(|t| !t.is_empty()) {
                break;
            }
            assert!(Instant::now() < deadline, "the log was never reopened");
            std::thread::sleep(Duration::from_millis(50));
        }
        let old = std::fs::read_to_string(dir.path().join("access.log.1")).unwrap();
        assert!(old.lines().count() >= 1);
    }

    #[test]
    fn a_file_that_cannot_be_opened_is_an_error_naming_it() {
        let err = AccessLog::open(
            Target::File("/nonexistent-dir/access.log".into()),
            Format::Combined,
        )
        .err()
        .expect("refused");
        assert!(
            err.to_string()
                .contains("cannot open the access log /nonexistent-dir/access.log"),
            "{err}"
        );
    }
}
