//! With a real HAProxy (2.6 or later): the agent-check responder moves
//! HAProxy's server through DRAIN, MAINT, DOWN and back to UP with its full
//! weight, and `haproxy::servers` reads it all back through the stats
//! socket, the connections a slow request holds included.
//!
//! HAProxy must be installed: without it this test fails, saying so.

use cluster_agent::checks::{CheckState, CheckStatus};
use cluster_agent::haproxy::{self, ServerStat};
use cluster_agent::state::{Desired, OfflineFlag, Shared};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

const PATIENCE: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(50);

fn haproxy_binary() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join("haproxy"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "haproxy is not installed (not on PATH, nor in /usr/sbin): this test needs \
                 HAProxy 2.6 or later; install the haproxy package (apt-get install haproxy)"
            )
        })
}

/// HAProxy in the foreground, killed on drop; its frontend on a socket
/// this process bound and handed over (`bind fd@N`), so no port is guessed.
struct Haproxy {
    child: Child,
    dir: tempfile::TempDir,
    socket: PathBuf,
    frontend: SocketAddr,
}

impl Haproxy {
    fn start(backend: SocketAddr, agent: SocketAddr) -> Haproxy {
        assert_eq!(
            backend.ip(),
            agent.ip(),
            "HAProxy asks the server's address"
        );
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("admin.sock");
        let frontend = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let fd = frontend.as_raw_fd();
        let config = format!(
            "global\n\
             \x20 maxconn 200\n\
             \x20 stats socket {socket} mode 600 level admin\n\
             defaults\n\
             \x20 mode http\n\
             \x20 timeout connect 2s\n\
             \x20 timeout client 30s\n\
             \x20 timeout server 30s\n\
             frontend web\n\
             \x20 bind fd@{fd}\n\
             \x20 default_backend app\n\
             backend app\n\
             \x20 server web-1 {backend} weight 100 check inter 100ms \
             agent-check agent-port {agent_port} agent-inter 100ms agent-send \"web-1\\n\"\n",
            socket = socket.display(),
            agent_port = agent.port(),
        );
        let config_path = dir.path().join("haproxy.cfg");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::File::create(dir.path().join("haproxy.log")).unwrap();
        let mut command = Command::new(haproxy_binary());
        command
            .arg("-f")
            .arg(&config_path)
            .arg("-db")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        // SAFETY: fcntl is async-signal-safe; it only lets the listening
        // socket through exec.
        unsafe {
            command.pre_exec(move || {
                if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().expect("start haproxy");
        Haproxy {
            child,
            socket,
            frontend: frontend.local_addr().unwrap(),
            dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("haproxy.log")).unwrap_or_default()
    }

    /// web-1, once `want` holds of it.
    async fn eventually(&mut self, what: &str, want: impl Fn(&ServerStat) -> bool) -> ServerStat {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("haproxy exited ({status}):\n{}", self.log());
            }
            let last = match haproxy::servers(&self.socket).await {
                Ok(list) => match list.into_iter().find(|s| s.server == "web-1") {
                    Some(s) if want(&s) => return s,
                    Some(s) => format!("{s:?}"),
                    None => "no web-1 in show stat".into(),
                },
                Err(e) => e.to_string(),
            };
            if Instant::now() > deadline {
                panic!(
                    "{what}: not within {PATIENCE:?}; last seen: {last}\nHAProxy said:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn until_status(&mut self, status: &str, weight: u64) -> ServerStat {
        let what = format!("web-1 {status} with weight {weight}");
        self.eventually(&what, |s| s.status == status && s.weight == weight)
            .await
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The node's service: `GET /slow` waits for a permit from `release`
/// (telling `arrived` first); anything else is answered at once.
async fn backend(ip: &str) -> (SocketAddr, mpsc::Receiver<()>, Arc<Semaphore>) {
    let listener = TcpListener::bind(format!("{ip}:0")).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (arrived_tx, arrived) = mpsc::channel(8);
    let release = Arc::new(Semaphore::new(0));
    let permits = release.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let arrived = arrived_tx.clone();
            let permits = permits.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return, // HAProxy's TCP check
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                if request.starts_with(b"GET /slow ") {
                    let _ = arrived.send(()).await;
                    permits.acquire().await.unwrap().forget();
                }
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
            });
        }
    });
    (addr, arrived, release)
}

fn offline(maintenance: bool) -> Option<OfflineFlag> {
    Some(OfflineFlag {
        reason: "deploy".into(),
        since_ms: 1,
        by: "alice".into(),
        maintenance,
    })
}

fn app_check(passing: bool) -> CheckStatus {
    CheckStatus {
        checks: vec![CheckState {
            name: "app".into(),
            kind: "http",
            passing,
            ran: true,
            output: if passing {
                "GET http://127.0.0.1:8080/ping: 200 OK".into()
            } else {
                "GET http://127.0.0.1:8080/ping: 500 Internal Server Error".into()
            },
            since_ms: 1,
        }],
    }
}

async fn show_stat(socket: &Path) -> String {
    haproxy::command(socket, "show stat").await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_follows_the_agent_check_and_the_stats_socket_shows_it() {
    let node_ip = "127.0.0.2";
    let (backend_addr, mut arrived, release) = backend(node_ip).await;
    let agent = TcpListener::bind(format!("{node_ip}:0")).await.unwrap();
    let agent_addr = agent.local_addr().unwrap();
    let shared = Arc::new(Shared::new(Desired::initial("web-1")));
    let shutdown = CancellationToken::new();
    let responder = tokio::spawn(cluster_agent::agent_check::serve(
        agent,
        shared.clone(),
        false,
        shutdown.clone(),
    ));
    let mut hx = Haproxy::start(backend_addr, agent_addr);

    // Online: UP, in rotation, idle.
    let s = hx.until_status("UP", 100).await;
    assert!(s.in_rotation(), "{s:?}");
    assert_eq!(
        (s.backend.as_str(), s.addr, s.scur),
        ("app", Some(backend_addr.to_string()), 0)
    );

    // A slow request held open through HAProxy counts in scur, until done.
    let frontend = hx.frontend;
    let client = tokio::spawn(async move {
        let mut c = tokio::net::TcpStream::connect(frontend).await.unwrap();
        c.write_all(b"GET /slow HTTP/1.1\r\nhost: web\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        c.read_to_string(&mut answer).await.unwrap();
        answer
    });
    tokio::time::timeout(PATIENCE, arrived.recv())
        .await
        .expect("the slow request reaches the backend");
    hx.eventually("a session on web-1", |s| s.scur == 1).await;
    release.add_permits(1);
    let answer = tokio::time::timeout(PATIENCE, client)
        .await
        .unwrap()
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    hx.eventually("web-1 idle again", |s| s.scur == 0).await;

    // Drained: DRAIN, out of rotation. Its weight, changed meanwhile, comes
    // back whole with `ready`.
    shared.desired.send_modify(|d| d.offline = offline(false));
    let s = hx.until_status("DRAIN (agent)", 100).await;
    assert!(!s.in_rotation(), "{s:?}");
    let said = haproxy::command(&hx.socket, "set weight app/web-1 50%")
        .await
        .unwrap();
    assert_eq!(said.trim(), "", "set weight: {said}");
    hx.until_status("DRAIN (agent)", 50).await;
    shared.desired.send_modify(|d| d.offline = None);
    assert!(hx.until_status("UP", 100).await.in_rotation());

    // Maintenance: MAINT; back to UP.
    shared.desired.send_modify(|d| d.offline = offline(true));
    assert!(!hx.until_status("MAINT", 100).await.in_rotation());
    shared.desired.send_modify(|d| d.offline = None);
    hx.until_status("UP", 100).await;

    // A failing check: DOWN, with the check's name (never its output,
    // which may hold secrets); back UP when it passes.
    shared.checks.send_replace(app_check(false));
    assert!(!hx.until_status("DOWN (agent)", 100).await.in_rotation());
    let stat = show_stat(&hx.socket).await;
    assert!(
        stat.contains("via agent : down (check app failing)"),
        "{stat}"
    );
    assert!(!stat.contains("127.0.0.1:8080/ping"), "{stat}");
    shared.checks.send_replace(app_check(true));
    hx.until_status("UP", 100).await;

    // Drained with a failing check: DOWN; the check passes: DRAIN; online: UP.
    shared.checks.send_replace(app_check(false));
    shared.desired.send_modify(|d| d.offline = offline(false));
    hx.until_status("DOWN (agent)", 100).await;
    shared.checks.send_replace(app_check(true));
    hx.until_status("DRAIN (agent)", 100).await;
    shared.desired.send_modify(|d| d.offline = None);
    hx.until_status("UP", 100).await;

    // Maintenance with a failing check: MAINT; online still failing: DOWN;
    // the check passes: UP.
    shared.checks.send_replace(app_check(false));
    shared.desired.send_modify(|d| d.offline = offline(true));
    hx.until_status("MAINT", 100).await;
    shared.desired.send_modify(|d| d.offline = None);
    hx.until_status("DOWN (agent)", 100).await;
    shared.checks.send_replace(app_check(true));
    let s = hx.until_status("UP", 100).await;
    assert!(s.in_rotation(), "{s:?}");

    shutdown.cancel();
    tokio::time::timeout(PATIENCE, responder)
        .await
        .expect("the responder stops")
        .unwrap();
}
