//! Generated expressions: whatever the text, parsing ends without a
//! panic, quickly, and a refusal points inside the text with a message of
//! a few lines; an accepted expression matches without a panic.

use super::{Candidate, Delimiter, Kind, Target};
use proptest::prelude::*;
use std::collections::BTreeMap;

/// Words from the grammar, and the odd byte, in any order.
fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("and".to_owned()),
        Just("or".to_owned()),
        Just("not".to_owned()),
        Just("(".to_owned()),
        Just(")".to_owned()),
        Just("G@os:Debian".to_owned()),
        Just("P@os:(Deb|Ubu).*".to_owned()),
        Just("E@web-\\d+".to_owned()),
        Just("L@web-1,db-2".to_owned()),
        Just("S@10.0.0.0/8".to_owned()),
        Just("I@team:ops".to_owned()),
        Just("R@web".to_owned()),
        Just("N@web".to_owned()),
        Just("N@loop".to_owned()),
        Just("F@os.family:Debian".to_owned()),
        Just("F%@networking.interfaces.*.ip%10.*".to_owned()),
        Just("G%@a%*%c".to_owned()),
        Just("G@disks:[0-9]:name:sd?".to_owned()),
        "[GPIFELSRN][ -~]@[ -~]{0,8}",
        "[a-z*?\\[\\]-]{1,8}",
        "[A-Z]@[ -~]{0,6}",
        "\\PC{1,4}",
    ]
}

fn expression() -> impl Strategy<Value = String> {
    prop::collection::vec(piece(), 0..24).prop_map(|p| p.join(" "))
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        Just(Kind::Glob),
        Just(Kind::Regex),
        Just(Kind::List),
        Just(Kind::Grain),
        Just(Kind::GrainRegex),
        Just(Kind::Label),
        Just(Kind::Fact),
        Just(Kind::Subnet),
        Just(Kind::Role),
        Just(Kind::NodeGroup),
        Just(Kind::Compound),
    ]
}

fn groups() -> BTreeMap<String, String> {
    [
        ("web".to_owned(), "R@web or web-*".to_owned()),
        ("loop".to_owned(), "N@loop and db-*".to_owned()),
    ]
    .into()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn any_text_parses_or_is_refused_precisely(
        kind in kind(),
        text in prop_oneof![expression(), "\\PC{0,64}"],
        delimiter in prop_oneof![Just(':'), Just('%'), Just('.'), Just('|')],
    ) {
        let groups = groups();
        let delimiter = Delimiter::new(delimiter).expect("a valid delimiter");
        match Target::parse_with(kind, &text, &groups, delimiter) {
            Ok(target) => {
                let serde_json::Value::Object(grains) = serde_json::json!({
                    "a": {"b": {"c": 1}}, "disks": [{"name": "sda"}], "os": "Debian",
                }) else {
                    unreachable!("an object");
                };
                let serde_json::Value::Object(facts) = serde_json::json!({
                    "os": {"family": "Debian"},
                    "networking": {"interfaces": {"eth0": {"ip": "10.0.0.7"}}},
                }) else {
                    unreachable!("an object");
                };
                let labels = BTreeMap::new();
                let node = Candidate {
                    name: "web-1",
                    grains: &grains,
                    facts: &facts,
                    labels: &labels,
                    roles: &["web".to_owned()],
                    addresses: &["10.0.0.7".to_owned()],
                };
                let _ = target.matches(&node);
            }
            Err(e) => {
                prop_assert!(!e.message.is_empty());
                prop_assert!(e.column <= e.expr.chars().count(), "{e:?}");
                let shown = e.to_string();
                prop_assert!(shown.lines().count() == 3, "{shown}");
                prop_assert!(shown.len() < 600, "{} bytes: {shown}", shown.len());
            }
        }
    }
}
