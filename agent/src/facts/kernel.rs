//! The kernel and what it started: `/proc/sys/kernel/*` (the uname fields),
//! `/proc/cmdline` (`kernelparams`), the init system (`init`) and systemd's
//! version (`systemd`).

use super::root::{Root, basename};

/// The uname fields, boot parameters and init.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Kernel {
    /// `Linux` (`/proc/sys/kernel/ostype`).
    pub name: Option<String>,
    /// `6.1.0-18-amd64` (`osrelease`).
    pub release: Option<String>,
    /// `#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)` (`version`).
    pub version: Option<String>,
    /// `x86_64` (`/proc/sys/kernel/arch`, else uname).
    pub arch: Option<String>,
    /// `/proc/cmdline`, split the shell's way.
    pub params: Option<Vec<(String, Option<String>)>>,
    /// The init system's name, Salt's way.
    pub init: Option<String>,
    pub systemd: Option<Systemd>,
    /// Whether the kernel runs in FIPS mode (`/proc/sys/crypto/fips_enabled`
    /// is `1`); `false` for a kernel without that file, as Facter says,
    /// `None` without procfs.
    pub fips_enabled: Option<bool>,
}

/// systemd as installed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Systemd {
    /// `252`, from the name of `libsystemd-shared-252.so`.
    pub version: String,
}

/// How much of `/sbin/init` is searched for an init system's name.
const INIT_SCAN_LIMIT: u64 = 2 * 1024 * 1024;

pub fn collect(root: &Root) -> Kernel {
    Kernel {
        name: root.read_value("/proc/sys/kernel/ostype"),
        release: root.read_value("/proc/sys/kernel/osrelease"),
        version: root.read_value("/proc/sys/kernel/version"),
        arch: root
            .read_value("/proc/sys/kernel/arch")
            .or_else(|| root.arch()),
        params: root.read("/proc/cmdline").ok().map(|t| kernel_params(&t)),
        init: collect_init(root),
        systemd: collect_systemd(root),
        fips_enabled: match root.read_value("/proc/sys/crypto/fips_enabled") {
            Some(v) => Some(v == "1"),
            None => root.exists("/proc/sys/kernel").then_some(false),
        },
    }
}

fn collect_init(root: &Root) -> Option<String> {
    if root.exists("/run/systemd/system") {
        return Some("systemd".into());
    }
    let cmdline = root.read("/proc/1/cmdline").ok()?;
    let args: Vec<&str> = cmdline
        .split(['\0', ' ', '\t', '\n'])
        .filter(|a| !a.is_empty())
        .collect();
    let binary = args
        .first()
        .filter(|a| a.starts_with('/') && a.ends_with("bin/init"))
        .and_then(|a| root.read_head(a, INIT_SCAN_LIMIT).ok());
    Some(init_system(&args, binary.as_deref()).to_owned())
}

/// Salt's `_linux_init_system` after `/run/systemd/system` was not found:
/// `args` is pid 1's command line, `binary` the head of the program when it
/// is a `…bin/init`.
pub fn init_system(args: &[&str], binary: Option<&[u8]>) -> &'static str {
    if let Some(bytes) = binary {
        let lower = bytes.to_ascii_lowercase();
        for name in ["upstart", "sysvinit", "systemd"] {
            if lower.windows(name.len()).any(|w| w == name.as_bytes()) {
                return name;
            }
        }
        return "unknown";
    }
    let named = |n: &str| args.iter().any(|a| basename(a) == n);
    match args.first().map(|a| basename(a)) {
        _ if named("supervisord") => "supervisord",
        _ if named("dumb-init") => "dumb-init",
        _ if named("tini") => "tini",
        _ if args == ["runit"] || args.contains(&"/sbin/my_init") => "runit",
        // Not Salt's: it finds neither, but they are what runs.
        Some("runit-init") | Some("runit") => "runit",
        Some("openrc-init") => "openrc",
        _ => "unknown",
    }
}

fn collect_systemd(root: &Root) -> Option<Systemd> {
    let mut dirs: Vec<String> = ["/usr/lib/systemd", "/lib/systemd", "/usr/lib64/systemd"]
        .map(String::from)
        .to_vec();
    // Debian and Ubuntu put it under the multiarch triplet.
    for entry in root.list("/usr/lib").unwrap_or_default() {
        if entry.contains("-linux-") {
            dirs.push(format!("/usr/lib/{entry}/systemd"));
        }
    }
    dirs.iter().find_map(|d| {
        let names = root.list(d).ok()?;
        names.iter().find_map(|n| systemd_version(n))
    })
}

/// The version in a `libsystemd-shared-NNN….so` file name.
pub fn systemd_version(file: &str) -> Option<Systemd> {
    let rest = file.strip_prefix("libsystemd-shared-")?;
    if !rest.ends_with(".so") {
        return None;
    }
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    (!digits.is_empty()).then_some(Systemd { version: digits })
}

/// Salt's `kernelparams`: the command line split as a POSIX shell would,
/// each word split at its first `=`.
pub fn kernel_params(cmdline: &str) -> Vec<(String, Option<String>)> {
    shell_words(cmdline)
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) => (k.to_owned(), Some(v.trim_matches('"').to_owned())),
            None => (w, None),
        })
        .collect()
}

