//! The reverse proxy end to end: real backends on 127.0.0.2–4 that answer
//! with their name, a keep-alive client, configuration changes under load.
//! Every wait is on a condition with a bounded patience.

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
    /// Bodies of POST requests.
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
    } else if req.method() == http::Method::POST {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_by_host_with_404_403_rewrite_and_forwarded_headers() {
    let web = Backend::spawn("web", "127.0.0.2").await;
    let domains = serde_json::json!({
        "shop.test": {
            "init": "api",
            "rules": {
                "api": {"type": "path", "args": {"pattern": "/api", "rewrite": true, "succ": "to", "fail": "curl"}},
                "curl": {"type": "ua", "args": {"pattern": "^curl/", "succ": "to"}},
                "to": {"type": "backend", "args": {"servername": "web"}}
            }
        }
    });
    let p = start_default(config(1, domains, vec![("web", vec![web.server()])])).await;
    let c = client();

    let a = send(
        &c,
        p.addr,
        "GET",
        "shop.test",
        "/api/items?x=1",
        &[
            ("x-forwarded-for", "10.1.2.3"),
            ("connection", "x-drop"),
            ("x-drop", "1"),
        ],
        "",
    )
    .await
    .unwrap();
    assert_eq!((a.status, a.body.as_str()), (StatusCode::OK, "web"));
    assert_eq!(
        a.header("x-seen-uri"),
        "/items?x=1",
        "rewritten, query kept"
    );
    assert_eq!(a.header("x-seen-xff"), "10.1.2.3, 127.0.0.1");
    assert_eq!(a.header("x-seen-proto"), "http");
    assert_eq!(a.header("x-seen-host"), "shop.test");
    assert_eq!(a.header("x-seen-xfh"), "shop.test");
    assert_eq!(
        a.header("x-seen-drop"),
        "",
        "named in Connection: hop-by-hop"
    );

    let a = send(
        &c,
        p.addr,
        "GET",
        "SHOP.test:8080",
        "/other",
        &[("user-agent", "curl/8.5")],
        "",
    )
    .await
    .unwrap();
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.header("x-seen-uri"), "/other");
    assert_eq!(
        a.header("x-seen-host"),
        "SHOP.test:8080",
        "Host passed on as sent"
    );
    assert_eq!(a.header("x-seen-xff"), "127.0.0.1");

    let a = send(
        &c,
        p.addr,
        "GET",
        "shop.test",
        "/other",
        &[("user-agent", "Mozilla/5.0")],
        "",
    )
    .await
    .unwrap();
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert!(a.body.contains("\"curl\""), "{}", a.body);

    let a = get(&c, p.addr, "nope.test", "/").await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.body, "no route for host \"nope.test\"\n");
    assert_eq!(web.hits(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distribution_follows_weights() {
    let a = Backend::spawn("a", "127.0.0.2").await;
    let b = Backend::spawn("b", "127.0.0.3").await;
    let cc = Backend::spawn("c", "127.0.0.4").await;
    let servers = vec![with(a.server(), |s| s.weight = 5), b.server(), cc.server()];
    let p = start_default(config(
        1,
        straight(&[("shop.test", "web")]),
        vec![("web", servers)],
    ))
    .await;
    let c = client();
    let mut seq = Vec::new();
    for _ in 0..70 {
        seq.push(get(&c, p.addr, "shop.test", "/").await.body);
    }
    assert_eq!(
        seq[..7].join(" "),
        "a a b a c a a",
        "nginx's smooth sequence"
    );
    let count = |n: &str| seq.iter().filter(|s| *s == n).count();
    assert_eq!((count("a"), count("b"), count("c")), (50, 10, 10));
    for backend in [&a, &b, &cc] {
        let conns = backend.seen.conns.load(Ordering::SeqCst);
        assert!(
            conns <= 2,
            "{}: {conns} connections for sequential requests; kept-alive ones are reused (one pool per worker, two workers)",
            backend.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_backend_connections_are_closed() {
    let web = Backend::spawn("web", "127.0.0.2").await;
    let timeouts = Timeouts {
        idle: Duration::from_millis(200),
        ..Timeouts::default()
    };
    let p = start(
        config(
            1,
            straight(&[("shop.test", "web")]),
            vec![("web", vec![web.server()])],
        ),
        None,
        timeouts,
    )
    .await;
    let c = client();
    assert_eq!(get(&c, p.addr, "shop.test", "/").await.body, "web");
    eventually!(
        web.seen.closed.load(Ordering::SeqCst) == 1,
        "the idle backend connection is still open"
    );
    assert_eq!(get(&c, p.addr, "shop.test", "/").await.body, "web");
    assert_eq!(web.seen.conns.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_client_connections_are_closed_waiting_ones_are_not() {
    let web = Backend::spawn("web", "127.0.0.2").await;
    let silent = Broken::spawn("127.0.0.3", true).await;
    let timeouts = Timeouts {
        client_idle: Duration::from_millis(200),
        response_head: Duration::from_millis(1000),
        ..Timeouts::default()
    };
    let p = start(
        config(
            1,
            straight(&[("shop.test", "web"), ("silent.test", "silent")]),
            vec![
                ("web", vec![web.server()]),
                ("silent", vec![upstream_server(silent.addr)]),
            ],
        ),
        None,
        timeouts,
    )
    .await;

    // Silent, and then half a request head: closed either way.
    for sent in [&b""[..], b"GET / HTTP/1.1\r\nHost: shop"] {
        let mut s = tokio::net::TcpStream::connect(p.addr).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut s, sent)
            .await
            .unwrap();
        let mut buf = [0; 64];
        let n = tokio::time::timeout(PATIENCE, s.read(&mut buf))
            .await
            .expect("an idle connection is closed")
            .unwrap_or(0);
        assert_eq!(n, 0, "closed without an answer");
    }

    // Waiting for a response head longer than client_idle is not idling.
    let a = get(&client(), p.addr, "silent.test", "/").await;
    assert_eq!(a.status, StatusCode::GATEWAY_TIMEOUT, "{}", a.body);

    // A response body that stalls for client_idle is cut, as nginx's
    // proxy_read_timeout / send_timeout would.
    let req = Request::builder()
        .uri(format!("http://{}/hold", p.addr))
        .header("host", "shop.test")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let held = client().request(req).await.unwrap();
    assert_eq!(held.status(), StatusCode::OK);
    let cut = tokio::time::timeout(PATIENCE, held.into_body().collect())
        .await
        .expect("a stalled body is cut");
    assert!(cut.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_server_under_load_fails_nothing_and_drains() {
    let b1 = Backend::spawn("b1", "127.0.0.2").await;
    let b2 = Backend::spawn("b2", "127.0.0.3").await;
    let b3 = Backend::spawn("b3", "127.0.0.4").await;
    let domains = || straight(&[("shop.test", "web"), ("slow.test", "slow")]);
    let p = start_default(config(
        1,
        domains(),
        vec![
            ("web", vec![b1.server(), b2.server(), b3.server()]),
            ("slow", vec![b3.server()]),
        ],
    ))
    .await;
    const CLIENTS: usize = 8;
    let load = Load::start(p.addr, "shop.test", CLIENTS);
    load.progress(300).await;

    // A response from b3 whose body is still on its way.
    let held = {
        let req = Request::builder()
            .uri(format!("http://{}/hold", p.addr))
            .header("host", "slow.test")
            .body(Full::new(Bytes::new()))
            .unwrap();
        client().request(req).await.unwrap()
    };
    assert_eq!(held.status(), StatusCode::OK);
    let mut changes = p.proxy.changes();
    changes.borrow_and_update();

    p.proxy.update(config(
        2,
        domains(),
        vec![
            ("web", vec![b1.server(), b2.server()]),
            ("slow", vec![b1.server()]),
        ],
    ));
    let b3_at_update = b3.hits();
    assert!(
        changes.has_changed().unwrap(),
        "applying a configuration bumps changes()"
    );
    changes.borrow_and_update();
    let draining = p.proxy.draining();
    assert_eq!(draining.len(), 1, "{draining:?}");
    assert_eq!(draining[0].0, b3.addr.to_string());
    assert!(
        draining[0].1 >= 1,
        "the held response counts until its body ends"
    );

    load.progress(300).await;
    let b3_after_load = b3.hits();
    assert!(
        b3_after_load - b3_at_update <= CLIENTS as u64,
        "only requests already in flight may reach b3 after the update: {} did",
        b3_after_load - b3_at_update
    );
    assert_eq!(p.proxy.draining().len(), 1, "still held");

    b3.release();
    let body = held.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"released");
    // No polling: changes() fires when b3's last request ends.
    while !p.proxy.draining().is_empty() {
        tokio::time::timeout(PATIENCE, changes.changed())
            .await
            .expect("changes() fires when a draining server empties")
            .unwrap();
    }
    load.progress(300).await;
    assert_eq!(
        b3.hits(),
        b3_after_load,
        "nothing new reaches a removed server"
    );

    let (by_backend, failed) = load.stop().await;
    assert!(
        failed.is_empty(),
        "{} failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(by_backend["b3"] > 0 && by_backend["b1"] > 0 && by_backend["b2"] > 0);
    let stats = p.proxy.stats();
    let names: Vec<_> = stats.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["slow", "web"]);
    assert_eq!(stats[1].servers.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_config_changes_under_load_fail_nothing() {
    let b = [
        Backend::spawn("b1", "127.0.0.2").await,
        Backend::spawn("b2", "127.0.0.3").await,
        Backend::spawn("b3", "127.0.0.4").await,
    ];
    let make = |i: u64| {
        // Upstreams change on even generations, routes on odd ones.
        let members = |k: u64| -> Vec<UpstreamServer> {
            let first = (k as usize / 2) % 3;
            vec![
                with(b[first].server(), |s| s.weight = 1 + (k % 4) as u32),
                b[(first + 1) % 3].server(),
            ]
        };
        let target = if (i / 2).is_multiple_of(2) {
            "web"
        } else {
            "alt"
        };
        let mut upstreams = vec![("web", members(i)), ("alt", members(i + 2))];
        if (i / 4).is_multiple_of(2) {
            upstreams.push(("spare", vec![b[2].server()]));
        }
        config(i, straight(&[("shop.test", target)]), upstreams)
    };
    let p = start_default(make(0)).await;
    let load = Load::start(p.addr, "shop.test", 6);
    load.progress(100).await;
    for i in 1..=100 {
        p.proxy.update(make(i));
        assert_eq!(p.proxy.generation(), i);
        load.progress(10).await;
    }
    let (by_backend, failed) = load.stop().await;
    assert!(
        failed.is_empty(),
        "{} failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert_eq!(by_backend.len(), 3, "{by_backend:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_backend_is_ejected_then_used_again_once_back() {
    let b1 = Backend::spawn("b1", "127.0.0.2").await;
    let mut b2 = Backend::spawn("b2", "127.0.0.3").await;
    let b3 = Backend::spawn("b3", "127.0.0.4").await;
    let fail_timeout = |s: &mut Server| {
        s.max_fails = 2;
        s.fail_timeout_ms = 1000;
    };
    let servers = vec![
        with(b1.server(), fail_timeout),
        with(b2.server(), fail_timeout),
        with(b3.server(), fail_timeout),
    ];
    let p = start_default(config(
        1,
        straight(&[("shop.test", "web")]),
        vec![("web", servers)],
    ))
    .await;
    let load = Load::start(p.addr, "shop.test", 4);
    load.progress(200).await;

    b2.kill().await;
    let b2_addr = b2.addr.to_string();
    let b2_stats = |p: &Running| {
        p.proxy.stats()[0]
            .servers
            .iter()
            .find(|s| s.addr == b2_addr)
            .cloned()
            .unwrap()
    };
    eventually!(
        b2_stats(&p).ejected_for.is_some(),
        "b2 was never ejected: {:?}",
        b2_stats(&p)
    );
    assert!(b2_stats(&p).failures >= 2);
    load.progress(200).await;

    b2.restart().await;
    let before = b2.hits();
    eventually!(b2.hits() > before + 10, "b2 is not used again once back");
    assert_eq!(b2_stats(&p).ejected_for, None);

    let (_, failed) = load.stop().await;
    assert!(
        failed.is_empty(),
        "{} failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_is_retried_only_when_the_connection_was_never_made() {
    let alive = Backend::spawn("alive", "127.0.0.2").await;
    let dropper = Broken::spawn("127.0.0.3", false).await;
    let dead = refusing("127.0.0.4").await;
    // max_fails 0: the broken servers stay first in line for each upstream.
    let never = |s: &mut Server| s.max_fails = 0;
    let first_broken = |addr: SocketAddr| {
        vec![
            with(upstream_server(addr), never),
            with(alive.server(), never),
        ]
    };
    let p = start_default(config(
        1,
        straight(&[
            ("refused.test", "u1"),
            ("dropped.test", "u2"),
            ("dropped-get.test", "u3"),
        ]),
        vec![
            ("u1", first_broken(dead)),
            ("u2", first_broken(dropper.addr)),
            ("u3", first_broken(dropper.addr)),
        ],
    ))
    .await;
    let c = client();

    let a = send(&c, p.addr, "POST", "refused.test", "/", &[], "hello")
        .await
        .unwrap();
    assert_eq!(
        (a.status, a.body.as_str()),
        (StatusCode::OK, "alive:hello"),
        "never connected: retried"
    );

    let a = send(&c, p.addr, "POST", "dropped.test", "/", &[], "again")
        .await
        .unwrap();
    assert_eq!(a.status, StatusCode::BAD_GATEWAY, "{}", a.body);
    assert!(a.body.starts_with("upstream \"u2\": "), "{}", a.body);
    assert_eq!(dropper.requests(), 1);
    assert_eq!(
        *alive.seen.posts.lock().unwrap(),
        ["hello"],
        "a sent POST is not sent twice"
    );

    let a = get(&c, p.addr, "dropped-get.test", "/").await;
    assert_eq!(
        (a.status, a.body.as_str()),
        (StatusCode::OK, "alive"),
        "a GET moves on"
    );
    assert_eq!(dropper.requests(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_response_head_in_time_is_a_504() {
    let silent = Broken::spawn("127.0.0.3", true).await;
    let timeouts = Timeouts {
        response_head: Duration::from_millis(300),
        ..Timeouts::default()
    };
    let p = start(
        config(
            1,
            straight(&[("shop.test", "web")]),
            vec![("web", vec![upstream_server(silent.addr)])],
        ),
        None,
        timeouts,
    )
    .await;
    let a = get(&client(), p.addr, "shop.test", "/").await;
    assert_eq!(a.status, StatusCode::GATEWAY_TIMEOUT, "{}", a.body);
    assert_eq!(
        a.body,
        format!(
            "upstream \"web\": {}: no response head within 300ms\n",
            silent.addr
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_upstream_is_a_502_naming_it() {
    let p = start_default(config(
        1,
        straight(&[("shop.test", "web")]),
        vec![("web", vec![])],
    ))
    .await;
    let a = get(&client(), p.addr, "shop.test", "/").await;
    assert_eq!(a.status, StatusCode::BAD_GATEWAY);
    assert_eq!(a.body, "no server available in upstream \"web\"\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_answered_on_the_traffic_port() {
    let web = Backend::spawn("web", "127.0.0.2").await;
    let health = HealthEndpoint {
        path: "/health".into(),
        answer: Arc::new(|node: Option<&str>| match node {
            None | Some("lb-1") => (
                StatusCode::OK,
                r#"{"status":"online","node":"lb-1"}"#.into(),
            ),
            Some(other) => (
                StatusCode::NOT_FOUND,
                format!(r#"{{"error":"not {other}"}}"#),
            ),
        }),
    };
    let p = start(
        config(
            1,
            straight(&[("shop.test", "web")]),
            vec![("web", vec![web.server()])],
        ),
        Some(health),
        Timeouts::default(),
    )
    .await;
    let c = client();
    for host in ["shop.test", "unknown.test"] {
        let a = get(&c, p.addr, host, "/health").await;
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(a.body, r#"{"status":"online","node":"lb-1"}"#);
        assert_eq!(a.header("content-type"), "application/json");
    }
    let a = get(&c, p.addr, "shop.test", "/health?node=lb-1").await;
    assert_eq!(a.status, StatusCode::OK);
    let a = get(&c, p.addr, "shop.test", "/health?node=web-9").await;
    assert_eq!(
        (a.status, a.body.as_str()),
        (StatusCode::NOT_FOUND, r#"{"error":"not web-9"}"#)
    );
    assert_eq!(get(&c, p.addr, "shop.test", "/healthz").await.body, "web");
    assert_eq!(web.hits(), 1, "only /healthz went upstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_the_request_in_flight_finish() {
    let web = Backend::spawn("web", "127.0.0.2").await;
    let p = start_default(config(
        1,
        straight(&[("shop.test", "web")]),
        vec![("web", vec![web.server()])],
    ))
    .await;
    let req = Request::builder()
        .uri(format!("http://{}/hold", p.addr))
        .header("host", "shop.test")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let held = client().request(req).await.unwrap();
    p.shutdown.cancel();
    eventually!(
        tokio::net::TcpStream::connect(p.addr).await.is_err(),
        "the listener is still open after shutdown"
    );
    assert!(
        !p.task.is_finished(),
        "serve waits for the request in flight"
    );
    web.release();
    let body = held.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"released");
    tokio::time::timeout(PATIENCE, p.task)
        .await
        .expect("serve returns")
        .unwrap();
}
