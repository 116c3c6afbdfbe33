//! One attempt of one check, bounded by its timeout, and what it said.
//!
//! - HTTP: a plain HTTP/1.1 `GET` on a fresh connection; passes on the
//!   expected status. Says `GET http://…/ping: 500 Internal Server Error`,
//!   `…: connection refused`, `…: timed out after 1s`.
//! - TCP: a connection accepted within the timeout.
//! - Command: argv without a shell, in a process group of its own; passes
//!   on the expected exit code. Says the exit code and the last line of its
//!   stderr (else stdout), cut to [`LINE_MAX`] bytes. On a timeout the whole
//!   group is killed; whatever the command left behind when it exited is
//!   killed too, so nothing a check starts outlives its attempt.

use crate::config::CheckKind;
use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// How much of a command's last line is kept.
pub const LINE_MAX: usize = 200;
/// How much of each of a command's streams is kept, from the end.
const TAIL: usize = 4096;
/// How long a command's output may take to be read after its group died.
const DRAIN: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub pass: bool,
    pub output: String,
}

impl Attempt {
    fn pass(output: String) -> Attempt {
        Attempt { pass: true, output }
    }

    fn fail(output: String) -> Attempt {
        Attempt {
            pass: false,
            output,
        }
    }
}

pub async fn attempt(kind: &CheckKind, timeout: Duration) -> Attempt {
    match kind {
        CheckKind::Http { url, expect_status } => http(url, *expect_status, timeout).await,
        CheckKind::Tcp { addr } => tcp(addr, timeout).await,
        CheckKind::Command { argv, expect_code } => command(argv, *expect_code, timeout).await,
    }
}

fn timed_out(timeout: Duration) -> String {
    format!("timed out after {}", humantime::format_duration(timeout))
}

/// An I/O error as a few words: "connection refused", not
/// "Connection refused (os error 111)".
fn io_words(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = match text.find(" (os error") {
        Some(i) => &text[..i],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => format!("{:?}", e.kind()),
    }
}

/// The innermost I/O error of a chain in [`io_words`], else the error.
fn error_words(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return io_words(io);
        }
        cur = err.source();
    }
    e.to_string()
}

async fn http(url: &http::Uri, expect: u16, timeout: Duration) -> Attempt {
    let what = format!("GET {url}");
    match tokio::time::timeout(timeout, get(url)).await {
        Ok(Ok(status)) if status.as_u16() == expect => Attempt::pass(format!("{what}: {status}")),
        Ok(Ok(status)) => Attempt::fail(format!("{what}: {status}")),
        Ok(Err(e)) => Attempt::fail(format!("{what}: {e}")),
        Err(_) => Attempt::fail(format!("{what}: {}", timed_out(timeout))),
    }
}

async fn get(url: &http::Uri) -> Result<http::StatusCode, String> {
    let authority = url.authority().ok_or("the URL has no host")?;
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = authority.port_u16().unwrap_or(80);
    let stream = TcpStream::connect((host, port))
        .await
        .map_err(|e| io_words(&e))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| error_words(&e))?;
    let request = http::Request::get(url.path_and_query().map_or("/", |p| p.as_str()))
        .header(http::header::HOST, authority.as_str())
        .header(http::header::USER_AGENT, "cluster-agent-check")
        .header(http::header::CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let mut conn = std::pin::pin!(conn);
    let mut response = std::pin::pin!(sender.send_request(request));
    let response = tokio::select! {
        response = &mut response => response,
        // The connection must be driven for the response to come; it may
        // also end first, with the response in hand (`connection: close`).
        closed = &mut conn => match closed {
            Ok(()) => response.await,
            Err(e) => return Err(error_words(&e)),
        },
    };
    response.map(|r| r.status()).map_err(|e| error_words(&e))
}

async fn tcp(addr: &str, timeout: Duration) -> Attempt {
    let what = format!("connect {addr}");
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(_)) => Attempt::pass(format!("{what}: connected")),
        Ok(Err(e)) => Attempt::fail(format!("{what}: {}", io_words(&e))),
        Err(_) => Attempt::fail(format!("{what}: {}", timed_out(timeout))),
    }
}

