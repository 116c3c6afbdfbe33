//! The distribution: `/etc/os-release` (else `/usr/lib/os-release`) and
//! `/etc/lsb-release`, and the Salt grains derived from them — `os`,
//! `os_family`, `osfullname`, `osrelease`, `osrelease_info`,
//! `osmajorrelease`, `oscodename`, `osfinger`, `osarch`, `lsb_distrib_*`.
//!
//! When Python's `lsb_release` module cannot be imported (Salt's onedir
//! packages bundle their own Python), Salt takes its "legacy" path on every
//! distribution: `lsb_distrib_*` from `/etc/lsb-release`, else from
//! os-release; `osrelease` and `oscodename` from those; `os` from
//! os-release's `NAME` through Salt's name table. That path is what is
//! reproduced here.

pub use super::os_names::{derive_os, os_family};
use super::root::Root;
use serde_json::Value;
use std::collections::BTreeMap;

/// What the distribution says of itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Os {
    /// `None` when neither os-release file can be read.
    pub release: Option<OsRelease>,
    /// `/etc/lsb-release`; all `None` when it is absent.
    pub lsb: Lsb,
    /// `/etc/debian_version` (`12.11`, `trixie/sid`), trimmed: Facter's
    /// `os.release` on Debian.
    pub debian_version: Option<String>,
}

/// The fields of os-release that grains read. `name`, `id` and
/// `pretty_name` take the specification's defaults when missing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OsRelease {
    pub name: String,
    pub id: String,
    pub id_like: Vec<String>,
    pub pretty_name: String,
    pub version: Option<String>,
    pub version_id: Option<String>,
    pub version_codename: Option<String>,
    pub variant_id: Option<String>,
}

/// `/etc/lsb-release`'s `DISTRIB_*` values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lsb {
    pub id: Option<String>,
    pub release: Option<String>,
    pub codename: Option<String>,
    pub description: Option<String>,
}

pub fn collect(root: &Root) -> Os {
    let release = root
        .read("/etc/os-release")
        .or_else(|_| root.read("/usr/lib/os-release"))
        .ok()
        .map(|t| parse_os_release(&t));
    let lsb = root
        .read("/etc/lsb-release")
        .map(|t| parse_lsb_release(&t))
        .unwrap_or_default();
    Os {
        release,
        lsb,
        debian_version: root.read_value("/etc/debian_version"),
    }
}

/// os-release as Python's `platform.freedesktop_os_release` reads it.
pub fn parse_os_release(text: &str) -> OsRelease {
    let mut fields = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let value = match value.as_bytes() {
            [q @ (b'"' | b'\''), .., l] if q == l && value.len() >= 2 => &value[1..value.len() - 1],
            _ => value,
        };
        fields.insert(key.to_owned(), unescape(value));
    }
    let mut take = |k: &str| fields.remove(k).filter(|v| !v.is_empty());
    OsRelease {
        name: take("NAME").unwrap_or_else(|| "Linux".into()),
        id: take("ID").unwrap_or_else(|| "linux".into()),
        id_like: take("ID_LIKE")
            .map(|l| l.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default(),
        pretty_name: take("PRETTY_NAME").unwrap_or_else(|| "Linux".into()),
        version: take("VERSION"),
        version_id: take("VERSION_ID"),
        version_codename: take("VERSION_CODENAME"),
        variant_id: take("VARIANT_ID"),
    }
}

/// Backslash escapes of `$ " ' \ `` ` are the character itself.
fn unescape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('\\', Some(&n)) if "$\"'\\`".contains(n) => {
                out.push(n);
                chars.next();
            }
            _ => out.push(c),
        }
    }
    out
}

/// `DISTRIB_X=value` lines; a value runs while it is word characters,
/// spaces, dots and dashes (Salt's `_LSB_REGEX`), trailing space trimmed.
pub fn parse_lsb_release(text: &str) -> Lsb {
    let mut lsb = Lsb::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.strip_prefix(['"', '\'']).unwrap_or(value);
        let end = value
            .find(|c: char| {
                !(c.is_alphanumeric() || c == '_' || c.is_whitespace() || c == '.' || c == '-')
            })
            .unwrap_or(value.len());
        let value = value[..end].trim_end();
        if value.is_empty() {
            continue;
        }
        let slot = match key {
            "DISTRIB_ID" => &mut lsb.id,
            "DISTRIB_RELEASE" => &mut lsb.release,
            "DISTRIB_CODENAME" => &mut lsb.codename,
            "DISTRIB_DESCRIPTION" => &mut lsb.description,
            _ => continue,
        };
        *slot = Some(value.to_owned());
    }
    lsb
}

