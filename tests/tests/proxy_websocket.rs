//! WebSocket through the agent's proxy, end to end with a real
//! implementation on both sides (Python's `websockets` from PyPI): the
//! upgrade passes to a web node's echo server, messages move both ways,
//! and a drained node keeps its open WebSocket, which `drain --wait`
//! reports as still in flight until it closes.

use cluster_tests::lb::{balance_role, free_port, listening};
use cluster_tests::{AgentProc, MasterProc, ctl, eventually};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

const PATIENCE: Duration = Duration::from_secs(20);
const WEBSOCKETS: &str = "websockets==15.0.1";
const WEB: (&str, &str) = ("web-1", "127.0.0.213");
const LB: &str = "127.0.0.214";

fn python() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("websockets-venv");
    cluster_tests::python::venv(&dir, WEBSOCKETS, "websockets")
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ws/echo.py")
}

/// `echo.py`, killed when dropped; its output read a line at a time.
struct Echo {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Echo {
    fn spawn(python: &Path, args: &[&str]) -> Echo {
        let mut child = Command::new(python)
            .arg(script())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python runs");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Echo {
            stdin: child.stdin.take(),
            child,
            lines,
        }
    }

    /// Its next line of output.
    async fn line(&mut self) -> String {
        match tokio::time::timeout(PATIENCE, self.lines.next_line()).await {
            Ok(Ok(Some(l))) => l,
            Ok(_) => panic!("echo.py ended: {:?}", self.child.try_wait()),
            Err(_) => panic!("echo.py said nothing for {PATIENCE:?}"),
        }
    }

    /// Sends a client command; its answer.
    async fn ask(&mut self, command: &str) -> String {
        let stdin = self.stdin.as_mut().expect("a client");
        stdin
            .write_all(format!("{command}\n").as_bytes())
            .await
            .unwrap();
        stdin.flush().await.unwrap();
        self.line().await
    }
}

/// What the proxy answers to a plain GET for `ws.test` (no upgrade).
async fn plain_get(proxy: &str) -> String {
    let Ok(mut conn) = tokio::net::TcpStream::connect(proxy).await else {
        return String::new();
    };
    let _ = conn
        .write_all(b"GET /ws HTTP/1.1\r\nHost: ws.test\r\nConnection: close\r\n\r\n")
        .await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(PATIENCE, conn.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_websocket_echoes_through_the_proxy_and_a_drain_waits_for_it_to_close() {
    let python = python();
    let master = MasterProc::builder().spawn();
    let admin = master.admin();
    let (name, ip) = WEB;
    let app_port = free_port(ip);
    let mut server = Echo::spawn(&python, &["serve", ip, &app_port.to_string(), name]);
    assert_eq!(server.line().await, "listening");
    let _web = AgentProc::builder(name, &master)
        .addr(ip)
        .role("web")
        .spawn();
    let proxy_port = free_port(LB);
    let proxy = format!("{LB}:{proxy_port}");
    let _lb = AgentProc::builder("lb-1", &master)
        .addr(LB)
        .config(&format!("[proxy]\nlisten = [\"{proxy}\"]\n"))
        .spawn();
    cluster_tests::connected(&admin, 2).await;
    balance_role(&admin, "web", app_port, "ws.test").await;
    listening(&proxy).await;
    // Routed once the echo server's own refusal of a plain GET comes back.
    eventually("the proxy routes ws.test to web-1", PATIENCE, || async {
        plain_get(&proxy).await.starts_with("HTTP/1.1 426 ")
    })
    .await;

    let url = format!("ws://ws.test:{proxy_port}/ws");
    let mut client = Echo::spawn(&python, &["client", LB, &proxy_port.to_string(), &url]);
    assert_eq!(client.line().await, "open");
    assert_eq!(client.ask("send hello").await, "hello");
    assert_eq!(client.ask("send who").await, name);
    assert_eq!(client.ask("binary 1000000").await, "echoed 1000000");

    // Drained, web-1 leaves the upstream but keeps the open WebSocket:
    // `drain --wait` says it is still in flight.
    let out = ctl(&admin, &["drain", name, "--wait", "--timeout", "2s"]).await;
    assert_ne!(out.code, 0, "{}", out.stdout);
    assert!(
        out.stderr.contains("in flight to web-1"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    assert_eq!(client.ask("send still open").await, "still open");
    // New requests no longer reach it.
    eventually("web-1 is out of the upstream", PATIENCE, || async {
        plain_get(&proxy).await.starts_with("HTTP/1.1 502 ")
    })
    .await;

    // Closed, it is no longer in flight: the drain completes.
    assert_eq!(client.ask("close").await, "closed 1000");
    let out = ctl(&admin, &["drain", name, "--wait", "--timeout", "15s"])
        .await
        .ok();
    assert!(
        out.stdout.contains("out of rotation: web-1"),
        "{}",
        out.stdout
    );
}
