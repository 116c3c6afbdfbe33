//! The event log (live), jobs with their output, rollouts with their
//! progress and their abort and resume, and the upstreams and routes with
//! a route test.

use super::super::Http;
use super::super::body::FormBody;
use super::super::problem::{ApiResult, Problem};
use super::views::{self, Section, copy_as, page, sh};
use super::{Session, check_csrf};
use crate::cluster::Permission;
use crate::jobs::live::{LiveNode, text_from};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};
use cluster_balancer::{Request, RouteTable};
use cluster_model::rollout::{NodePhase, RolloutRecord};
use cluster_model::time::rfc3339;
use cluster_model::{Event, JobNodeResult};
use maud::{Markup, html};
use serde::Deserialize;

/// One event's row: the same for the page and the live stream.
pub fn event_row(e: &Event) -> Markup {
    html! {
        tr id={"event-" (e.seq)} {
            td { time datetime=(rfc3339(e.time_ms)) { (rfc3339(e.time_ms)) } }
            td { span class={"kind " (e.kind.as_str())} { (e.kind.as_str()) } }
            td { @if !e.node.is_empty() { a href={"/nodes/" (e.node)} { (e.node) } } }
            td { (e.by) @if !e.note.is_empty() { " " span.muted { "(" (e.note) ")" } } }
            td { (e.detail) }
        }
    }
}

/// Events, newest first.
pub fn events_table(events: &[&Event]) -> Markup {
    html! {
        div.table-wrap { table.events aria-label="Events" {
            thead { tr { th scope="col" { "When" } th scope="col" { "What" } th scope="col" { "Node" } th scope="col" { "By" } th scope="col" { "Detail" } } }
            tbody data-events { @for e in events { (event_row(e)) } }
        } }
    }
}

pub async fn events(State(http): State<Http>, s: Session) -> ApiResult<Markup> {
    let events = http.cluster.events(0, 200, None).await?;
    let last = events.last().map_or(0, |e| e.seq);
    let newest: Vec<&Event> = events.iter().rev().collect();
    Ok(page(
        "Events",
        Some(&s.viewer()),
        Section::Events,
        Some(&format!("/live?view=events&e={last}")),
        html! {
            h1 { "Events" }
            p.hint { "The audit log, newest first; new events appear as they happen." }
            (events_table(&newest))
        },
    ))
}

pub async fn jobs(State(http): State<Http>, s: Session) -> ApiResult<Markup> {
    let jobs = http.cluster.jobs(100).await.map_err(Problem::unavailable)?;
    Ok(page(
        "Jobs",
        Some(&s.viewer()),
        Section::Jobs,
        Some("/live?view=records"),
        html! {
            h1 { "Jobs" }
            div.table-wrap { table aria-label="Jobs" {
                thead { tr { th scope="col" { "Job" } th scope="col" { "Command" } th scope="col" { "Target" } th scope="col" { "By" } th scope="col" { "Started" } th scope="col" { "Results" } } }
                tbody {
                    @for j in &jobs {
                        tr {
                            th scope="row" { a href={"/jobs/" (j.id)} { (j.id) } }
                            td { code { (j.command()) } }
                            td { (j.target) }
                            td { (j.by) }
                            td { (rfc3339(j.started_ms)) }
                            td { @if j.finished_ms == 0 { "running" } @else {
                                (j.results.iter().filter(|r| r.status == cluster_model::JobStatus::Ok).count()) "/" (j.results.len()) " ok"
                            } }
                        }
                    }
                }
            } }
            @if jobs.is_empty() { p.muted { "No jobs yet (" code { "clusterctl run" } ")." } }
        },
    ))
}

/// One node's part of a job's page, the same for the page and its live
/// stream: its state, then its output, which the stream appends to.
pub fn job_node(
    name: &str,
    started: bool,
    result: Option<&JobNodeResult>,
    stdout: &str,
    stderr: &str,
    truncated: bool,
) -> Markup {
    html! {
        details.jobnode id={"jobnode-" (name)} open {
            summary {
                strong { (name) } ": "
                @match result {
                    Some(r) => {
                        span class={"badge " (r.status.as_str())} { (r.status.as_str()) }
                        " (exit " (r.exit_code) ", " (r.duration_ms) " ms)"
                    }
                    None => { span.badge.running { @if started { "running" } @else { "waiting" } } }
                }
                @if truncated { " — output cut" }
            }
            @if let Some(r) = result && !r.error.is_empty() { p.bad { (r.error) } }
            pre.out data-out aria-label={"Output of " (name)} { (stdout) }
            pre.err data-err aria-label={"Errors of " (name)} { (stderr) }
        }
    }
}

/// A live job's node as it is now, and how far into each stream it shows.
pub fn live_node(name: &str, n: &LiveNode) -> (Markup, usize, usize) {
    let done = n.result.is_some();
    let (out, out_at) = text_from(&n.stdout, 0, done);
    let (err, err_at) = text_from(&n.stderr, 0, done);
    let html = job_node(name, n.started, n.result.as_ref(), &out, &err, n.truncated);
    (html, out_at, err_at)
}

