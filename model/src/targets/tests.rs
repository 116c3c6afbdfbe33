//! Table tests for target expressions: every case is one line through
//! [`check`] (which nodes of the fixture match, in fixture order) or
//! [`check_err`] / [`check_group_err`] (where and why the expression is
//! refused); [`check_in`] and [`check_err_with`] are the same against other
//! nodes or with another delimiter. The fixture is in `tests/fixture.rs`;
//! the tables for each leaf matcher on its own are in `tests/leaves.rs`,
//! key paths (globs on keys, lists, objects by their keys) and `F@` in
//! `tests/key_paths.rs`, custom delimiters in `tests/delimiters.rs`, Salt's
//! documented examples in `tests/salt_examples.rs`, node groups in
//! `tests/node_groups.rs`; compound expressions, error rendering and the
//! bounds on an expression are here.

mod delimiters;
mod fixture;
mod key_paths;
mod leaves;
mod node_groups;
mod salt_examples;

use std::collections::BTreeMap;

use super::{Delimiter, Kind, Target, TargetError};
use fixture::{Node, groups, nodes};

use Kind::*;

fn parse(kind: Kind, expr: &str) -> Result<Target, TargetError> {
    Target::parse(kind, expr, &groups())
}

/// `expr` parses, and exactly the `expected` nodes match, in fixture order.
#[track_caller]
fn check(kind: Kind, expr: &str, expected: &[&str]) {
    check_in(&nodes(), &groups(), kind, expr, ':', expected);
}

/// `expr`, parsed against `groups` with `delimiter`, matches exactly the
/// `expected` of `nodes`, in their order.
#[track_caller]
fn check_in(
    nodes: &[Node],
    groups: &BTreeMap<String, String>,
    kind: Kind,
    expr: &str,
    delimiter: char,
    expected: &[&str],
) {
    let delimiter = Delimiter::new(delimiter).unwrap_or_else(|err| panic!("{err}"));
    let target = Target::parse_with(kind, expr, groups, delimiter)
        .unwrap_or_else(|err| panic!("{kind:?} {expr:?}:\n{err}"));
    let matched: Vec<&str> = nodes
        .iter()
        .filter(|n| target.matches(&n.candidate()))
        .map(|n| n.name)
        .collect();
    assert_eq!(
        matched, expected,
        "{kind:?} {expr:?} (delimiter {delimiter})"
    );
}

/// `expr` is refused with `message` at `column` of `expr` itself.
#[track_caller]
fn check_err(kind: Kind, expr: &str, column: usize, message: &str) {
    check_err_with(kind, expr, ':', column, message);
}

/// `expr`, parsed with `delimiter`, is refused with `message` at `column`.
#[track_caller]
fn check_err_with(kind: Kind, expr: &str, delimiter: char, column: usize, message: &str) {
    check_refusal_in(&groups(), kind, expr, delimiter, column, message);
}

/// `expr`, parsed against `groups` with `delimiter`, is refused with
/// `message` at `column` of `expr`.
#[track_caller]
fn check_refusal_in(
    groups: &BTreeMap<String, String>,
    kind: Kind,
    expr: &str,
    delimiter: char,
    column: usize,
    message: &str,
) {
    let delimiter = Delimiter::new(delimiter).unwrap_or_else(|err| panic!("{err}"));
    let expected = TargetError {
        expr: expr.to_owned(),
        column,
        message: message.to_owned(),
    };
    let refused = Target::parse_with(kind, expr, groups, delimiter).err();
    assert_eq!(
        refused,
        Some(expected),
        "{kind:?} {expr:?} (delimiter {delimiter})"
    );
}

/// `expr` is refused with `message` at `column` of node group `group`'s
/// definition.
#[track_caller]
fn check_group_err(kind: Kind, expr: &str, group: &str, column: usize, message: &str) {
    let expected = TargetError {
        expr: groups()[group].clone(),
        column,
        message: message.to_owned(),
    };
    assert_eq!(parse(kind, expr).err(), Some(expected), "{kind:?} {expr:?}");
}

#[test]
fn compound_combines_every_matcher() {
    check(Compound, "web-1", &["web-1"]);
    check(Compound, "G@os:Debian and not web-2", &["web-1", "lb-1"]);
    check(Compound, "G@os:Debian and not lb-1", &["web-1"]);
    check(Compound, "E@(db|lb)-1", &["db-1", "lb-1"]);
    check(
        Compound,
        "L@web-1,db-1 or R@mail",
        &["web-1", "db-1", "mail-1"],
    );
    check(
        Compound,
        "P@os:(debian|ubuntu) and R@web",
        &["web-1", "web-2"],
    );
    check(Compound, "I@env:prod and G@datacenter:name:fra1", &["db-1"]);
    check(
        Compound,
        "S@10.0.0.0/16 and not S@10.0.2.0/24",
        &["web-1", "web-2"],
    );
    check(Compound, "S@fd00::/8", &["web-1", "web-2"]);
    check(Compound, "G@url:http://web-2.ams1:9090/health", &["web-2"]);
    check(Compound, "G@ipv4:10.0.* and not G@roles:web", &["db-1"]);
    check(Compound, "* and not G@os:*", &["bare-1"]);
}

