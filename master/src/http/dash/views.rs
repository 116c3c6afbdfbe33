//! What the dashboard's pages are made of, rendered on the server (maud):
//! the page shell, a node's table row (the same function renders it for
//! the page and for the live stream), badges, sparklines as inline SVG,
//! and the "copy as clusterctl / curl" of every action.

use super::board::Sample;
use crate::state::BalancingState;
use cluster_model::{NodeState, NodeStatus};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use std::collections::{BTreeMap, VecDeque};

/// Who is looking, for the shell: name, role, and the form token.
pub struct Viewer<'a> {
    pub name: &'a str,
    pub role: cluster_model::Role,
    pub csrf: &'a str,
}

/// Which part of the site a page is.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Nodes,
    Events,
    Jobs,
    Rollouts,
    Balancing,
    None,
}

/// The page shell: a skip link, the navigation, who is logged in, the
/// theme switch, the script (which only enhances: every form works
/// without it), and `live` — the one stream this tab follows.
pub fn page(
    title: &str,
    viewer: Option<&Viewer>,
    section: Section,
    live: Option<&str>,
    body: Markup,
) -> Markup {
    let nav = [
        (Section::Nodes, "/", "Nodes"),
        (Section::Events, "/events", "Events"),
        (Section::Jobs, "/jobs", "Jobs"),
        (Section::Rollouts, "/rollouts", "Rollouts"),
        (Section::Balancing, "/balancing", "Balancing"),
    ];
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (title) " · clusterctl" }
                link rel="stylesheet" href=(super::assets::CSS_PATH);
                script src=(super::assets::JS_PATH) defer {}
            }
            body data-live=[live] data-csrf=[viewer.map(|v| v.csrf)] {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/" { "clusterctl" }
                    @if let Some(v) = viewer {
                        nav aria-label="Sections" {
                            ul {
                                @for (s, href, label) in nav {
                                    li { a href=(href) aria-current=[(s == section).then_some("page")] { (label) } }
                                }
                            }
                        }
                        div.who {
                            span { (v.name) " · " (v.role.as_str()) }
                            button.theme type="button" data-theme-toggle aria-label="Switch between light and dark" { "◐" }
                            form method="post" action="/logout" {
                                input type="hidden" name="csrf" value=(v.csrf);
                                button type="submit" { "Log out" }
                            }
                        }
                    }
                }
                main id="main" tabindex="-1" { (body) }
                div.live-status role="status" aria-live="polite" data-live-status {}
            }
        }
    }
}

pub fn state_badge(state: NodeState) -> Markup {
    html! { span class={"badge " (state.as_str())} { (state.as_str()) } }
}

/// A bar and a sparkline of the last samples, in percent.
fn usage_cell(now: Option<f32>, history: impl Iterator<Item = f32>) -> Markup {
    let points: Vec<f32> = history.collect();
    let Some(now) = now else {
        return html! { span.muted { "—" } };
    };
    let level = if now >= 90.0 {
        "critical"
    } else if now >= 70.0 {
        "warning"
    } else if now >= 50.0 {
        "careful"
    } else {
        "ok"
    };
    html! {
        span class={"usage " (level)} {
            (sparkline(&points))
            span.num { (format!("{now:.0}%")) }
        }
    }
}

/// An inline SVG polyline, 60×16, of values 0–100.
pub fn sparkline(points: &[f32]) -> Markup {
    if points.len() < 2 {
        return html! {};
    }
    let step = 60.0 / (points.len() - 1) as f32;
    let mut d = String::new();
    for (i, p) in points.iter().enumerate() {
        let y = 16.0 - p.clamp(0.0, 100.0) * 0.16;
        d.push_str(&format!("{:.1},{:.1} ", i as f32 * step, y));
    }
    html! {
        svg.spark viewBox="0 0 60 16" width="60" height="16" aria-hidden="true" {
            polyline points=(d.trim_end()) fill="none" stroke="currentColor" stroke-width="1.5" {}
        }
    }
}

/// A chart of one figure over time: `(at_ms, value)` oldest first, drawn
/// against `top` (100 for percents), with its range and last value in
/// text beside it for those who do not see the picture.
pub fn chart(title: &str, points: &[(u64, f64)], top: f64, unit: &str) -> Markup {
    const W: f64 = 600.0;
    const H: f64 = 80.0;
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return html! {};
    };
    let span = (last.0.saturating_sub(first.0)).max(1) as f64;
    let top = points
        .iter()
        .map(|p| p.1)
        .fold(top, f64::max)
        .max(f64::MIN_POSITIVE);
    let mut d = String::new();
    for (at, v) in points {
        let x = (at - first.0) as f64 / span * W;
        let y = H - (v / top).clamp(0.0, 1.0) * H;
        d.push_str(&format!("{x:.1},{y:.1} "));
    }
    let max = points.iter().map(|p| p.1).fold(0.0, f64::max);
    let minutes = (span / 60_000.0).round();
    html! {
        figure.chart {
            figcaption { strong { (title) } " — now " (format!("{:.1}{unit}", last.1)) ", highest " (format!("{max:.1}{unit}")) " over " (minutes) " min" }
            svg viewBox=(format!("0 0 {W} {H}")) preserveAspectRatio="none" width="100%" height="80" role="img" aria-label=(format!("{title} over the last {minutes} minutes")) {
                line x1="0" y1=(H) x2=(W) y2=(H) stroke="currentColor" stroke-opacity="0.3" {}
                polyline points=(d.trim_end()) fill="none" stroke="currentColor" stroke-width="1.5" vector-effect="non-scaling-stroke" {}
            }
        }
    }
}

