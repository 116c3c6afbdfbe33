//! `--dashboard yes`: the dashboard and the REST API with every simulated
//! agent connected. Figures: `GET /` as the master serves it (time to the
//! last byte over a kept-alive connection, and the page's weight with its
//! stylesheet and script); the time from a drain to its row arriving on an
//! open SSE stream; the master's memory per open dashboard tab (RSS before
//! and after opening many streams, divided); and a drain that waits until
//! the node is out, over REST (`PUT …/drain?wait=out`) and over gRPC
//! (`Control.Drain` with `wait`, what `clusterctl drain --wait` calls),
//! alternated in the same run.

use super::{Control, measure::*};
use cluster_proto as pb;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::time::{Duration, Instant};

type Http = Client<HttpConnector, Full<Bytes>>;

const PAGE_LOADS: usize = 50;
const CYCLES: usize = 30;
const TABS: usize = 200;

fn client() -> Http {
    Client::builder(TokioExecutor::new()).build_http()
}

async fn request(
    http: &Http,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<(u16, hyper::HeaderMap, Bytes), String> {
    let mut req = hyper::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(Full::new(Bytes::from(body.to_owned())))
        .map_err(|e| e.to_string())?;
    let resp = http.request(req).await.map_err(|e| format!("{url}: {e}"))?;
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok((parts.status.as_u16(), parts.headers, bytes))
}

/// An SSE stream's body, read frame by frame.
struct Stream {
    body: hyper::body::Incoming,
    buf: String,
}

impl Stream {
    async fn open(http: &Http, url: &str, cookie: &str) -> Result<Stream, String> {
        let req = hyper::Request::get(url)
            .header("cookie", cookie)
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        let resp = http.request(req).await.map_err(|e| e.to_string())?;
        if resp.status() != 200 {
            return Err(format!("{url}: {}", resp.status()));
        }
        Ok(Stream {
            body: resp.into_body(),
            buf: String::new(),
        })
    }

    /// Reads until an event whose text contains `needle`.
    async fn until(&mut self, needle: &str, patience: Duration) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let event: String = self.buf.drain(..end + 2).collect();
                if event.contains(needle) {
                    return Ok(());
                }
            }
            let frame = tokio::time::timeout_at(deadline, self.body.frame())
                .await
                .map_err(|_| format!("no event with {needle:?} within {patience:?}"))?
                .ok_or("the stream ended")?
                .map_err(|e| e.to_string())?;
            if let Ok(data) = frame.into_data() {
                self.buf.push_str(&String::from_utf8_lossy(&data));
            }
        }
    }
}

