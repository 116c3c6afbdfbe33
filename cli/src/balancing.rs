//! `clusterctl upstream …` and `clusterctl route …`: what the proxies
//! balance over and how requests are routed; `route test` evaluates a
//! request here against the master's routes, with the same code the
//! proxies run.

use crate::Failure;
use crate::args::{Output, RouteCommand, RouteImportArgs, RouteTestArgs, UpstreamCommand};
use crate::client::{BalancingView, Client};
use crate::commands::{print_json, write_out};
use crate::render::AddPrintable;
use cluster_balancer::{Domain, Request, RouteTable, Rule, Server, UpstreamSource};
use std::collections::BTreeMap;
use std::io::Write;

pub async fn upstream(
    client: &mut Client,
    cmd: UpstreamCommand,
    output: Output,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    match cmd {
        UpstreamCommand::List => {
            let b = client.balancing().await?;
            match output {
                Output::Json => print_json(
                    out,
                    &serde_json::json!({
                        "upstreams": b.upstreams,
                        "resolved": b.resolved,
                        "version": b.version,
                    }),
                ),
                Output::Table => write_out(out, &upstreams_table(&b)),
            }
        }
        UpstreamCommand::Set(a) => {
            let source = match a.role {
                Some(role) => UpstreamSource::Role {
                    role,
                    port: a.port.unwrap_or_default(),
                    weight: a.weight,
                    max_fails: a.max_fails,
                    fail_timeout_ms: a.fail_timeout.as_millis() as u64,
                },
                None => UpstreamSource::Servers(
                    a.server
                        .iter()
                        .map(|s| parse_server(s))
                        .collect::<Result<_, _>>()
                        .map_err(Failure::bad_input)?,
                ),
            };
            let servers = client.set_upstream(&a.name, &source).await?;
            match output {
                Output::Json => print_json(out, &servers),
                Output::Table => {
                    let list: Vec<String> = servers
                        .iter()
                        .map(|s| match &s.node {
                            Some(n) => format!("{} ({n})", s.server.addr),
                            None => s.server.addr.clone(),
                        })
                        .collect();
                    let now = if list.is_empty() {
                        "no servers now".to_owned()
                    } else {
                        list.join(", ")
                    };
                    write_out(out, &format!("upstream {} set: {now}\n", a.name))
                }
            }
        }
        UpstreamCommand::Rm { name } => {
            client.remove_upstream(&name).await?;
            write_out(out, &format!("upstream {name} removed\n"))
        }
    }
}

pub async fn route(
    client: &mut Client,
    cmd: RouteCommand,
    output: Output,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    match cmd {
        RouteCommand::List { domain } => {
            let b = client.balancing().await?;
            let routes: BTreeMap<&String, &Domain> = b
                .routes
                .iter()
                .filter(|(d, _)| domain.as_ref().is_none_or(|want| want == *d))
                .collect();
            if let Some(d) = &domain
                && routes.is_empty()
            {
                return Err(Failure::bad_input(format!("no routes for domain {d:?}")));
            }
            match output {
                Output::Json => print_json(out, &routes),
                Output::Table => write_out(out, &routes_text(&routes)),
            }
        }
        RouteCommand::Set(a) => {
            let chain = match (&a.file, &a.backend) {
                (_, Some(upstream)) => Domain {
                    init: "backend".into(),
                    rules: BTreeMap::from([(
                        "backend".to_owned(),
                        Rule::Backend {
                            servername: upstream.clone(),
                        },
                    )]),
                },
                (Some(path), None) => {
                    let text = read(path)?;
                    serde_json::from_str(&text).map_err(|e| {
                        Failure::bad_input(format!("{}: not a rule chain: {e}", path.display()))
                    })?
                }
                (None, None) => unreachable!("clap requires one"),
            };
            let version = client
                .set_routes(
                    &BTreeMap::from([(a.domain.clone(), chain)]),
                    &[],
                    &BTreeMap::new(),
                )
                .await?;
            write_out(
                out,
                &format!(
                    "routes for {} set (proxy configuration {version})\n",
                    a.domain
                ),
            )
        }
        RouteCommand::Rm { domains } => {
            if domains.is_empty() {
                return Err(Failure::bad_input("name the domains to remove"));
            }
            client
                .set_routes(&BTreeMap::new(), &domains, &BTreeMap::new())
                .await?;
            write_out(out, &format!("routes removed: {}\n", domains.join(", ")))
        }
        RouteCommand::Test(a) => route_test(client, a, output, out).await,
        RouteCommand::Import(a) => import(client, a, out).await,
    }
}

