//! The rules' table tests: a value's path in, transitions out.

use super::rules::{NodeSample, values};
use super::*;
use crate::ids::NodeId;
use crate::usage::{DiskUsage, Usage};

fn levels(for_ms: u64) -> Levels {
    let mut l = Levels::default();
    for m in [&mut l.cpu, &mut l.memory, &mut l.disk, &mut l.silent] {
        m.for_ms = for_ms;
    }
    l
}

fn usage(cpu: f64) -> Usage {
    Usage {
        cpu_percent: cpu,
        mem_total_bytes: 100,
        mem_used_bytes: 10,
        ..Usage::default()
    }
}

struct Node {
    id: NodeId,
    roles: Vec<String>,
}

impl Node {
    fn new() -> Node {
        Node {
            id: NodeId::new("n1").unwrap(),
            roles: vec!["web".into()],
        }
    }

    fn sample<'a>(&'a self, u: Option<&'a Usage>) -> NodeSample<'a> {
        NodeSample {
            id: &self.id,
            name: "web-1",
            roles: &self.roles,
            drained: false,
            down_since_ms: None,
            usage: u,
            cores: 2.0,
        }
    }
}

/// `(t_s, "firing"|"resolved", severity)`.
type Said = (u64, &'static str, Severity);

/// A case: its name, the CPU path, what it should say.
type Case = (&'static str, &'static [f64], &'static [Said]);

/// Runs CPU values one a second from t = 0; each transition as
/// `(t_s, "firing"|"resolved", severity)`.
fn run(path: &[f64], l: &Levels) -> Vec<Said> {
    let node = Node::new();
    let mut a = Alerting::default();
    let mut out = Vec::new();
    for (t, cpu) in path.iter().enumerate() {
        let u = usage(*cpu);
        for tr in a.observe(&node.sample(Some(&u)), l, t as u64 * 1000) {
            assert_eq!(tr.key.metric, Metric::Cpu, "only CPU moves here");
            out.push((t as u64, tr.notice.status.as_str(), tr.key.severity));
        }
    }
    out
}

#[test]
fn a_value_crossing_up_and_down_fires_and_resolves_exactly_once() {
    use Severity::*;
    // Critical 90, warning 70, clear 5, for 2 s.
    let cases: &[Case] = &[
        ("under the lines: nothing", &[10.0, 60.0, 69.9, 50.0], &[]),
        (
            "over warning for less than `for`: nothing",
            &[75.0, 75.0, 60.0, 75.0, 60.0],
            &[],
        ),
        (
            "over warning for `for`: fires once, resolves under the clear line",
            &[75.0, 75.0, 75.0, 75.0, 66.0, 64.9, 64.0],
            &[(2, "firing", Warning), (5, "resolved", Warning)],
        ),
        (
            "hovering at the line does not flap",
            &[71.0, 71.0, 71.0, 69.0, 71.0, 68.0, 70.0, 66.0, 71.0],
            &[(2, "firing", Warning)],
        ),
        (
            "critical fires after its own `for`, warning stays",
            &[95.0, 95.0, 95.0, 88.0, 86.0, 84.0, 50.0],
            &[
                (2, "firing", Warning),
                (2, "firing", Critical),
                (5, "resolved", Critical),
                (6, "resolved", Warning),
            ],
        ),
        (
            "a dip under the line restarts `for`",
            &[75.0, 75.0, 60.0, 75.0, 75.0, 75.0],
            &[(5, "firing", Warning)],
        ),
    ];
    let l = levels(2000);
    for (name, path, want) in cases {
        assert_eq!(&run(path, &l), want, "{name}");
    }
}

#[test]
fn no_for_fires_on_the_first_sample_over_the_line() {
    assert_eq!(
        run(&[50.0, 71.0, 71.0, 60.0], &levels(0)),
        vec![
            (1, "firing", Severity::Warning),
            (3, "resolved", Severity::Warning)
        ]
    );
}

#[test]
fn a_drained_node_is_silenced_and_starts_over_when_back() {
    let node = Node::new();
    let l = levels(0);
    let mut a = Alerting::default();
    let hot = usage(95.0);
    assert_eq!(a.observe(&node.sample(Some(&hot)), &l, 0).len(), 2);
    let mut drained = node.sample(Some(&hot));
    drained.drained = true;
    let gone = a.observe(&drained, &l, 1000);
    assert_eq!(gone.len(), 2, "both resolve: {gone:?}");
    assert!(
        gone.iter()
            .all(|t| t.notice.status == NoticeStatus::Resolved
                && t.notice.why == "node drained"
                && t.notice.ends_at_ms == Some(1000))
    );
    assert!(
        a.observe(&drained, &l, 2000).is_empty(),
        "silenced while drained"
    );
    assert_eq!(a.firing().count(), 0);
    let back = a.observe(&node.sample(Some(&hot)), &l, 3000);
    assert_eq!(back.len(), 2, "fires again once undrained");
}

#[test]
fn an_agent_that_stops_reporting_is_an_alert_and_its_usage_rules_hold() {
    let node = Node::new();
    let l = levels(2000);
    let mut a = Alerting::default();
    let hot = usage(95.0);
    for t in 0..3 {
        a.observe(&node.sample(Some(&hot)), &l, t * 1000);
    }
    assert_eq!(a.firing().count(), 2);
    let mut down = node.sample(Some(&hot));
    down.down_since_ms = Some(2500);
    assert!(
        a.observe(&down, &l, 3000).is_empty(),
        "silent waits its `for`"
    );
    assert!(a.observe(&down, &l, 4600).is_empty());
    let fired = a.observe(&down, &l, 5000);
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!(fired[0].key.metric, Metric::Silent);
    assert_eq!(fired[0].notice.alertname(), "NodeSilent");
    assert_eq!(a.firing().count(), 3, "CPU alerts hold: no new value");
    let back = a.observe(&node.sample(Some(&usage(10.0))), &l, 6000);
    let mut what: Vec<_> = back
        .iter()
        .map(|t| (t.key.metric.as_str(), t.notice.status.as_str()))
        .collect();
    what.sort();
    assert_eq!(
        what,
        [
            ("cpu", "resolved"),
            ("cpu", "resolved"),
            ("silent", "resolved")
        ]
    );
}

#[test]
fn disks_alert_per_mount_and_a_vanished_mount_resolves() {
    let node = Node::new();
    let l = levels(0);
    let mut a = Alerting::default();
    let mut u = usage(1.0);
    u.disks = vec![
        DiskUsage {
            mount: "/".into(),
            total_bytes: 100,
            available_bytes: 50,
        },
        DiskUsage {
            mount: "/var".into(),
            total_bytes: 100,
            available_bytes: 20,
        },
    ];
    let fired = a.observe(&node.sample(Some(&u)), &l, 0);
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].key.device, "/var");
    assert_eq!(fired[0].notice.threshold, 70.0);
    assert_eq!(fired[0].notice.value, 80.0);
    u.disks.pop();
    let gone = a.observe(&node.sample(Some(&u)), &l, 1000);
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].notice.why, "no longer measured");
}

