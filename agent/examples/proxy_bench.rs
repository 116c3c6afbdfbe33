//! The agent's reverse proxy alone, for benchmarks against nginx: every
//! host goes to one upstream of the given servers.
//!
//! ```text
//! cargo run --release -p cluster-agent --example proxy_bench -- \
//!     --listen 127.0.0.1:18080 --upstream 127.0.0.1:18081 [--upstream …] [--workers 2]
//! ```
//!
//! `--workers` defaults to one per CPU, as in the agent. `--backend
//! 127.0.0.1:18081` instead runs a minimal hyper backend there (200,
//! `hello\n`, on `--workers` threads), for a Rust-only setup.

use bytes::Bytes;
use cluster_agent::proxy::{Options, Proxy, ProxyConfig, UpstreamServer};
use cluster_balancer::{Domain, RouteTable, Server};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

struct Args {
    listen: SocketAddr,
    upstreams: Vec<String>,
    backend: Option<SocketAddr>,
    workers: usize,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        listen: "127.0.0.1:18080".parse().expect("literal"),
        upstreams: Vec::new(),
        backend: None,
        workers: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--listen" => a.listen = value()?.parse().map_err(|e| format!("--listen: {e}"))?,
            "--upstream" => a.upstreams.push(value()?),
            "--backend" => {
                a.backend = Some(value()?.parse().map_err(|e| format!("--backend: {e}"))?)
            }
            "--workers" => a.workers = value()?.parse().map_err(|e| format!("--workers: {e}"))?,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if a.upstreams.is_empty() && a.backend.is_none() {
        return Err("give --upstream ADDR (one or more) or --backend ADDR".into());
    }
    Ok(a)
}

fn main() -> Result<(), String> {
    let args = args()?;
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if args.workers > 0 && args.backend.is_some() {
        rt.worker_threads(args.workers);
    }
    let rt = rt.enable_all().build().map_err(|e| e.to_string())?;
    rt.block_on(async move {
        match args.backend {
            Some(addr) => backend(addr).await,
            None => proxy(args.listen, args.upstreams, args.workers).await,
        }
    })
}

async fn proxy(listen: SocketAddr, upstreams: Vec<String>, workers: usize) -> Result<(), String> {
    let domains: BTreeMap<String, Domain> = serde_json::from_value(serde_json::json!({
        "*": {"init": "to", "rules": {"to": {"type": "backend", "args": {"servername": "bench"}}}}
    }))
    .map_err(|e| e.to_string())?;
    let routes = RouteTable::compile(&domains, &|u| u == "bench").map_err(|e| format!("{e:?}"))?;
    let servers = upstreams
        .into_iter()
        .map(|addr| UpstreamServer {
            server: Server::new(addr),
            node: None,
        })
        .collect();
    let config = ProxyConfig {
        generation: 1,
        routes: Arc::new(routes),
        upstreams: BTreeMap::from([("bench".to_owned(), servers)]),
    };
    let options = Options {
        workers,
        ..Options::default()
    };
    let proxy = Proxy::with_options(config, None, options);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("bind {listen}: {e}"))?;
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        stop.cancel();
    });
    eprintln!("proxy_bench: proxying {listen}");
    proxy.serve(listener, shutdown).await;
    Ok(())
}

async fn backend(addr: SocketAddr) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("bind {addr}: {e}"))?;
    eprintln!("proxy_bench: backend on {addr}");
    loop {
        let (stream, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let svc = service_fn(|_req| async {
                Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(
                    b"hello\n",
                ))))
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
