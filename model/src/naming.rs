//! Names from services, Aerostat's way, as pure functions of the names
//! already taken (the caller holds the writer lock, so assignment is
//! race-free).
//!
//! - iterative: `<service>-N`, from 0, the lowest free number (gaps fill);
//! - masterful: the first node is `<service>-master`, later ones
//!   `<service>-slave-N` from 1, lowest free first;
//! - promotion: a slave becomes `<service>-master`; the old master takes the
//!   lowest free slave number.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Naming {
    #[default]
    Iterative,
    Masterful,
}

impl std::str::FromStr for Naming {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "" | "iterative" => Ok(Naming::Iterative),
            "masterful" => Ok(Naming::Masterful),
            other => Err(format!(
                "naming {other:?}: expected \"iterative\" or \"masterful\""
            )),
        }
    }
}

impl Naming {
    pub fn as_str(self) -> &'static str {
        match self {
            Naming::Iterative => "iterative",
            Naming::Masterful => "masterful",
        }
    }
}

/// A hostname per RFC 1123: dot-separated labels of letters, digits and
/// inner hyphens, each 1–63 long, 253 in all.
pub fn check_hostname(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 253 {
        return Err(format!("{name:?} is not a hostname: 1 to 253 characters"));
    }
    for label in name.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(format!(
                "{name:?} is not a hostname: each dot-separated part is 1 to 63 letters, digits or inner hyphens"
            ));
        }
    }
    Ok(())
}

/// A service name: one hostname label, short enough that
/// `<service>-slave-NNNN` still is one.
pub fn check_service(service: &str) -> Result<(), String> {
    if service.contains('.') || check_hostname(service).is_err() || service.len() > 50 {
        return Err(format!(
            "service {service:?}: 1 to 50 letters, digits or inner hyphens (it becomes part of hostnames)"
        ));
    }
    Ok(())
}

fn lowest_free(taken: &BTreeSet<String>, from: u32, name: impl Fn(u32) -> String) -> String {
    (from..)
        .map(&name)
        .find(|n| !taken.contains(n))
        .expect("the numbers never run out")
}

/// The name for a new node of `service`.
pub fn assign(service: &str, naming: Naming, taken: &BTreeSet<String>) -> String {
    match naming {
        Naming::Iterative => lowest_free(taken, 0, |n| format!("{service}-{n}")),
        Naming::Masterful => {
            let master = format!("{service}-master");
            if taken.contains(&master) {
                lowest_free(taken, 1, |n| format!("{service}-slave-{n}"))
            } else {
                master
            }
        }
    }
}

/// The renames that make `node` the master of its masterful `service`:
/// `[(node's name, master)]`, plus `(old master, lowest free slave)` when
/// there is a master now.
pub fn promote(
    service: &str,
    node: &str,
    taken: &BTreeSet<String>,
) -> Result<Vec<(String, String)>, String> {
    let master = format!("{service}-master");
    if node == master {
        return Err(format!("{node} is already the master of {service}"));
    }
    if !taken.contains(node) {
        return Err(format!("unknown node: {node}"));
    }
    let mut renames = vec![(node.to_owned(), master.clone())];
    if taken.contains(&master) {
        // The promoted node's own slave number is free once it moves.
        let mut free = taken.clone();
        free.remove(node);
        let slave = lowest_free(&free, 1, |n| format!("{service}-slave-{n}"));
        renames.insert(0, (master, slave));
    }
    Ok(renames)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn check(naming: Naming, taken: &[&str], want: &str) {
        assert_eq!(
            assign("mysql", naming, &set(taken)),
            want,
            "{naming:?} with {taken:?}"
        );
    }

    #[test]
    fn iterative_names_start_at_zero_and_fill_gaps() {
        check(Naming::Iterative, &[], "mysql-0");
        check(Naming::Iterative, &["mysql-0"], "mysql-1");
        check(Naming::Iterative, &["mysql-0", "mysql-2"], "mysql-1");
        check(Naming::Iterative, &["mysql-1", "web-0"], "mysql-0");
        check(
            Naming::Iterative,
            &["mysql-master", "mysql-0", "mysql-1"],
            "mysql-2",
        );
    }

    #[test]
    fn masterful_names_make_a_master_then_slaves_from_one() {
        check(Naming::Masterful, &[], "mysql-master");
        check(Naming::Masterful, &["mysql-master"], "mysql-slave-1");
        check(
            Naming::Masterful,
            &["mysql-master", "mysql-slave-1"],
            "mysql-slave-2",
        );
        check(
            Naming::Masterful,
            &["mysql-master", "mysql-slave-2"],
            "mysql-slave-1",
        );
        // A master that left is replaced by the next newcomer.
        check(Naming::Masterful, &["mysql-slave-1"], "mysql-master");
    }

    #[test]
    fn promotion_swaps_master_and_slave() {
        let taken = set(&["mysql-master", "mysql-slave-1", "mysql-slave-2"]);
        assert_eq!(
            promote("mysql", "mysql-slave-2", &taken).unwrap(),
            [
                ("mysql-master".into(), "mysql-slave-2".into()),
                ("mysql-slave-2".into(), "mysql-master".into())
            ]
        );
        let taken = set(&["mysql-master", "mysql-slave-1", "mysql-slave-3"]);
        assert_eq!(
            promote("mysql", "mysql-slave-3", &taken).unwrap(),
            [
                ("mysql-master".into(), "mysql-slave-2".into()),
                ("mysql-slave-3".into(), "mysql-master".into())
            ]
        );
        // No master now: the slave just moves up.
        assert_eq!(
            promote("mysql", "mysql-slave-1", &set(&["mysql-slave-1"])).unwrap(),
            [("mysql-slave-1".into(), "mysql-master".into())]
        );
        assert!(
            promote("mysql", "mysql-master", &set(&["mysql-master"]))
                .unwrap_err()
                .contains("already the master")
        );
        assert!(
            promote("mysql", "nope", &set(&["mysql-master"]))
                .unwrap_err()
                .contains("unknown node")
        );
    }

    #[test]
    fn hostnames_and_services_are_checked() {
        for ok in ["web-1", "web-1.example.com", "a", "x1"] {
            assert!(check_hostname(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-web", "web-", "we b", "web_1", "a..b", &"x".repeat(64)] {
            assert!(check_hostname(bad).is_err(), "{bad}");
        }
        assert!(check_service("mysql").is_ok());
        for bad in ["my.sql", "my_sql", "", &"s".repeat(51)] {
            assert!(check_service(bad).is_err(), "{bad}");
        }
        assert_eq!("masterful".parse::<Naming>(), Ok(Naming::Masterful));
        assert!(
            "chaotic"
                .parse::<Naming>()
                .unwrap_err()
                .contains("expected")
        );
    }
}
