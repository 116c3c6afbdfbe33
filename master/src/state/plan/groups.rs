//! Planners for node groups (`-N`): named compound expressions that may
//! name other groups, checked as they will be used — without cycles, and
//! never removed (or broken) while another group needs them.

use super::{About, Command, Draft, Env, Planned};
use crate::cluster::ClusterError;
use crate::state::State;
use crate::store::{Key, Record};
use cluster_model::EventKind;
use cluster_model::targets::{Kind, Target};
use std::collections::BTreeMap;

/// Defines (or, with an empty expression, removes) a node group.
pub struct SetGroup {
    pub name: String,
    pub expr: String,
    pub by: String,
}

/// The groups of `groups` other than `name` that no longer parse: the ones
/// that need `name` as it was (directly or through another group).
fn users(groups: &BTreeMap<String, String>, name: &str) -> Vec<String> {
    groups
        .keys()
        .filter(|g| *g != name)
        .filter(|g| Target::parse(Kind::NodeGroup, g, groups).is_err())
        .cloned()
        .collect()
}

impl Command for SetGroup {
    type Out = ();

    fn plan(&self, st: &State, env: &Env) -> Result<Planned<()>, ClusterError> {
        super::access::check_name("node group", &self.name)?;
        let name = &self.name;
        let expr = self.expr.trim();
        let mut groups = st.groups().clone();
        let mut d = Draft::new(st, env);
        if expr.is_empty() {
            if groups.remove(name).is_none() {
                return Err(ClusterError::Invalid(format!(
                    "there is no node group {name:?}"
                )));
            }
            let users = users(&groups, name);
            if !users.is_empty() {
                return Err(ClusterError::InUse {
                    what: format!("node group {name:?}"),
                    users: users.iter().map(|u| format!("node group {u:?}")).collect(),
                    fix: "change or remove those groups first",
                });
            }
            d.event(
                EventKind::Group,
                About::Cluster,
                &self.by,
                format!("removed node group {name}"),
            );
            d.delete(Key::Group(name.clone()));
        } else {
            groups.insert(name.clone(), expr.to_owned());
            Target::parse(Kind::NodeGroup, name, &groups)?;
            let broken = users(&groups, name);
            if !broken.is_empty() {
                return Err(ClusterError::InUse {
                    what: format!("node group {name:?}"),
                    users: broken.iter().map(|u| format!("node group {u:?}")).collect(),
                    fix: "this definition would break them",
                });
            }
            d.event(
                EventKind::Group,
                About::Cluster,
                &self.by,
                format!("node group {name} = {expr}"),
            );
            d.put(Record::Group {
                name: name.clone(),
                expr: expr.to_owned(),
            });
        }
        Ok(d.finish(()))
    }
}