impl Os {
    /// The `os` grain.
    pub fn os(&self) -> Option<String> {
        match (&self.release, &self.lsb.id) {
            (Some(r), _) => Some(derive_os(&r.name, Some(&r.id))),
            (None, Some(id)) => Some(derive_os(id, None)),
            (None, None) => None,
        }
    }

    /// The `os_family` grain.
    pub fn os_family(&self) -> Option<String> {
        let os = self.os()?;
        let (id, like) = match &self.release {
            Some(r) => (r.id.clone(), r.id_like.clone()),
            None => (os.to_lowercase(), Vec::new()),
        };
        Some(os_family(&os, &id, &like))
    }

    /// The `osfullname` grain: os-release's `NAME`, else the LSB id.
    pub fn osfullname(&self) -> Option<String> {
        match &self.release {
            Some(r) => Some(r.name.trim().to_owned()),
            None => self.lsb.id.clone(),
        }
    }

    /// The `lsb_distrib_*` grains: `/etc/lsb-release`, else os-release
    /// (`NAME`, `VERSION_ID`, `VERSION_CODENAME`) as Salt falls back.
    pub fn lsb_distrib(&self) -> Lsb {
        if self.lsb.id.is_some() {
            return self.lsb.clone();
        }
        let Some(r) = &self.release else {
            return self.lsb.clone();
        };
        Lsb {
            id: Some(r.name.trim().to_owned()),
            release: r.version_id.clone().or_else(|| mendel_release(r)),
            codename: r.version_codename.clone(),
            description: None,
        }
    }

    /// The `osrelease` grain.
    pub fn osrelease(&self) -> Option<String> {
        self.lsb_distrib().release.map(|r| r.trim().to_owned())
    }

    /// The `oscodename` grain, with Salt's quirks for Astra, AlmaLinux and
    /// Rocky (whose codename sits in `VERSION`'s brackets).
    pub fn oscodename(&self) -> Option<String> {
        if let Some(c) = self.lsb_distrib().codename.filter(|c| !c.trim().is_empty()) {
            return Some(c.trim().to_owned());
        }
        let r = self.release.as_ref()?;
        match r.id.as_str() {
            "astra" => r.variant_id.clone(),
            "almalinux" | "rocky" => {
                let v = r.version.as_deref()?;
                let (_, rest) = v.split_once(" (")?;
                Some(rest.strip_suffix(')')?.to_owned())
            }
            _ => None,
        }
    }
}

/// Mendel names its release only in `PRETTY_NAME` ("Mendel GNU/Linux 5 (Eagle)").
fn mendel_release(r: &OsRelease) -> Option<String> {
    (r.id == "mendel")
        .then(|| r.pretty_name.split_whitespace().nth(2).map(str::to_owned))
        .flatten()
}

/// Salt's `osrelease_info`: the release split at dots, numbers as numbers.
pub fn osrelease_info(osrelease: &str) -> Vec<Value> {
    osrelease
        .split('.')
        .map(|p| match p.parse::<u64>() {
            Ok(n) if p.bytes().all(|b| b.is_ascii_digit()) => Value::from(n),
            _ => Value::from(p),
        })
        .collect()
}

/// Salt's `osfinger`: `os` for a few, else `osfullname`; then the whole
/// release for Ubuntu and Pop, else its first part.
pub fn osfinger(os: &str, osfullname: &str, osrelease: &str) -> String {
    let name = match os {
        "Debian" | "FreeBSD" | "OpenBSD" | "NetBSD" | "Mac" | "Raspbian" => os,
        _ => osfullname,
    };
    let release = match os {
        "Ubuntu" | "Pop" => osrelease,
        _ => osrelease.split('.').next().unwrap_or_default(),
    };
    format!("{name}-{release}")
}

