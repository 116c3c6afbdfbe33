//! The nodes: the live table with its filter and bulk actions (a preview
//! first, then the one drain), the node page, and logging in and out.

use super::super::Http;
use super::super::body::FormBody;
use super::super::problem::{ApiResult, Problem};
use super::views::{self, Section, copy_as, page, sh};
use super::{Session, check_csrf, cookie_header, secure};
use crate::cluster::{DrainRequest, Permission};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use cluster_model::time::{now_ms, rfc3339};
use cluster_model::{NodeState, TargetSpec};
use maud::{Markup, html};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

fn login_page(next: &str, error: Option<&str>) -> Markup {
    page(
        "Log in",
        None,
        Section::None,
        None,
        html! {
            h1 { "Log in" }
            @if let Some(e) = error { (views::flash(e, false)) }
            form.login method="post" action="/login" {
                input type="hidden" name="next" value=(next);
                label for="token" { "API token" }
                input #token type="password" name="token" required autocomplete="current-password"
                    placeholder="ID.SECRET" autofocus;
                p.hint { "Make one with " code { "clusterctl token create --api --role operator" } "." }
                button type="submit" { "Log in" }
            }
        },
    )
}

pub async fn login_form(Query(q): Query<LoginQuery>) -> Markup {
    login_page(q.next.as_deref().unwrap_or("/"), None)
}

#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
    next: Option<String>,
}

/// Only paths of this site: never an open redirect.
fn local(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_owned(),
        _ => "/".into(),
    }
}

pub async fn login(
    State(http): State<Http>,
    headers: HeaderMap,
    FormBody(form): FormBody<LoginForm>,
) -> Response {
    if let Some(why) = super::session::cross_site(&headers) {
        return Problem::new(
            StatusCode::FORBIDDEN,
            "cross-site",
            format!("refused: {why}"),
        )
        .into_response();
    }
    let next = local(form.next.as_deref());
    match http.cluster.api_caller(form.token.trim()) {
        Ok(crate::cluster::Caller::Api { token, .. }) => {
            let cookie = http.sessions.issue(&token, now_ms());
            (
                [cookie_header(http.https || secure(&headers), Some(&cookie))],
                Redirect::to(&next),
            )
                .into_response()
        }
        Ok(_) | Err(_) => {
            let msg = match http.cluster.api_caller(form.token.trim()) {
                Err(e) => e.to_string(),
                Ok(_) => "not an API token".into(),
            };
            (StatusCode::UNAUTHORIZED, login_page(&next, Some(&msg))).into_response()
        }
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: Option<String>,
}

pub async fn logout(
    State(http): State<Http>,
    headers: HeaderMap,
    s: Session,
    FormBody(form): FormBody<CsrfForm>,
) -> ApiResult<Response> {
    check_csrf(&http, &s, form.csrf.as_deref())?;
    Ok((
        [cookie_header(http.https || secure(&headers), None)],
        Redirect::to("/login"),
    )
        .into_response())
}

#[derive(Deserialize)]
pub struct NodesQuery {
    target: Option<String>,
    done: Option<String>,
}

/// The nodes `target` selects (all when empty), or its error as the CLI
/// shows it.
async fn selected(http: &Http, target: Option<&str>) -> Result<Option<Vec<String>>, String> {
    let Some(t) = target.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let spec = TargetSpec::expr(cluster_model::targets::Kind::Compound, t);
    let spec = http
        .cluster
        .prepare(spec)
        .await
        .map_err(|e| e.to_string())?;
    match http.cluster.select(&spec) {
        Ok(found) => Ok(Some(found.into_iter().map(|(_, name, _)| name).collect())),
        Err(crate::cluster::ClusterError::NoMatch(_)) => Ok(Some(Vec::new())),
        Err(e) => Err(e.to_string()),
    }
}

pub async fn nodes(State(http): State<Http>, s: Session, Query(q): Query<NodesQuery>) -> Markup {
    let board = http.board();
    let target = q.target.clone().unwrap_or_default();
    let (error, names) = match selected(&http, q.target.as_deref()).await {
        Ok(n) => (None, n),
        Err(e) => (Some(e), Some(Vec::new())),
    };
    let (version, rows) = board.rows(names.as_deref());
    let can_drain = s.may(Permission::Drain);
    let live = format!(
        "/live?view=nodes&v={version}&target={}",
        super::encode(&target)
    );
    page(
        "Nodes",
        Some(&s.viewer()),
        Section::Nodes,
        Some(&live),
        html! {
            h1 { "Nodes" }
            @if let Some(done) = &q.done { (views::flash(done, true)) }
            form.filter method="get" action="/" role="search" {
                label for="target" { "Target" }
                input #target type="search" name="target" value=(target)
                    placeholder="G@os:Debian and not web-2" spellcheck="false"
                    aria-describedby="target-help";
                button type="submit" { "Filter" }
                span #target-help .hint { "A compound target, as " code { "clusterctl -C" } " takes it." }
            }
            @if let Some(e) = &error { (views::target_error(e)) }
            form #bulk .bulk method="post" action="/nodes/preview" data-preview {
                input type="hidden" name="csrf" value=(s.csrf);
                fieldset disabled[!can_drain] {
                    legend { "Selected nodes" }
                    label for="reason" { "Reason" }
                    input #reason name="reason" maxlength="1024" placeholder="kernel upgrade";
                    label.inline { input type="checkbox" name="maintenance" value="1"; " maintenance (no traffic at all)" }
                    button type="submit" name="action" value="drain" { "Drain…" }
                    button type="submit" name="action" value="undrain" { "Undrain…" }
                    @if !can_drain { p.hint { (s.name()) " may only read: draining needs an operator's or an admin's token." } }
                }
            }
            div.table-wrap {
                table.nodes data-rows aria-label="Nodes" {
                    (views::node_head())
                    tbody {
                        @for r in &rows { (views::raw(&r.html)) }
                    }
                }
                @if rows.is_empty() { p.muted { "No nodes." } }
            }
            dialog #preview aria-labelledby="preview-title" {}
        },
    )
}

