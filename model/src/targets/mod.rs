//! Salt-style target expressions: which nodes a command, a job or a route is
//! for. [`Target::parse`] reads an expression of one [`Kind`] (`web-*`,
//! `-G os:Debian`, `-C 'G@os:Debian and not web-2'`, `-N web`, …) into a tree
//! of compiled matchers once, or fails with a [`TargetError`] that points at
//! the offending column; [`Target::parse_with`] does the same with another
//! [`Delimiter`] than `:` for `-G`, `-P`, `-I` and `-F`;
//! [`Target::matches`] then answers for one node at a time without
//! allocating. Pure: no I/O, no clock, no global state.
//!
//! Grains and Facter facts are matched alike: `G@os:Debian`,
//! `G@datacenter:rack:4`, `G@ec2_tags:environment:*production*` and
//! `F@os.release.major:12`, `F@networking.interfaces.*.ip:10.0.*` follow
//! keys (each exact or a glob) through objects and lists to a value compared
//! as a case-insensitive glob (numbers and booleans as their text; an
//! object by its keys). `G%@ipv6%fe80::*` and `F%@os.family%Debian` choose
//! another delimiter for one word of a compound expression.
//!
//! # Layout
//!
//! - `parse` — the compound parser (`and`, `or`, `not`, parentheses, `X@`
//!   and `X%@` prefixes) and node-group expansion; `parse::tokens` splits
//!   the text.
//! - `matchers` — the leaf matchers: node names, grains, facts, labels,
//!   subnets, roles; `matchers::paths` follows key paths through grains
//!   and facts.
//! - `delimiter` — [`Delimiter`], the key/value separator, and which
//!   characters can be one.
//! - `glob` — shell-style globs with Python `fnmatch` rules.
//! - `spec` — [`TargetSpec`], what a request targets: names or one
//!   expression.
//! - `tests` — table tests over a fixed set of nodes (`tests/fixture.rs`):
//!   the leaf matchers in `tests/leaves.rs`, key paths and `F@` in
//!   `tests/key_paths.rs`, delimiters in `tests/delimiters.rs`, node groups
//!   in `tests/node_groups.rs`, Salt's documented examples (on the nodes
//!   they name) in `tests/salt_examples.rs`; `prop_tests`, generated text.
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
//!   labels, not pillar; `J@` does not exist. `F@` (and `-F`) is this
//!   project's: a Facter fact by its dotted path (`F@os.family:Debian`),
//!   matched as `G@` matches grains.
//! - A custom delimiter (`G%@`, `P%@`, `I%@`, `F%@`; `--delimiter` for
//!   `-G`, `-P`, `-I`, `-F`) cannot be whitespace, a glob metacharacter
//!   (`*?[]`: keys may be globs) or one of `@ ( ) \`; Salt takes any
//!   character and mis-reads those. On a prefix that takes none (`E%@`)
//!   it is an error, where Salt reads the word as a glob on the name. In
//!   `F@` it only replaces the `:` before the value, and cannot be `.`.
//! - `-P` is case-insensitive like Salt's, but through the regex's own flag,
//!   not by lowercasing the pattern (which turns Salt's `\D` into `\d`);
//!   `(?-i)` turns it off.
//! - An unclosed `[` in a glob is an error, not a literal `[`.
//! - `-S` compares addresses as addresses, not as strings, looks at the
//!   node's `addresses` as well as its `ipv4`/`ipv6` grains, and accepts a
//!   network with host bits set (`10.1.2.3/8` means `10.0.0.0/8`).
//! - Any key of a grain path may be a glob (`G@a:*:c:v`, `G@*:Debian`,
//!   `G@disks:sd?:size:*`), matching exactly one level; Salt only has a
//!   whole `*` key, and its `a:*:c:v` also matches `a:c:v` (zero levels)
//!   while its top-level `*:v` also matches a node with a grain named `v`.
//!   A glob key also picks list elements by index (`disks:*:name:sda`).
//! - A grain path through a list of objects looks at every object holding
//!   the key, not only the first, and a numeric key picks an element as
//!   well as looking for that key in the list's objects.
//! - A value that reaches an object matches when it names a key (`*`: any
//!   key, even of an empty object, as in Salt) and, for `G@` and `F@`, also
//!   when its glob matches a key (`G@datacenter:r*`, case-insensitive as
//!   values are), where Salt compares the key exactly. `P@` compares it
//!   exactly, as Salt does: a regex would turn `P|@a|b|c`'s first reading
//!   (`b|c` under `a`) into "has a key `b`".
//! - Label keys may be globs too (`I@team*:blue`, `I@app:*:front` for the
//!   flat key `app:tier`).
//! - Salt tries every split of `key:value` text; here grain text is read
//!   at most 128 keys deep (no JSON read by serde_json nests deeper) and
//!   one expression compiles at most 1,000 readings beyond each word's
//!   first (`crate::limits`).

