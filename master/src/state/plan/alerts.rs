//! Alerts as the store keeps them: a firing alert is a record (so every
//! master shows it and the next leader takes it up), put when it fires
//! and deleted when it resolves, each change an event; a delivery that
//! failed is an event too.

use super::{About, Command, Draft, Env, Planned};
use crate::cluster::ClusterError;
use crate::state::State;
use crate::store::{Key, Record};
use cluster_model::EventKind;
use cluster_model::alerts::{NoticeStatus, Transition};
use std::time::Duration;

/// Alerts that fired or resolved, in the order they did.
pub struct AlertChanges {
    pub transitions: Vec<Transition>,
}

/// How long an alert lasted, as events say it: `2m 3s`.
pub fn lasted(from_ms: u64, to_ms: u64) -> String {
    let secs = to_ms.saturating_sub(from_ms) / 1000;
    humantime::format_duration(Duration::from_secs(secs.max(1))).to_string()
}

impl Command for AlertChanges {
    type Out = ();

    fn plan(&self, st: &State, env: &Env) -> Result<Planned<()>, ClusterError> {
        let mut d = Draft::new(st, env);
        for t in &self.transitions {
            let key = Key::Alert(t.key.clone());
            let n = &t.notice;
            let detail = match n.status {
                NoticeStatus::Firing => format!("alert firing: {}", n.summary()),
                NoticeStatus::Resolved => {
                    let lasted = lasted(n.starts_at_ms, n.ends_at_ms.unwrap_or(env.now_ms));
                    match n.why.as_str() {
                        "" => format!("alert resolved after {lasted}: {}", n.summary()),
                        why => format!("alert resolved after {lasted} ({why}): {}", n.summary()),
                    }
                }
            };
            match (n.status, st.revision_of(&key)) {
                (NoticeStatus::Firing, _) => d.put(Record::Alert(t.clone())),
                (NoticeStatus::Resolved, Some(_)) => d.delete(key),
                (NoticeStatus::Resolved, None) => {}
            }
            match st.node(&t.key.node) {
                Some(node) => d.event(EventKind::Alert, About::Node(&node.value), "master", detail),
                None => d.event(EventKind::Alert, About::Named(&n.node), "master", detail),
            }
        }
        Ok(d.finish(()))
    }
}

/// A notice that could not be delivered (or was given up), or a
/// destination that works again: a cluster-wide event (its detail names
/// the notice), so no alert is dropped unseen.
pub struct DeliveryFailed {
    pub detail: String,
}

impl Command for DeliveryFailed {
    type Out = ();

    fn plan(&self, st: &State, env: &Env) -> Result<Planned<()>, ClusterError> {
        let mut d = Draft::new(st, env);
        d.event(
            EventKind::Alert,
            About::Cluster,
            "master",
            self.detail.clone(),
        );
        Ok(d.finish(()))
    }
}
