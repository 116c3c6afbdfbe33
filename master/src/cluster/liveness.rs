//! Liveness in the event log: a node is `down` when it has not been heard
//! from for `down_after` (derived on every read, never stored); the sweep
//! here records the transitions, run periodically by the server.

use super::Cluster;
use crate::model::{Event, EventKind, NodeState, now_ms};
use crate::store::{StoreError, Write};
use std::time::Duration;

impl Cluster {
    /// Records in the event log the nodes that went down or came back since
    /// the last sweep. Run periodically by the liveness task.
    pub async fn sweep_liveness(&self) -> Result<Vec<Event>, StoreError> {
        let _w = self.writer.lock().await;
        let now = now_ms();
        let (write, went_down, came_up) = {
            let mut st = self.state();
            let mut went_down = Vec::new();
            let mut came_up = Vec::new();
            for node in st.nodes.values() {
                let is_down = node.state(now, self.down_after_ms) == NodeState::Down;
                match (is_down, st.down.contains(&node.id)) {
                    (true, false) => went_down.push((node.id.clone(), node.clone())),
                    (false, true) => came_up.push((node.id.clone(), node.clone())),
                    _ => {}
                }
            }
            let mut write = Write::default();
            for (_, node) in &went_down {
                let silent = Duration::from_millis(now.saturating_sub(node.last_seen_ms));
                let detail = format!(
                    "not heard from for {}",
                    humantime::format_duration(Duration::from_secs(silent.as_secs().max(1)))
                );
                let e = st.event(EventKind::Down, &node.name, "master", detail);
                write.events.push(e);
                // Persist last_seen so a restarted master knows it too.
                write.nodes.push(node.clone());
            }
            for (_, node) in &came_up {
                let e = st.event(EventKind::Up, &node.name, "master", String::new());
                write.events.push(e);
            }
            (write, went_down, came_up)
        };
        if write.is_empty() {
            return Ok(Vec::new());
        }
        if let Err(e) = self.persist(write.clone()).await {
            self.state().next_event_seq -= write.events.len() as u64;
            return Err(e);
        }
        let mut st = self.state();
        for (id, _) in went_down {
            st.down.insert(id);
        }
        for (id, _) in came_up {
            st.down.remove(&id);
        }
        drop(st);
        self.refresh_proxy();
        Ok(write.events)
    }

    /// Forgets nodes not heard from for longer than `expiry` (their names
    /// are free again); returns the names it removed.
    pub async fn expire_names(&self, expiry: Duration) -> Vec<String> {
        let now = now_ms();
        let expired: Vec<(String, String)> = self
            .state()
            .nodes
            .values()
            .filter(|n| {
                !n.connected && now.saturating_sub(n.last_seen_ms) > expiry.as_millis() as u64
            })
            .map(|n| (n.id.clone(), n.name.clone()))
            .collect();
        let by = format!(
            "master (down longer than {})",
            humantime::format_duration(expiry)
        );
        let mut removed = Vec::new();
        for (id, name) in expired {
            match self.remove_node(&id, &by).await {
                Ok(()) => removed.push(name),
                Err(e) => tracing::warn!(node = %name, error = %e, "cannot expire the node's name"),
            }
        }
        removed
    }
}
