//! The proxy on the wire, byte for byte: clients written by hand (HTTP/1.0,
//! pipelining, `Expect: 100-continue`, chunked uploads, smuggling shapes)
//! and backends that answer exactly what a test says (close-delimited and
//! chunked bodies, trailers, 1xx, HEAD).

#![allow(dead_code)] // not every shared helper is used here

include!("support/proxy.rs");

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// A backend that answers each request with the bytes `script` gives for
/// its head (and body), then closes if the answer says so.
struct Scripted {
    addr: SocketAddr,
    /// Every request as received, head and body.
    seen: Arc<Mutex<Vec<String>>>,
}

/// What a scripted backend sends back, and whether it then closes.
type Script = fn(&str) -> (Vec<u8>, bool);

impl Scripted {
    async fn spawn(script: Script) -> Scripted {
        let listener = TcpListener::bind("127.0.0.3:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                let log = log.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    loop {
                        let Some(req) = read_request(&mut s, &mut buf).await else {
                            return;
                        };
                        log.lock().unwrap().push(req.clone());
                        let (answer, close) = script(&req);
                        if s.write_all(&answer).await.is_err() || close {
                            return;
                        }
                    }
                });
            }
        });
        Scripted { addr, seen }
    }

    fn requests(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

/// Reads one request (a head, and a body by `content-length` or chunked)
/// off `s`; `None` once the peer closed.
async fn read_request(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        read_more(s, buf).await?;
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
    let end = if let Some(n) = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
    {
        head_end + n.trim().parse::<usize>().unwrap()
    } else if head.contains("transfer-encoding: chunked") {
        loop {
            if let Some(i) = buf[head_end..].windows(5).position(|w| w == b"0\r\n\r\n") {
                break head_end + i + 5;
            }
            read_more(s, buf).await?;
        }
    } else {
        head_end
    };
    while buf.len() < end {
        read_more(s, buf).await?;
    }
    let req = String::from_utf8_lossy(&buf[..end]).into_owned();
    buf.drain(..end);
    Some(req)
}

async fn read_more(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<()> {
    let mut chunk = vec![0u8; 65536];
    match s.read(&mut chunk).await {
        Ok(0) | Err(_) => None,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Some(())
        }
    }
}

/// A raw client connection to the proxy.
struct Raw {
    s: TcpStream,
    buf: Vec<u8>,
}

/// A response as the client read it.
#[derive(Debug)]
struct Got {
    head: String,
    body: Vec<u8>,
}

impl Got {
    fn status(&self) -> u16 {
        self.head[9..12].parse().unwrap()
    }

    fn has(&self, line: &str) -> bool {
        self.head.lines().any(|l| l.eq_ignore_ascii_case(line))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Raw {
    async fn connect(proxy: SocketAddr) -> Raw {
        Raw {
            s: TcpStream::connect(proxy).await.unwrap(),
            buf: Vec::new(),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).await.unwrap();
    }

    /// Reads one response; a body by `content-length`, chunked (decoded)
    /// or, with neither, until the close. `head_request`: no body.
    async fn response(&mut self, head_request: bool) -> Got {
        let fut = async {
            let end = loop {
                if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break i + 4;
                }
                read_more(&mut self.s, &mut self.buf)
                    .await
                    .expect("the proxy closed before a response head");
            };
            let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
            self.buf.drain(..end);
            let lower = head.to_lowercase();
            let status: u16 = head[9..12].parse().unwrap();
            let body =
                if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
                    Vec::new()
                } else if let Some(n) = lower
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                {
                    let n: usize = n.trim().parse().unwrap();
                    while self.buf.len() < n {
                        read_more(&mut self.s, &mut self.buf)
                            .await
                            .expect("body cut short");
                    }
                    self.buf.drain(..n).collect()
                } else if lower.contains("transfer-encoding: chunked") {
                    let mut body = Vec::new();
                    loop {
                        let line_end = loop {
                            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                                break i;
                            }
                            read_more(&mut self.s, &mut self.buf)
                                .await
                                .expect("chunk cut short");
                        };
                        let size = usize::from_str_radix(
                            std::str::from_utf8(&self.buf[..line_end]).unwrap(),
                            16,
                        )
                        .unwrap();
                        while self.buf.len() < line_end + 2 + size + 2 {
                            read_more(&mut self.s, &mut self.buf)
                                .await
                                .expect("chunk cut short");
                        }
                        body.extend_from_slice(&self.buf[line_end + 2..line_end + 2 + size]);
                        self.buf.drain(..line_end + 2 + size + 2);
                        if size == 0 {
                            break body;
                        }
                    }
                } else {
                    while read_more(&mut self.s, &mut self.buf).await.is_some() {}
                    std::mem::take(&mut self.buf)
                };
            Got { head, body }
        };
        tokio::time::timeout(PATIENCE, fut)
            .await
            .expect("a response in time")
    }

    /// Whether the proxy closed the connection (within `PATIENCE`).
    async fn closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(
            tokio::time::timeout(PATIENCE, self.s.read(&mut b)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }
}

async fn proxy_to(addr: SocketAddr) -> Running {
    start_default(config(
        1,
        straight(&[("shop.test", "web")]),
        vec![("web", vec![upstream_server(addr)])],
    ))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_stream_through_chunked_or_by_length_and_downloads_come_back_whole() {
    let web = Backend::spawn("web", "127.0.0.2").await;
    let p = proxy_to(web.addr).await;
    let mut c = Raw::connect(p.addr).await;

    // A chunked upload: re-chunked upstream, the backend reads it whole.
    c.send(
        b"POST /up HTTP/1.1\r\nHost: shop.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
    )
    .await;
    c.send(b"7;note=x\r\n, world\r\n0\r\n\r\n").await;
    let got = c.response(false).await;
    assert_eq!((got.status(), got.text()), (200, "web:hello, world".into()));

    // A body larger than what is held for retries: streamed by length.
    let big = "x".repeat(3 * 1024 * 1024 + 7);
    c.send(
        format!(
            "POST /up HTTP/1.1\r\nHost: shop.test\r\nContent-Length: {}\r\n\r\n",
            big.len()
        )
        .as_bytes(),
    )
    .await;
    c.send(big.as_bytes()).await;
    let got = c.response(false).await;
    assert_eq!(got.status(), 200);
    assert_eq!(got.body.len(), "web:".len() + big.len());
    assert_eq!(
        web.seen.posts.lock().unwrap().last().unwrap().len(),
        big.len()
    );

    // Both on the same client connection, which is still good.
    c.send(b"GET / HTTP/1.1\r\nHost: shop.test\r\n\r\n").await;
    assert_eq!(c.response(false).await.text(), "web");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_100_continue_is_answered_before_the_body_is_sent() {
    let web = Backend::spawn("web", "127.0.0.2").await;
    let p = proxy_to(web.addr).await;
    let mut c = Raw::connect(p.addr).await;
    for method in ["POST", "PUT"] {
        c.send(
            format!("{method} /up HTTP/1.1\r\nHost: shop.test\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
                .as_bytes(),
        )
        .await;
        let interim = c.response(false).await;
        assert_eq!(interim.status(), 100, "{method}");
        c.send(b"data").await;
        let got = c.response(false).await;
        assert_eq!(
            (got.status(), got.text()),
            (200, "web:data".into()),
            "{method}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_in_order_and_http10_is_spoken() {
    let web = Backend::spawn("web", "127.0.0.2").await;
    let p = proxy_to(web.addr).await;

    let mut c = Raw::connect(p.addr).await;
    c.send(
        b"GET /a HTTP/1.1\r\nHost: shop.test\r\n\r\n\
          POST /b HTTP/1.1\r\nHost: shop.test\r\nContent-Length: 2\r\n\r\nhi\
          GET /c HTTP/1.1\r\nHost: shop.test\r\n\r\n",
    )
    .await;
    let seen: Vec<String> = [
        c.response(false).await,
        c.response(false).await,
        c.response(false).await,
    ]
    .iter()
    .map(|g| format!("{} {}", g.status(), g.text()))
    .collect();
    assert_eq!(seen, ["200 web", "200 web:hi", "200 web"]);

    // HTTP/1.0: closed after the response unless keep-alive is asked for.
    let mut c = Raw::connect(p.addr).await;
    c.send(b"GET / HTTP/1.0\r\nHost: shop.test\r\nConnection: keep-alive\r\n\r\n")
        .await;
    let got = c.response(false).await;
    assert!(got.has("connection: keep-alive"), "{}", got.head);
    c.send(b"GET / HTTP/1.0\r\nHost: shop.test\r\n\r\n").await;
    let got = c.response(false).await;
    assert!(got.has("connection: close"), "{}", got.head);
    assert_eq!(got.text(), "web");
    assert!(c.closed().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smuggling_shaped_and_broken_requests_are_refused_before_any_backend() {
    let web = Backend::spawn("web", "127.0.0.2").await;
    let p = proxy_to(web.addr).await;
    for (raw, status) in [
        (
            "POST / HTTP/1.1\r\nHost: shop.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
        ),
        (
            "POST / HTTP/1.1\r\nHost: shop.test\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
            400,
        ),
        (
            "POST / HTTP/1.1\r\nHost: shop.test\r\nTransfer-Encoding: gzip\r\n\r\n",
            501,
        ),
        (
            "GET / HTTP/1.1\r\nHost: shop.test\r\nBad Header: 1\r\n\r\n",
            400,
        ),
        ("GARBAGE\r\n\r\n", 400),
        (
            "GET / HTTP/1.1\r\nHost: shop.test\r\nHost: other.test\r\n\r\n",
            400,
        ),
        (
            "CONNECT shop.test:443 HTTP/1.1\r\nHost: shop.test:443\r\n\r\n",
            405,
        ),
    ] {
        let mut c = Raw::connect(p.addr).await;
        c.send(raw.as_bytes()).await;
        let got = c.response(false).await;
        assert_eq!(got.status(), status, "{raw:?}: {}", got.head);
        assert!(got.has("connection: close"), "{raw:?}");
        assert!(c.closed().await, "{raw:?}: the connection is closed after");
    }
    let mut c = Raw::connect(p.addr).await;
    c.send(
        format!(
            "GET / HTTP/1.1\r\nHost: shop.test\r\nX-Big: {}\r\n\r\n",
            "a".repeat(70_000)
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(c.response(false).await.status(), 431);
    assert_eq!(web.hits(), 0, "nothing reached the backend");

    // A chunked upload that breaks its framing midway: the backend never
    // gets a complete request, and the client connection is closed.
    let mut c = Raw::connect(p.addr).await;
    c.send(b"POST / HTTP/1.1\r\nHost: shop.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX")
        .await;
    assert!(c.closed().await);
    assert!(web.seen.posts.lock().unwrap().is_empty());
}

fn framings(req: &str) -> (Vec<u8>, bool) {
    let path = req.split(' ').nth(1).unwrap_or("");
    let answer: &[u8] = match path {
        // Delimited by the close.
        "/close" => b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end",
        "/chunked" => {
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\none\r\n4\r\n two\r\n0\r\nX-Trailer: t\r\n\r\n"
        }
        "/hints" => {
            b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal"
        }
        "/empty" => b"HTTP/1.1 204 No Content\r\nX-Why: none\r\n\r\n",
        "/head" => b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n",
        "/garbled" => b"HTTP/1.1 2x0 What\r\n\r\n",
        _ => b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    };
    (answer.to_vec(), path == "/close" || path == "/garbled")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_backend_framing_reaches_the_client_intact() {
    let web = Scripted::spawn(framings).await;
    let p = proxy_to(web.addr).await;
    let mut c = Raw::connect(p.addr).await;
    let get = |path: &str, method: &str, version: &str| {
        format!("{method} {path} HTTP/1.{version}\r\nHost: shop.test\r\n\r\n").into_bytes()
    };

    // Close-delimited: chunked for an HTTP/1.1 client, which keeps its
    // connection.
    c.send(&get("/close", "GET", "1")).await;
    let got = c.response(false).await;
    assert!(got.has("transfer-encoding: chunked"), "{}", got.head);
    assert_eq!(got.text(), "until the end");

    c.send(&get("/chunked", "GET", "1")).await;
    assert_eq!(c.response(false).await.text(), "one two");

    c.send(&get("/hints", "GET", "1")).await;
    let got = c.response(false).await;
    assert_eq!((got.status(), got.text()), (200, "final".into()));

    c.send(&get("/empty", "GET", "1")).await;
    let got = c.response(false).await;
    assert!(
        got.status() == 204 && got.has("x-why: none"),
        "{}",
        got.head
    );

    c.send(&get("/head", "HEAD", "1")).await;
    let got = c.response(true).await;
    assert!(
        got.has("content-length: 1234"),
        "the length of what HEAD leaves out: {}",
        got.head
    );

    c.send(&get("/garbled", "GET", "1")).await;
    let got = c.response(false).await;
    assert_eq!(got.status(), 502);
    assert!(
        got.text().contains("malformed response head"),
        "{}",
        got.text()
    );

    c.send(&get("/", "GET", "1")).await;
    assert_eq!(
        c.response(false).await.text(),
        "ok",
        "still in step after all that"
    );

    // An HTTP/1.0 client gets a chunked or close-delimited body plain,
    // and the close.
    for path in ["/chunked", "/close"] {
        let mut c = Raw::connect(p.addr).await;
        c.send(&get(path, "GET", "0")).await;
        let got = c.response(false).await;
        assert!(!got.has("transfer-encoding: chunked"), "{}", got.head);
        assert!(got.text() == "one two" || got.text() == "until the end");
    }

    // The backend saw each request once, with its framing stated.
    let seen = web.requests();
    assert!(
        seen.iter()
            .all(|r| r.contains("x-forwarded-for: 127.0.0.1"))
    );
    assert_eq!(
        seen.iter()
            .filter(|r| r.starts_with("GET /chunked"))
            .count(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stalls_its_body_is_closed_as_idle() {
    let web = Backend::spawn("web", "127.0.0.2").await;
    let p = start(
        config(
            1,
            straight(&[("shop.test", "web")]),
            vec![("web", vec![web.server()])],
        ),
        None,
        Timeouts {
            client_idle: Duration::from_millis(200),
            ..Timeouts::default()
        },
    )
    .await;
    // A PUT's small body is read before anything is sent upstream; one
    // that never comes does not hold the connection.
    let mut c = Raw::connect(p.addr).await;
    c.send(b"PUT / HTTP/1.1\r\nHost: shop.test\r\nContent-Length: 10\r\n\r\nabc")
        .await;
    assert!(c.closed().await);
    assert_eq!(web.hits(), 0);
}
