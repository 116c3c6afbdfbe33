//! The proxy's HTTP/1.1 conformance, end to end: requests written byte
//! for byte to a real agent's proxy, routed by the master's upstream and
//! route to a raw backend that records every request head reaching it and
//! answers as the test scripts it; and the access log those requests write.

use cluster_tests::lb::{free_port, listening};
use cluster_tests::{AgentProc, MasterProc, ctl, eventually};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const PATIENCE: Duration = Duration::from_secs(20);
/// The longest request head the raw backend reads.
const MAX_HEAD: usize = 64 * 1024;

/// A backend that answers every request with the same bytes, then closes.
struct Backend {
    addr: String,
    /// Every request head that reached it, in order.
    heads: Arc<Mutex<Vec<String>>>,
}

impl Backend {
    async fn start(ip: &str, response: Vec<u8>) -> Backend {
        let listener = TcpListener::bind((ip, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let (seen, response) = (heads.clone(), Arc::new(response));
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let (seen, response) = (seen.clone(), response.clone());
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    seen.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&head).into_owned());
                    let _ = conn.write_all(&response).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        Backend { addr, heads }
    }

    /// The request heads received whose request line has `path`.
    fn heads_for(&self, path: &str) -> Vec<String> {
        let line = format!(" {path} HTTP/1.1\r\n");
        self.heads
            .lock()
            .unwrap()
            .iter()
            .filter(|h| {
                h.lines()
                    .next()
                    .is_some_and(|l| l.contains(line.trim_end()))
            })
            .cloned()
            .collect()
    }
}

/// A master, a balancer node `lb-1` on `ip` whose proxy routes
/// `conf.test` to `backend`.
struct Setup {
    _master: MasterProc,
    lb: AgentProc,
    proxy: String,
    backend: Backend,
}

async fn setup(ip: &str, response: Vec<u8>) -> Setup {
    setup_with(ip, response, "").await
}

/// [`setup`], with more lines for the proxy's `[proxy]` table.
async fn setup_with(ip: &str, response: Vec<u8>, proxy_config: &str) -> Setup {
    let master = MasterProc::builder().spawn();
    let admin = master.admin();
    let backend = Backend::start(ip, response).await;
    let proxy = format!("{ip}:{}", free_port(ip));
    let lb = AgentProc::builder("lb-1", &master)
        .addr(ip)
        .config(&format!("[proxy]\nlisten = [\"{proxy}\"]\n{proxy_config}"))
        .spawn();
    cluster_tests::connected(&admin, 1).await;
    ctl(
        &admin,
        &["upstream", "set", "raw", "--server", &backend.addr],
    )
    .await
    .ok();
    ctl(&admin, &["route", "set", "conf.test", "--backend", "raw"])
        .await
        .ok();
    listening(&proxy).await;
    eventually(
        "the proxy routes conf.test to the backend",
        PATIENCE,
        || async {
            exchange(
                &proxy,
                b"GET /ready HTTP/1.1\r\nHost: conf.test\r\nConnection: close\r\n\r\n",
            )
            .await
            .starts_with("HTTP/1.1 200")
        },
    )
    .await;
    Setup {
        _master: master,
        lb,
        proxy,
        backend,
    }
}

/// Writes `request` to the proxy and reads until it closes.
async fn exchange(proxy: &str, request: &[u8]) -> String {
    let mut conn = TcpStream::connect(proxy).await.unwrap();
    conn.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let read = tokio::time::timeout(PATIENCE, conn.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the proxy never closed after {request:?}");
    String::from_utf8_lossy(&out).into_owned()
}

/// `data` through Debian's `gzip`.
fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut gzip = std::process::Command::new("gzip")
        .arg("-c")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("gzip runs");
    gzip.stdin.take().unwrap().write_all(data).unwrap();
    let out = gzip.wait_with_output().unwrap();
    assert!(out.status.success(), "gzip failed");
    out.stdout
}

fn ok_response() -> Vec<u8> {
    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n".to_vec()
}

/// RFC 9112 §6.1: HTTP/1.0 has no transfer codings, so a `Transfer-Encoding`
/// in an HTTP/1.0 request is faulty framing — a recipient reading it by
/// length or until the close would see another request in its body.
#[tokio::test(flavor = "multi_thread")]
async fn an_http_1_0_request_with_transfer_encoding_is_refused_and_never_forwarded() {
    let s = setup("127.0.0.210", ok_response()).await;
    let smuggled =
        b"POST /refused HTTP/1.0\r\nHost: conf.test\r\nTransfer-Encoding: chunked\r\n\r\n\
        2d\r\nGET /smuggled HTTP/1.1\r\nHost: conf.test\r\n\r\n\r\n0\r\n\r\n";
    let answer = exchange(&s.proxy, smuggled).await;
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert!(
        answer.contains("Transfer-Encoding in an HTTP/1.0 request"),
        "{answer}"
    );
    // The same request as HTTP/1.1 goes through: the refusal is the
    // version's, not the route's.
    let allowed = b"POST /allowed HTTP/1.1\r\nHost: conf.test\r\nTransfer-Encoding: chunked\r\n\
        Connection: close\r\n\r\n2\r\nhi\r\n0\r\n\r\n";
    let answer = exchange(&s.proxy, allowed).await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert_eq!(s.backend.heads_for("/allowed").len(), 1);
    assert!(s.backend.heads_for("/refused").is_empty());
    assert!(s.backend.heads_for("/smuggled").is_empty());
}

