//! Turning the CLI's view types into text: tables for people, JSON for
//! scripts. Pure functions of their inputs (the clock is an argument).
//!
//! - `masters` — `clusterctl masters`: masters, the store, its endpoints.
//! - `live` — the lines of `events --follow` and `nodes --watch`.

use crate::client::{
    CertificateView, EventView, JobResultView, JobView, KeyView, NodeResult, NodeView,
    TokenInfoView, UserView,
};
use cluster_model::rotation::ApplyStatus;
use comfy_table::{Table, presets};
use serde_json::Value;

mod live;
mod masters;

pub use live::{event_line, gone_line, node_line};
pub use masters::masters_text;

/// Rows whose cells print as they are: control characters (a newline, an
/// escape sequence stored before inputs were checked) escaped, so no cell
/// can forge a line or drive the terminal.
pub trait AddPrintable {
    fn add_printable<I, S>(&mut self, cells: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>;
}

impl AddPrintable for Table {
    fn add_printable<I, S>(&mut self, cells: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.add_row(
            cells
                .into_iter()
                .map(|c| cluster_model::limits::printable(c.as_ref()).into_owned()),
        )
    }
}

/// A table in the house style, for other modules.
pub fn plain_table(header: &[&str]) -> Table {
    table(header)
}

/// A table's text, trailing spaces trimmed.
pub fn finish_table(t: &Table) -> String {
    trim_lines(&t.to_string())
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(presets::NOTHING)
        .set_content_arrangement(comfy_table::ContentArrangement::Disabled)
        .set_header(header.iter().copied());
    t
}

/// "3s ago", "5m ago", "2h ago", "4d ago"; "never" for 0.
pub fn ago(now_ms: u64, then_ms: u64) -> String {
    if then_ms == 0 {
        return "never".into();
    }
    let s = now_ms.saturating_sub(then_ms) / 1000;
    match s {
        0..60 => format!("{s}s ago"),
        60..3600 => format!("{}m ago", s / 60),
        3600..86400 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86400),
    }
}

fn mib(bytes: u64) -> String {
    let m = bytes / (1024 * 1024);
    if m >= 10 * 1024 {
        format!("{:.1}G", m as f64 / 1024.0)
    } else {
        format!("{m}M")
    }
}

pub fn nodes_table(nodes: &[NodeView], now_ms: u64) -> String {
    let mut t = table(&[
        "NAME",
        "ID",
        "ROLES",
        "STATE",
        "ADDRESS",
        "CPU",
        "MEMORY",
        "LAST SEEN",
        "CHECKS",
        "ALERTS",
        "REASON",
    ]);
    for n in nodes {
        let (cpu, mem) = match &n.usage {
            Some(u) => (
                format!("{:.0}%", u.cpu_percent),
                format!("{}/{}", mib(u.mem_used_bytes), mib(u.mem_total_bytes)),
            ),
            None => ("-".into(), "-".into()),
        };
        t.add_printable(vec![
            n.name.clone(),
            n.id.clone(),
            if n.roles.is_empty() {
                "-".into()
            } else {
                n.roles.join(",")
            },
            n.state.to_owned(),
            n.addresses.first().cloned().unwrap_or_else(|| "-".into()),
            cpu,
            mem,
            ago(now_ms, n.last_seen_ms),
            checks_cell(n),
            alerts_cell(n),
            reason_cell(n),
        ]);
    }
    trim_lines(&t.to_string())
}