/// A bulk action as its form sends it.
struct Bulk {
    nodes: Vec<String>,
    offline: bool,
    reason: String,
    maintenance: bool,
    allow_last: bool,
    csrf: Option<String>,
    fragment: bool,
}

fn bulk_of(pairs: Vec<(String, String)>) -> Result<Bulk, Problem> {
    let mut b = Bulk {
        nodes: Vec::new(),
        offline: true,
        reason: String::new(),
        maintenance: false,
        allow_last: false,
        csrf: None,
        fragment: false,
    };
    let mut action = None;
    for (k, v) in pairs {
        match k.as_str() {
            "node" => b.nodes.push(v),
            "action" => action = Some(v),
            "reason" => b.reason = v,
            "maintenance" => b.maintenance = v == "1",
            "allow_last" => b.allow_last = v == "1",
            "csrf" => b.csrf = Some(v),
            "fragment" => b.fragment = v == "1",
            _ => {}
        }
    }
    b.offline = match action.as_deref() {
        Some("drain") | None => true,
        Some("undrain") => false,
        Some(other) => {
            return Err(Problem::bad_request(
                "invalid-action",
                format!("action {other:?}: drain or undrain"),
            ));
        }
    };
    if b.nodes.is_empty() {
        return Err(Problem::bad_request(
            "no-nodes",
            "no node selected: tick at least one",
        ));
    }
    if b.nodes.len() > 10_000 {
        return Err(Problem::bad_request(
            "too-many",
            "at most 10,000 nodes at once",
        ));
    }
    Ok(b)
}

/// A bulk action's form, checked as both its preview and its action check
/// it: this session's form, a role that may, known nodes, a drain's reason.
async fn checked_bulk(http: &Http, s: &Session, pairs: Vec<(String, String)>) -> ApiResult<Bulk> {
    let b = bulk_of(pairs)?;
    check_csrf(http, s, b.csrf.as_deref())?;
    let action = if b.offline { "drain" } else { "undrain" };
    s.require(http, Permission::Drain, action).await?;
    http.cluster.nodes(&b.nodes)?;
    if b.offline && b.reason.trim().is_empty() {
        return Err(Problem::bad_request(
            "reason-required",
            "a drain needs a reason",
        ));
    }
    Ok(b)
}

