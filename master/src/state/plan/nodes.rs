//! Planners for nodes: registration on connect, drains, labels, names
//! (promotion, renames, removal), and the events of liveness, checks and
//! an agent's durability.

use super::{About, Command, Draft, Env, Planned};
use crate::cluster::ClusterError;
use crate::state::State;
use crate::store::{Key, Record};
use cluster_model::limits::{LABELS_MAX, REASON_MAX_BYTES};
use cluster_model::naming::{self, Naming};
use cluster_model::session::Hello;
use cluster_model::{
    CheckResult, Event, EventKind, Node, NodeId, NodeName, NodeState, OfflineFlag, TargetSpec,
};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// An agent said hello: register the node, or refresh what it says of
/// itself. Writes only what changed, so a fleet reconnecting after a
/// master restart queues no write for nothing.
pub struct Register {
    pub hello: Hello,
}

impl Command for Register {
    type Out = ();

    fn plan(&self, st: &State, env: &Env) -> Result<Planned<()>, ClusterError> {
        let h = &self.hello;
        let mut d = Draft::new(st, env);
        // The roles it declares, as its join token allows them.
        let (roles, refused) = super::roles::granted(st, &h.node_id, &h.roles);
        // A node that names no service takes its role's, if the cluster
        // file gives one.
        let (service, naming) = match h.service.as_str() {
            "" => role_service(st, &roles).unwrap_or((String::new(), h.naming)),
            s => (s.to_owned(), h.naming),
        };
        let asked_again = st.node(&h.node_id).is_none_or(|n| {
            cluster_model::facts::roles_of(&n.value.grains)
                != cluster_model::facts::roles_of(&h.grains)
        });
        let mut node = match st.node(&h.node_id) {
            Some(existing) => {
                let mut node = existing.value.clone();
                node.roles = roles.clone();
                node.addresses = h.addresses.clone();
                node.health_url = h.health_url.clone();
                super::facts::lay(
                    &mut d,
                    &mut node,
                    &h.grains,
                    &h.facts,
                    &h.fact_problems,
                    true,
                );
                node.aliases = h.aliases.clone();
                if st.is_down_logged(&node.id) {
                    d.event(
                        EventKind::Up,
                        About::Node(&node),
                        "master",
                        "agent reconnected",
                    );
                }
                node
            }
            None => {
                // Named from its service (Aerostat), else by its id.
                let name = if service.is_empty() {
                    NodeName::of_id(&h.node_id)
                } else {
                    let taken: BTreeSet<String> =
                        st.nodes().map(|n| n.value.name.to_string()).collect();
                    NodeName::new(naming::assign(&service, naming, &taken)).map_err(|e| {
                        ClusterError::Invalid(format!(
                            "service {service:?} gives no valid name: {e}"
                        ))
                    })?
                };
                if let Some(owner) = st.id_of(&name) {
                    return Err(ClusterError::NameTaken {
                        name: name.to_string(),
                        owner: owner.to_string(),
                    });
                }
                let node = Node {
                    id: h.node_id.clone(),
                    name,
                    roles: roles.clone(),
                    addresses: h.addresses.clone(),
                    health_url: h.health_url.clone(),
                    grains: h.grains.clone(),
                    offline: None,
                    registered_ms: env.now_ms,
                    last_seen_ms: env.now_ms,
                    labels: BTreeMap::new(),
                    service: service.clone(),
                    naming,
                    aliases: h.aliases.clone(),
                    facts: Default::default(),
                    fact_problems: vec![],
                };
                let detail = match service.as_str() {
                    "" => String::new(),
                    svc => format!("named from service {svc} ({})", naming.as_str()),
                };
                d.event(
                    EventKind::Registered,
                    About::Node(&node),
                    node.id.as_str(),
                    detail,
                );
                let mut node = node;
                super::facts::lay(
                    &mut d,
                    &mut node,
                    &h.grains,
                    &h.facts,
                    &h.fact_problems,
                    false,
                );
                node
            }
        };
        if asked_again {
            super::roles::refusal(&mut d, &node, &refused);
        }
        let unchanged = st.node(&node.id).is_some_and(|old| {
            let old = &old.value;
            old.roles == node.roles
                && old.addresses == node.addresses
                && old.health_url == node.health_url
                && old.grains == node.grains
                && old.facts == node.facts
                && old.fact_problems == node.fact_problems
                && old.aliases == node.aliases
        });
        if !unchanged || !d.change.events.is_empty() {
            node.last_seen_ms = env.now_ms;
            d.put_node(node);
        }
        Ok(d.finish(()))
    }
}

/// The service and naming a node with `roles` gets when it names none
/// itself: from the first of its roles that defines one.
fn role_service(st: &State, roles: &[String]) -> Option<(String, Naming)> {
    let settings = st.settings()?;
    roles.iter().find_map(|r| {
        let def = settings.roles.get(r)?;
        def.service
            .clone()
            .map(|s| (s, def.naming.unwrap_or_default()))
    })
}

/// One node's part of a drain or undrain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NodeChange {
    pub id: NodeId,
    pub name: NodeName,
    /// False when it already was as asked.
    pub changed: bool,
}

