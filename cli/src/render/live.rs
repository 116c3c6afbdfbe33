//! Lines of the followed reads, one per happening: `events --follow`
//! after its table, `nodes --watch` after its own. Cells are escaped as
//! the tables' are, so no line can forge another.

use super::{checks_cell, reason_cell};
use crate::client::{EventView, NodeView};
use cluster_model::limits::printable;

/// One event, its cells in the events table's order.
pub fn event_line(e: &EventView) -> String {
    let by = match e.note.as_str() {
        "" => e.by.clone(),
        note => format!("{} ({note})", e.by),
    };
    format!(
        "{}  {:<10}  {:<12}  {}  {}",
        e.time,
        printable(&e.kind),
        printable(&e.node),
        printable(&by),
        printable(&e.detail)
    )
    .trim_end()
    .to_owned()
}

/// A node whose state, flag, health or name changed, as it is now.
pub fn node_line(n: &NodeView) -> String {
    let mut line = format!(
        "{:<16}  {:<11}  {:<13}  health {}",
        printable(&n.name),
        n.state,
        if n.connected {
            "connected"
        } else {
            "not connected"
        },
        if n.health.is_empty() { "-" } else { &n.health },
    );
    let checks = checks_cell(n);
    if checks != "-" {
        line.push_str(&format!("  checks {}", printable(&checks)));
    }
    let reason = reason_cell(n);
    if !reason.is_empty() {
        line.push_str(&format!("  reason {}", printable(&reason)));
    }
    if let Some(o) = &n.offline {
        line.push_str(&format!("  by {}", printable(&o.by)));
    }
    line
}

/// A node removed, or no longer selected by the watch's target.
pub fn gone_line(name: &str) -> String {
    format!("{:<16}  gone", printable(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_is_one_line_whatever_its_detail_holds() {
        let e = EventView {
            seq: 7,
            time: "2026-11-21T20:25:46.658Z".into(),
            kind: "drain".into(),
            node: "web-1".into(),
            node_id: "web-1".into(),
            by: "admin".into(),
            note: "alice@laptop".into(),
            detail: "reason: deploy\nforged line".into(),
        };
        let line = event_line(&e);
        assert_eq!(line.lines().count(), 1, "{line}");
        assert!(
            line.starts_with("2026-11-21T20:25:46.658Z  drain "),
            "{line}"
        );
        assert!(line.contains("admin (alice@laptop)"), "{line}");
    }
}