/// Salt's `osarch`: dpkg's name on the Debian family, rpm's (the kernel's)
/// elsewhere. dpkg's answer is not asked (no program is run): it is the
/// Debian port of the kernel's architecture.
pub fn osarch(os_family: Option<&str>, cpuarch: &str) -> String {
    if os_family != Some("Debian") {
        return cpuarch.to_owned();
    }
    let port = match cpuarch {
        "x86_64" | "amd64" => "amd64",
        "aarch64" | "arm64" | "armv8b" => "arm64",
        "armv7l" | "armv8l" | "armv6l" => "armhf",
        "armv5tel" | "armv5tejl" | "armv4tl" => "armel",
        "i386" | "i486" | "i586" | "i686" => "i386",
        "ppc64le" => "ppc64el",
        "mips64" => "mips64el",
        "mips" => "mipsel",
        "loongarch64" => "loong64",
        other => other,
    };
    port.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(text: &str) -> Os {
        Os {
            release: Some(parse_os_release(text)),
            ..Os::default()
        }
    }

    const DEBIAN: &str = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\n\
        VERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\n";
    const UBUNTU: &str = "PRETTY_NAME=\"Ubuntu 22.04.3 LTS\"\nNAME=\"Ubuntu\"\nVERSION_ID=\"22.04\"\n\
        VERSION=\"22.04.3 LTS (Jammy Jellyfish)\"\nVERSION_CODENAME=jammy\nID=ubuntu\nID_LIKE=debian\n";
    const ROCKY: &str = "NAME=\"Rocky Linux\"\nVERSION=\"9.3 (Blue Onyx)\"\nID=\"rocky\"\n\
        ID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"9.3\"\nPRETTY_NAME=\"Rocky Linux 9.3 (Blue Onyx)\"\n";
    const ALPINE: &str =
        "NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.19.1\nPRETTY_NAME=\"Alpine Linux v3.19\"\n";
    const FEDORA: &str = "NAME=\"Fedora Linux\"\nVERSION=\"39 (Container Image)\"\nID=fedora\n\
        VERSION_ID=39\nVERSION_CODENAME=\"\"\nPRETTY_NAME=\"Fedora Linux 39 (Container Image)\"\n";
    const ARCH: &str =
        "NAME=\"Arch Linux\"\nPRETTY_NAME=\"Arch Linux\"\nID=arch\nBUILD_ID=rolling\n";
    const RHEL: &str = "NAME=\"Red Hat Enterprise Linux\"\nVERSION=\"9.3 (Plow)\"\nID=\"rhel\"\n\
        ID_LIKE=\"fedora\"\nVERSION_ID=\"9.3\"\nPRETTY_NAME=\"Red Hat Enterprise Linux 9.3 (Plow)\"\n";
    const ALMA: &str = "NAME=\"AlmaLinux\"\nVERSION=\"9.3 (Shamrock Pampas Cat)\"\nID=\"almalinux\"\n\
        ID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"9.3\"\n";
    const MINT: &str = "NAME=\"Linux Mint\"\nVERSION=\"21.2 (Victoria)\"\nID=linuxmint\nID_LIKE=\"ubuntu debian\"\n\
        VERSION_ID=\"21.2\"\nVERSION_CODENAME=victoria\n";
    const SUSE: &str = "NAME=\"openSUSE Leap\"\nVERSION=\"15.5\"\nID=\"opensuse-leap\"\nID_LIKE=\"suse opensuse\"\nVERSION_ID=\"15.5\"\n";

    #[test]
    fn os_grains_from_os_release() {
        // (text, os, os_family, osfullname, osrelease, oscodename, osfinger)
        type Row = (
            &'static str,
            &'static str,
            &'static str,
            &'static str,
            Option<&'static str>,
            Option<&'static str>,
            Option<&'static str>,
        );
        let rows: [Row; 10] = [
            (
                DEBIAN,
                "Debian",
                "Debian",
                "Debian GNU/Linux",
                Some("12"),
                Some("bookworm"),
                Some("Debian-12"),
            ),
            (
                UBUNTU,
                "Ubuntu",
                "Debian",
                "Ubuntu",
                Some("22.04"),
                Some("jammy"),
                Some("Ubuntu-22.04"),
            ),
            (
                ROCKY,
                "Rocky",
                "RedHat",
                "Rocky Linux",
                Some("9.3"),
                Some("Blue Onyx"),
                Some("Rocky Linux-9"),
            ),
            (
                ALMA,
                "AlmaLinux",
                "RedHat",
                "AlmaLinux",
                Some("9.3"),
                Some("Shamrock Pampas Cat"),
                Some("AlmaLinux-9"),
            ),
            (
                ALPINE,
                "Alpine",
                "Alpine",
                "Alpine Linux",
                Some("3.19.1"),
                None,
                Some("Alpine Linux-3"),
            ),
            (
                FEDORA,
                "Fedora",
                "RedHat",
                "Fedora Linux",
                Some("39"),
                None,
                Some("Fedora Linux-39"),
            ),
            (ARCH, "Arch", "Arch", "Arch Linux", None, None, None),
            (
                RHEL,
                "RedHat",
                "RedHat",
                "Red Hat Enterprise Linux",
                Some("9.3"),
                None,
                Some("Red Hat Enterprise Linux-9"),
            ),
            (
                MINT,
                "Mint",
                "Debian",
                "Linux Mint",
                Some("21.2"),
                Some("victoria"),
                Some("Linux Mint-21"),
            ),
            (
                SUSE,
                "openSUSE Leap",
                "Suse",
                "openSUSE Leap",
                Some("15.5"),
                None,
                Some("openSUSE Leap-15"),
            ),
        ];
        for (text, os, family, full, rel, code, finger) in rows {
            let o = release(text);
            assert_eq!(o.os().as_deref(), Some(os), "{text}");
            assert_eq!(o.os_family().as_deref(), Some(family), "{text}");
            assert_eq!(o.osfullname().as_deref(), Some(full), "{text}");
            assert_eq!(o.osrelease().as_deref(), rel, "{text}");
            assert_eq!(o.oscodename().as_deref(), code, "{text}");
            let f = o.osrelease().map(|r| osfinger(os, full, &r));
            assert_eq!(f.as_deref(), finger, "{text}");
        }
    }

    #[test]
    fn lsb_release_wins_and_os_release_fills_in() {
        let mut o = release(UBUNTU);
        o.lsb = parse_lsb_release(
            "DISTRIB_ID=Ubuntu\nDISTRIB_RELEASE=22.04\nDISTRIB_CODENAME=jammy\nDISTRIB_DESCRIPTION=\"Ubuntu 22.04.3 LTS\"\n",
        );
        let l = o.lsb_distrib();
        assert_eq!(l.id.as_deref(), Some("Ubuntu"));
        assert_eq!(l.description.as_deref(), Some("Ubuntu 22.04.3 LTS"));
        let l = release(DEBIAN).lsb_distrib();
        assert_eq!(l.id.as_deref(), Some("Debian GNU/Linux"));
        assert_eq!(l.release.as_deref(), Some("12"));
        assert_eq!(l.codename.as_deref(), Some("bookworm"));
        assert_eq!(l.description, None);
        // Salt's value pattern stops at a bracket.
        let l = parse_lsb_release("DISTRIB_DESCRIPTION='Linux Mint 21 (Vanessa)'\nDISTRIB_ID=\n");
        assert_eq!(l.description.as_deref(), Some("Linux Mint 21"));
        assert_eq!(l.id, None);
    }

    #[test]
    fn os_release_quotes_escapes_and_defaults() {
        let r = parse_os_release("NAME='My \\\"OS\\\"'\n# comment\nBAD KEY=x\nVERSION_ID=1\n");
        assert_eq!(r.name, "My \"OS\"");
        assert_eq!(r.id, "linux");
        assert_eq!(r.pretty_name, "Linux");
        assert_eq!(r.version_id.as_deref(), Some("1"));
        assert_eq!(Os::default().os(), None);
    }

    #[test]
    fn release_info_finger_and_arch() {
        assert_eq!(osrelease_info("22.04"), [Value::from(22), Value::from(4)]);
        assert_eq!(
            osrelease_info("3.19.1"),
            [Value::from(3), Value::from(19), Value::from(1)]
        );
        assert_eq!(
            osrelease_info("10.0-rc1"),
            [Value::from(10), Value::from("0-rc1")]
        );
        assert_eq!(osfinger("Debian", "Debian GNU/Linux", "12"), "Debian-12");
        assert_eq!(osfinger("Pop", "Pop!_OS", "22.04"), "Pop!_OS-22.04");
        assert_eq!(osarch(Some("Debian"), "x86_64"), "amd64");
        assert_eq!(osarch(Some("Debian"), "aarch64"), "arm64");
        assert_eq!(osarch(Some("Debian"), "armv7l"), "armhf");
        assert_eq!(osarch(Some("Debian"), "ppc64le"), "ppc64el");
        assert_eq!(osarch(Some("RedHat"), "x86_64"), "x86_64");
        assert_eq!(osarch(None, "aarch64"), "aarch64");
    }
}
