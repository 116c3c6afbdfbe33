//! Planners for what an agent knows of its machine: its grains and
//! structured facts, sent again when they change (SIGHUP, the facts
//! interval), and the external fact sources that failed. A change is an
//! event naming the keys that moved; a source that fails (or recovers) is
//! an event naming the source.

use super::{About, Command, Draft, Env, Planned};
use crate::cluster::ClusterError;
use crate::state::State;
use cluster_model::facts::{changed_keys, named};
use cluster_model::limits::printable_cut;
use cluster_model::{EventKind, FactProblem, Facts, Grains, Node, NodeId};

/// The most problems a node's record keeps, and the longest each part.
pub const MAX_PROBLEMS: usize = 32;
const MAX_SOURCE_CHARS: usize = 128;
const MAX_PROBLEM_CHARS: usize = 256;

/// An agent's facts, collected again.
pub struct UpdateFacts {
    pub node: NodeId,
    pub facts: Facts,
}

impl Command for UpdateFacts {
    type Out = ();

    fn plan(&self, st: &State, env: &Env) -> Result<Planned<()>, ClusterError> {
        let mut d = Draft::new(st, env);
        let Some(stored) = st.node(&self.node) else {
            return Ok(d.finish(()));
        };
        let mut node = stored.value.clone();
        let f = &self.facts;
        let old_grains = node.grains.clone();
        let mut changed = lay(&mut d, &mut node, &f.grains, &f.facts, &f.problems, true);
        changed |= super::roles::from_grains(st, &mut d, &mut node, &old_grains);
        if changed {
            node.last_seen_ms = env.now_ms;
            d.put_node(node);
        }
        Ok(d.finish(()))
    }
}

/// Problems as a record keeps them: bounded, printable, in source order.
pub fn bounded(problems: &[FactProblem]) -> Vec<FactProblem> {
    problems
        .iter()
        .take(MAX_PROBLEMS)
        .map(|p| FactProblem {
            source: printable_cut(&p.source, MAX_SOURCE_CHARS),
            problem: printable_cut(&p.problem, MAX_PROBLEM_CHARS),
        })
        .collect()
}

