//! Facter's `os`: `name`, `family`, `architecture`, `hardware`, `release`
//! and `distro`, with Facter's resolvers for the Debian family
//! (`lib/facter/facts/debian/os/`, `ubuntu/os/`).
//!
//! - Debian (and Raspbian, elementary): `release` and `distro.release` are
//!   `/etc/debian_version` (`12.11`: `major` 12, `minor` 11); `distro.id`
//!   is os-release's `ID` capitalised, `distro.description` its
//!   `PRETTY_NAME`, `distro.codename` its `VERSION_CODENAME`, else the
//!   word in `VERSION`'s brackets.
//! - Ubuntu: the same `distro`, but both releases are `VERSION_ID` whole
//!   (`{full: "22.04", major: "22.04"}`), as Facter has them.
//! - Elsewhere: `release` is `VERSION_ID` split at its dots, `distro` is
//!   `/etc/lsb-release`, else os-release, as for Salt's `lsb_distrib_*`
//!   (Facter runs `lsb_release` there, and reads a release file of each
//!   distribution's own).

use super::some;
use crate::facts::{Machine, os};
use serde_json::{Map, Value};

pub(super) fn put(m: &Machine, f: &mut Map<String, Value>) {
    let o = &m.os;
    let family = o.os_family();
    let mut v = Map::new();
    if let Some(arch) = &m.kernel.arch {
        v.insert(
            "architecture".into(),
            os::osarch(family.as_deref(), arch).into(),
        );
        v.insert("hardware".into(), arch.as_str().into());
    }
    some(&mut v, "family", family);
    some(&mut v, "name", o.os());
    let (release, distro) = match o.release.as_ref().map(|r| (r, r.id.as_str())) {
        Some((r, "debian" | "raspbian" | "elementary")) => {
            let release = o
                .debian_version
                .as_deref()
                .map(dotted)
                .or_else(|| r.version_id.as_deref().map(dotted));
            (release.clone(), debian_distro(r, release))
        }
        Some((r, "ubuntu")) => {
            let release = r.version_id.as_deref().map(whole);
            (release.clone(), debian_distro(r, release))
        }
        _ => (
            o.osrelease().filter(|r| !r.is_empty()).map(|r| dotted(&r)),
            lsb_distro(o),
        ),
    };
    some(&mut v, "release", release);
    if !distro.is_empty() {
        v.insert("distro".into(), Value::Object(distro));
    }
    if !v.is_empty() {
        f.insert("os".into(), Value::Object(v));
    }
}

/// `{full, major, minor}` of a dotted release; `minor` only when there,
/// without a leading zero (`22.04` → `4`), as Facter's Debian resolver.
pub(super) fn dotted(full: &str) -> Value {
    let mut parts = full.split('.');
    let mut r = Map::new();
    r.insert("full".into(), full.into());
    some(&mut r, "major", parts.next().filter(|p| !p.is_empty()));
    let minor = parts
        .next()
        .filter(|p| !p.is_empty())
        .map(|p| match p.strip_prefix('0') {
            Some(rest) if rest.starts_with(|c: char| ('1'..='9').contains(&c)) => rest,
            _ => p,
        });
    some(&mut r, "minor", minor);
    Value::Object(r)
}

/// Ubuntu's: the whole version is the major one too.
fn whole(full: &str) -> Value {
    serde_json::json!({ "full": full, "major": full })
}

fn debian_distro(r: &os::OsRelease, release: Option<Value>) -> Map<String, Value> {
    let mut d = Map::new();
    let codename = r
        .version_codename
        .clone()
        .filter(|c| !c.is_empty())
        .or_else(|| {
            let v = r.version.as_deref()?.strip_suffix(')')?;
            Some(v.rsplit_once('(')?.1.to_owned())
        });
    some(&mut d, "codename", codename);
    d.insert("description".into(), r.pretty_name.as_str().into());
    some(&mut d, "id", Some(crate::facts::capitalised(&r.id)));
    some(&mut d, "release", release);
    d
}

