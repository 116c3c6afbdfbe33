//! What a request targets, on the wire: names, or an expression of a kind
//! with its delimiter (empty on the wire for `:`).

use super::WireError;
use crate::targets::{Delimiter, Kind, TargetSpec};
use cluster_proto as pb;

impl From<Kind> for pb::TargetKind {
    fn from(k: Kind) -> pb::TargetKind {
        match k {
            Kind::Glob => pb::TargetKind::Glob,
            Kind::Regex => pb::TargetKind::Regex,
            Kind::List => pb::TargetKind::List,
            Kind::Grain => pb::TargetKind::Grain,
            Kind::GrainRegex => pb::TargetKind::GrainRegex,
            Kind::Label => pb::TargetKind::Label,
            Kind::Fact => pb::TargetKind::Fact,
            Kind::Subnet => pb::TargetKind::Subnet,
            Kind::Role => pb::TargetKind::Role,
            Kind::NodeGroup => pb::TargetKind::NodeGroup,
            Kind::Compound => pb::TargetKind::Compound,
        }
    }
}

fn delimiter_to_pb(d: Delimiter) -> String {
    if d.is_default() {
        String::new()
    } else {
        d.to_string()
    }
}

impl From<&TargetSpec> for pb::Target {
    fn from(t: &TargetSpec) -> pb::Target {
        match t {
            TargetSpec::Names(names) => pb::Target {
                kind: pb::TargetKind::Unspecified as i32,
                names: names.clone(),
                ..Default::default()
            },
            TargetSpec::Expr(kind, expr, delimiter) => pb::Target {
                kind: pb::TargetKind::from(*kind) as i32,
                expr: expr.clone(),
                names: Vec::new(),
                delimiter: delimiter_to_pb(*delimiter),
            },
            TargetSpec::Parsed(t) => pb::Target {
                kind: pb::TargetKind::from(t.kind()) as i32,
                expr: t.expression().to_owned(),
                names: Vec::new(),
                delimiter: delimiter_to_pb(t.delimiter()),
            },
        }
    }
}

/// The target of a request: `target` when set, else `names` (`None` when
/// both are empty: every node, where a request allows that).
pub fn target_of(
    target: Option<pb::Target>,
    names: Vec<String>,
) -> Result<Option<TargetSpec>, WireError> {
    let Some(t) = target.filter(|t| {
        t.kind != 0 || !t.expr.is_empty() || !t.names.is_empty() || !t.delimiter.is_empty()
    }) else {
        return Ok((!names.is_empty()).then_some(TargetSpec::Names(names)));
    };
    let kind = match pb::TargetKind::try_from(t.kind) {
        Ok(pb::TargetKind::Unspecified) if !t.delimiter.is_empty() => {
            return Err(WireError::invalid(
                "target.delimiter",
                "a delimiter goes with an expression's kind, not with names",
            ));
        }
        Ok(pb::TargetKind::Unspecified) => return Ok(Some(TargetSpec::Names(t.names))),
        Ok(pb::TargetKind::Glob) => Kind::Glob,
        Ok(pb::TargetKind::Regex) => Kind::Regex,
        Ok(pb::TargetKind::List) => Kind::List,
        Ok(pb::TargetKind::Grain) => Kind::Grain,
        Ok(pb::TargetKind::GrainRegex) => Kind::GrainRegex,
        Ok(pb::TargetKind::Label) => Kind::Label,
        Ok(pb::TargetKind::Fact) => Kind::Fact,
        Ok(pb::TargetKind::Subnet) => Kind::Subnet,
        Ok(pb::TargetKind::Role) => Kind::Role,
        Ok(pb::TargetKind::NodeGroup) => Kind::NodeGroup,
        Ok(pb::TargetKind::Compound) => Kind::Compound,
        Err(_) => {
            return Err(WireError::invalid(
                "target.kind",
                format!("unknown kind {}", t.kind),
            ));
        }
    };
    let delimiter = match t.delimiter.as_str() {
        "" => Delimiter::DEFAULT,
        text => text
            .parse()
            .map_err(|e| WireError::invalid("target.delimiter", e))?,
    };
    // Whether the kind takes one is the parser's to say, with its reasons.
    Ok(Some(TargetSpec::Expr(kind, t.expr, delimiter)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_round_trip_and_an_unknown_kind_is_refused() {
        let percent = Delimiter::new('%').unwrap();
        for t in [
            TargetSpec::Names(vec!["web-1".into()]),
            TargetSpec::expr(Kind::Compound, "G@os:Debian"),
            TargetSpec::Expr(Kind::Grain, "ipv6%fe80::*".into(), percent),
            TargetSpec::expr(Kind::Fact, "os.family:Debian"),
        ] {
            assert_eq!(target_of(Some((&t).into()), vec![]).unwrap(), Some(t));
        }
        let sent = pb::Target::from(&TargetSpec::expr(Kind::Grain, "os:Debian"));
        assert_eq!(sent.delimiter, "", "`:` travels as nothing");
        let bad = pb::Target {
            kind: 99,
            ..Default::default()
        };
        assert_eq!(
            target_of(Some(bad), vec![]).unwrap_err().to_string(),
            "field `target.kind`: unknown kind 99"
        );
        assert_eq!(target_of(None, vec![]).unwrap(), None);
    }

    #[test]
    fn a_delimiter_that_is_not_one_usable_character_is_refused() {
        let with = |delimiter: &str, kind: pb::TargetKind| pb::Target {
            kind: kind as i32,
            expr: "os%Debian".into(),
            delimiter: delimiter.into(),
            ..Default::default()
        };
        let refused = |t| target_of(Some(t), vec![]).unwrap_err().to_string();
        assert_eq!(
            refused(with("%%", pb::TargetKind::Grain)),
            "field `target.delimiter`: a delimiter is one character, not 2 (`%%`)"
        );
        assert_eq!(
            refused(with("*", pb::TargetKind::Grain)),
            "field `target.delimiter`: `*` cannot be a delimiter: it is a glob metacharacter, \
             and a key may be a glob (`G@a:*:c:v`)"
        );
        assert_eq!(
            refused(with(" ", pb::TargetKind::Label)),
            "field `target.delimiter`: a delimiter cannot be whitespace or a control character \
             (found ' ')"
        );
        assert_eq!(
            refused(with("%", pb::TargetKind::Unspecified)),
            "field `target.delimiter`: a delimiter goes with an expression's kind, not with names"
        );
        let percent = Delimiter::new('%').unwrap();
        assert_eq!(
            target_of(Some(with("%", pb::TargetKind::GrainRegex)), vec![]).unwrap(),
            Some(TargetSpec::Expr(
                Kind::GrainRegex,
                "os%Debian".into(),
                percent
            ))
        );
    }
}
