//! Load-balancer fixtures: small backend apps, a steady client load that
//! counts every failure, and real HAProxy, Varnish and nginx processes from
//! their Debian packages.

use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Bytes;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A backend app: answers every request with its name; `/slow?ms=N`
/// answers after N ms. Counts requests and remembers when the last came.
pub struct App {
    pub name: String,
    pub addr: SocketAddr,
    pub hits: Arc<AtomicU64>,
    pub last_hit: Arc<Mutex<Option<Instant>>>,
    task: tokio::task::JoinHandle<()>,
    /// Open connections, closed by `kill`.
    conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl App {
    pub async fn start(name: &str, ip: &str) -> App {
        App::start_on(name, ip, 0).await
    }

    /// On a given port (0: any), e.g. the same port on every node.
    pub async fn start_on(name: &str, ip: &str, port: u16) -> App {
        let reserved = {
            let mut held = RESERVED.lock().unwrap();
            held.iter()
                .position(|(a, p, _)| a == ip && *p == port)
                .map(|i| held.remove(i).2)
        };
        let listener = match reserved {
            Some(l) => {
                l.set_nonblocking(true).unwrap();
                tokio::net::TcpListener::from_std(l).unwrap()
            }
            None => tokio::net::TcpListener::bind((ip, port))
                .await
                .unwrap_or_else(|e| panic!("cannot bind {ip}:{port}: {e}")),
        };
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicU64::new(0));
        let last_hit = Arc::new(Mutex::new(None));
        let (n, h, l) = (name.to_owned(), hits.clone(), last_hit.clone());
        let conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let open = conns.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let _ = stream.set_nodelay(true);
                let (n, h, l) = (n.clone(), h.clone(), l.clone());
                let conn = tokio::spawn(async move {
                    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let (n, h, l) = (n.clone(), h.clone(), l.clone());
                        async move {
                            h.fetch_add(1, Ordering::SeqCst);
                            *l.lock().unwrap() = Some(Instant::now());
                            if req.uri().path() == "/slow" {
                                let ms = req
                                    .uri()
                                    .query()
                                    .and_then(|q| q.strip_prefix("ms="))
                                    .and_then(|v| v.parse().ok())
                                    .unwrap_or(500);
                                tokio::time::sleep(Duration::from_millis(ms)).await;
                            }
                            let body = format!("{n} {}", req.uri().path());
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                                Bytes::from(body),
                            )))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
                let mut open = open.lock().unwrap();
                open.retain(|c| !c.is_finished());
                open.push(conn.abort_handle());
            }
        });
        App {
            name: name.to_owned(),
            addr,
            hits,
            last_hit,
            task,
            conns,
        }
    }

    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }

    /// Gone: stops accepting and closes every open connection.
    pub fn kill(&self) {
        self.task.abort();
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }
}