/// "-" without alerts, else each firing one: `cpu critical`, `disk /var warning`.
fn alerts_cell(n: &NodeView) -> String {
    if n.alerts.is_empty() {
        return "-".into();
    }
    n.alerts
        .iter()
        .map(|a| match a.device.as_str() {
            "" => format!("{} {}", a.metric, a.severity),
            d => format!("{} {d} {}", a.metric, a.severity),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why the node is out, and whether its agent cannot keep its state.
fn reason_cell(n: &NodeView) -> String {
    let mut parts: Vec<String> = n.offline.iter().map(|o| o.reason.clone()).collect();
    if let Some(e) = &n.cache_error {
        parts.push(format!("agent cannot cache its state: {e}"));
    }
    if !n.fact_problems.is_empty() {
        parts.push(format!(
            "external facts failed: {}",
            n.fact_problems.join("; ")
        ));
    }
    parts.join("; ")
}

/// "-" without checks, "ok" when all pass, else the failing ones with why.
fn checks_cell(n: &NodeView) -> String {
    if n.checks.is_empty() {
        return "-".into();
    }
    let failing: Vec<String> = n
        .checks
        .iter()
        .filter(|c| !c.passing)
        .map(|c| format!("{} failing: {}", c.name, c.output))
        .collect();
    if failing.is_empty() {
        format!("ok ({})", n.checks.len())
    } else {
        failing.join("; ")
    }
}

pub fn events_table(events: &[EventView]) -> String {
    let mut t = table(&["TIME", "KIND", "NODE", "BY", "DETAIL"]);
    for e in events {
        t.add_printable(vec![
            e.time.clone(),
            e.kind.clone(),
            e.node.clone(),
            match e.note.as_str() {
                "" => e.by.clone(),
                note => format!("{} ({note})", e.by),
            },
            e.detail.clone(),
        ]);
    }
    trim_lines(&t.to_string())
}

/// `ca status`: soonest to expire first, with how long is left.
pub fn certificates_table(certs: &[CertificateView], now_ms: u64) -> String {
    let mut t = table(&["KIND", "NAME", "SERIAL", "EXPIRES", "LEFT", "RENEWS FROM"]);
    for c in certs {
        let left = match c.expires_ms.checked_sub(now_ms) {
            None | Some(0) => "expired".to_owned(),
            Some(ms) => {
                let secs = ms / 1000;
                match secs {
                    s if s >= 2 * 86_400 => format!("{}d", s / 86_400),
                    s if s >= 7_200 => format!("{}h", s / 3_600),
                    s if s >= 120 => format!("{}m", s / 60),
                    s => format!("{s}s"),
                }
            }
        };
        t.add_printable(vec![
            c.kind.clone(),
            c.name.clone(),
            c.serial.clone(),
            c.expires.clone(),
            left,
            c.renews_from.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    trim_lines(&t.to_string())
}

pub fn users_table(users: &[UserView]) -> String {
    let mut t = table(&["NAME", "ROLE", "SERIAL", "ISSUED", "BY", "REVOKED"]);
    for u in users {
        t.add_printable(vec![
            u.name.clone(),
            u.role.to_owned(),
            u.serial.clone(),
            u.issued.clone(),
            u.issued_by.clone(),
            match &u.revoked {
                Some(when) => format!("{when} by {}", u.revoked_by),
                None => "-".into(),
            },
        ]);
    }
    trim_lines(&t.to_string())
}

pub fn tokens_table(tokens: &[TokenInfoView]) -> String {
    let mut t = table(&[
        "ID",
        "KIND",
        "STATE",
        "USES LEFT",
        "ROLES",
        "EXPIRES",
        "CREATED BY",
    ]);
    for k in tokens {
        let (uses, roles) = match (&k.holder, k.role) {
            // An API token: its holder and role where a join token's uses
            // and node roles go.
            (Some(holder), Some(role)) => ("-".to_owned(), format!("{role} ({holder})")),
            _ => (
                k.uses_left
                    .map_or_else(|| "unlimited".to_owned(), |u| u.to_string()),
                if k.roles.is_empty() {
                    "-".into()
                } else {
                    k.roles.join(",")
                },
            ),
        };
        t.add_printable(vec![
            k.id.clone(),
            k.kind.to_owned(),
            k.state.to_owned(),
            uses,
            roles,
            k.expires.clone(),
            k.created_by.clone(),
        ]);
    }
    trim_lines(&t.to_string())
}

pub fn keys_table(keys: &[KeyView]) -> String {
    let mut t = table(&[
        "NODE",
        "STATE",
        "FINGERPRINT",
        "FROM",
        "DECIDED BY",
        "REQUESTED",
    ]);
    for k in keys {
        // Enough of the fingerprint to compare by eye.
        let short: String = k.fingerprint.chars().take(7 + 16).collect();
        t.add_printable(vec![
            k.node_id.clone(),
            k.state.to_owned(),
            short,
            if k.source.is_empty() {
                "-".into()
            } else {
                k.source.clone()
            },
            if k.decided_by.is_empty() {
                "-".into()
            } else {
                k.decided_by.clone()
            },
            k.requested.clone(),
        ]);
    }
    trim_lines(&t.to_string())
}

/// "exit 0 (1.2s)", "timed out after 30s", "not connected", "error: …".
pub fn job_outcome(r: &JobResultView) -> String {
    let took = format!("{:.1}s", r.duration_ms as f64 / 1000.0);
    let base = match r.status.as_str() {
        "ok" | "failed" => format!("exit {} ({took})", r.exit_code),
        "timed out" => format!("timed out after {took}"),
        "cancelled" => format!("cancelled after {took}"),
        other => other.to_owned(),
    };
    match (r.error.is_empty(), r.truncated) {
        (true, false) => base,
        (true, true) => format!("{base}; output cut"),
        (false, _) => format!("{base}: {}", r.error),
    }
}

pub fn job_results_table(results: &[JobResultView]) -> String {
    let mut t = table(&["NODE", "RESULT", "EXIT", "DURATION"]);
    for r in results {
        let exit = if matches!(r.status.as_str(), "ok" | "failed") {
            r.exit_code.to_string()
        } else {
            "-".into()
        };
        t.add_printable(vec![
            r.node.clone(),
            r.status.clone(),
            exit,
            format!("{:.1}s", r.duration_ms as f64 / 1000.0),
        ]);
    }
    trim_lines(&t.to_string())
}

pub fn jobs_table(jobs: &[JobView]) -> String {
    let mut t = table(&["ID", "STARTED", "BY", "TARGET", "NODES", "OK", "COMMAND"]);
    for j in jobs {
        let ok = j.results.iter().filter(|r| r.status == "ok").count();
        t.add_printable(vec![
            j.id.clone(),
            j.started.clone(),
            j.by.clone(),
            j.target.clone(),
            j.results.len().to_string(),
            if j.finished.is_empty() {
                "running".into()
            } else {
                ok.to_string()
            },
            j.command(),
        ]);
    }
    trim_lines(&t.to_string())
}

/// A job with every node's output, the way `run` printed it.
pub fn job_text(j: &JobView) -> String {
    let mut out = format!(
        "job {}  by {}  target {}\ncommand: {}\nstarted {}  finished {}\n\n",
        j.id,
        j.by,
        j.target,
        j.command(),
        j.started,
        if j.finished.is_empty() {
            "(running)"
        } else {
            &j.finished
        }
    );
    for r in &j.results {
        for (stream, text) in [("out", &r.stdout), ("err", &r.stderr)] {
            for line in text.lines() {
                out.push_str(&format!("[{}] {stream}: {line}\n", r.node));
            }
        }
        out.push_str(&format!("[{}] {}\n", r.node, job_outcome(r)));
    }
    out.push('\n');
    out.push_str(&job_results_table(&j.results));
    out
}

pub fn results_lines(verb: &str, results: &[NodeResult]) -> String {
    let width = results.iter().map(|r| r.name.len()).max().unwrap_or(0);
    let mut out = String::new();
    for r in results {
        let what = match r.status {
            ApplyStatus::Acknowledged => format!("{verb} (acknowledged by the agent)"),
            ApplyStatus::Stored => verb.to_owned(),
            ApplyStatus::Unchanged => format!("already {verb}"),
            other => format!("{verb}, but {other}"),
        };
        out.push_str(&format!("{:width$}  {what}", r.name));
        if !r.detail.is_empty() {
            out.push_str(&format!(" — {}", r.detail));
        }
        out.push('\n');
    }
    out
}

/// Grains as indented `key: value` lines, sorted, nested objects indented.
pub fn grains_text(value: &Value) -> String {
    fn walk(v: &Value, indent: usize, out: &mut String) {
        match v {
            Value::Object(map) => {
                let mut keys: Vec<_> = map.keys().collect();
                keys.sort();
                for k in keys {
                    let child = &map[k];
                    match child {
                        Value::Object(_) | Value::Array(_) if !is_empty(child) => {
                            out.push_str(&format!("{:indent$}{k}:\n", ""));
                            walk(child, indent + 4, out);
                        }
                        _ => out.push_str(&format!("{:indent$}{k}: {}\n", "", scalar(child))),
                    }
                }
            }
            Value::Array(items) => {
                for item in items {
                    match item {
                        Value::Object(_) | Value::Array(_) => {
                            out.push_str(&format!("{:indent$}-\n", ""));
                            walk(item, indent + 4, out);
                        }
                        _ => out.push_str(&format!("{:indent$}- {}\n", "", scalar(item))),
                    }
                }
            }
            other => out.push_str(&format!("{:indent$}{}\n", "", scalar(other))),
        }
    }
    fn is_empty(v: &Value) -> bool {
        match v {
            Value::Object(m) => m.is_empty(),
            Value::Array(a) => a.is_empty(),
            _ => false,
        }
    }
    fn scalar(v: &Value) -> String {
        match v {
            Value::String(s) => s.clone(),
            Value::Object(_) => "{}".into(),
            Value::Array(_) => "[]".into(),
            other => other.to_string(),
        }
    }
    let mut out = String::new();
    walk(value, 0, &mut out);
    out
}

/// Looks up `a:b:c` in nested objects; a key that holds the rest literally
/// (`url:http://x`) is tried before splitting further.
/// The fact at a Facter-style dotted path (`os.release.full`; a number
/// indexes a list: `processors.models.0`). A key that itself holds dots
/// is found whole first, as Facter does.
pub fn fact_at<'v>(facts: &'v Value, path: &str) -> Option<&'v Value> {
    let step = |v: &'v Value, key: &str| match v {
        Value::Object(m) => m.get(key),
        Value::Array(a) => key.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    };
    if let Some(v) = step(facts, path) {
        return Some(v);
    }
    let mut at = facts;
    let mut rest = path;
    while !rest.is_empty() {
        // The longest prefix that is a key, for keys with dots in them.
        let mut found = None;
        for (i, _) in rest.match_indices('.').chain([(rest.len(), "")]) {
            if let Some(v) = step(at, &rest[..i]) {
                found = Some((v, i));
                break;
            }
        }
        let (v, i) = found?;
        at = v;
        rest = rest.get(i + 1..).unwrap_or("");
    }
    Some(at)
}

pub fn grain_at<'v>(grains: &'v Value, key: &str) -> Option<&'v Value> {
    if let Some(v) = grains.get(key) {
        return Some(v);
    }
    let (head, rest) = key.split_once(':')?;

    grain_at(grains.get(head)?, rest)
}

fn trim_lines(s: &str) -> String {
    let mut out: String = s
        .lines()
        .map(|l| l.trim_end().trim_start_matches(' '))
        .collect::<Vec<_>>()
        .join("\n");
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::OfflineView;
    use serde_json::json;

    #[test]
    fn facts_are_found_by_dotted_paths_like_facters() {
        let f = json!({
            "os": {"release": {"full": "12.5", "major": "12"}},
            "processors": {"models": ["a", "b"]},
            "ec2.metadata": {"ami": "x"}
        });
        assert_eq!(fact_at(&f, "os.release.full"), Some(&json!("12.5")));
        assert_eq!(fact_at(&f, "os"), Some(&f["os"]));
        assert_eq!(fact_at(&f, "processors.models.1"), Some(&json!("b")));
        assert_eq!(fact_at(&f, "ec2.metadata.ami"), Some(&json!("x")));
        assert_eq!(fact_at(&f, "os.release.minor"), None);
        assert_eq!(fact_at(&f, "processors.models.7"), None);
    }

    #[test]
    fn a_stored_control_character_cannot_forge_a_line_or_drive_the_terminal() {
        let e = EventView {
            seq: 1,
            time: "2026-12-01T10:00:00.000Z".into(),
            kind: "drain".into(),
            node: "web-1".into(),
            node_id: String::new(),
            by: "admin".into(),
            note: "olga@laptop\u{7}".into(),
            detail: "deploy\n2026-12-01T00:00:00.000Z  drain  web-9  root  forged\x1b[2J".into(),
        };
        let text = events_table(&[e]);
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(!text.contains('\x1b'), "{text:?}");
        assert!(text.contains("deploy\\n2026"), "{text}");
        assert!(
            text.contains("admin (olga@laptop\\u{7})"),
            "the note beside who: {text}"
        );
    }

    fn node(name: &str, state: &'static str) -> NodeView {
        NodeView {
            name: name.into(),
            id: name.into(),
            state,
            roles: vec!["web".into()],
            addresses: vec!["127.0.0.2".into()],
            health_url: String::new(),
            connected: true,
            last_seen: String::new(),
            last_seen_ms: 1_000,
            offline: (state == "drained").then(|| OfflineView {
                reason: "deploy".into(),
                since: String::new(),
                by: "alice".into(),
                maintenance: false,
            }),
            usage: None,
            labels: Default::default(),
            grains: json!({}),
            health: state.into(),
            cache_error: None,
            facts: Value::Null,
            raw_usage: None,
            fact_problems: vec![],
            checks: Vec::new(),
            alerts: Vec::new(),
            levels: None,
        }
    }

    #[test]
    fn the_nodes_table_has_one_aligned_row_per_node() {
        let text = nodes_table(&[node("web-1", "online"), node("web-2", "drained")], 4_000);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("NAME"));
        assert!(
            lines[2].contains("drained") && lines[2].ends_with("deploy"),
            "{text}"
        );
        assert!(lines[1].contains("3s ago"));
    }

    #[test]
    fn ago_reads_like_a_person_would_say_it() {
        assert_eq!(ago(0, 0), "never");
        assert_eq!(ago(61_000, 1_000), "1m ago");
        assert_eq!(ago(7_201_000, 1_000), "2h ago");
    }

    #[test]
    fn nested_grain_keys() {
        let g = json!({"os": "Debian", "dc": {"rack": 4}, "url:x": 1, "url": "http://h:8080"});
        assert_eq!(grain_at(&g, "os"), Some(&json!("Debian")));
        assert_eq!(grain_at(&g, "dc:rack"), Some(&json!(4)));
        assert_eq!(grain_at(&g, "url:x"), Some(&json!(1)));
        assert_eq!(grain_at(&g, "dc:row"), None);
        assert_eq!(grain_at(&g, "os:family"), None);
    }

    #[test]
    fn grains_text_is_sorted_and_indented() {
        let g = json!({"b": [1, 2], "a": "x", "c": {"d": true}});
        assert_eq!(
            grains_text(&g),
            "a: x\nb:\n    - 1\n    - 2\nc:\n    d: true\n"
        );
    }
}