fn read(path: &std::path::Path) -> Result<String, Failure> {
    std::fs::read_to_string(path)
        .map_err(|e| Failure::bad_input(format!("cannot read {}: {e}", path.display())))
}

async fn import(
    client: &mut Client,
    a: RouteImportArgs,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let domains = cluster_balancer::elb::parse_domains(&read(&a.file)?).map_err(|errors| {
        Failure::bad_input(format!(
            "{}: {}",
            a.file.display(),
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n  ")
        ))
    })?;
    let upstreams: BTreeMap<String, UpstreamSource> = match &a.upstreams {
        None => BTreeMap::new(),
        Some(path) => cluster_balancer::elb::parse_upstreams(&read(path)?)
            .map_err(|errors| {
                Failure::bad_input(format!(
                    "{}: {}",
                    path.display(),
                    errors
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("\n  ")
                ))
            })?
            .into_iter()
            .map(|(name, servers)| (name, UpstreamSource::Servers(servers)))
            .collect(),
    };
    let version = client.set_routes(&domains, &[], &upstreams).await?;
    write_out(
        out,
        &format!(
            "imported {} domain{} and {} upstream{} (proxy configuration {version})\n",
            domains.len(),
            if domains.len() == 1 { "" } else { "s" },
            upstreams.len(),
            if upstreams.len() == 1 { "" } else { "s" },
        ),
    )
}

async fn route_test(
    client: &mut Client,
    a: RouteTestArgs,
    output: Output,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let b = client.balancing().await?;
    let table = RouteTable::compile(&b.routes, &|u| b.upstreams.contains_key(u)).map_err(|e| {
        Failure::partial(format!(
            "the master's routes do not compile here: {}",
            e.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        ))
    })?;
    let mut headers = http::HeaderMap::new();
    for h in &a.headers {
        let (name, value) = h
            .split_once(':')
            .ok_or_else(|| Failure::bad_input(format!("header {h:?}: expected \"Name: value\"")))?;
        let name = http::HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|e| Failure::bad_input(format!("header {h:?}: {e}")))?;
        let value = http::HeaderValue::from_str(value.trim())
            .map_err(|e| Failure::bad_input(format!("header {h:?}: {e}")))?;
        headers.append(name, value);
    }
    let path = a.path.split('?').next().unwrap_or("/");
    let request = Request {
        path,
        user_agent: &a.ua,
        headers: &headers,
    };
    let Some(decision) = table.route(&a.host, &request) else {
        return match output {
            Output::Json => print_json(
                out,
                &serde_json::json!({ "host": a.host, "status": 404, "reason": "no route for this host" }),
            ),
            Output::Table => write_out(out, &format!("{}: no route for this host → 404\n", a.host)),
        };
    };
    let servers = match &decision.outcome {
        cluster_balancer::Outcome::Backend { upstream, .. } => {
            b.resolved.get(upstream).cloned().unwrap_or_default()
        }
        cluster_balancer::Outcome::Forbidden { .. } => Vec::new(),
    };
    match output {
        Output::Json => {
            let (status, upstream, rewritten) = match &decision.outcome {
                cluster_balancer::Outcome::Backend { upstream, path } => {
                    (200, Some(upstream.clone()), path.clone())
                }
                cluster_balancer::Outcome::Forbidden { .. } => (403, None, None),
            };
            print_json(
                out,
                &serde_json::json!({
                    "host": a.host,
                    "rules": decision.trace,
                    "status": status,
                    "upstream": upstream,
                    "path": rewritten,
                    "servers": servers,
                    "explain": decision.to_string(),
                }),
            )
        }
        Output::Table => {
            let mut text = format!("{}{}: {decision}\n", a.host, path);
            if let cluster_balancer::Outcome::Backend { upstream, .. } = &decision.outcome {
                if servers.is_empty() {
                    text.push_str(&format!("upstream {upstream} has no servers now → 502\n"));
                } else {
                    let list: Vec<String> = servers
                        .iter()
                        .map(|s| match &s.node {
                            Some(n) => format!("{} ({n})", s.server.addr),
                            None => s.server.addr.clone(),
                        })
                        .collect();
                    text.push_str(&format!("upstream {upstream}: {}\n", list.join(", ")));
                }
            }
            write_out(out, &text)
        }
    }
}