/// Python's `shlex.split` (POSIX mode, no comments): words at unquoted
/// whitespace, quotes removed, backslash escaping outside single quotes.
fn shell_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if let Some(w) = word.take() {
                    words.push(w);
                }
            }
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                for q in chars.by_ref() {
                    if q == '\'' {
                        break;
                    }
                    w.push(q);
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                while let Some(q) = chars.next() {
                    match q {
                        '"' => break,
                        '\\' => match chars.next() {
                            Some(e @ ('"' | '\\')) => w.push(e),
                            Some(e) => {
                                w.push('\\');
                                w.push(e);
                            }
                            None => w.push('\\'),
                        },
                        q => w.push(q),
                    }
                }
            }
            '\\' => {
                let w = word.get_or_insert_with(String::new);
                if let Some(e) = chars.next() {
                    w.push(e);
                }
            }
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    words
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::root::Tree;

    type Params = Vec<(String, Option<String>)>;

    #[test]
    fn kernel_params_in_salts_shape() {
        let some = |s: &str| Some(s.to_owned());
        let cases: &[(&str, Params)] = &[
            (
                "BOOT_IMAGE=/vmlinuz-6.1.0-18-amd64 root=UUID=4f2c ro quiet\n",
                vec![
                    ("BOOT_IMAGE".into(), some("/vmlinuz-6.1.0-18-amd64")),
                    ("root".into(), some("UUID=4f2c")),
                    ("ro".into(), None),
                    ("quiet".into(), None),
                ],
            ),
            (
                "console=ttyS0 dyndbg=\"file drm* +p\" init='/bin/my init' a\\ b",
                vec![
                    ("console".into(), some("ttyS0")),
                    ("dyndbg".into(), some("file drm* +p")),
                    ("init".into(), some("/bin/my init")),
                    ("a b".into(), None),
                ],
            ),
            ("", vec![]),
        ];
        for (line, want) in cases {
            assert_eq!(&kernel_params(line), want, "{line}");
        }
    }

    /// pid 1's arguments, the head of its program, the answer.
    type InitCase<'a> = (&'a [&'a str], Option<&'a [u8]>, &'a str);

    #[test]
    fn init_from_pid_1() {
        let cases: &[InitCase] = &[
            (
                &["/sbin/init"],
                Some(b"\x7fELF...SysVinit version 3.06..."),
                "sysvinit",
            ),
            (
                &["/sbin/init", "splash"],
                Some(b"..UPSTART_JOB.."),
                "upstart",
            ),
            (&["/sbin/init"], Some(b"\x7fELF busybox"), "unknown"),
            (
                &["/usr/bin/python3", "/usr/bin/supervisord", "-n"],
                None,
                "supervisord",
            ),
            (&["/usr/bin/dumb-init", "--", "app"], None, "dumb-init"),
            (&["/sbin/tini", "--", "app"], None, "tini"),
            (&["/sbin/docker-init", "--", "app"], None, "unknown"),
            (&["runit"], None, "runit"),
            (&["/sbin/my_init"], None, "runit"),
            (&["/sbin/openrc-init"], None, "openrc"),
            (&["/bin/sh", "-c", "sleep infinity"], None, "unknown"),
            (&[], None, "unknown"),
        ];
        for (args, binary, want) in cases {
            assert_eq!(init_system(args, *binary), *want, "{args:?}");
        }
    }

    #[test]
    fn init_is_systemd_when_it_says_so_else_pid_1_decides() {
        let t = Tree::new();
        t.dir("/run/systemd/system")
            .file("/proc/1/cmdline", "/sbin/init\0");
        assert_eq!(collect_init(&t.root()).as_deref(), Some("systemd"));
        let t = Tree::new();
        t.file("/proc/1/cmdline", "/sbin/init\0splash\0")
            .file("/sbin/init", "...sysvinit...");
        assert_eq!(collect_init(&t.root()).as_deref(), Some("sysvinit"));
        let t = Tree::new();
        t.file("/proc/1/cmdline", "sleep\0infinity\0");
        assert_eq!(collect_init(&t.root()).as_deref(), Some("unknown"));
        assert_eq!(collect_init(&Tree::new().root()), None);
    }

    #[test]
    fn systemd_version_from_the_shared_library_name() {
        let v = |n: &str| systemd_version(n).map(|s| s.version);
        assert_eq!(v("libsystemd-shared-252.so").as_deref(), Some("252"));
        assert_eq!(
            v("libsystemd-shared-254.10-1.fc39.so").as_deref(),
            Some("254")
        );
        assert_eq!(v("libsystemd-core-252.so"), None);
        assert_eq!(v("libsystemd-shared-.so"), None);
        let t = Tree::new();
        t.file(
            "/usr/lib/x86_64-linux-gnu/systemd/libsystemd-shared-255.so",
            "",
        )
        .file(
            "/usr/lib/x86_64-linux-gnu/systemd/libsystemd-core-255.so",
            "",
        );
        assert_eq!(
            collect_systemd(&t.root()).map(|s| s.version).as_deref(),
            Some("255")
        );
        assert_eq!(collect_systemd(&Tree::new().root()), None);
    }

    #[test]
    fn uname_fields_from_proc() {
        let t = Tree::new();
        t.file("/proc/sys/kernel/ostype", "Linux\n")
            .file("/proc/sys/kernel/osrelease", "6.1.0-18-amd64\n")
            .file(
                "/proc/sys/kernel/version",
                "#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)\n",
            );
        let k = collect(&t.root().with_arch("x86_64"));
        assert_eq!(k.name.as_deref(), Some("Linux"));
        assert_eq!(k.release.as_deref(), Some("6.1.0-18-amd64"));
        assert_eq!(
            k.version.as_deref(),
            Some("#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)")
        );
        assert_eq!(k.arch.as_deref(), Some("x86_64"));
        assert_eq!(k.params, None);
    }
}
