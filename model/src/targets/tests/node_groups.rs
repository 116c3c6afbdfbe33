//! Tables for node groups: `-N name` and `N@name` expand to definitions
//! that may nest; unknown groups, broken definitions and cycles are refused
//! where they are.

use std::collections::BTreeMap;

use super::fixture::KNOWN;
use super::{check, check_err, check_group_err};
use crate::targets::Kind::*;
use crate::targets::Target;

#[test]
fn node_groups_expand_to_their_definitions() {
    check(NodeGroup, "web", &["web-1", "web-2"]);
    check(NodeGroup, " web ", &["web-1", "web-2"]);
    check(NodeGroup, "debian_web", &["web-1", "web-2"]);
    check(NodeGroup, "nested", &["web-2"]);
    check(
        NodeGroup,
        "prod_or_ams",
        &["web-1", "web-2", "db-1", "mail-1"],
    );
    check(Compound, "N@web and not N@prod", &["web-2"]);
    check(Compound, "N@debian and N@debian_web", &["web-1", "web-2"]);
    check(Compound, "not(N@web)and N@debian", &["lb-1"]);
}

#[test]
fn node_group_errors() {
    let unknown = format!("unknown node group \"nowhere\" ({KNOWN})");
    check_err(NodeGroup, "nowhere", 0, &unknown);
    check_err(NodeGroup, "  nowhere", 2, &unknown);
    check_err(Compound, "web-1 or N@nowhere", 11, &unknown);
    check_err(NodeGroup, "", 0, "expected a node group name");
    check_err(Compound, "N@", 2, "expected a value after `N@`");
    check_group_err(
        NodeGroup,
        "dangling",
        "dangling",
        2,
        &format!("in node group \"dangling\": {unknown}"),
    );
    check_group_err(
        NodeGroup,
        "empty",
        "empty",
        0,
        "in node group \"empty\": empty expression",
    );
    let after_and = "expected an expression after `and`";
    check_group_err(
        NodeGroup,
        "broken",
        "broken",
        9,
        &format!("in node group \"broken\": {after_and}"),
    );
    check_group_err(
        Compound,
        "N@uses_broken",
        "broken",
        9,
        &format!("in node group \"broken\" (via \"uses_broken\"): {after_and}"),
    );
    let none = Target::parse(NodeGroup, "web", &BTreeMap::new()).err();
    let message = none.map(|err| err.message);
    assert_eq!(
        message.as_deref(),
        Some("unknown node group \"web\" (no node groups are defined)")
    );
}

#[test]
fn node_group_cycles_are_refused() {
    check_group_err(
        NodeGroup,
        "cycle_a",
        "cycle_b",
        11,
        "in node group \"cycle_b\" (via \"cycle_a\"): node group cycle: cycle_a -> cycle_b -> cycle_a",
    );
    check_group_err(
        Compound,
        "web-2 or N@cycle_b",
        "cycle_a",
        2,
        "in node group \"cycle_a\" (via \"cycle_b\"): node group cycle: cycle_b -> cycle_a -> cycle_b",
    );
    check_group_err(
        NodeGroup,
        "self",
        "self",
        12,
        "in node group \"self\": node group cycle: self -> self",
    );
}