/// Kills the process group it names when dropped: on a timeout, at
/// shutdown (the attempt is dropped), and after the command exited.
struct Group(Option<u32>);

impl Drop for Group {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            // The group's id is the leader's pid (process_group(0) below).
            unsafe {
                libc::kill(-(pgid as i32), libc::SIGKILL);
            }
        }
    }
}

/// The last [`TAIL`] bytes of a stream, read to its end.
async fn tail(from: Option<impl tokio::io::AsyncRead + Unpin>) -> Vec<u8> {
    let Some(mut from) = from else {
        return Vec::new();
    };
    let mut kept = Vec::new();
    let mut buf = vec![0u8; 4096];
    while let Ok(n @ 1..) = from.read(&mut buf).await {
        kept.extend_from_slice(&buf[..n]);
        if kept.len() > 2 * TAIL {
            kept.drain(..kept.len() - TAIL);
        }
    }
    kept
}

/// The last non-empty line of `bytes`, cut to [`LINE_MAX`] bytes.
fn last_line(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    let line = text.lines().map(str::trim).rfind(|l| !l.is_empty())?;
    Some(cut_line(line))
}

/// `line`, cut to [`LINE_MAX`] bytes (at a character's edge) with "…".
pub(crate) fn cut_line(line: &str) -> String {
    if line.len() <= LINE_MAX {
        return line.to_owned();
    }
    let mut end = LINE_MAX;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &line[..end])
}

