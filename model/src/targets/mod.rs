//! Salt-style target expressions: which nodes a command, a job or a route is
//! for. [`Target::parse`] reads an expression of one [`Kind`] (`web-*`,
//! `-G os:Debian`, `-C 'G@os:Debian and not web-2'`, `-N web`, …) into a tree
//! of compiled matchers once, or fails with a [`TargetError`] that points at
//! the offending column; [`Target::matches`] then answers for one node at a
//! time without allocating. Pure: no I/O, no clock, no global state.
//!
//! # Layout
//!
//! - `parse` — the compound tokenizer and parser (`and`, `or`, `not`,
//!   parentheses, `X@` prefixes) and node-group expansion.
//! - `matchers` — the leaf matchers: node names, grains, labels, subnets,
//!   roles.
//! - `glob` — shell-style globs with Python `fnmatch` rules.
//! - `spec` — [`TargetSpec`], what a request targets: names or one
//!   expression.
//! - `tests` — table tests over a fixed set of nodes (`tests/fixture.rs`);
//!   the leaf matchers' tables are in `tests/leaves.rs`.
//!
//! # Compared with Salt
//!
//! Salt's syntax and meaning are kept where they are sane; where Salt logs
//! and silently matches nothing, this module refuses the expression with a
//! precise error instead (unbalanced parentheses, missing operands or
//! operators, unknown prefixes, empty values, invalid regexes, globs and
//! addresses, unknown node groups, node-group cycles). Other deliberate
//! differences:
//!
//! - Parentheses need no surrounding spaces. Inside a prefixed word a `(`
//!   belongs to the word, so `E@web-(1|2)` is one regex.
//! - `R@` means roles (Salt: range clusters); `I@` looks at the master's flat
//!   labels, not pillar. `J@` and custom delimiters (`G%@`) do not exist.
//! - `-P` is case-insensitive like Salt's, but through the regex's own flag,
//!   not by lowercasing the pattern (which turns Salt's `\D` into `\d`);
//!   `(?-i)` turns it off.
//! - An unclosed `[` in a glob is an error, not a literal `[`.
//! - `-S` compares addresses as addresses, not as strings, looks at the
//!   node's `addresses` as well as its `ipv4`/`ipv6` grains, and accepts a
//!   network with host bits set (`10.1.2.3/8` means `10.0.0.0/8`).
//! - A grain path through a list of objects looks at every object holding the
//!   key, not only the first; the `*:` "any top-level grain" form is absent.

mod glob;
mod matchers;
mod parse;
#[cfg(test)]
mod prop_tests;
mod spec;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use matchers::Matcher;
pub use spec::TargetSpec;

/// Which matcher an expression is for (clusterctl flags: none=glob, -E, -L,
/// -G, -P, -I, -S, -R, -N, -C).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// No flag: a glob on the node name (`web-*`, `db-[12]`), case-sensitive.
    Glob,
    /// `-E`: a regex on the node name, anchored at the start only.
    Regex,
    /// `-L`: comma-separated exact node names.
    List,
    /// `-G`: `key:value`, a case-insensitive glob on a grain; keys nest with `:`.
    Grain,
    /// `-P`: `key:value`, a regex on a grain, anchored at the start only.
    GrainRegex,
    /// `-I`: `key:value`, a case-sensitive glob on a master-side label.
    Label,
    /// `-S`: an IP address or a CIDR network, IPv4 or IPv6.
    Subnet,
    /// `-R`: a glob on any of the node's roles.
    Role,
    /// `-N`: the name of a node group, whose definition is a compound expression.
    NodeGroup,
    /// `-C`: prefixed words (`G@`, `P@`, `E@`, `L@`, `I@`, `S@`, `R@`, `N@`,
    /// bare words are name globs) joined by `and`, `or`, `not` and parentheses.
    Compound,
}

/// A node as targeting sees it.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    /// The node name, e.g. "web-1".
    pub name: &'a str,
    pub grains: &'a serde_json::Map<String, serde_json::Value>,
    /// Facter-shaped structured facts (what `F@` looks at).
    pub facts: &'a serde_json::Map<String, serde_json::Value>,
    /// Master-side labels, what Salt calls pillar.
    pub labels: &'a BTreeMap<String, String>,
    pub roles: &'a [String],
    /// IP addresses as strings; a `/prefix` or `%zone` suffix is ignored.
    pub addresses: &'a [String],
}