/// `ADDR[,weight=N][,max_fails=N][,fail_timeout=10s][,backup]`.
pub fn parse_server(spec: &str) -> Result<Server, String> {
    let mut parts = spec.split(',');
    let addr = parts.next().unwrap_or_default().trim();
    let mut server = Server::new(addr);
    for p in parts {
        let p = p.trim();
        let bad = |why: &str| format!("server {spec:?}: {p:?}: {why}");
        match p.split_once('=') {
            None if p == "backup" => server.backup = true,
            None if p == "down" => server.down = true,
            Some(("weight", v)) => server.weight = v.parse().map_err(|_| bad("not a number"))?,
            Some(("max_fails", v)) => {
                server.max_fails = v.parse().map_err(|_| bad("not a number"))?
            }
            Some(("fail_timeout", v)) => {
                server.fail_timeout_ms = humantime::parse_duration(v)
                    .map_err(|e| bad(&e.to_string()))?
                    .as_millis() as u64
            }
            _ => {
                return Err(bad(
                    "expected weight=N, max_fails=N, fail_timeout=DURATION, backup or down",
                ));
            }
        }
    }
    server
        .validate()
        .map_err(|e| format!("server {spec:?}: {e}"))?;
    Ok(server)
}

fn upstreams_table(b: &BalancingView) -> String {
    let mut t = comfy_table::Table::new();
    t.load_style(comfy_table::presets::NOTHING)
        .set_content_arrangement(comfy_table::ContentArrangement::Disabled)
        .set_header(["NAME", "SOURCE", "SERVERS NOW"]);
    for (name, source) in &b.upstreams {
        let src = match source {
            UpstreamSource::Servers(list) => format!("{} listed", list.len()),
            UpstreamSource::Role { role, port, .. } => format!("role {role} :{port}"),
        };
        let servers: Vec<String> = b
            .resolved
            .get(name)
            .map(|list| {
                list.iter()
                    .map(|s| {
                        let mut text = s.server.addr.clone();
                        if let Some(n) = &s.node {
                            text.push_str(&format!(" ({n})"));
                        }
                        if s.server.weight != 1 {
                            text.push_str(&format!(" w{}", s.server.weight));
                        }
                        if s.server.backup {
                            text.push_str(" backup");
                        }
                        text
                    })
                    .collect()
            })
            .unwrap_or_default();
        let servers = if servers.is_empty() {
            "none".to_owned()
        } else {
            servers.join(", ")
        };
        t.add_printable(vec![name.clone(), src, servers]);
    }
    let text = t.to_string();
    let mut out: String = text
        .lines()
        .map(|l| format!("{}\n", l.trim_end()))
        .collect();
    if b.upstreams.is_empty() {
        out = "no upstreams; `clusterctl upstream set NAME --role ROLE --port PORT` makes one\n"
            .into();
    }
    out
}

fn routes_text(routes: &BTreeMap<&String, &Domain>) -> String {
    if routes.is_empty() {
        return "no routes; `clusterctl route set DOMAIN --backend UPSTREAM` makes one\n".into();
    }
    let mut text = String::new();
    for (domain, chain) in routes {
        text.push_str(&format!("{domain} (starts at {})\n", chain.init));
        for (name, rule) in &chain.rules {
            let next = |succ: &Option<String>, fail: &Option<String>| {
                format!(
                    "→ {} / else → {}",
                    succ.as_deref().unwrap_or("403"),
                    fail.as_deref().unwrap_or("403")
                )
            };
            let line = match rule {
                Rule::Ua {
                    pattern,
                    succ,
                    fail,
                } => format!("ua ~ {pattern:?} {}", next(succ, fail)),
                Rule::Path {
                    pattern,
                    regex,
                    rewrite,
                    succ,
                    fail,
                } => format!(
                    "path {} {pattern:?}{} {}",
                    if *regex { "~" } else { "starts with" },
                    if *rewrite { " (rewrite)" } else { "" },
                    next(succ, fail)
                ),
                Rule::Header {
                    name: header,
                    pattern,
                    succ,
                    fail,
                } => format!("header {header} ~ {pattern:?} {}", next(succ, fail)),
                Rule::Backend { servername } => format!("backend {servername}"),
            };
            text.push_str(&format!("  {name}: {line}\n"));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::parse_server;

    #[test]
    fn server_specs_take_nginx_parameters() {
        let s = parse_server("10.0.0.1:80,weight=5,max_fails=2,fail_timeout=30s,backup").unwrap();
        assert_eq!(
            (
                s.addr.as_str(),
                s.weight,
                s.max_fails,
                s.fail_timeout_ms,
                s.backup
            ),
            ("10.0.0.1:80", 5, 2, 30_000, true)
        );
        let plain = parse_server("app.internal:8080").unwrap();
        assert_eq!((plain.weight, plain.max_fails, plain.backup), (1, 1, false));
        let err = parse_server("10.0.0.1:80,weight=x").unwrap_err();
        assert!(err.contains("\"weight=x\": not a number"), "{err}");
        let err = parse_server("10.0.0.1:80,color=red").unwrap_err();
        assert!(err.contains("expected weight=N"), "{err}");
    }
}