fn lsb_distro(o: &os::Os) -> Map<String, Value> {
    let lsb = o.lsb_distrib();
    let mut d = Map::new();
    some(&mut d, "codename", lsb.codename);
    some(&mut d, "description", lsb.description);
    some(&mut d, "id", lsb.id);
    if let Some(r) = lsb.release.filter(|r| !r.is_empty()) {
        d.insert("release".into(), dotted(&r));
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn os_of(os_release: &str, debian_version: Option<&str>, lsb: &str) -> Value {
        let m = Machine {
            os: os::Os {
                release: Some(os::parse_os_release(os_release)),
                lsb: os::parse_lsb_release(lsb),
                debian_version: debian_version.map(str::to_owned),
            },
            ..Machine::default()
        };
        let mut f = Map::new();
        put(&m, &mut f);
        f.remove("os").unwrap_or_default()
    }

    #[test]
    fn each_distribution_by_facters_resolver() {
        let debian = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\n\
            VERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nID=debian\n";
        let ubuntu = "PRETTY_NAME=\"Ubuntu 22.04.3 LTS\"\nNAME=\"Ubuntu\"\nVERSION_ID=\"22.04\"\n\
            VERSION=\"22.04.3 LTS (Jammy Jellyfish)\"\nVERSION_CODENAME=jammy\nID=ubuntu\nID_LIKE=debian\n";
        let ubuntu_lsb = "DISTRIB_ID=Ubuntu\nDISTRIB_RELEASE=22.04\nDISTRIB_CODENAME=jammy\n\
            DISTRIB_DESCRIPTION=\"Ubuntu 22.04.3 LTS\"\n";
        let rocky = "NAME=\"Rocky Linux\"\nVERSION=\"9.3 (Blue Onyx)\"\nID=\"rocky\"\n\
            ID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"9.3\"\nPRETTY_NAME=\"Rocky Linux 9.3 (Blue Onyx)\"\n";
        let cases: &[(&str, Option<&str>, &str, Value)] = &[
            // The codename from VERSION's brackets; the point release.
            (
                debian,
                Some("12.11"),
                "",
                json!({
                "family": "Debian", "name": "Debian",
                "release": {"full": "12.11", "major": "12", "minor": "11"},
                "distro": {"codename": "bookworm", "description": "Debian GNU/Linux 12 (bookworm)",
                           "id": "Debian", "release": {"full": "12.11", "major": "12", "minor": "11"}}}),
            ),
            // Testing: the file names the next release.
            (
                debian,
                Some("trixie/sid"),
                "",
                json!({
                "family": "Debian", "name": "Debian",
                "release": {"full": "trixie/sid", "major": "trixie/sid"},
                "distro": {"codename": "bookworm", "description": "Debian GNU/Linux 12 (bookworm)",
                           "id": "Debian", "release": {"full": "trixie/sid", "major": "trixie/sid"}}}),
            ),
            // No /etc/debian_version: os-release's VERSION_ID.
            (
                debian,
                None,
                "",
                json!({
                "family": "Debian", "name": "Debian",
                "release": {"full": "12", "major": "12"},
                "distro": {"codename": "bookworm", "description": "Debian GNU/Linux 12 (bookworm)",
                           "id": "Debian", "release": {"full": "12", "major": "12"}}}),
            ),
            // Ubuntu's releases are whole; its lsb-release is not read.
            (
                ubuntu,
                Some("bookworm/sid"),
                ubuntu_lsb,
                json!({
                "family": "Debian", "name": "Ubuntu",
                "release": {"full": "22.04", "major": "22.04"},
                "distro": {"codename": "jammy", "description": "Ubuntu 22.04.3 LTS",
                           "id": "Ubuntu", "release": {"full": "22.04", "major": "22.04"}}}),
            ),
            (
                rocky,
                None,
                "",
                json!({
                "family": "RedHat", "name": "Rocky",
                "release": {"full": "9.3", "major": "9", "minor": "3"},
                "distro": {"id": "Rocky Linux", "release": {"full": "9.3", "major": "9", "minor": "3"}}}),
            ),
        ];
        for (os_release, debian_version, lsb, want) in cases {
            assert_eq!(
                os_of(os_release, *debian_version, lsb),
                *want,
                "{os_release}"
            );
        }
    }

    #[test]
    fn releases_split_as_facter_splits_them() {
        let cases: &[(&str, Value)] = &[
            (
                "12.11",
                json!({"full": "12.11", "major": "12", "minor": "11"}),
            ),
            (
                "22.04",
                json!({"full": "22.04", "major": "22", "minor": "4"}),
            ),
            ("10.0", json!({"full": "10.0", "major": "10", "minor": "0"})),
            ("12", json!({"full": "12", "major": "12"})),
            (
                "trixie/sid",
                json!({"full": "trixie/sid", "major": "trixie/sid"}),
            ),
        ];
        for (full, want) in cases {
            assert_eq!(dotted(full), *want, "{full}");
        }
    }
}