/// Lays what the agent says onto `node`, with an event for each kind of
/// change when `announce` (an existing node: a new one has its
/// `registered` event). Returns whether anything changed.
pub(super) fn lay(
    d: &mut Draft<'_>,
    node: &mut Node,
    grains: &Grains,
    facts: &Grains,
    problems: &[FactProblem],
    announce: bool,
) -> bool {
    let problems = bounded(problems);
    let moved = changed_keys(&node.grains, grains, &node.facts, facts);
    let changed = !moved.is_empty() || node.fact_problems != problems;

    let failing: Vec<&FactProblem> = problems
        .iter()
        .filter(|p| !node.fact_problems.iter().any(|o| o == *p))
        .collect();
    let recovered: Vec<&str> = node
        .fact_problems
        .iter()
        .filter(|o| !problems.iter().any(|p| p.source == o.source))
        .map(|o| o.source.as_str())
        .collect();
    if announce && !moved.is_empty() {
        d.event(
            EventKind::Facts,
            About::Node(node),
            node.id.as_str(),
            format!("facts changed: {}", named(&moved)),
        );
    }
    if !failing.is_empty() {
        let list: Vec<String> = failing.iter().map(|p| p.to_string()).collect();
        d.event(
            EventKind::Facts,
            About::Node(node),
            node.id.as_str(),
            format!("external facts failed: {}", list.join("; ")),
        );
    }
    if announce && !recovered.is_empty() {
        d.event(
            EventKind::Facts,
            About::Node(node),
            node.id.as_str(),
            format!("external facts read again: {}", recovered.join(", ")),
        );
    }
    node.grains = grains.clone();
    node.facts = facts.clone();
    node.fact_problems = problems;
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::plan::Register;
    use crate::state::plan::testing::{FakeIssuer, NOW, hello, run, state};
    use crate::store::Change;
    use serde_json::json;

    fn obj(v: serde_json::Value) -> Grains {
        v.as_object().unwrap().clone()
    }

    fn problem(source: &str, why: &str) -> FactProblem {
        FactProblem {
            source: source.into(),
            problem: why.into(),
        }
    }

    /// Plans and applies `cmd`; the change it made.
    fn step(st: &mut State, cmd: &UpdateFacts, now: u64) -> Change {
        let issuer = FakeIssuer::default();
        let env = Env {
            now_ms: now,
            issuer: &issuer,
        };
        let planned = cmd.plan(st, &env).unwrap();
        if !planned.change.is_empty() {
            let revision = st.revision() + 1;
            st.apply(&planned.change, revision);
        }
        planned.change
    }

    fn details(c: &Change) -> Vec<&str> {
        c.events.iter().map(|e| e.detail.as_str()).collect()
    }

    #[test]
    fn a_change_is_stored_with_an_event_naming_the_keys() {
        let mut st = state();
        run(
            &mut st,
            &Register {
                hello: hello("web-1"),
            },
            NOW,
        )
        .unwrap();
        let id: NodeId = "web-1".try_into().unwrap();
        let mut grains = st.node(&id).unwrap().value.grains.clone();
        grains.insert("virtual".into(), json!("kvm"));
        let update = UpdateFacts {
            node: id.clone(),
            facts: Facts {
                grains,
                facts: obj(json!({"os": {"family": "Debian"}})),
                problems: vec![problem("rack.sh", "timed out after 10s")],
            },
        };
        let c = step(&mut st, &update, NOW + 1);
        assert_eq!(
            details(&c),
            [
                "facts changed: virtual, facts.os",
                "external facts failed: rack.sh: timed out after 10s"
            ]
        );
        let node = &st.node(&id).unwrap().value;
        assert_eq!(node.grains["virtual"], "kvm");
        assert_eq!(node.facts["os"]["family"], "Debian");
        assert_eq!(node.fact_problems.len(), 1);

        // The same again: nothing written, no event.
        assert!(step(&mut st, &update, NOW + 2).is_empty());

        // The source reads again: one event.
        let fixed = UpdateFacts {
            node: id,
            facts: Facts {
                problems: vec![],
                ..update.facts.clone()
            },
        };
        let c = step(&mut st, &fixed, NOW + 3);
        assert_eq!(details(&c), ["external facts read again: rack.sh"]);
    }

    #[test]
    fn roles_follow_the_roles_grain_and_invalid_names_are_left_out() {
        let mut st = state();
        let mut h = hello("web-1");
        h.roles = vec!["web".into()];
        h.grains = obj(json!({"roles": ["web"]}));
        run(&mut st, &Register { hello: h }, NOW).unwrap();
        let id: NodeId = "web-1".try_into().unwrap();
        let with = |roles: serde_json::Value| UpdateFacts {
            node: id.clone(),
            facts: Facts {
                grains: obj(json!({ "roles": roles })),
                ..Facts::default()
            },
        };
        let c = step(
            &mut st,
            &with(json!(["web", "api", "bad role", 7])),
            NOW + 1,
        );
        assert_eq!(
            details(&c),
            ["facts changed: roles", "roles now web, api (were web)"]
        );
        assert_eq!(st.node(&id).unwrap().value.roles, ["web", "api"]);
        // A grain that is not a list says nothing of roles: they stand.
        step(&mut st, &with(json!("api")), NOW + 2);
        assert_eq!(st.node(&id).unwrap().value.roles, ["web", "api"]);
        let c = step(&mut st, &with(json!([])), NOW + 3);
        assert!(details(&c).contains(&"roles now none (were web, api)"));
    }

    #[test]
    fn facts_of_a_node_not_registered_change_nothing() {
        let mut st = state();
        let update = UpdateFacts {
            node: "ghost".try_into().unwrap(),
            facts: Facts::default(),
        };
        assert!(step(&mut st, &update, NOW).is_empty());
    }

    #[test]
    fn problems_are_bounded_and_printable() {
        let many: Vec<FactProblem> = (0..100)
            .map(|i| problem(&format!("s{i}\n"), &"x".repeat(10_000)))
            .collect();
        let b = bounded(&many);
        assert_eq!(b.len(), MAX_PROBLEMS);
        assert_eq!(b[0].source, "s0\\n");
        assert_eq!(b[0].problem.chars().count(), MAX_PROBLEM_CHARS + 1);
    }

    #[test]
    fn many_changed_keys_are_named_up_to_a_few() {
        let old = Grains::new();
        let new = obj(json!({"a":1,"b":1,"c":1,"d":1,"e":1,"f":1,"g":1,"h":1,"i":1,"j":1}));
        let moved = changed_keys(&old, &new, &old, &obj(json!({"k": 1})));
        assert_eq!(named(&moved), "a, b, c, d, e, f, g, h (+3 more)");
        assert_eq!(moved.last().map(String::as_str), Some("facts.k"));
    }
}