/// Per role: online now, online after the action.
fn census(http: &Http, b: &Bulk) -> BTreeMap<String, (usize, usize)> {
    let mut roles: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (name, state, node_roles) in http.board().census() {
        let picked = b.nodes.contains(&name);
        let now = state == NodeState::Online;
        let after = if picked {
            !b.offline && state != NodeState::Down
        } else {
            now
        };
        for r in node_roles {
            let e = roles.entry(r).or_default();
            e.0 += usize::from(now);
            e.1 += usize::from(after);
        }
    }
    roles
}

/// The roles whose last online node the action would take out.
fn last_out(roles: &BTreeMap<String, (usize, usize)>) -> Vec<&str> {
    roles
        .iter()
        .filter(|(_, (now, after))| *now > 0 && *after == 0)
        .map(|(r, _)| r.as_str())
        .collect()
}

fn preview_markup(http: &Http, s: &Session, b: &Bulk, host: &str, error: Option<&str>) -> Markup {
    let roles = census(http, b);
    let last = last_out(&roles);
    let verb = if b.offline { "Drain" } else { "Undrain" };
    let names: Vec<String> = b.nodes.iter().map(|n| sh(n)).collect();
    let cli = if b.offline {
        format!(
            "clusterctl drain {} --reason {}{}",
            names.join(" "),
            sh(&b.reason),
            if b.maintenance { " --maint" } else { "" }
        )
    } else {
        format!("clusterctl undrain {}", names.join(" "))
    };
    let curl = if b.offline {
        let body =
            serde_json::json!({ "reason": b.reason, "maintenance": b.maintenance }).to_string();
        format!(
            "for n in {}; do curl -X PUT -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' -d {} http://{host}/api/v1/nodes/$n/drain; done",
            names.join(" "),
            sh(&body)
        )
    } else {
        format!(
            "for n in {}; do curl -X DELETE -H \"Authorization: Bearer $TOKEN\" http://{host}/api/v1/nodes/$n/drain; done",
            names.join(" ")
        )
    };
    html! {
        h2 #preview-title { (verb) " " (b.nodes.len()) " node" @if b.nodes.len() != 1 { "s" } "?" }
        @if let Some(e) = error { (views::flash(e, false)) }
        p { (b.nodes.join(", ")) }
        @if b.offline { p { "Reason: " strong { (b.reason) } @if b.maintenance { " (maintenance: no traffic at all)" } } }
        table.census {
            caption { "Nodes of each role in rotation" }
            thead { tr { th scope="col" { "Role" } th scope="col" { "Now" } th scope="col" { "After" } } }
            tbody {
                @for (role, (now, after)) in &roles {
                    tr class=[(*now > 0 && *after == 0).then_some("bad")] {
                        th scope="row" { (role) } td { (now) } td { (after) }
                    }
                }
            }
        }
        @if b.offline && !last.is_empty() {
            p.flash.bad role="alert" {
                "This takes the last online node of " strong { (last.join(", ")) } " out of rotation."
            }
        }
        form method="post" action="/nodes/apply" data-apply {
            input type="hidden" name="csrf" value=(s.csrf);
            input type="hidden" name="action" value=(if b.offline { "drain" } else { "undrain" });
            input type="hidden" name="reason" value=(b.reason);
            @if b.maintenance { input type="hidden" name="maintenance" value="1"; }
            @for n in &b.nodes { input type="hidden" name="node" value=(n); }
            @if b.offline && !last.is_empty() {
                label.inline { input type="checkbox" name="allow_last" value="1"; " Take them out anyway" }
            }
            button type="submit" { "Confirm: " (verb.to_lowercase()) }
            " " a href="/" data-close { "Cancel" }
        }
        (copy_as(&cli, &curl))
    }
}

fn host_of(headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("MASTER:7441")
        .to_owned()
}

/// The preview of a bulk action: what it does to each role's rotation.
pub async fn preview(
    State(http): State<Http>,
    s: Session,
    headers: HeaderMap,
    FormBody(pairs): FormBody<Vec<(String, String)>>,
) -> ApiResult<Response> {
    let b = checked_bulk(&http, &s, pairs).await?;
    let body = preview_markup(&http, &s, &b, &host_of(&headers), None);
    if b.fragment {
        return Ok(body.into_response());
    }
    Ok(page("Preview", Some(&s.viewer()), Section::Nodes, None, body).into_response())
}