#[test]
fn a_disabled_metric_never_fires_and_a_restored_alert_resolves_once() {
    let node = Node::new();
    let mut l = levels(0);
    l.cpu.enabled = false;
    let mut a = Alerting::default();
    assert!(
        a.observe(&node.sample(Some(&usage(99.0))), &l, 0)
            .is_empty()
    );

    let l = levels(0);
    let mut a = Alerting::default();
    let key = AlertKey {
        node: node.id.clone(),
        metric: Metric::Cpu,
        device: String::new(),
        severity: Severity::Warning,
    };
    let notice = Notice {
        status: NoticeStatus::Firing,
        node: "web-1".into(),
        roles: vec![],
        metric: Metric::Cpu,
        device: String::new(),
        severity: Severity::Warning,
        value: 80.0,
        threshold: 70.0,
        starts_at_ms: 5,
        ends_at_ms: None,
        why: String::new(),
    };
    a.restore(key.clone(), &notice);
    assert!(
        a.observe(&node.sample(Some(&usage(75.0))), &l, 10)
            .is_empty(),
        "still firing: not said again"
    );
    let r = a.observe(&node.sample(Some(&usage(10.0))), &l, 20);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].notice.starts_at_ms, 5);
    assert_eq!(r[0].notice.status, NoticeStatus::Resolved);
}

#[test]
fn load_is_per_core_and_missing_swap_is_not_measured() {
    let mut u = usage(0.0);
    u.load = [3.0, 0.0, 0.0];
    let v = values(&u, 2.0);
    let load = v.iter().find(|(m, ..)| *m == Metric::Load).unwrap().2;
    assert_eq!(load, 1.5);
    assert!(!v.iter().any(|(m, ..)| *m == Metric::Swap));
}