/// RFC 9112 §6.3: with `Transfer-Encoding: gzip, chunked` the chunked
/// coding delimits the body; the proxy takes it off, chunks the body again
/// and passes `gzip` on, so a client decoding transfer codings (curl's
/// `--tr-encoding`) gets the backend's text back — never the chunk framing
/// as body bytes.
#[tokio::test(flavor = "multi_thread")]
async fn a_backends_gzip_chunked_response_reaches_the_client_as_sent() {
    let text = "the same text, gzip-coded by the backend\n".repeat(20);
    let coded = gzip(text.as_bytes());
    let mut response = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\
        Transfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n"
        .to_vec();
    // Two chunks, so the framing is not one piece by chance.
    let (a, b) = coded.split_at(coded.len() / 2);
    for part in [a, b] {
        response.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        response.extend_from_slice(part);
        response.extend_from_slice(b"\r\n");
    }
    response.extend_from_slice(b"0\r\n\r\n");
    let s = setup("127.0.0.211", response).await;

    let answer = exchange(
        &s.proxy,
        b"GET /coded HTTP/1.1\r\nHost: conf.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    let head = answer
        .split("\r\n\r\n")
        .next()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        head.contains("\r\ntransfer-encoding: gzip, chunked\r\n"),
        "{head}"
    );

    let url = format!("http://{}/coded", s.proxy);
    let curl = tokio::process::Command::new("curl")
        .args(["-sS", "--http1.1", "--tr-encoding", "-H", "Host: conf.test"])
        .arg(&url)
        .output()
        .await
        .unwrap();
    assert!(
        curl.status.success(),
        "{}",
        String::from_utf8_lossy(&curl.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&curl.stdout), text);

    // An HTTP/1.0 client has no Transfer-Encoding to be told the body is
    // coded: 502, and the reason.
    let answer = exchange(&s.proxy, b"GET /coded HTTP/1.0\r\nHost: conf.test\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 502 "), "{answer}");
    assert!(answer.contains("transfer coding \"gzip\""), "{answer}");
}

/// RFC 9112 §3.2.2: for a target in absolute form the authority is the
/// host — routing and the `Host` the backend reads follow it, not the
/// `Host` header beside it.
#[tokio::test(flavor = "multi_thread")]
async fn an_absolute_targets_authority_wins_over_the_host_header() {
    let s = setup("127.0.0.212", ok_response()).await;
    let answer = exchange(
        &s.proxy,
        b"GET http://conf.test/absolute?x=1 HTTP/1.1\r\nHost: elsewhere.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    let heads = s.backend.heads_for("/absolute?x=1");
    assert_eq!(heads.len(), 1, "{heads:?}");
    let head = heads[0].to_ascii_lowercase();
    assert!(head.contains("\r\nhost: conf.test\r\n"), "{head}");
    assert!(
        head.contains("\r\nx-forwarded-host: conf.test\r\n"),
        "{head}"
    );
    assert!(!head.contains("elsewhere.test"), "{head}");

    // And the other way round: a Host with a route does not pull a target
    // whose authority has none.
    let answer = exchange(
        &s.proxy,
        b"GET http://elsewhere.test/other HTTP/1.1\r\nHost: conf.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 404 "), "{answer}");
    assert!(s.backend.heads_for("/other").is_empty());
}

/// The access log's lines for requests whose target starts with `/log/`,
/// once there are `count` of them.
async fn logged(path: &std::path::Path, count: usize) -> Vec<String> {
    let read = || -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("/log/"))
            .map(str::to_owned)
            .collect()
    };
    eventually(
        &format!("{count} lines in {}", path.display()),
        PATIENCE,
        || async { read().len() >= count },
    )
    .await;
    read()
}