/// The bulk action itself, through the one drain; refused when it would
/// take a role's last online node out unless allowed.
pub async fn apply(
    State(http): State<Http>,
    s: Session,
    headers: HeaderMap,
    FormBody(pairs): FormBody<Vec<(String, String)>>,
) -> ApiResult<Response> {
    let b = checked_bulk(&http, &s, pairs).await?;
    let roles = census(&http, &b);
    let last = last_out(&roles);
    if b.offline && !last.is_empty() && !b.allow_last {
        let msg = format!(
            "refused: this takes the last online node of {} out; tick \"take them out anyway\" to do it",
            last.join(", ")
        );
        let body = preview_markup(&http, &s, &b, &host_of(&headers), Some(&msg));
        let body = if b.fragment {
            body
        } else {
            page("Preview", Some(&s.viewer()), Section::Nodes, None, body)
        };
        return Ok((StatusCode::CONFLICT, body).into_response());
    }
    let mut events = http
        .cluster
        .drain(DrainRequest {
            target: TargetSpec::Names(b.nodes.clone()),
            offline: b.offline,
            reason: b.reason.clone(),
            maintenance: b.maintenance,
            by: s.caller.label(),
            note: "dashboard".into(),
            wait: false,
            timeout: Duration::ZERO,
        })
        .await?;
    while events.recv().await.is_some() {}
    http.board().rebuild(&http.cluster);
    let done = format!(
        "{} {}: {}",
        if b.offline { "Drained" } else { "Undrained" },
        b.nodes.len(),
        b.nodes.join(", ")
    );
    if b.fragment {
        return Ok(views::flash(&done, true).into_response());
    }
    Ok(Redirect::to(&format!("/?done={}", super::encode(&done))).into_response())
}