impl Drop for App {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What a load run saw.
#[derive(Debug, Default, Clone)]
pub struct LoadReport {
    pub ok: u64,
    /// Each failure: status (0: no answer) and what was said.
    pub failures: Vec<(u16, String)>,
    /// Answers by the backend that gave them (first word of the body).
    pub by_backend: HashMap<String, u64>,
}

impl LoadReport {
    /// Panics, showing the first failures and `context` (a load
    /// balancer's log), when any request failed.
    #[track_caller]
    pub fn assert_no_failures(&self, context: &str) {
        assert!(
            self.failures.is_empty(),
            "{} failed requests, the first: {:?}\n{context}",
            self.failures.len(),
            &self.failures[..self.failures.len().min(5)]
        );
    }
}

/// Clients sending GETs to `url` (with `Host: host`) in a loop until stopped.
pub struct Load {
    stop: Arc<AtomicBool>,
    report: Arc<Mutex<LoadReport>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    pub fn start(url: &str, host: &str, clients: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let report = Arc::new(Mutex::new(LoadReport::default()));
        let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build_http();
        let tasks = (0..clients)
            .map(|_| {
                let (stop, report, client) = (stop.clone(), report.clone(), client.clone());
                let (url, host) = (url.to_owned(), host.to_owned());
                tokio::spawn(async move {
                    while !stop.load(Ordering::SeqCst) {
                        let req = hyper::Request::get(&url)
                            .header("host", &host)
                            .header("user-agent", "cluster-tests")
                            .body(Empty::<Bytes>::new())
                            .unwrap();
                        let answer = match client.request(req).await {
                            Ok(resp) => {
                                let status = resp.status().as_u16();
                                let body =
                                    resp.into_body().collect().await.map(|b| {
                                        String::from_utf8_lossy(&b.to_bytes()).into_owned()
                                    });
                                match body {
                                    Ok(b) => (status, b),
                                    Err(e) => (0, format!("body: {e}")),
                                }
                            }
                            Err(e) => (0, format!("{e:?}")),
                        };
                        let mut r = report.lock().unwrap();
                        if answer.0 == 200 {
                            r.ok += 1;
                            let who = answer.1.split(' ').next().unwrap_or_default().to_owned();
                            *r.by_backend.entry(who).or_default() += 1;
                        } else {
                            r.failures.push(answer);
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            report,
            tasks,
        }
    }

    /// Requests answered so far.
    pub fn ok(&self) -> u64 {
        self.report.lock().unwrap().ok
    }

    pub fn snapshot(&self) -> LoadReport {
        self.report.lock().unwrap().clone()
    }

    /// Waits until `more` further requests succeeded (bounded).
    pub async fn advance(&self, more: u64) {
        let target = self.ok() + more;
        crate::eventually(
            &format!("{more} more requests through the load balancer"),
            Duration::from_secs(20),
            || async { self.ok() >= target },
        )
        .await;
    }

    pub async fn stop(self) -> LoadReport {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            let _ = t.await;
        }

        self.report.lock().unwrap().clone()
    }
}

/// A child process killed (and reaped) when dropped.
pub struct Daemon {
    pub name: &'static str,
    child: Child,
    pub dir: tempfile::TempDir,
}

impl Drop for Daemon {
    /// SIGTERM, so a master process takes its workers with it (nginx's
    /// outlive a SIGKILLed master); SIGKILL if it is still there after 5 s.
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn which(program: &str, package: &str) -> PathBuf {
    for dir in [
        "/usr/sbin",
        "/usr/bin",
        "/usr/local/sbin",
        "/usr/local/bin",
        "/sbin",
    ] {
        let p = Path::new(dir).join(program);
        if p.exists() {
            return p;
        }
    }
    panic!("{program} is not installed: `apt-get install -y {package}` (.ci/run does this)");
}

/// Listeners bound by [`same_port_on`], until an [`App`] takes its own.
static RESERVED: std::sync::Mutex<Vec<(String, u16, std::net::TcpListener)>> =
    std::sync::Mutex::new(Vec::new());

/// A port free on every one of `ips`, bound on each at once and held until
/// `App::start_on(…, ip, port)` takes it — so nothing else started in the
/// meantime (another test's agent, given an ephemeral port) can take it on
/// one of them.
pub fn same_port_on(ips: &[&str]) -> u16 {
    for _ in 0..100 {
        let port = free_port(ips[0]);
        let bound: Result<Vec<_>, _> = ips
            .iter()
            .map(|ip| std::net::TcpListener::bind((*ip, port)).map(|l| (ip.to_string(), port, l)))
            .collect();
        if let Ok(listeners) = bound {
            RESERVED.lock().unwrap().extend(listeners);
            return port;
        }
    }
    panic!("no port free on all of {ips:?}");
}

/// A free TCP port on `ip` (bound and released).
pub fn free_port(ip: &str) -> u16 {
    let ip: std::net::IpAddr = ip
        .parse()
        .unwrap_or_else(|e| panic!("{ip} is not an address: {e}"));
    crate::process::free_port(ip)
}

impl Daemon {
    fn spawn(name: &'static str, mut cmd: Command, dir: tempfile::TempDir) -> Daemon {
        let log = std::fs::File::create(dir.path().join("log")).unwrap();
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Daemon { name, child, dir }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    /// HAProxy in the foreground with `config` (its stats socket is
    /// `admin.sock` in its directory; write `{dir}` where it goes).
    pub fn haproxy(config: &str) -> Daemon {
        let bin = which("haproxy", "haproxy");
        let dir = tempfile::tempdir().unwrap();
        let config = config.replace("{dir}", &dir.path().display().to_string());
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, config).unwrap();
        let check = Command::new(&bin)
            .arg("-c")
            .arg("-f")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "haproxy refused the config:\n{}",
            String::from_utf8_lossy(&check.stderr)
        );
        let mut cmd = Command::new(bin);
        cmd.arg("-db").arg("-f").arg(&path);
        Daemon::spawn("haproxy", cmd, dir)
    }

    pub fn haproxy_socket(&self) -> PathBuf {
        self.dir.path().join("admin.sock")
    }

    /// Varnish in the foreground with `vcl`, listening on `listen`.
    pub fn varnish(listen: &str, vcl: &str) -> Daemon {
        let bin = which("varnishd", "varnish");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("default.vcl");
        std::fs::write(&path, vcl).unwrap();
        let mut cmd = Command::new(bin);
        cmd.arg("-F")
            .args(["-j", "none"])
            .arg("-n")
            .arg(dir.path().join("work"))
            .args(["-a", listen])
            .arg("-f")
            .arg(&path)
            .args(["-s", "malloc,32m"]);
        Daemon::spawn("varnish", cmd, dir)
    }

    /// `varnishadm backend.list` for this instance.
    pub fn varnish_backends(&self) -> String {
        let out = Command::new(which("varnishadm", "varnish"))
            .arg("-n")
            .arg(self.dir.path().join("work"))
            .arg("backend.list")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// nginx in the foreground with `http_block` as its `http { … }`.
    pub fn nginx(http_block: &str) -> Daemon {
        let bin = which("nginx", "nginx");
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        let config = format!(
            "worker_processes 2;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\ndaemon off;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\n access_log off;\n client_body_temp_path {d}/body;\n proxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fcgi;\n uwsgi_temp_path {d}/uwsgi;\n scgi_temp_path {d}/scgi;\n{http_block}\n}}\n"
        );
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, config).unwrap();
        let mut cmd = Command::new(bin);
        cmd.arg("-p").arg(dir.path()).arg("-c").arg(&path);
        Daemon::spawn("nginx", cmd, dir)
    }
}

/// A web node: the app `name` on `ip:app_port` and, beside it, an agent
/// on `ip` with the `web` role and `config` (agent TOML; may be empty).
pub async fn web_node(
    master: &crate::MasterProc,
    name: &str,
    ip: &str,
    app_port: u16,
    config: &str,
) -> (App, crate::AgentProc) {
    let app = App::start_on(name, ip, app_port).await;
    let agent = crate::AgentProc::builder(name, master)
        .addr(ip)
        .role("web")
        .config(config)
        .spawn();
    (app, agent)
}

/// Waits until something accepts connections on `addr`.
pub async fn listening(addr: &str) {
    crate::eventually(
        &format!("something listening on {addr}"),
        Duration::from_secs(15),
        || async { tokio::net::TcpStream::connect(addr).await.is_ok() },
    )
    .await;
}

/// Balances `domain` (`*`: every host) over the online nodes with `role`
/// at `port`, through an upstream named `app`.
pub async fn balance_role(admin: &crate::Admin, role: &str, port: u16, domain: &str) {
    let port = port.to_string();
    crate::ctl(
        admin,
        &["upstream", "set", "app", "--role", role, "--port", &port],
    )
    .await
    .ok();
    crate::ctl(admin, &["route", "set", domain, "--backend", "app"])
        .await
        .ok();
}

/// A GET through a proxy with a `Host` and a `User-Agent`: (status, body).
pub async fn get_as(url: &str, host: &str, ua: &str) -> (u16, String) {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let req = hyper::Request::get(url)
        .header("host", host)
        .header("user-agent", ua)
        .body(Empty::new())
        .unwrap();
    let resp = client.request(req).await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}
