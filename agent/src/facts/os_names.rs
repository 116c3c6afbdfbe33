//! Salt's names for distributions: its tables from a distribution's name
//! to the `os` grain and from `os` to `os_family`, and the rules around
//! them (`_derive_os_grain`, `_family_id`, `_prettify_os_family`).

/// Salt's `_OS_NAME_MAP`: the first ten characters of the name, spaces
/// removed and lowercased, to the `os` grain.
const OS_NAME_MAP: &[(&str, &str)] = &[
    ("redhatente", "RedHat"),
    ("gentoobase", "Gentoo"),
    ("archarm", "Arch ARM"),
    ("arch", "Arch"),
    ("debian", "Debian"),
    ("raspbian", "Raspbian"),
    ("fedoraremi", "Fedora"),
    ("chapeau", "Chapeau"),
    ("korora", "Korora"),
    ("amazonami", "Amazon"),
    ("alt", "ALT"),
    ("enterprise", "OEL"),
    ("oracleserv", "OEL"),
    ("cloudserve", "CloudLinux"),
    ("cloudlinux", "CloudLinux"),
    ("almalinux", "AlmaLinux"),
    ("pidora", "Fedora"),
    ("scientific", "ScientificLinux"),
    ("synology", "Synology"),
    ("nilrt", "NILinuxRT"),
    ("poky", "Poky"),
    ("manjaro", "Manjaro"),
    ("manjarolin", "Manjaro"),
    ("univention", "Univention"),
    ("antergos", "Antergos"),
    ("sles", "SUSE"),
    ("void", "Void"),
    ("slesexpand", "RES"),
    ("linuxmint", "Mint"),
    ("neon", "KDE neon"),
    ("pop", "Pop"),
    ("rocky", "Rocky"),
    ("alibabaclo", "Alinux"),
    ("mendel", "Mendel"),
];

/// Salt's `_OS_FAMILY_MAP`: the `os` grain to `os_family`.
const OS_FAMILY_MAP: &[(&str, &str)] = &[
    ("Ubuntu", "Debian"),
    ("Fedora", "RedHat"),
    ("Chapeau", "RedHat"),
    ("Korora", "RedHat"),
    ("FedBerry", "RedHat"),
    ("CentOS", "RedHat"),
    ("CentOS Stream", "RedHat"),
    ("GoOSe", "RedHat"),
    ("Scientific", "RedHat"),
    ("Amazon", "RedHat"),
    ("CloudLinux", "RedHat"),
    ("AlmaLinux", "RedHat"),
    ("OVS", "RedHat"),
    ("OEL", "RedHat"),
    ("XCP", "RedHat"),
    ("XCP-ng", "RedHat"),
    ("XenServer", "RedHat"),
    ("RES", "RedHat"),
    ("Sangoma", "RedHat"),
    ("VMware Photon OS", "RedHat"),
    ("Mandrake", "Mandriva"),
    ("Mint", "Debian"),
    ("VMwareESX", "VMware"),
    ("Bluewhite64", "Bluewhite"),
    ("Slamd64", "Slackware"),
    ("SLES", "Suse"),
    ("SUSE Enterprise Server", "Suse"),
    ("SLED", "Suse"),
    ("openSUSE", "Suse"),
    ("SUSE", "Suse"),
    ("openSUSE Leap", "Suse"),
    ("openSUSE Tumbleweed", "Suse"),
    ("SLES_SAP", "Suse"),
    ("Arch ARM", "Arch"),
    ("Manjaro", "Arch"),
    ("Manjaro ARM", "Arch"),
    ("Antergos", "Arch"),
    ("EndeavourOS", "Arch"),
    ("ALT", "RedHat"),
    ("Trisquel", "Debian"),
    ("GCEL", "Debian"),
    ("Linaro", "Debian"),
    ("elementary OS", "Debian"),
    ("elementary", "Debian"),
    ("Univention", "Debian"),
    ("ScientificLinux", "RedHat"),
    ("Raspbian", "Debian"),
    ("Devuan", "Debian"),
    ("antiX", "Debian"),
    ("Kali", "Debian"),
    ("Parrot OS", "Debian"),
    ("neon", "Debian"),
    ("Cumulus", "Debian"),
    ("Deepin", "Debian"),
    ("NILinuxRT", "NILinuxRT"),
    ("KDE neon", "Debian"),
    ("Void", "Void"),
    ("IDMS", "Debian"),
    ("Funtoo", "Gentoo"),
    ("TurnKey", "Debian"),
    ("Pop", "Debian"),
    ("Rocky", "RedHat"),
    ("AstraLinuxCE", "Debian"),
    ("AstraLinuxSE", "Debian"),
    ("Alinux", "RedHat"),
    ("Mendel", "Debian"),
    ("OSMC", "Debian"),
];