/// Takes nodes out of service (`reason: Some`) or puts them back
/// (`None`). All or nothing: an unknown name changes nothing.
pub struct SetOut {
    pub target: TargetSpec,
    pub reason: Option<String>,
    /// HAProxy MAINT (no traffic at all) rather than a drain.
    pub maintenance: bool,
    pub by: String,
    /// The client's note on itself, for the events.
    pub note: String,
}

impl Command for SetOut {
    type Out = Vec<NodeChange>;

    fn plan(&self, st: &State, env: &Env) -> Result<Planned<Vec<NodeChange>>, ClusterError> {
        if let Some(reason) = &self.reason {
            cluster_model::limits::one_line("the reason", reason, REASON_MAX_BYTES)
                .map_err(|e| ClusterError::Invalid(e.to_string()))?;
        }
        let mut d = Draft::new(st, env);
        let mut changes = Vec::new();
        for id in st.select(&self.target)? {
            let node = &st.node(&id).expect("selected nodes exist").value;
            let wanted = self.reason.as_ref().map(|r| OfflineFlag {
                reason: r.clone(),
                since_ms: env.now_ms,
                by: self.by.clone(),
                maintenance: self.maintenance,
            });
            let changed = match (&node.offline, &wanted) {
                (None, None) => false,
                (Some(old), Some(new)) => {
                    old.reason != new.reason || old.maintenance != new.maintenance
                }
                _ => true,
            };
            if changed {
                let (kind, detail) = match &self.reason {
                    Some(r) if self.maintenance => (EventKind::Drain, format!("maintenance: {r}")),
                    Some(r) => (EventKind::Drain, r.clone()),
                    None => (EventKind::Undrain, String::new()),
                };
                d.event(kind, About::Node(node), &self.by, detail);
                d.note(&self.note);
                let mut next = node.clone();
                next.offline = wanted;
                d.put_node(next);
            }
            changes.push(NodeChange {
                id: node.id.clone(),
                name: node.name.clone(),
                changed,
            });
        }
        Ok(d.finish(changes))
    }
}

/// Sets (or, with an empty value, removes) labels on the selected nodes.
pub struct SetLabels {
    pub target: TargetSpec,
    pub labels: BTreeMap<String, String>,
    pub by: String,
}

impl Command for SetLabels {
    type Out = Vec<String>;

    fn plan(&self, st: &State, env: &Env) -> Result<Planned<Vec<String>>, ClusterError> {
        if self.labels.is_empty() {
            return Err(ClusterError::NoLabels);
        }
        for (k, v) in &self.labels {
            cluster_model::labels::check_key(k)?;
            cluster_model::labels::check_value(k, v)
                .map_err(|e| ClusterError::Invalid(e.to_string()))?;
        }
        let detail = self
            .labels
            .iter()
            .map(|(k, v)| match v.as_str() {
                "" => format!("{k}-"),
                v => format!("{k}={v}"),
            })
            .collect::<Vec<_>>()
            .join(" ");
        let mut d = Draft::new(st, env);
        let mut names = Vec::new();
        for id in st.select(&self.target)? {
            let mut node = st.node(&id).expect("selected nodes exist").value.clone();
            for (k, v) in &self.labels {
                if v.is_empty() {
                    node.labels.remove(k);
                } else {
                    node.labels.insert(k.clone(), v.clone());
                }
            }
            if node.labels.len() > LABELS_MAX {
                return Err(ClusterError::Invalid(format!(
                    "node {} would have {} labels; at most {LABELS_MAX} are allowed",
                    node.name,
                    node.labels.len()
                )));
            }
            names.push(node.name.to_string());
            d.event(
                EventKind::Label,
                About::Node(&node),
                &self.by,
                detail.clone(),
            );
            d.put_node(node);
        }
        Ok(d.finish(names))
    }
}

/// A change of names: a manual rename, or promotion of a masterful
/// service's node (the old master takes the lowest free slave number).
pub enum Rename {
    To {
        node: String,
        new_name: String,
        by: String,
    },
    Promote {
        node: String,
        by: String,
    },
}

impl Command for Rename {
    /// `(old name, new name)`, in order.
    type Out = Vec<(String, String)>;

    fn plan(&self, st: &State, env: &Env) -> Result<Planned<Self::Out>, ClusterError> {
        let (renames, by, why) = match self {
            Rename::To { node, new_name, by } => {
                naming::check_hostname(new_name).map_err(ClusterError::Invalid)?;
                let id = one(st, node)?;
                if let Some(owner) = st.id_of(new_name) {
                    return Err(ClusterError::NameTaken {
                        name: new_name.clone(),
                        owner: owner.to_string(),
                    });
                }
                let from = st.node(&id).expect("resolved").value.name.to_string();
                (vec![(from, new_name.clone())], by, "renamed")
            }
            Rename::Promote { node, by } => {
                let id = one(st, node)?;
                let n = &st.node(&id).expect("resolved").value;
                if n.service.is_empty() || n.naming != Naming::Masterful {
                    return Err(ClusterError::Invalid(format!(
                        "{} is not named from a masterful service (service {:?}, naming {})",
                        n.name,
                        n.service,
                        n.naming.as_str()
                    )));
                }
                let taken: BTreeSet<String> =
                    st.nodes().map(|n| n.value.name.to_string()).collect();
                let renames =
                    naming::promote(&n.service, &n.name, &taken).map_err(ClusterError::Invalid)?;
                (renames, by, "promoted")
            }
        };
        let mut d = Draft::new(st, env);
        for (from, to) in &renames {
            let id = st.id_of(from).expect("renames name existing nodes");
            let mut node = st.node(id).expect("named nodes exist").value.clone();
            node.name = NodeName::new(to.clone()).map_err(|source| ClusterError::InvalidName {
                what: "node name",
                name: to.clone(),
                source,
            })?;
            d.event(
                EventKind::Name,
                About::Node(&node),
                by,
                format!("{why}: {from} → {to}"),
            );
            d.put_node(node);
        }
        Ok(d.finish(renames))
    }
}