mod delimiter;
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

pub use delimiter::{Delimiter, DelimiterError};
use matchers::Matcher;
pub use spec::TargetSpec;

/// Which matcher an expression is for (clusterctl flags: none=glob, -E, -L,
/// -G, -P, -I, -F, -S, -R, -N, -C).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// No flag: a glob on the node name (`web-*`, `db-[12]`), case-sensitive.
    Glob,
    /// `-E`: a regex on the node name, anchored at the start only.
    Regex,
    /// `-L`: comma-separated exact node names.
    List,
    /// `-G`: `key:value`, a case-insensitive glob on a grain; keys nest with
    /// `:`, and each may be a glob (`ip_interfaces:eth*:10.*`).
    Grain,
    /// `-P`: `key:value`, a regex on a grain, anchored at the start only.
    GrainRegex,
    /// `-I`: `key:value`, a case-sensitive glob on a master-side label.
    Label,
    /// `-F`: `path:value`, a case-insensitive glob on a Facter fact, the
    /// path dotted (`os.release.major:12`).
    Fact,
    /// `-S`: an IP address or a CIDR network, IPv4 or IPv6.
    Subnet,
    /// `-R`: a glob on any of the node's roles.
    Role,
    /// `-N`: the name of a node group, whose definition is a compound expression.
    NodeGroup,
    /// `-C`: prefixed words (`G@`, `P@`, `E@`, `L@`, `I@`, `F@`, `S@`, `R@`,
    /// `N@`; bare words are name globs) joined by `and`, `or`, `not` and
    /// parentheses; `G%@`, `P%@`, `I%@`, `F%@` use `%` as the delimiter.
    Compound,
}

impl Kind {
    /// Whether expressions of this kind are `key:value` text, which
    /// [`Target::parse_with`]'s delimiter applies to.
    pub fn takes_delimiter(self) -> bool {
        matches!(
            self,
            Kind::Grain | Kind::GrainRegex | Kind::Label | Kind::Fact
        )
    }
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
    /// What it was parsed with (`:` unless `-G --delimiter %`…).
    delimiter: Delimiter,
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
        Target::parse_with(kind, expr, groups, Delimiter::DEFAULT)
    }

    /// As [`Target::parse`], with `delimiter` between keys and value instead
    /// of `:` (`-G --delimiter % 'ipv6%fe80::*'`). Only `-G`, `-P`, `-I`
    /// and `-F` expressions take one ([`Kind::takes_delimiter`]); a compound
    /// expression sets it per word (`G%@…`).
    pub fn parse_with(
        kind: Kind,
        expr: &str,
        groups: &BTreeMap<String, String>,
        delimiter: Delimiter,
    ) -> Result<Target, TargetError> {
        if !delimiter.is_default() && !kind.takes_delimiter() {
            let hint = match kind {
                Kind::Compound => format!(
                    " (in a compound expression it follows the prefix: `G{delimiter}@key{delimiter}value`)"
                ),
                _ => String::new(),
            };
            let flag = match kind.flag() {
                "" => "a glob on names".to_owned(),
                flag => format!("{flag} expressions"),
            };
            return Err(TargetError::at(
                expr,
                0,
                format!(
                    "the delimiter `{delimiter}` applies to -G, -P, -I and -F expressions, not to {flag}{hint}"
                ),
            ));
        }
        if kind == Kind::Fact && delimiter.as_char() == '.' {
            return Err(TargetError::at(expr, 0, parse::DOT_IN_FACTS));
        }
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
        let root = parse::parse(kind, expr, groups, delimiter)?;
        Ok(Target {
            kind,
            expression: expr.to_owned(),
            delimiter,
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

    pub fn delimiter(&self) -> Delimiter {
        self.delimiter
    }
}

/// Two targets are the same when they were parsed from the same text with
/// the same delimiter.
impl PartialEq for Target {
    fn eq(&self, other: &Target) -> bool {
        self.kind == other.kind
            && self.expression == other.expression
            && self.delimiter == other.delimiter
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
