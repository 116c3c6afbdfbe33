// Backends, a proxy under test, clients and a steady load, shared by
// proxy.rs and proxy_changes.rs (included, so they stay private to each).

use bytes::Bytes;
use cluster_agent::proxy::{HealthEndpoint, Options, Proxy, ProxyConfig, Timeouts, UpstreamServer};
use cluster_balancer::{Domain, RouteTable, Server};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

const PATIENCE: Duration = Duration::from_secs(10);

/// Waits for a condition (which may `.await`), failing after `PATIENCE`.
macro_rules! eventually {
    ($cond:expr, $($msg:tt)+) => {{
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if $cond {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                panic!($($msg)+);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }};
}

// ---------------------------------------------------------------- backends

type Body = BoxBody<Bytes, Infallible>;

/// What a backend shares with its connections and the test.
#[derive(Default)]
struct Seen {
    hits: AtomicU64,
    /// Connections accepted.
    conns: AtomicU64,
    /// Connections the proxy closed.
    closed: AtomicU64,
    /// Bodies of POST and PUT requests.
    posts: Mutex<Vec<String>>,
    /// `/hold` responses waiting for `release`.
    holds: Mutex<Vec<Hold>>,
}

type Hold = mpsc::Sender<Result<Frame<Bytes>, Infallible>>;

/// A tiny HTTP backend answering with its name. `/hold` sends its head at
/// once and its body when the test calls `release`.
struct Backend {
    name: &'static str,
    addr: SocketAddr,
    seen: Arc<Seen>,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl Backend {
    async fn spawn(name: &'static str, ip: &str) -> Backend {
        let listener = TcpListener::bind((ip, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut b = Backend {
            name,
            addr,
            seen: Arc::default(),
            stop: CancellationToken::new(),
            task: None,
        };
        b.serve(listener);
        b
    }

    fn serve(&mut self, listener: TcpListener) {
        let (name, seen, stop) = (self.name, self.seen.clone(), self.stop.clone());
        self.task = Some(tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    _ = stop.cancelled() => return,
                    a = listener.accept() => a.unwrap(),
                };
                seen.conns.fetch_add(1, Ordering::SeqCst);
                let (seen, stop) = (seen.clone(), stop.clone());
                tokio::spawn(async move {
                    let svc = {
                        let seen = seen.clone();
                        service_fn(move |req| answer(name, seen.clone(), req))
                    };
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc);
                    // Cancelled: the connection is dropped, as if the
                    // process died.
                    tokio::select! {
                        _ = stop.cancelled() => {}
                        _ = conn => {
                            seen.closed.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                });
            }
        }));
    }

    fn hits(&self) -> u64 {
        self.seen.hits.load(Ordering::SeqCst)
    }

    fn server(&self) -> UpstreamServer {
        upstream_server(self.addr)
    }

    /// Closes the listener and every connection.
    async fn kill(&mut self) {
        self.stop.cancel();
        self.task.take().unwrap().await.unwrap();
    }

    /// Listens again on the same address.
    async fn restart(&mut self) {
        self.stop = CancellationToken::new();
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener);
    }

    fn release(&self) {
        for tx in self.seen.holds.lock().unwrap().drain(..) {
            let _ = tx.try_send(Ok(Frame::data(Bytes::from_static(b"released"))));
        }
    }
}

async fn answer(
    name: &'static str,
    seen: Arc<Seen>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    seen.hits.fetch_add(1, Ordering::SeqCst);
    let mut resp = Response::builder().header("x-backend", name);
    let h = req.headers();
    resp = resp.header("x-seen-uri", req.uri().to_string());
    for (from, to) in [
        ("host", "x-seen-host"),
        ("x-forwarded-for", "x-seen-xff"),
        ("x-forwarded-proto", "x-seen-proto"),
        ("x-forwarded-host", "x-seen-xfh"),
        ("x-drop", "x-seen-drop"),
    ] {
        if let Some(v) = h.get(from) {
            resp = resp.header(to, v);
        }
    }
    let body = if req.uri().path() == "/hold" {
        let (tx, rx) = mpsc::channel(1);
        seen.holds.lock().unwrap().push(tx);
        StreamBody::new(ReceiverStream::new(rx)).boxed()
    } else if req.method() == http::Method::POST || req.method() == http::Method::PUT {
        let text = req.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&text).into_owned();
        seen.posts.lock().unwrap().push(text.clone());
        Full::new(Bytes::from(format!("{name}:{text}"))).boxed()
    } else {
        Full::new(Bytes::from(name)).boxed()
    };
    Ok(resp.body(body).unwrap())
}

/// A backend that reads a request head and then closes the connection
/// without a word, or (`silent`) keeps it open and never answers.
struct Broken {
    addr: SocketAddr,
    requests: Arc<AtomicU64>,
}

impl Broken {
    async fn spawn(ip: &str, silent: bool) -> Broken {
        let listener = TcpListener::bind((ip, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicU64::new(0));
        let count = requests.clone();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                let count = count.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0; 65536];
                    let mut got = Vec::new();
                    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => got.extend_from_slice(&buf[..n]),
                        }
                    }
                    count.fetch_add(1, Ordering::SeqCst);
                    if silent {
                        // Hold the connection until the peer goes.
                        while s.read(&mut buf).await.is_ok_and(|n| n > 0) {}
                    }
                });
            }
        });
        Broken { addr, requests }
    }

    fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
}