async fn command(argv: &[String], expect: i32, timeout: Duration) -> Attempt {
    let Some((program, args)) = argv.split_first() else {
        return Attempt::fail("no command given".into());
    };
    let mut child = match tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return Attempt::fail(format!("cannot run {program:?}: {}", io_words(&e))),
    };
    let group = Group(child.id());
    // Read on tasks of their own: a pipe stays open while anything in the
    // group holds it, and the group dies only once the leader is done.
    let stdout = tokio::spawn(tail(child.stdout.take()));
    let stderr = tokio::spawn(tail(child.stderr.take()));
    let waited = tokio::time::timeout(timeout, child.wait()).await;
    drop(group);
    let status = match waited {
        Ok(status) => Some(status),
        Err(_) => {
            let _ = child.wait().await;
            None
        }
    };
    let mut output = Vec::new();
    for reader in [stderr, stdout] {
        let abort = reader.abort_handle();
        match tokio::time::timeout(DRAIN, reader).await {
            Ok(Ok(bytes)) => output.push(bytes),
            _ => abort.abort(),
        }
    }
    let line = output.iter().find_map(|bytes| last_line(bytes));
    let (pass, said) = match status {
        None => (false, timed_out(timeout)),
        Some(Err(e)) => (
            false,
            format!("cannot wait for {program:?}: {}", io_words(&e)),
        ),
        Some(Ok(s)) => match (s.code(), s.signal()) {
            (Some(code), _) => (code == expect, format!("exit {code}")),
            (None, Some(signal)) => (false, format!("killed by signal {signal}")),
            (None, None) => (false, "ended without an exit code".into()),
        },
    };
    Attempt {
        pass,
        output: match line {
            Some(line) => format!("{said}: {line}"),
            None => said,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    async fn run(args: &[&str], expect: i32, timeout: Duration) -> Attempt {
        command(&argv(args), expect, timeout).await
    }

    #[tokio::test]
    async fn commands_pass_on_the_expected_exit_code() {
        let second = Duration::from_secs(5);
        for (args, expect, want) in [
            (&["true"][..], 0, Attempt::pass("exit 0".into())),
            (&["false"][..], 0, Attempt::fail("exit 1".into())),
            (
                &["sh", "-c", "exit 3"][..],
                3,
                Attempt::pass("exit 3".into()),
            ),
            (
                &["sh", "-c", "exit 3"][..],
                0,
                Attempt::fail("exit 3".into()),
            ),
            (
                &[
                    "sh",
                    "-c",
                    "echo one; echo two; echo >&2 'disk full  '; echo >&2; exit 1",
                ][..],
                0,
                Attempt::fail("exit 1: disk full".into()),
            ),
            (
                &["sh", "-c", "printf 'first\\nlast\\n\\n'"][..],
                0,
                Attempt::pass("exit 0: last".into()),
            ),
            (
                &["sh", "-c", "kill -9 $$"][..],
                0,
                Attempt::fail("killed by signal 9".into()),
            ),
            (
                &["/nonexistent/check"][..],
                0,
                Attempt::fail(
                    "cannot run \"/nonexistent/check\": no such file or directory".into(),
                ),
            ),
        ] {
            assert_eq!(run(args, expect, second).await, want, "{args:?}");
        }
    }

    #[tokio::test]
    async fn a_long_last_line_is_cut() {
        let a = run(
            &["sh", "-c", "printf 'x%.0s' $(seq 500)"],
            0,
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(a.output, format!("exit 0: {}…", "x".repeat(LINE_MAX)));
    }

    fn alive(pid: i32) -> bool {
        let exists = unsafe { libc::kill(pid, 0) } == 0;
        exists
            && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_default()
                .contains(") Z ")
    }

    /// Waits, with bounded patience, for `pid` to die of the SIGKILL sent
    /// to its group (delivery is not instantaneous).
    async fn gone(pid: i32) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while alive(pid) {
            assert!(
                std::time::Instant::now() < deadline,
                "process {pid} survived"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn a_timeout_kills_the_whole_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("child.pid");
        let script = format!(
            "sleep 30 & echo $! > {}; echo started; sleep 30",
            pidfile.display()
        );
        let started = std::time::Instant::now();
        let a = run(&["sh", "-c", &script], 0, Duration::from_millis(300)).await;
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(a, Attempt::fail("timed out after 300ms: started".into()));
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        gone(pid).await;
    }

    #[tokio::test]
    async fn what_a_command_leaves_behind_is_killed_when_it_exits() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("child.pid");
        let script = format!("sleep 30 & echo $! > {}", pidfile.display());
        let a = run(&["sh", "-c", &script], 0, Duration::from_secs(5)).await;
        assert_eq!(a, Attempt::pass("exit 0".into()));
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        gone(pid).await;
    }

    #[tokio::test]
    async fn tcp_passes_on_a_listening_port_and_fails_on_a_closed_one() {
        let open = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = open.local_addr().unwrap().to_string();
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().to_string()
        };
        let second = Duration::from_secs(1);
        assert_eq!(
            tcp(&open, second).await,
            Attempt::pass(format!("connect {open}: connected"))
        );
        assert_eq!(
            tcp(&closed, second).await,
            Attempt::fail(format!("connect {closed}: connection refused"))
        );
    }

    /// A server that answers every request with `status`, or never.
    async fn server(status: Option<u16>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = vec![0u8; 4096];
                let _ = s.read(&mut buf).await;
                match status {
                    Some(code) => {
                        let reply = format!(
                            "HTTP/1.1 {code} Whatever\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        );
                        let _ = tokio::io::AsyncWriteExt::write_all(&mut s, reply.as_bytes()).await;
                    }
                    None => held.push(s),
                }
            }
        });
        format!("http://{addr}/ping")
    }

    async fn get(url: &str, expect: u16, timeout: Duration) -> Attempt {
        http(&url.parse().unwrap(), expect, timeout).await
    }

    #[tokio::test]
    async fn http_passes_on_the_expected_status_only() {
        let second = Duration::from_secs(5);
        let ok = server(Some(200)).await;
        assert_eq!(
            get(&ok, 200, second).await,
            Attempt::pass(format!("GET {ok}: 200 OK"))
        );
        assert_eq!(
            get(&ok, 204, second).await,
            Attempt::fail(format!("GET {ok}: 200 OK"))
        );
        let bad = server(Some(500)).await;
        assert_eq!(
            get(&bad, 200, second).await,
            Attempt::fail(format!("GET {bad}: 500 Internal Server Error"))
        );
        let stuck = server(None).await;
        assert_eq!(
            get(&stuck, 200, Duration::from_millis(100)).await,
            Attempt::fail(format!("GET {stuck}: timed out after 100ms"))
        );
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}/ping", l.local_addr().unwrap())
        };
        assert_eq!(
            get(&closed, 200, second).await,
            Attempt::fail(format!("GET {closed}: connection refused"))
        );
    }
}