/// A parsed, validated expression, ready to match many nodes.
#[derive(Debug, Clone)]
pub struct Target {
    kind: Kind,
    /// The text it was parsed from, for logs and job records.
    expression: String,
    root: Expr,
}

impl Target {
    /// Parses `expr` as a `kind` expression. `groups`: node group name → its
    /// definition, itself a compound expression; only the groups the
    /// expression refers to are read.
    pub fn parse(
        kind: Kind,
        expr: &str,
        groups: &BTreeMap<String, String>,
    ) -> Result<Target, TargetError> {
        let max = crate::limits::TARGET_MAX_BYTES;
        if expr.len() > max {
            return Err(TargetError::at(
                expr,
                max,
                format!(
                    "the expression is {} bytes long; at most {max} are allowed",
                    expr.len()
                ),
            ));
        }
        let root = parse::parse(kind, expr, groups)?;
        Ok(Target {
            kind,
            expression: expr.to_owned(),
            root,
        })
    }

    pub fn matches(&self, node: &Candidate<'_>) -> bool {
        self.root.matches(node)
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn expression(&self) -> &str {
        &self.expression
    }
}

/// Two targets are the same when they were parsed from the same text.
impl PartialEq for Target {
    fn eq(&self, other: &Target) -> bool {
        self.kind == other.kind && self.expression == other.expression
    }
}

impl Eq for Target {}

/// Why an expression is invalid: what, where (0-based char column in the
/// expression text, or in the node group's definition), why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct TargetError {
    /// The text the error is in: the expression, or a node group's definition.
    pub expr: String,
    /// 0-based, in chars; may equal the text's length ("expected more here").
    pub column: usize,
    pub message: String,
}

impl TargetError {
    /// An error at byte offset `at` of `text`.
    fn at(text: &str, at: usize, message: impl Into<String>) -> TargetError {
        let column = text
            .get(..at)
            .map_or_else(|| text.chars().count(), |before| before.chars().count());
        TargetError {
            expr: text.to_owned(),
            column,
            message: message.into(),
        }
    }
}

/// How much of the expression an error shows on each side of its column.
const CONTEXT_CHARS: usize = 40;

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A window of the text around the column, so an error in a long
        // expression stays a few lines long; "…" marks a cut.
        let chars: Vec<char> = self.expr.chars().collect();
        let from = self.column.saturating_sub(CONTEXT_CHARS);
        let to = (self.column + CONTEXT_CHARS).min(chars.len());
        let mut shown = String::new();
        if from > 0 {
            shown.push('…');
        }
        // Tabs stay tabs so the caret lines up however the terminal shows
        // them; other control characters cannot be in a valid expression
        // and print as a space.
        let mut indent: String = if from > 0 { " ".into() } else { String::new() };
        for (i, &c) in chars[from.min(to)..to].iter().enumerate() {
            let c = if c.is_control() && c != '\t' { ' ' } else { c };
            shown.push(c);
            if from + i < self.column {
                indent.push(if c == '\t' { '\t' } else { ' ' });
            }
        }
        if to < chars.len() {
            shown.push('…');
        }
        write!(
            f,
            "invalid target expression at column {}: {}\n  {shown}\n  {indent}^",
            self.column + 1,
            self.message,
        )
    }
}

/// A problem found in a leaf's value text, before it is placed in the whole
/// expression: `at` is a byte offset into that value.
#[derive(Debug)]
struct Fault {
    at: usize,
    message: String,
}

impl Fault {
    fn new(at: usize, message: impl Into<String>) -> Fault {
        Fault {
            at,
            message: message.into(),
        }
    }

    /// The same problem seen from a text in which the value starts at `offset`.
    fn shifted(self, offset: usize) -> Fault {
        Fault {
            at: self.at + offset,
            ..self
        }
    }
}

/// The parsed expression: leaves are compiled matchers.
#[derive(Debug, Clone)]
enum Expr {
    Leaf(Matcher),
    Not(Box<Expr>),
    All(Vec<Expr>),
    Any(Vec<Expr>),
    /// A node group's definition, shared by every reference to the group.
    Group(Arc<Expr>),
}

impl Expr {
    fn matches(&self, node: &Candidate<'_>) -> bool {
        match self {
            Expr::Leaf(matcher) => matcher.matches(node),
            Expr::Not(inner) => !inner.matches(node),
            Expr::All(all) => all.iter().all(|e| e.matches(node)),
            Expr::Any(any) => any.iter().any(|e| e.matches(node)),
            Expr::Group(definition) => definition.matches(node),
        }
    }
}