/// An address nothing listens on.
async fn refusing(ip: &str) -> SocketAddr {
    TcpListener::bind((ip, 0))
        .await
        .unwrap()
        .local_addr()
        .unwrap()
}

// ---------------------------------------------------------------- config

fn upstream_server(addr: SocketAddr) -> UpstreamServer {
    UpstreamServer {
        server: Server::new(addr.to_string()),
        node: None,
    }
}

fn with(mut s: UpstreamServer, f: impl FnOnce(&mut Server)) -> UpstreamServer {
    f(&mut s.server);
    s
}

/// Every domain of `domains` straight to one upstream.
fn straight(domains: &[(&str, &str)]) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    for (domain, upstream) in domains {
        map.insert(
            (*domain).into(),
            serde_json::json!({
                "init": "to",
                "rules": {"to": {"type": "backend", "args": {"servername": upstream}}}
            }),
        );
    }
    serde_json::Value::Object(map)
}

fn config(
    generation: u64,
    domains: serde_json::Value,
    upstreams: Vec<(&str, Vec<UpstreamServer>)>,
) -> ProxyConfig {
    let domains: BTreeMap<String, Domain> = serde_json::from_value(domains).unwrap();
    let upstreams: BTreeMap<String, Vec<UpstreamServer>> = upstreams
        .into_iter()
        .map(|(n, s)| (n.to_owned(), s))
        .collect();
    let routes = RouteTable::compile(&domains, &|u| upstreams.contains_key(u)).unwrap();
    ProxyConfig {
        generation,
        routes: Arc::new(routes),
        upstreams,
    }
}

// ---------------------------------------------------------------- proxy and client

struct Running {
    addr: SocketAddr,
    proxy: Arc<Proxy>,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

async fn start(config: ProxyConfig, health: Option<HealthEndpoint>, timeouts: Timeouts) -> Running {
    // Two workers whatever the machine: connections spread over threads.
    let proxy = Proxy::with_options(
        config,
        health,
        Options {
            timeouts,
            workers: 2,
        },
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(proxy.clone().serve(listener, shutdown.clone()));
    Running {
        addr,
        proxy,
        shutdown,
        task,
    }
}

async fn start_default(config: ProxyConfig) -> Running {
    start(config, None, Timeouts::default()).await
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", |v| v.to_str().unwrap())
    }
}

async fn send(
    c: &HttpClient,
    proxy: SocketAddr,
    method: &str,
    host: &str,
    path: &str,
    extra: &[(&str, &str)],
    body: &'static str,
) -> Result<Answer, String> {
    let mut req = Request::builder()
        .method(method)
        .uri(format!("http://{proxy}{path}"))
        .header("host", host);
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let req = req
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap();
    let resp = c.request(req).await.map_err(|e| format!("{e:?}"))?;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok(Answer {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

async fn get(c: &HttpClient, proxy: SocketAddr, host: &str, path: &str) -> Answer {
    send(c, proxy, "GET", host, path, &[], "").await.unwrap()
}

/// Client tasks sending GETs in a loop, each on its own keep-alive pool.
struct Load {
    stop: CancellationToken,
    ok: Arc<AtomicU64>,
    tasks: Vec<JoinHandle<Tally>>,
}

/// Answers by backend, and every failure.
type Tally = (BTreeMap<String, u64>, Vec<String>);

impl Load {
    fn start(proxy: SocketAddr, host: &'static str, clients: usize) -> Load {
        let stop = CancellationToken::new();
        let ok = Arc::new(AtomicU64::new(0));
        let tasks = (0..clients)
            .map(|_| {
                let (stop, ok) = (stop.clone(), ok.clone());
                tokio::spawn(async move {
                    let c = client();
                    let mut by_backend = BTreeMap::new();
                    let mut failed = Vec::new();
                    while !stop.is_cancelled() {
                        match send(&c, proxy, "GET", host, "/", &[], "").await {
                            Ok(a) if a.status == StatusCode::OK => {
                                *by_backend.entry(a.body).or_default() += 1;
                                ok.fetch_add(1, Ordering::SeqCst);
                            }
                            Ok(a) => failed.push(format!("{} {}", a.status, a.body)),
                            Err(e) => failed.push(e),
                        }
                    }
                    (by_backend, failed)
                })
            })
            .collect();
        Load { stop, ok, tasks }
    }

    fn ok(&self) -> u64 {
        self.ok.load(Ordering::SeqCst)
    }

    /// Waits until `n` more requests have succeeded.
    async fn progress(&self, n: u64) {
        let target = self.ok() + n;
        eventually!(
            self.ok() >= target,
            "the load stalled at {} of {target}",
            self.ok()
        );
    }

    /// Answers by backend, and every failure.
    async fn stop(self) -> (BTreeMap<String, u64>, Vec<String>) {
        self.stop.cancel();
        let mut by_backend = BTreeMap::new();
        let mut failed = Vec::new();
        for t in self.tasks {
            let (b, f) = t.await.unwrap();
            for (k, v) in b {
                *by_backend.entry(k).or_default() += v;
            }
            failed.extend(f);
        }
        (by_backend, failed)
    }
}

// ---------------------------------------------------------------- tests
