//! Changing names after registration: promotion of a masterful service's
//! node, manual renames, and removing a node that is gone (its name is
//! free again). Each is one durable write and one hosts change.

use super::{Cluster, ClusterError, TargetSpec};
use crate::model::EventKind;
use crate::naming::{self, Naming};
use crate::store::Write;
use std::collections::BTreeSet;

impl Cluster {
    /// Applies `renames` (`(old name, new name)`, in order) as one change.
    async fn apply_renames(
        &self,
        renames: Vec<(String, String)>,
        by: &str,
        why: &str,
    ) -> Result<Vec<(String, String)>, ClusterError> {
        let mut write = Write::default();
        let mut ids = Vec::new();
        let generation;
        {
            let mut st = self.state();
            generation = st.generation + 1;
            for (from, to) in &renames {
                let id = st.names[from].clone();
                let mut node = st.nodes[&id].clone();
                node.name = to.clone();
                node.spec_generation = generation;
                let event = st.event(EventKind::Name, to, by, format!("{why}: {from} → {to}"));
                write.events.push(event);
                write.nodes.push(node);
                ids.push(id);
            }
            write.generation = Some(generation);
        }
        self.commit(write.clone()).await?;
        let mut st = self.state();
        for (from, _) in &renames {
            st.names.remove(from);
        }
        for node in write.nodes {
            st.names.insert(node.name.clone(), node.id.clone());
            let id = node.id.clone();
            if let Some(live) = st.nodes.get_mut(&id) {
                live.name = node.name;
                live.spec_generation = generation;
            }
            st.notify(&id, generation);
        }
        st.generation = generation;
        for id in &ids {
            st.hosts_log.touch(id, generation);
        }
        drop(st);
        self.wake_hosts(generation);
        self.refresh_proxy();
        Ok(renames)
    }

    /// Makes `node` its masterful service's master; the old master takes the
    /// lowest free slave number.
    pub async fn promote(
        &self,
        node: &str,
        by: &str,
    ) -> Result<Vec<(String, String)>, ClusterError> {
        let _w = self.writer.lock().await;
        let renames = {
            let st = self.state();
            let id = st
                .select(&TargetSpec::Names(vec![node.to_owned()]))?
                .remove(0);
            let n = &st.nodes[&id];
            if n.service.is_empty() || n.naming != Naming::Masterful {
                return Err(ClusterError::Invalid(format!(
                    "{} is not named from a masterful service (service {:?}, naming {})",
                    n.name,
                    n.service,
                    n.naming.as_str()
                )));
            }
            let taken: BTreeSet<String> = st.names.keys().cloned().collect();
            naming::promote(&n.service, &n.name, &taken).map_err(ClusterError::Invalid)?
        };
        self.apply_renames(renames, by, "promoted").await
    }

    pub async fn rename(
        &self,
        node: &str,
        new_name: &str,
        by: &str,
    ) -> Result<Vec<(String, String)>, ClusterError> {
        naming::check_hostname(new_name).map_err(ClusterError::Invalid)?;
        let _w = self.writer.lock().await;
        let renames = {
            let st = self.state();
            let id = st
                .select(&TargetSpec::Names(vec![node.to_owned()]))?
                .remove(0);
            if let Some(owner) = st.names.get(new_name) {
                return Err(ClusterError::NameTaken {
                    name: new_name.to_owned(),
                    owner: owner.clone(),
                });
            }
            vec![(st.nodes[&id].name.clone(), new_name.to_owned())]
        };
        self.apply_renames(renames, by, "renamed").await
    }

    /// Forgets a node that is not connected: its record, its key and its
    /// hosts line go; its name is free for the next node.
    pub async fn remove_node(&self, node: &str, by: &str) -> Result<(), ClusterError> {
        let _w = self.writer.lock().await;
        let (id, name, generation, write) = {
            let mut st = self.state();
            let id = st
                .select(&TargetSpec::Names(vec![node.to_owned()]))?
                .remove(0);
            let n = &st.nodes[&id];
            if n.connected {
                return Err(ClusterError::Invalid(format!(
                    "{} is connected; stop its agent (or `clusterctl keys delete {}`) before removing it",
                    n.name, n.id
                )));
            }
            let name = n.name.clone();
            let generation = st.generation + 1;
            let event = st.event(
                EventKind::Name,
                &name,
                by,
                format!("removed node {id}; the name {name} is free"),
            );
            let mut write = Write {
                events: vec![event],
                generation: Some(generation),
                nodes_deleted: vec![id.clone()],
                ..Write::default()
            };
            if let Some(k) = st.keys.get(&id) {
                write.keys_deleted.push(id.clone());
                if !k.serial.is_empty() {
                    write.revoked.push(k.serial.clone());
                }
            }
            (id, name, generation, write)
        };
        self.commit(write).await?;
        let mut st = self.state();
        st.nodes.remove(&id);
        st.names.remove(&name);
        st.down.remove(&id);
        st.generation = generation;
        st.hosts_log.touch(&id, generation);
        drop(st);
        self.wake_hosts(generation);
        self.refresh_proxy();
        Ok(())
    }
}