fn lookup(table: &[(&str, &'static str)], key: &str) -> Option<&'static str> {
    table.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

/// Removes every ` Linux` / ` GNU/Linux` (after any non-word character,
/// case-insensitively), as Salt's `_REPLACE_LINUX_RE`.
fn without_linux(name: &str) -> String {
    let lower = name.to_lowercase();
    if lower.len() != name.len() {
        return name.to_owned(); // a case change moved bytes: leave it
    }
    let mut out = String::new();
    let mut i = 0;
    while i < name.len() {
        let c = name[i..].chars().next().expect("in bounds");
        let word = c.is_alphanumeric() || c == '_';
        if !word {
            let rest = &lower[i + c.len_utf8()..];
            let cut = ["gnu/linux", "linux"]
                .iter()
                .find(|p| rest.starts_with(**p));
            if let Some(p) = cut {
                i += c.len_utf8() + p.len();
                continue;
            }
        }
        out.push(c);
        i += c.len_utf8();
    }
    out
}

/// Salt's `_derive_os_grain`: the `os` grain from a distribution's name.
pub fn derive_os(full_name: &str, id: Option<&str>) -> String {
    match (id, full_name) {
        (Some("astra"), "Astra Linux (Orel)") => return "AstraLinuxCE".into(),
        (Some("astra"), "Astra Linux (Smolensk)") => return "AstraLinuxSE".into(),
        (Some("pop"), "Pop!_OS") => return "Pop".into(),
        _ => {}
    }
    let distro = without_linux(full_name).trim().to_owned();
    let short: String = distro
        .chars()
        .filter(|c| *c != ' ')
        .flat_map(char::to_lowercase)
        .take(10)
        .collect();
    lookup(OS_NAME_MAP, &short)
        .map(str::to_owned)
        .unwrap_or(distro)
}

/// Salt's `os_family`: its table for the `os` grain, else the oldest
/// ancestor in `ID_LIKE` (any Debian or Ubuntu ancestry is Debian; Fedora
/// is RedHat), capitalised as Python's `str.capitalize`.
pub fn os_family(os: &str, id: &str, id_like: &[String]) -> String {
    if let Some(f) = lookup(OS_FAMILY_MAP, os) {
        return f.to_owned();
    }
    let family_id = if id_like.is_empty() {
        id
    } else if id == "debian"
        || id == "ubuntu"
        || id_like.iter().any(|l| l == "debian" || l == "ubuntu")
    {
        "debian"
    } else {
        id_like.last().map(String::as_str).unwrap_or(id)
    };
    if family_id == "fedora" {
        return "RedHat".into();
    }
    let mut chars = family_id.chars();
    match chars.next() {
        Some(f) => f
            .to_uppercase()
            .chain(chars.flat_map(char::to_lowercase))
            .collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_family_follows_id_like_and_falls_back_to_the_id() {
        assert_eq!(os_family("Ubuntu", "ubuntu", &[]), "Debian");
        assert_eq!(
            os_family("Pop", "pop", &["ubuntu".into(), "debian".into()]),
            "Debian"
        );
        assert_eq!(os_family("Rocky", "rocky", &[]), "RedHat");
        assert_eq!(os_family("NixOS", "nixos", &[]), "Nixos");
        assert_eq!(
            os_family("Foo", "foo", &["rhel".into(), "fedora".into()]),
            "RedHat"
        );
        assert_eq!(os_family("Gentoo", "gentoo", &[]), "Gentoo");
    }

    #[test]
    fn derived_os_names() {
        assert_eq!(derive_os("Debian GNU/Linux", Some("debian")), "Debian");
        assert_eq!(derive_os("CentOS Stream", Some("centos")), "CentOS Stream");
        assert_eq!(derive_os("Pop!_OS", Some("pop")), "Pop");
        assert_eq!(derive_os("Amazon Linux", Some("amzn")), "Amazon");
        assert_eq!(derive_os("NixOS", Some("nixos")), "NixOS");
    }
}