/// One node: state, what the balancers see, usage history, checks with
/// output, grains, its hosts line and its events; drain or undrain.
pub async fn node(
    State(http): State<Http>,
    s: Session,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult<Markup> {
    let n = http
        .cluster
        .nodes(std::slice::from_ref(&name))?
        .pop()
        .ok_or_else(|| Problem::not_found("unknown-node", format!("unknown node: {name}")))?;
    let board = http.board();
    let history = board.history(&n.node.id);
    let (version, _) = board.rows(Some(&[]));
    let (_, hosts) = http.cluster.hosts();
    let line = hosts.iter().find(|h| h.node_id == n.node.id);
    let events = http
        .cluster
        .events(0, 50, Some(n.node.id.as_str()))
        .await
        .unwrap_or_default();
    let events: Vec<_> = events.iter().rev().collect();
    let can_drain = s.may(Permission::Drain);
    let cpu: Vec<f32> = history.iter().map(|h| h.cpu).collect();
    let mem: Vec<f32> = history.iter().map(|h| h.mem).collect();
    let host = host_of(&headers);
    let offline = n.node.offline.is_some();
    // The master's history (an hour by default), when it keeps one.
    let hour: Vec<crate::monitor::Sample> = http
        .monitor
        .as_ref()
        .map(|m| m.usage_history(&n.node.id, 0))
        .unwrap_or_default();
    let series = |f: fn(&crate::monitor::Sample) -> f64| -> Vec<(u64, f64)> {
        hour.iter().map(|s| (s.at_ms, f(s))).collect()
    };
    let live = format!("/live?view=node&node={}&v={version}", super::encode(&name));
    Ok(page(
        &name,
        Some(&s.viewer()),
        Section::Nodes,
        Some(&live),
        html! {
            h1 { (name) " " (views::state_badge(n.state)) }
            @if let Some(o) = &n.node.offline {
                p { (if o.maintenance { "In maintenance" } else { "Drained" }) ": " strong { (o.reason) } " — by " (o.by) ", " (rfc3339(o.since_ms)) }
            }
            div.table-wrap { table.nodes data-rows aria-label="This node" {
                (views::node_head())
                tbody { @for r in board.rows(Some(std::slice::from_ref(&name))).1 { (views::raw(&r.html)) } }
            } }
            section {
                h2 { (if offline { "Put back in service" } else { "Take out of service" }) }
                form method="post" action="/nodes/preview" data-preview {
                    input type="hidden" name="csrf" value=(s.csrf);
                    input type="hidden" name="node" value=(name);
                    fieldset disabled[!can_drain] {
                        @if offline {
                            button type="submit" name="action" value="undrain" { "Undrain…" }
                        } @else {
                            label for="reason" { "Reason" }
                            input #reason name="reason" required maxlength="1024";
                            label.inline { input type="checkbox" name="maintenance" value="1"; " maintenance" }
                            button type="submit" name="action" value="drain" { "Drain…" }
                        }
                        @if !can_drain { p.hint { (s.name()) " may only read." } }
                    }
                }
                @if offline {
                    (copy_as(&format!("clusterctl undrain {}", sh(&name)),
                        &format!("curl -X DELETE -H \"Authorization: Bearer $TOKEN\" http://{host}/api/v1/nodes/{name}/drain")))
                } @else {
                    (copy_as(&format!("clusterctl drain {} --reason REASON", sh(&name)),
                        &format!("curl -X PUT -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' -d '{{\"reason\": \"REASON\"}}' http://{host}/api/v1/nodes/{name}/drain")))
                }
            }
            @if !n.alerts.is_empty() {
                section {
                    h2 { "Alerts" }
                    ul.alerts { @for a in &n.alerts {
                        li { span.bad { (a.severity) } " " (a.summary()) " — since " (rfc3339(a.starts_at_ms)) }
                    } }
                }
            }
            @if hour.len() >= 2 {
                section {
                    h2 { "History" }
                    (views::chart("CPU", &series(|s| s.cpu_percent), 100.0, "%"))
                    (views::chart("Memory", &series(|s| s.memory_percent), 100.0, "%"))
                    (views::chart("Fullest disk", &series(|s| s.disk_percent), 100.0, "%"))
                    (views::chart("Load (1 min)", &series(|s| s.load1), 1.0, ""))
                    (views::chart("Network in", &series(|s| s.net_rx_bytes_per_sec as f64 / 1e6), 1.0, " MB/s"))
                    p.hint { (hour.len()) " samples kept by this master." }
                }
            }
            section.cols {
                div {
                    h2 { "Usage" }
                    @if let Some(u) = &n.usage {
                        dl.facts {
                            dt { "CPU" } dd { (format!("{:.0}%", u.cpu_percent)) " " (views::sparkline(&cpu)) }
                            dt { "Memory" } dd { (format!("{:.0}%", super::board::percent(u.mem_used_bytes, u.mem_total_bytes))) " " (views::sparkline(&mem)) }
                            dt { "Load" } dd { (format!("{:.2} {:.2} {:.2}", u.load[0], u.load[1], u.load[2])) }
                            dt { "Network" } dd { (u.net_rx_bytes_per_sec) " B/s in, " (u.net_tx_bytes_per_sec) " B/s out" }
                            @for d in &u.disks {
                                dt { "Disk " (d.mount) } dd { (format!("{:.0}% used", 100.0 - super::board::percent(d.available_bytes, d.total_bytes))) }
                            }
                        }
                        p.hint { "The last " (history.len()) " samples." }
                    } @else { p.muted { "No usage reported yet." } }
                }
                div {
                    h2 { "Checks" }
                    @if n.checks.is_empty() { p.muted { "No local checks." } }
                    @for c in &n.checks {
                        details open[!c.passing] {
                            summary { (c.name) " (" (c.kind) "): " @if c.passing { span.ok { "passing" } } @else { span.bad { "failing" } } " since " (rfc3339(c.since_ms)) }
                            pre { (c.output) }
                        }
                    }
                    h2 { "Hosts line" }
                    @match line {
                        Some(h) => pre { (h.address) "\t" (h.names.join(" ")) },
                        None => p.muted { "None (no address yet)." },
                    }
                }
            }
            section {
                h2 { "Events" }
                (super::records::events_table(&events))
            }
            dialog #preview aria-labelledby="preview-title" {}
            section {
                h2 { "Grains" }
                table.grains {
                    tbody { @for (k, v) in &n.node.grains {
                        tr { th scope="row" { (k) } td { code { (v.to_string()) } } }
                    } }
                }
            }
        },
    ))
}