#[test]
fn compound_precedence_is_not_then_and_then_or() {
    check(
        Compound,
        "db-1 or web-* and G@os:Debian",
        &["web-1", "db-1"],
    );
    check(Compound, "(db-1 or web-*) and G@os:Debian", &["web-1"]);
    check(Compound, "not web-1 and R@web", &["web-2"]);
    check(
        Compound,
        "not (web-1 and R@web)",
        &["web-2", "db-1", "lb-1", "mail-1", "bare-1"],
    );
    check(Compound, "web-* and not web-1 or db-1", &["web-2", "db-1"]);
    check(Compound, "web-* and (not web-1 or db-1)", &["web-2"]);
    check(Compound, "not not web-1", &["web-1"]);
    check(
        Compound,
        "web-1 or web-2 or db-1 and not R@db",
        &["web-1", "web-2"],
    );
    // As in Salt, `not` right after an operand means `and not`.
    check(Compound, "web-* not web-1", &["web-2"]);
}

#[test]
fn compound_parentheses_need_no_spaces() {
    check(
        Compound,
        "(G@os:Debian or G@os:Ubuntu)and not web-2",
        &["web-1", "lb-1"],
    );
    check(
        Compound,
        "not(web-1)",
        &["web-2", "db-1", "lb-1", "mail-1", "bare-1"],
    );
    check(Compound, "(web-1)or(db-1)", &["web-1", "db-1"]);
    check(Compound, "((web-1))", &["web-1"]);
    check(Compound, "(E@web-(1|2))", &["web-1", "web-2"]);
    check(Compound, "(E@web-[1)] or lb-1)", &["web-1", "lb-1"]);
    check(Compound, "(web-[12])", &["web-1", "web-2"]);
}

#[test]
fn compound_structure_errors() {
    check_err(Compound, "", 0, "empty expression");
    check_err(Compound, "   ", 0, "empty expression");
    check_err(
        Compound,
        "web-1 and",
        9,
        "expected an expression after `and`",
    );
    check_err(Compound, "web-1 or", 8, "expected an expression after `or`");
    check_err(Compound, "not", 3, "expected an expression after `not`");
    check_err(
        Compound,
        "web-1 and not",
        13,
        "expected an expression after `not`",
    );
    check_err(
        Compound,
        "or web-1",
        0,
        "`or` needs an expression before it",
    );
    check_err(Compound, "and", 0, "`and` needs an expression before it");
    check_err(
        Compound,
        "web-1 and or db-1",
        10,
        "expected an expression after `and`, found `or`",
    );
    check_err(
        Compound,
        "web-1 and )",
        10,
        "expected an expression after `and`, found `)`",
    );
    check_err(
        Compound,
        "( and web-1)",
        2,
        "expected an expression after `(`, found `and`",
    );
    check_err(
        Compound,
        "(web-1 or )",
        10,
        "expected an expression after `or`, found `)`",
    );
    check_err(
        Compound,
        "web-1 web-2",
        6,
        "expected `and` or `or` before `web-2`",
    );
    check_err(
        Compound,
        "(web-1 db-1)",
        7,
        "expected `and` or `or` before `db-1`",
    );
    check_err(
        Compound,
        "web-1 (db-1)",
        6,
        "expected `and` or `or` before `(`",
    );
    check_err(
        Compound,
        "web-1 AND web-2",
        6,
        "expected `and` or `or` before `AND` (operators are lowercase)",
    );
    check_err(Compound, "(web-1", 0, "unclosed `(`");
    check_err(Compound, "((web-1)", 0, "unclosed `(`");
    check_err(Compound, "web-1)", 5, "unmatched `)`");
    check_err(Compound, ")", 0, "unmatched `)`");
    check_err(Compound, "(web-1))", 7, "unmatched `)`");
    check_err(Compound, "()", 0, "empty parentheses");
    check_err(Compound, "web-1 and ()", 10, "empty parentheses");
    check_err(Compound, "G@city:münchen )", 15, "unmatched `)`");
}

#[test]
fn compound_nesting_is_bounded() {
    let parens = format!("{}web-1{}", "(".repeat(200), ")".repeat(200));
    check_err(Compound, &parens, 100, "nested more than 100 levels deep");
    let nots = format!("{}web-1", "not ".repeat(200));
    check_err(Compound, &nots, 400, "nested more than 100 levels deep");
}

#[test]
fn compound_prefix_errors() {
    let expected = "(expected one of G@, P@, E@, L@, I@, F@, S@, R@, N@)";
    check_err(
        Compound,
        "X@foo",
        0,
        &format!("unknown prefix `X@` {expected}"),
    );
    check_err(
        Compound,
        "web-1 or J@env:prod",
        9,
        &format!("unknown prefix `J@` {expected}"),
    );
    check_err(
        Compound,
        "@foo",
        0,
        &format!("unknown prefix `@` {expected}"),
    );
    check_err(
        Compound,
        "g@os:Debian",
        0,
        "unknown prefix `g@`: prefixes are case-sensitive, did you mean `G@`?",
    );
    check_err(Compound, "G@", 2, "expected a value after `G@`");
    check_err(Compound, "web-1 and E@", 12, "expected a value after `E@`");
    check_err(Compound, "(N@)", 3, "expected a value after `N@`");
}