pub async fn job(
    State(http): State<Http>,
    s: Session,
    Path(id): Path<String>,
) -> ApiResult<Markup> {
    let id = id.trim();
    let j = http
        .cluster
        .job(id)
        .await
        .map_err(Problem::unavailable)?
        .ok_or_else(|| Problem::not_found("unknown-job", format!("no job {id:?}")))?;
    // A job this master runs is shown as it runs; any other from its record.
    let live = http
        .jobs
        .as_ref()
        .and_then(|jobs| jobs.live(id))
        .filter(|_| j.finished_ms == 0);
    let (stream, nodes) = match &live {
        Some(live) => {
            let st = live.read();
            let nodes: Vec<Markup> = st
                .nodes
                .iter()
                .map(|(name, n)| live_node(name, n).0)
                .collect();
            (format!("/live?view=job&job={id}&v={}", st.version), nodes)
        }
        None => (
            "/live?view=records".to_owned(),
            j.results
                .iter()
                .map(|r| {
                    let out = String::from_utf8_lossy(&r.stdout);
                    let err = String::from_utf8_lossy(&r.stderr);
                    job_node(&r.node, true, Some(r), &out, &err, r.truncated)
                })
                .collect(),
        ),
    };
    Ok(page(
        &format!("Job {}", j.id),
        Some(&s.viewer()),
        Section::Jobs,
        Some(&stream),
        html! {
            h1 { "Job " (j.id) }
            p {
                code { (j.command()) } " on " (j.target) ", by " (j.by) ", " (rfc3339(j.started_ms))
                @if j.finished_ms == 0 { " — " span.badge.running { "running" } }
            }
            div.jobnodes data-jobnodes { @for n in nodes { (n) } }
        },
    ))
}

fn progress(r: &RolloutRecord) -> Markup {
    let done = r.count(NodePhase::Done);
    let failed = r.count(NodePhase::Failed);
    let total = r.nodes.len().max(1);
    html! {
        span.progress {
            progress max=(total) value=(done + failed) { (done) "/" (total) }
            " " (done) " done" @if failed > 0 { ", " span.bad { (failed) " failed" } } " of " (r.nodes.len())
        }
    }
}

pub async fn rollouts(State(http): State<Http>, s: Session) -> ApiResult<Markup> {
    // A master without rollouts (tests of the read side) lists none.
    let list = match &http.rollouts {
        Some(r) => r.list(50).await?,
        None => Vec::new(),
    };
    Ok(page(
        "Rollouts",
        Some(&s.viewer()),
        Section::Rollouts,
        Some("/live?view=records"),
        html! {
            h1 { "Rollouts" }
            div.table-wrap { table aria-label="Rollouts" {
                thead { tr { th scope="col" { "Rollout" } th scope="col" { "State" } th scope="col" { "Command" } th scope="col" { "Target" } th scope="col" { "Progress" } th scope="col" { "By" } } }
                tbody { @for r in &list {
                    tr {
                        th scope="row" { a href={"/rollouts/" (r.id)} { (r.id) } }
                        td { span class={"badge " (r.state.as_str())} { (r.state.as_str()) } }
                        td { code { (r.argv.join(" ")) } }
                        td { (r.target) }
                        td { (progress(r)) }
                        td { (r.by) }
                    }
                } }
            } }
            @if list.is_empty() { p.muted { "No rollouts yet (" code { "clusterctl rollout" } ")." } }
        },
    ))
}