fn one(st: &State, node: &str) -> Result<NodeId, ClusterError> {
    Ok(st
        .select(&TargetSpec::Names(vec![node.to_owned()]))?
        .remove(0))
}

/// Forgets a node that is not connected: its record, its key and its
/// hosts line go (its certificate is revoked); its name is free again.
pub struct RemoveNode {
    pub node: String,
    pub by: String,
}

impl Command for RemoveNode {
    type Out = ();

    fn plan(&self, st: &State, env: &Env) -> Result<Planned<()>, ClusterError> {
        let id = one(st, &self.node)?;
        let n = &st.node(&id).expect("resolved").value;
        if st.session(&id).is_some() {
            return Err(ClusterError::Invalid(format!(
                "{} is connected; stop its agent (or `clusterctl keys delete {}`) before removing it",
                n.name, n.id
            )));
        }
        let mut d = Draft::new(st, env);
        d.event(
            EventKind::Name,
            About::Node(n),
            &self.by,
            format!("removed node {id}; the name {} is free", n.name),
        );
        d.delete(Key::Node(id.clone()));
        if let Some(k) = st.key(&id) {
            d.delete(Key::NodeKey(id.clone()));
            for serial in k.value.serials() {
                d.put(Record::Revoked(serial.to_owned()));
            }
        }
        Ok(d.finish(()))
    }
}

/// Records in the event log the nodes that went down or came back since
/// the last sweep (liveness is derived; only its transitions are stored).
pub struct SweepLiveness;

impl Command for SweepLiveness {
    type Out = Vec<Event>;

    fn plan(&self, st: &State, env: &Env) -> Result<Planned<Vec<Event>>, ClusterError> {
        let mut d = Draft::new(st, env);
        for n in st.nodes() {
            let node = &n.value;
            let status = st.status(&node.id, env.now_ms).expect("the node exists");
            let is_down = status.state == NodeState::Down;
            match (is_down, st.is_down_logged(&node.id)) {
                (true, false) => {
                    let silent = env.now_ms.saturating_sub(status.last_seen_ms);
                    let detail = format!(
                        "not heard from for {}",
                        humantime::format_duration(Duration::from_secs((silent / 1000).max(1)))
                    );
                    d.event(EventKind::Down, About::Node(node), "master", detail);
                    // Its last-seen, so a restarted master knows it too.
                    d.put_node(node.clone());
                }
                (false, true) => {
                    d.event(EventKind::Up, About::Node(node), "master", "");
                }
                _ => {}
            }
        }
        let events = d.change.events.clone();
        Ok(d.finish(events))
    }
}

/// A node's local checks flipped: one event each.
pub struct CheckEvents {
    pub node: NodeId,
    pub flipped: Vec<CheckResult>,
}

impl Command for CheckEvents {
    type Out = ();

    fn plan(&self, st: &State, env: &Env) -> Result<Planned<()>, ClusterError> {
        let mut d = Draft::new(st, env);
        let Some(node) = st.node(&self.node) else {
            return Ok(d.finish(()));
        };
        for c in &self.flipped {
            let detail = if c.passing {
                format!("check {} passing", c.name)
            } else {
                format!("check {} failing: {}", c.name, c.output)
            };
            d.event(
                EventKind::Check,
                About::Node(&node.value),
                self.node.as_str(),
                detail,
            );
        }
        Ok(d.finish(()))
    }
}

/// An agent could not make its desired state durable (`Some(error)`), or
/// can again (`None`).
pub struct CacheEvent {
    pub node: NodeId,
    pub error: Option<String>,
}

impl Command for CacheEvent {
    type Out = ();

    fn plan(&self, st: &State, env: &Env) -> Result<Planned<()>, ClusterError> {
        let mut d = Draft::new(st, env);
        let Some(node) = st.node(&self.node) else {
            return Ok(d.finish(()));
        };
        let detail = match &self.error {
            Some(e) => format!(
                "cannot make its desired state durable (a restart without the master would lose it): {e}"
            ),
            None => "its desired state is durable again".to_owned(),
        };
        d.event(
            EventKind::Agent,
            About::Node(&node.value),
            self.node.as_str(),
            detail,
        );
        Ok(d.finish(()))
    }
}