/// What each balancer says of a node: by node address, `(balancer,
/// source, in rotation, status)`.
pub type BalancerViews = BTreeMap<String, Vec<(String, &'static str, bool, String)>>;

pub fn balancer_views(b: &BalancingState) -> BalancerViews {
    let mut out: BalancerViews = BTreeMap::new();
    for (balancer, report) in &b.reports {
        for backend in &report.backends {
            let host = backend
                .addr
                .rsplit_once(':')
                .map_or(backend.addr.as_str(), |(h, _)| h)
                .trim_matches(['[', ']'])
                .to_owned();
            out.entry(host).or_default().push((
                balancer.clone(),
                backend.source.as_str(),
                backend.in_rotation,
                backend.status.clone(),
            ));
        }
    }
    out
}

fn balancers_cell(n: &NodeStatus, lb: &BalancerViews) -> Markup {
    let seen: Vec<&(String, &'static str, bool, String)> = n
        .node
        .addresses
        .iter()
        .filter_map(|a| lb.get(a))
        .flatten()
        .collect();
    html! {
        @if seen.is_empty() {
            span.muted { "—" }
        } @else {
            ul.lbs {
                @for (balancer, source, in_rotation, status) in seen {
                    li class=(if *in_rotation { "in" } else { "out" })
                        title={(source) " on " (balancer) @if !status.is_empty() { ": " (status) }} {
                        (balancer) " " (if *in_rotation { "in" } else { "out" })
                    }
                }
            }
        }
    }
}

/// A node's row of the nodes table: the same for every viewer (what a
/// viewer may do is on the bulk form, not here).
pub fn node_row(n: &NodeStatus, lb: &BalancerViews, history: &VecDeque<Sample>) -> Markup {
    let name = n.node.name.as_str();
    let failing: Vec<&str> = n
        .checks
        .iter()
        .filter(|c| !c.passing)
        .map(|c| c.name.as_str())
        .collect();
    let cpu = n.usage.as_ref().map(|u| u.cpu_percent as f32);
    let mem = n
        .usage
        .as_ref()
        .map(|u| super::board::percent(u.mem_used_bytes, u.mem_total_bytes));
    html! {
        tr id={"node-" (name)} data-node=(name) data-state=(n.state.as_str()) {
            td.pick {
                input type="checkbox" name="node" value=(name) form="bulk" id={"pick-" (name)}
                    aria-label={"Select " (name)};
            }
            th scope="row" { a href={"/nodes/" (name)} { (name) } }
            td { (state_badge(n.state))
                @if let Some(o) = &n.node.offline { " " span.reason title={"by " (o.by)} { (o.reason) } } }
            td.roles { (n.node.roles.join(", ")) }
            td { (balancers_cell(n, lb)) }
            td { (usage_cell(cpu, history.iter().map(|s| s.cpu))) }
            td { (usage_cell(mem, history.iter().map(|s| s.mem))) }
            td { @if n.checks.is_empty() { span.muted { "—" } }
                 @else if failing.is_empty() { span.ok { (n.checks.len()) " passing" } }
                 @else { span.bad { "failing: " (failing.join(", ")) } } }
        }
    }
}

/// The nodes table's head.
pub fn node_head() -> Markup {
    html! {
        thead { tr {
            th scope="col" { span.visually-hidden { "Select" } }
            th scope="col" { "Node" } th scope="col" { "State" } th scope="col" { "Roles" }
            th scope="col" { "Balancers" } th scope="col" { "CPU" } th scope="col" { "Memory" }
            th scope="col" { "Checks" }
        } }
    }
}

/// A shell-quoted word.
pub fn sh(word: &str) -> String {
    if !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:@=%+,".contains(&b))
    {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// "Copy as clusterctl / copy as curl" for an action.
pub fn copy_as(cli: &str, curl: &str) -> Markup {
    html! {
        details.copy-as {
            summary { "Copy as clusterctl / curl" }
            div.copy { pre { code { (cli) } } button type="button" data-copy=(cli) { "Copy clusterctl" } }
            div.copy { pre { code { (curl) } } button type="button" data-copy=(curl) { "Copy curl" } }
        }
    }
}

/// A target expression's error as the CLI shows it: the text, a caret
/// under the column, the message.
pub fn target_error(e: &str) -> Markup {
    html! { div.error role="alert" { pre { (e) } } }
}

pub fn flash(message: &str, ok: bool) -> Markup {
    html! { p class=(if ok { "flash ok" } else { "flash bad" }) role=(if ok { "status" } else { "alert" }) { (message) } }
}

pub fn raw(s: &str) -> PreEscaped<&str> {
    PreEscaped(s)
}