/// Two requests through the proxy: one routed to the backend, one with no
/// route (the proxy's own 404). The user agent has a quote and a
/// backslash, which a log line must not take literally.
async fn two_logged_requests(proxy: &str) {
    let routed = exchange(
        proxy,
        b"GET /log/routed?q=1 HTTP/1.1\r\nHost: conf.test\r\nUser-Agent: probe \"q\" \\x\r\n\
          Referer: http://from.test/\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(routed.starts_with("HTTP/1.1 200 "), "{routed}");
    let unrouted = exchange(
        proxy,
        b"GET /log/nowhere HTTP/1.0\r\nHost: nowhere.test\r\n\r\n",
    )
    .await;
    assert!(unrouted.starts_with("HTTP/1.1 404 "), "{unrouted}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_access_log_in_combined_format_matches_nginxs_fields_and_the_extras() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let s = setup_with(
        "127.0.0.215",
        ok_response(),
        &format!(
            "access_log = {:?}\naccess_log_format = \"combined\"\n",
            path
        ),
    )
    .await;
    two_logged_requests(&s.proxy).await;
    let lines = logged(&path, 2).await;
    // nginx's combined, then "host" "upstream" upstream_addr request_time
    // upstream_time.
    let combined = regex::Regex::new(
        r#"^(?P<client>\S+) - - \[(?P<time>\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} \+0000)\] "(?P<request>[^"]*)" (?P<status>\d{3}) (?P<bytes>\d+) "(?P<referer>[^"]*)" "(?P<ua>[^"]*)" "(?P<host>[^"]*)" "(?P<upstream>[^"]*)" (?P<addr>\S+) (?P<rt>\d+\.\d{3}) (?P<ut>\d+\.\d{3}|-)$"#,
    )
    .unwrap();
    let fields: Vec<regex::Captures> = lines
        .iter()
        .map(|l| {
            combined
                .captures(l)
                .unwrap_or_else(|| panic!("not combined: {l}"))
        })
        .collect();
    let routed = &fields[0];
    assert_eq!(&routed["client"], "127.0.0.1");
    assert_eq!(&routed["request"], "GET /log/routed?q=1 HTTP/1.1");
    assert_eq!(&routed["status"], "200");
    assert_eq!(&routed["bytes"], "3");
    assert_eq!(&routed["referer"], "http://from.test/");
    assert_eq!(&routed["ua"], r"probe \x22q\x22 \x5Cx");
    assert_eq!(&routed["host"], "conf.test");
    assert_eq!(&routed["upstream"], "raw");
    assert_eq!(&routed["addr"], s.backend.addr);
    assert_ne!(&routed["ut"], "-");
    let unrouted = &fields[1];
    assert_eq!(&unrouted["request"], "GET /log/nowhere HTTP/1.0");
    assert_eq!(&unrouted["status"], "404");
    assert_eq!(&unrouted["bytes"], "33", "{}", lines[1]);
    assert_eq!(
        (
            &unrouted["ua"],
            &unrouted["upstream"],
            &unrouted["addr"],
            &unrouted["ut"]
        ),
        ("-", "-", "-", "-")
    );
    // A head the proxy cannot read is logged too, with "-" for its
    // request line, as nginx logs it.
    let refused = exchange(&s.proxy, b"GET /a b HTTP/1.1\r\n\r\n").await;
    assert!(refused.starts_with("HTTP/1.1 400 "), "{refused}");
    let refused_line = || {
        std::fs::read_to_string(&path)
            .unwrap_or_default()
            .lines()
            .find(|l| l.contains("\"-\" 400 "))
            .map(str::to_owned)
    };
    eventually("the refused head logged", PATIENCE, || async {
        refused_line().is_some()
    })
    .await;
    let line = refused_line().unwrap();
    let refused = combined
        .captures(&line)
        .unwrap_or_else(|| panic!("not combined: {line}"));
    assert_eq!((&refused["request"], &refused["status"]), ("-", "400"));
    assert_ne!(&refused["bytes"], "0", "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_access_log_in_json_is_one_object_a_line_with_every_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let s = setup_with(
        "127.0.0.216",
        ok_response(),
        &format!("access_log = {:?}\n", path),
    )
    .await;
    two_logged_requests(&s.proxy).await;
    let lines = logged(&path, 2).await;
    let v: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(v[0]["target"], "/log/routed?q=1");
    assert_eq!(v[0]["method"], "GET");
    assert_eq!(v[0]["protocol"], "HTTP/1.1");
    assert_eq!(v[0]["status"], 200);
    assert_eq!(v[0]["bytes"], 3);
    assert_eq!(v[0]["user_agent"], r#"probe "q" \x"#);
    assert_eq!(v[0]["upstream"], "raw");
    assert_eq!(v[0]["upstream_addr"], s.backend.addr.as_str());
    assert!(v[0]["upstream_time"].as_f64().is_some(), "{}", lines[0]);
    assert!(v[0]["request_time"].as_f64().is_some(), "{}", lines[0]);
    assert!(v[0]["time"].as_f64().unwrap() > 1.7e9, "{}", lines[0]);
    assert_eq!(v[1]["status"], 404);
    assert_eq!(v[1]["upstream"], "");
    assert!(v[1]["upstream_time"].is_null(), "{}", lines[1]);
    // Nothing dropped, and /metrics says so.
    let metrics = s.lb.health_url.replace("/health", "/metrics");
    let text = cluster_tests::get(&metrics).await.1;
    assert_eq!(
        cluster_tests::prom::sample(&text, "cluster_agent_proxy_access_log_dropped_total"),
        Some(0.0),
        "{text}"
    );
}
