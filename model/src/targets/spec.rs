//! What a request targets: names and globs, each of which must match, or
//! one expression of a [`Kind`] (with its [`Delimiter`] for `-G`, `-P`,
//! `-I`, `-F`). The master resolves it against its nodes; clusterctl builds
//! it from its flags.

use super::{Delimiter, Kind, Target};
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSpec {
    /// Names, ids or globs on names; each must match at least one node.
    Names(Vec<String>),
    /// An expression of one kind (`-G os:Debian`, `-C '…'`), and the
    /// delimiter it is parsed with (`:` but for `-G --delimiter %`…).
    Expr(Kind, String, Delimiter),
    /// An expression parsed already (against the node groups of the
    /// moment), so matching it costs no parsing — none under a lock.
    Parsed(Arc<Target>),
}

impl TargetSpec {
    /// An expression with the default delimiter.
    pub fn expr(kind: Kind, text: impl Into<String>) -> TargetSpec {
        TargetSpec::Expr(kind, text.into(), Delimiter::DEFAULT)
    }
}

impl Kind {
    /// The clusterctl flag that selects this kind (none for a glob).
    pub fn flag(self) -> &'static str {
        match self {
            Kind::Glob => "",
            Kind::Regex => "-E",
            Kind::List => "-L",
            Kind::Grain => "-G",
            Kind::GrainRegex => "-P",
            Kind::Label => "-I",
            Kind::Fact => "-F",
            Kind::Subnet => "-S",
            Kind::Role => "-R",
            Kind::NodeGroup => "-N",
            Kind::Compound => "-C",
        }
    }
}

/// As typed: `-G --delimiter % ipv6%fe80::*`.
impl std::fmt::Display for TargetSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TargetSpec::Names(n) => write!(f, "{}", n.join(" ")),
            TargetSpec::Expr(Kind::Glob, e, _) => write!(f, "{e}"),
            TargetSpec::Expr(kind, e, d) if d.is_default() => write!(f, "{} {e}", kind.flag()),
            TargetSpec::Expr(kind, e, d) => write!(f, "{} --delimiter {d} {e}", kind.flag()),
            TargetSpec::Parsed(t) => {
                TargetSpec::Expr(t.kind(), t.expression().to_owned(), t.delimiter()).fmt(f)
            }
        }
    }
}
