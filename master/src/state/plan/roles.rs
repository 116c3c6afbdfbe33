//! Which roles a node holds. Its agent declares them (its config's
//! `roles`, a static `roles` grain, `balancer`: the `roles` grain says them
//! all, again at every refresh); a join token that names roles binds the
//! node to them — it holds the token's roles, and a declared role the token
//! does not name is refused, with an event, so a token for `db` cannot put
//! a node in `web`'s upstream. A node joined with a token that names none,
//! or accepted by an admin, holds what it declares.

use super::{About, Draft};
use crate::state::State;
use cluster_model::{EventKind, Node, NodeId};

/// The roles `node` holds of those it `declares`, in the declared order
/// (the token's others after them), and those refused.
pub(super) fn granted(
    st: &State,
    node: &NodeId,
    declares: &[String],
) -> (Vec<String>, Vec<String>) {
    let token = st
        .key(node)
        .map(|k| k.value.roles.as_slice())
        .unwrap_or_default();
    if token.is_empty() {
        return (declares.to_vec(), Vec::new());
    }
    let (mut held, refused): (Vec<String>, Vec<String>) =
        declares.iter().cloned().partition(|r| token.contains(r));
    for r in token {
        if !held.contains(r) {
            held.push(r.clone());
        }
    }
    (held, refused)
}

/// Says which declared roles the node's token refuses.
pub(super) fn refusal(d: &mut Draft<'_>, node: &Node, refused: &[String]) {
    if refused.is_empty() {
        return;
    }
    let token = node.roles.join(", ");
    d.event(
        EventKind::Denied,
        About::Node(node),
        node.id.as_str(),
        format!(
            "roles {} refused: the join token of {} allows {token}",
            refused.join(", "),
            node.id
        ),
    );
}

/// The node's roles from its `roles` grain, as granted, after `old_grains`:
/// an event when they moved, and one when the grain asks for roles its
/// token refuses. Role upstreams, role aliases and `R@` follow: they read
/// the roles at every change. Whether the roles moved.
pub(super) fn from_grains(
    st: &State,
    d: &mut Draft<'_>,
    node: &mut Node,
    old_grains: &cluster_model::Grains,
) -> bool {
    let Some(declares) = cluster_model::facts::roles_of(&node.grains) else {
        return false; // an agent that does not say: its hello's roles stand
    };
    let (held, refused) = granted(st, &node.id, &declares);
    let asked_again = cluster_model::facts::roles_of(old_grains).as_ref() != Some(&declares);
    let moved = held != node.roles;
    if moved {
        let list = |r: &[String]| match r {
            [] => "none".to_owned(),
            r => r.join(", "),
        };
        d.event(
            EventKind::Facts,
            About::Node(node),
            node.id.as_str(),
            format!("roles now {} (were {})", list(&held), list(&node.roles)),
        );
        node.roles = held;
    }
    if asked_again {
        refusal(d, node, &refused);
    }
    moved
}