async fn drain(control: &mut Control, node: &str, offline: bool, wait: bool) -> Result<(), String> {
    let mut events = control
        .drain(pb::DrainRequest {
            names: vec![node.to_owned()],
            offline,
            reason: "bench".into(),
            by: "bench".into(),
            wait,
            timeout_ms: 30_000,
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?
        .into_inner();
    while let Some(e) = events.message().await.map_err(|e| e.to_string())? {
        if let Some(pb::drain_event::Event::Done(d)) = e.event
            && !d.complete
        {
            return Err(format!("{node} was not out in time"));
        }
    }
    Ok(())
}

fn summary(times: &mut [Duration]) -> String {
    times.sort();
    format!(
        "p50 {:.1} ms, p99 {:.1} ms",
        ms(percentile(times, 0.5)),
        ms(percentile(times, 0.99))
    )
}

pub(crate) async fn bench(
    base: &str,
    control: &mut Control,
    pid: &str,
    agents: usize,
) -> Result<(), String> {
    let http = client();
    let token = control
        .create_token(pb::CreateTokenRequest {
            api_role: "operator".into(),
            api_name: "bench".into(),
            never_expires: true,
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?
        .into_inner()
        .token;
    let (code, headers, _) = request(
        &http,
        "POST",
        &format!("{base}/login"),
        &[("content-type", "application/x-www-form-urlencoded")],
        &format!("token={token}"),
    )
    .await?;
    let cookie = headers
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .ok_or(format!("no session cookie (login answered {code})"))?
        .to_owned();

    // The page.
    let mut loads = Vec::with_capacity(PAGE_LOADS);
    let mut weight = 0;
    for i in 0..PAGE_LOADS + 3 {
        let started = Instant::now();
        let (code, _, body) = request(
            &http,
            "GET",
            &format!("{base}/"),
            &[("cookie", &cookie)],
            "",
        )
        .await?;
        let took = started.elapsed();
        if code != 200 {
            return Err(format!("GET / answered {code}"));
        }
        weight = body.len();
        if i >= 3 {
            loads.push(took);
        }
    }
    let (mut assets, mut assets_gz) = (0, 0);
    for path in ["/static/app.css", "/static/app.js"] {
        let url = format!("{base}{path}");
        assets += request(&http, "GET", &url, &[], "").await?.2.len();
        assets_gz += request(&http, "GET", &url, &[("accept-encoding", "gzip")], "")
            .await?
            .2
            .len();
    }
    let mut gz_loads = Vec::with_capacity(PAGE_LOADS);
    let mut gz_weight = 0;
    for _ in 0..PAGE_LOADS {
        let started = Instant::now();
        let headers = [("cookie", cookie.as_str()), ("accept-encoding", "gzip")];
        let (_, _, body) = request(&http, "GET", &format!("{base}/"), &headers, "").await?;
        gz_loads.push(started.elapsed());
        gz_weight = body.len();
    }
    println!(
        "dashboard, {agents} nodes: GET / {} ({PAGE_LOADS} loads), gzipped {}; page {:.0} KiB, \
         with its stylesheet and script {:.0} KiB; gzipped {:.0} KiB and {:.0} KiB",
        summary(&mut loads),
        summary(&mut gz_loads),
        weight as f64 / 1024.0,
        (weight + assets) as f64 / 1024.0,
        gz_weight as f64 / 1024.0,
        (gz_weight + assets_gz) as f64 / 1024.0
    );

    // A drain, seen on an open stream.
    let mut stream = Stream::open(&http, &format!("{base}/live?view=nodes"), &cookie).await?;
    let node = "sim-00007";
    let mut seen = Vec::with_capacity(CYCLES);
    for _ in 0..CYCLES {
        for (offline, state) in [(true, "drained"), (false, "online")] {
            let needle = format!("data-node=\\\"{node}\\\" data-state=\\\"{state}\\\"");
            let started = Instant::now();
            drain(control, node, offline, false).await?;
            stream.until(&needle, Duration::from_secs(10)).await?;
            if offline {
                seen.push(started.elapsed());
            }
        }
    }
    println!(
        "dashboard, {agents} nodes: a drain's row on an open SSE stream: {} ({CYCLES} drains, from the call to the row)",
        summary(&mut seen)
    );
    drop(stream);

    // Memory per tab.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = status_kib(pid, "VmRSS").unwrap_or(0);
    let mut tabs = Vec::with_capacity(TABS);
    for _ in 0..TABS {
        // A connection each, as browser tabs have.
        let own = client();
        tabs.push((
            Stream::open(&own, &format!("{base}/live?view=nodes"), &cookie).await?,
            own,
        ));
    }
    // One change reaches every tab, so each has sent something.
    drain(control, node, true, false).await?;
    for (s, _) in &mut tabs {
        s.until("sim-00007", Duration::from_secs(10)).await?;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = status_kib(pid, "VmRSS").unwrap_or(0);
    println!(
        "dashboard, {agents} nodes: master RSS {:.1} MiB with no tab, {:.1} MiB with {TABS} tabs open: {:.1} KiB per tab",
        mib(before),
        mib(after),
        after.saturating_sub(before) as f64 / TABS as f64
    );
    drop(tabs);
    drain(control, node, false, false).await?;

    // Drain and wait: REST against gRPC, alternated.
    let node = "sim-00009";
    let (mut rest, mut grpc) = (Vec::new(), Vec::new());
    let auth = format!("Bearer {token}");
    for _ in 0..CYCLES {
        let started = Instant::now();
        let (code, _, body) = request(
            &http,
            "PUT",
            &format!("{base}/api/v1/nodes/{node}/drain?wait=out&timeout=30s"),
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            r#"{"reason": "bench"}"#,
        )
        .await?;
        if code != 200 {
            return Err(format!(
                "PUT drain answered {code}: {}",
                String::from_utf8_lossy(&body)
            ));
        }
        rest.push(started.elapsed());
        drain(control, node, false, true).await?;
        let started = Instant::now();
        drain(control, node, true, true).await?;
        grpc.push(started.elapsed());
        drain(control, node, false, true).await?;
    }
    let ratio = ms(percentile(
        &{
            rest.sort();
            rest.clone()
        },
        0.5,
    )) / ms(percentile(
        &{
            grpc.sort();
            grpc.clone()
        },
        0.5,
    ));
    println!(
        "drain until out, {agents} nodes: PUT …/drain?wait=out {}; Control.Drain with wait (clusterctl drain --wait) {}; REST/gRPC at p50 {ratio:.2}×",
        summary(&mut rest),
        summary(&mut grpc)
    );
    Ok(())
}