#[test]
fn compound_value_errors_point_into_the_word() {
    check_err(
        Compound,
        "web-1 or G@os",
        11,
        "expected KEY:VALUE, found `os`",
    );
    check_err(Compound, "E@(web", 2, "invalid regex: unclosed group");
    check_err(Compound, "E@web-(1|2", 6, "invalid regex: unclosed group");
    check_err(Compound, "P@os:Deb(", 8, "invalid regex: unclosed group");
    check_err(Compound, "L@web-1,,db-1", 8, "empty name in the list");
    check_err(
        Compound,
        "S@10.0.0.0/33",
        11,
        "invalid prefix length `33`: expected 0 to 32",
    );
    check_err(
        Compound,
        "web-[1",
        4,
        "unclosed `[` in glob (`[[]` matches a literal `[`)",
    );
    check_err(
        Compound,
        "R@web-[1",
        6,
        "unclosed `[` in glob (`[[]` matches a literal `[`)",
    );
}

#[test]
fn errors_render_with_a_caret() {
    let rendered = |kind, expr| parse(kind, expr).err().map(|err| err.to_string());
    let lines = [
        "invalid target expression at column 16: expected an expression after `and`",
        "  G@os:Debian and",
        "                 ^",
    ];
    assert_eq!(
        rendered(Compound, "G@os:Debian and"),
        Some(lines.join("\n"))
    );
    let lines = [
        "invalid target expression at column 1: unknown prefix `g@`: prefixes are case-sensitive, did you mean `G@`?",
        "  g@os:x",
        "  ^",
    ];
    assert_eq!(rendered(Compound, "g@os:x"), Some(lines.join("\n")));
    let lines = [
        "invalid target expression at column 10: in node group \"broken\": expected an expression after `and`",
        "  web-1 and",
        "           ^",
    ];
    assert_eq!(rendered(NodeGroup, "broken"), Some(lines.join("\n")));
    let lines = [
        "invalid target expression at column 7: expected an expression after `and`, found `or`",
        "  a\tand or",
        "   \t    ^",
    ];
    assert_eq!(rendered(Compound, "a\tand or"), Some(lines.join("\n")));
}

#[test]
fn targets_remember_what_they_were_parsed_from() {
    let target =
        parse(Compound, "web-* and not web-2").map(|t| (t.kind(), t.expression().to_owned()));
    assert_eq!(
        target.ok(),
        Some((Compound, "web-* and not web-2".to_owned()))
    );
    fn shareable<T: Send + Sync + Clone + 'static>() {}
    shareable::<Target>();
}

#[test]
fn long_expressions_show_a_window_around_the_error() {
    let expr = format!("{} and", vec!["web-1"; 900].join(" or "));
    let err = parse(Compound, &expr).unwrap_err();
    let text = err.to_string();
    assert!(text.len() < 300, "{} bytes:\n{text}", text.len());
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        format!(
            "invalid target expression at column {}: expected an expression after `and`",
            expr.chars().count() + 1
        )
    );
    assert!(
        lines[1].starts_with("  …") && lines[1].ends_with("or web-1 and"),
        "{text}"
    );
    // The caret stands under the end, as in a short one.
    assert_eq!(lines[2].len(), lines[1].chars().count() + 1, "{text}");
}

#[test]
fn size_terms_and_nesting_are_bounded_before_work_is_done() {
    use crate::limits::{TARGET_MAX_BYTES, TARGET_MAX_NESTING, TARGET_MAX_TERMS};
    let huge = "node2 or ".repeat(2 * 1024 * 1024 / 9);
    let err = parse(Compound, &huge).unwrap_err();
    assert!(
        err.message.contains(&format!(
            "bytes long; at most {TARGET_MAX_BYTES} are allowed"
        )),
        "{err}"
    );
    let many = vec!["web-1"; TARGET_MAX_TERMS + 1].join(" or ");
    assert!(many.len() < TARGET_MAX_BYTES);
    let err = parse(Compound, &many).unwrap_err();
    assert_eq!(err.message, format!("more than {TARGET_MAX_TERMS} terms"));
    assert!(parse(Compound, &vec!["web-1"; TARGET_MAX_TERMS].join(" or ")).is_ok());
    let deep = format!("{}web-1{}", "(".repeat(10_000), ")".repeat(10_000));
    let err = parse(Compound, &deep).unwrap_err();
    assert_eq!(
        err.message,
        format!("nested more than {TARGET_MAX_NESTING} levels deep")
    );
    assert!(err.to_string().len() < 300);
}

#[test]
fn a_regex_that_compiles_huge_is_refused() {
    let err = parse(Compound, r"E@\w{1000}").unwrap_err();
    assert_eq!(
        err.message,
        format!(
            "regex too large: it compiles to more than {} bytes",
            crate::limits::TARGET_REGEX_BYTES
        )
    );
    assert!(parse(Compound, r"E@web-\d{1,3}").is_ok());
}