pub async fn rollout(
    State(http): State<Http>,
    s: Session,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Markup> {
    let rollouts = http.rollouts()?;
    let r = rollouts.get(&id).await?;
    let admin = s.may(Permission::Admin);
    let running = r.state == cluster_model::rollout::RolloutState::Running;
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("MASTER:7441");
    let action = if running { "abort" } else { "resume" };
    Ok(page(
        &format!("Rollout {}", r.id),
        Some(&s.viewer()),
        Section::Rollouts,
        Some("/live?view=records"),
        html! {
            h1 { "Rollout " (r.id) " " span class={"badge " (r.state.as_str())} { (r.state.as_str()) } }
            p { code { (r.argv.join(" ")) } " on " (r.target) ", " (r.batch_size) " at a time, by " (r.by) }
            p { (progress(&r)) }
            @if running || r.state != cluster_model::rollout::RolloutState::Succeeded {
                form method="post" action={"/rollouts/" (r.id) "/" (action)} {
                    input type="hidden" name="csrf" value=(s.csrf);
                    button type="submit" disabled[!admin] { (if running { "Abort (resumable)" } else { "Resume" }) }
                    @if !admin { span.hint { " Needs an admin's token." } }
                }
                (copy_as(&format!("clusterctl rollout {action} {}", sh(&r.id)),
                    &format!("curl -X POST -H \"Authorization: Bearer $TOKEN\" http://{host}/api/v1/rollouts/{}/{action}", r.id)))
            }
            div.table-wrap { table aria-label="Nodes of the rollout" {
                thead { tr { th scope="col" { "Node" } th scope="col" { "Phase" } th scope="col" { "Detail" } } }
                tbody { @for n in &r.order {
                    @let phase = r.nodes.get(n).copied().unwrap_or(NodePhase::Pending);
                    tr { th scope="row" { a href={"/nodes/" (n)} { (n) } } td { (phase.as_str()) } td { (r.details.get(n).map(String::as_str).unwrap_or("")) } }
                } }
            } }
            h2 { "Log" }
            pre.log { @for l in r.log.iter().rev().take(200) { (rfc3339(l.time_ms)) " " (l.node) " " (l.message) "\n" } }
        },
    ))
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: Option<String>,
}

pub async fn rollout_action(
    State(http): State<Http>,
    s: Session,
    Path((id, action)): Path<(String, String)>,
    FormBody(form): FormBody<CsrfForm>,
) -> ApiResult<Response> {
    check_csrf(&http, &s, form.csrf.as_deref())?;
    let rollouts = http.rollouts()?;
    let verb = match action.as_str() {
        "abort" => "abort rollouts",
        "resume" => "resume rollouts",
        other => {
            return Err(Problem::not_found(
                "no-such-action",
                format!("no rollout action {other:?}"),
            ));
        }
    };
    s.require(&http, Permission::Admin, verb).await?;
    let by = s.caller.label();
    if action == "abort" {
        rollouts.abort(&id, &by).await?;
    } else {
        rollouts.resume(&id, &by).await?;
    }
    Ok(Redirect::to(&format!("/rollouts/{id}")).into_response())
}

fn balancing_page(http: &Http, s: &Session, test: Option<Markup>) -> Markup {
    let b = http.cluster.balancing();
    page(
        "Balancing",
        Some(&s.viewer()),
        Section::Balancing,
        Some("/live?view=records"),
        html! {
            h1 { "Upstreams and routes" }
            section {
                h2 { "Route test" }
                form.route-test method="post" action="/balancing/test" {
                    input type="hidden" name="csrf" value=(s.csrf);
                    label for="host" { "Host" } input #host name="host" required placeholder="blog.example.com";
                    label for="path" { "Path" } input #path name="path" value="/";
                    label for="ua" { "User-Agent" } input #ua name="user_agent";
                    button type="submit" { "Test" }
                }
                @if let Some(t) = test { (t) }
            }
            section {
                h2 { "Upstreams" }
                @if b.upstreams.is_empty() { p.muted { "None (" code { "clusterctl upstream set" } ")." } }
                @for (name, source) in &b.upstreams {
                    @let servers = b.view.upstreams.get(name).cloned().unwrap_or_default();
                    details open {
                        summary { strong { (name) } " — " (servers.len()) " server" @if servers.len() != 1 { "s" } " now" }
                        pre { (serde_json::to_string_pretty(source).unwrap_or_default()) }
                        ul { @for sv in &servers { li { code { (sv.server.addr) } @if let Some(n) = &sv.node { " (" a href={"/nodes/" (n)} { (n) } ")" } } } }
                    }
                }
            }
            section {
                h2 { "Routes" }
                @if b.routes.is_empty() { p.muted { "None (" code { "clusterctl route set" } ")." } }
                @for (domain, chain) in &b.routes {
                    details { summary { strong { (domain) } } pre { (serde_json::to_string_pretty(chain).unwrap_or_default()) } }
                }
            }
        },
    )
}

pub async fn balancing(State(http): State<Http>, s: Session) -> Markup {
    balancing_page(&http, &s, None)
}

#[derive(Deserialize)]
pub struct RouteTestForm {
    csrf: Option<String>,
    host: String,
    #[serde(default)]
    path: String,
    #[serde(default)]
    user_agent: String,
}

pub async fn route_test(
    State(http): State<Http>,
    s: Session,
    FormBody(f): FormBody<RouteTestForm>,
) -> ApiResult<Markup> {
    check_csrf(&http, &s, f.csrf.as_deref())?;
    let b = http.cluster.balancing();
    let result = match RouteTable::compile(&b.routes, &|u| b.upstreams.contains_key(u)) {
        Err(e) => {
            html! { (views::flash(&e.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "), false)) }
        }
        Ok(table) => {
            let headers = axum::http::HeaderMap::new();
            let path = if f.path.is_empty() {
                "/"
            } else {
                f.path.split('?').next().unwrap_or("/")
            };
            let req = Request {
                path,
                user_agent: &f.user_agent,
                headers: &headers,
            };
            match table.route(f.host.trim(), &req) {
                None => {
                    html! { p.result role="status" { (f.host) ": no route for this host → 404" } }
                }
                Some(d) => html! {
                    p.result role="status" { (f.host) (path) ": " (d.to_string()) }
                    (copy_as(
                        &format!("clusterctl route test {} {}", sh(f.host.trim()), sh(path)),
                        &format!("curl -X POST -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' -d {} http://MASTER:7441/api/v1/route-test",
                            sh(&serde_json::json!({"host": f.host.trim(), "path": path}).to_string()))))
                },
            }
        }
    };
    Ok(balancing_page(&http, &s, Some(result)))
}
