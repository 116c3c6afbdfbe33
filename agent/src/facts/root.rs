//! Where the machine is read from: [`Root`], a directory that stands for `/`,
//! plus the few facts that come from calls rather than files (environment
//! variables, per-interface IPv4 addresses, the machine's architecture).
//!
//! [`Root::host`] is the running machine. [`Root::new`] is a fixture tree in a
//! directory, with those calls answered by what the test gave it
//! ([`Root::with_env`], [`Root::with_ipv4`], [`Root::with_arch`]), so the whole
//! collection runs against fixed contents.
//!
//! Every read returns an `io::Result` or an `Option`: a file that cannot be
//! read makes its fact absent, never empty.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

/// IPv4 addresses with their prefix length, per interface name.
pub type Ipv4ByInterface = BTreeMap<String, Vec<(Ipv4Addr, u8)>>;

/// A root directory to read the machine from.
#[derive(Debug, Clone)]
pub struct Root {
    dir: PathBuf,
    calls: Calls,
}

/// How the facts that are not files are answered.
#[derive(Debug, Clone)]
enum Calls {
    /// The running process and kernel: `std::env`, sysinfo, uname.
    Live,
    /// What a test set.
    Fixed(Fixed),
}

#[derive(Debug, Clone, Default)]
struct Fixed {
    env: BTreeMap<String, String>,
    /// `None` until a test adds an address: the source then reads as broken.
    ipv4: Option<Ipv4ByInterface>,
    arch: Option<String>,
}

impl Root {
    /// The running machine, read from `/`.
    pub fn host() -> Root {
        Root {
            dir: PathBuf::from("/"),
            calls: Calls::Live,
        }
    }

    /// A fixture tree under `dir`, with no environment, no IPv4 source and
    /// no architecture until the test sets them.
    pub fn new(dir: impl Into<PathBuf>) -> Root {
        Root {
            dir: dir.into(),
            calls: Calls::Fixed(Fixed::default()),
        }
    }

    /// Sets an environment variable a fixture root answers with.
    pub fn with_env(mut self, name: &str, value: &str) -> Root {
        if let Calls::Fixed(f) = &mut self.calls {
            f.env.insert(name.to_owned(), value.to_owned());
        }
        self
    }

    /// Adds an IPv4 address of `iface`; an empty `addr` only marks the IPv4
    /// source as working (a machine with no IPv4 address at all).
    pub fn with_ipv4(mut self, iface: &str, addr: &str) -> Root {
        if let Calls::Fixed(f) = &mut self.calls {
            let map = f.ipv4.get_or_insert_with(BTreeMap::new);
            if let Some((ip, prefix)) = addr.split_once('/') {
                let ip: Ipv4Addr = ip.parse().expect("a fixture IPv4 address");
                let prefix: u8 = prefix.parse().expect("a fixture prefix length");
                map.entry(iface.to_owned()).or_default().push((ip, prefix));
            }
        }
        self
    }

    /// Sets the architecture uname would report.
    pub fn with_arch(mut self, arch: &str) -> Root {
        if let Calls::Fixed(f) = &mut self.calls {
            f.arch = Some(arch.to_owned());
        }
        self
    }

    /// `path` (absolute, as on the machine) under this root, not following
    /// links.
    pub fn path(&self, path: &str) -> PathBuf {
        self.dir.join(path.trim_start_matches('/'))
    }

    /// `path` under this root with its links followed inside the root, as
    /// a chroot would: `/etc/localtime -> /usr/share/zoneinfo/UTC` in a
    /// fixture tree stays in the tree.
    fn resolve(&self, path: &str) -> PathBuf {
        if self.dir == Path::new("/") {
            return PathBuf::from(path);
        }
        let mut todo: Vec<String> = path.split('/').rev().map(str::to_owned).collect();
        let mut done: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(part) = todo.pop() {
            match part.as_str() {
                "" | "." => continue,
                ".." => {
                    done.pop();
                    continue;
                }
                _ => {}
            }
            done.push(part);
            let here = self.dir.join(done.join("/"));
            let Ok(target) = std::fs::read_link(&here) else {
                continue;
            };
            hops += 1;
            if hops > 40 {
                break;
            }
            done.pop();
            let target = target.to_string_lossy().into_owned();
            if target.starts_with('/') {
                done.clear();
            }
            todo.extend(target.split('/').rev().map(str::to_owned));
        }
        self.dir.join(done.join("/"))
    }

    /// A text file, invalid UTF-8 replaced (firmware strings are not always
    /// clean).
    pub fn read(&self, path: &str) -> io::Result<String> {
        let bytes = std::fs::read(self.resolve(path))?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// A text file, trimmed; `None` when unreadable or empty.
    pub fn read_value(&self, path: &str) -> Option<String> {
        let text = self.read(path).ok()?;
        let text = text.trim();
        (!text.is_empty()).then(|| text.to_owned())
    }

    /// At most `max` bytes from the start of a file.
    pub fn read_head(&self, path: &str, max: u64) -> io::Result<Vec<u8>> {
        let mut buf = Vec::new();
        std::fs::File::open(self.resolve(path))?
            .take(max)
            .read_to_end(&mut buf)?;
        Ok(buf)
    }

    /// The names in a directory, sorted.
    pub fn list(&self, path: &str) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(self.resolve(path))? {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    /// Where a symbolic link points, as written in the link.
    pub fn link(&self, path: &str) -> io::Result<PathBuf> {
        let (parent, name) = path.rsplit_once('/').unwrap_or(("", path));
        std::fs::read_link(self.resolve(parent).join(name))
    }

    /// Whether `path` exists (following links, as Python's `os.path.exists`).
    pub fn exists(&self, path: &str) -> bool {
        self.resolve(path).exists()
    }

    /// Whether `path` is a directory (following links).
    pub fn is_dir(&self, path: &str) -> bool {
        self.resolve(path).is_dir()
    }

    /// Whether two paths are the same file (device and inode); `None` when
    /// either cannot be examined.
    pub fn same_file(&self, a: &str, b: &str) -> Option<bool> {
        use std::os::unix::fs::MetadataExt;
        let a = std::fs::metadata(self.resolve(a)).ok()?;
        let b = std::fs::metadata(self.resolve(b)).ok()?;
        Some(a.dev() == b.dev() && a.ino() == b.ino())
    }

    /// An environment variable of the agent process (not valid UTF-8: none).
    pub fn env(&self, name: &str) -> Option<String> {
        match &self.calls {
            Calls::Live => std::env::var(name).ok(),
            Calls::Fixed(f) => f.env.get(name).cloned(),
        }
    }

    /// The IPv4 addresses of every interface, sorted; `None` when the source
    /// fails. Live, this is sysinfo's `Networks` (getifaddrs underneath).
    pub fn ipv4(&self) -> Option<Ipv4ByInterface> {
        match &self.calls {
            Calls::Live => {
                let networks = sysinfo::Networks::new_with_refreshed_list().ok()?;
                let mut map = Ipv4ByInterface::new();
                for (name, data) in networks.iter() {
                    let list = map.entry(name.to_string_lossy().into_owned()).or_default();
                    for net in data.ip_networks() {
                        if let IpAddr::V4(a) = net.addr {
                            list.push((a, net.prefix));
                        }
                    }
                    list.sort();
                    list.dedup();
                }
                Some(map)
            }
            Calls::Fixed(f) => f.ipv4.clone(),
        }
    }

    /// The machine's architecture as uname reports it (`x86_64`, `aarch64`).
    pub fn arch(&self) -> Option<String> {
        match &self.calls {
            Calls::Live => Some(sysinfo::System::cpu_arch()),
            Calls::Fixed(f) => f.arch.clone(),
        }
    }
}

/// A fixture tree: files written under a temporary directory, for tests.
#[cfg(test)]
pub struct Tree {
    pub dir: tempfile::TempDir,
}

#[cfg(test)]
impl Default for Tree {
    fn default() -> Tree {
        Tree::new()
    }
}

#[cfg(test)]
impl Tree {
    pub fn new() -> Tree {
        Tree {
            dir: tempfile::tempdir().expect("a temporary directory"),
        }
    }

    /// Writes `contents` at `path` (absolute, as on the machine).
    pub fn file(&self, path: &str, contents: &str) -> &Tree {
        let p = self.dir.path().join(path.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().expect("a parent")).expect("mkdir");
        std::fs::write(&p, contents).expect("write a fixture file");
        self
    }

    /// Makes a directory at `path`.
    pub fn dir(&self, path: &str) -> &Tree {
        let p = self.dir.path().join(path.trim_start_matches('/'));
        std::fs::create_dir_all(p).expect("mkdir");
        self
    }

    /// Makes `path` a symbolic link to `target` (written as given).
    pub fn link(&self, path: &str, target: &str) -> &Tree {
        let p = self.dir.path().join(path.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().expect("a parent")).expect("mkdir");
        std::os::unix::fs::symlink(target, &p).expect("symlink");
        self
    }

    pub fn root(&self) -> Root {
        Root::new(self.dir.path())
    }
}

/// The last component of a path written as text.
pub fn basename(path: &str) -> &str {
    Path::new(path)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixture_root_reads_lists_and_follows_nothing_it_was_not_given() {
        let t = Tree::new();
        t.file("/proc/cpuinfo", "processor : 0\n")
            .file("/sys/class/dmi/id/sys_vendor", "  QEMU \n")
            .file("/sys/class/dmi/id/product_serial", "\n")
            .link("/sys/block/loop0", "../devices/virtual/block/loop0")
            .dir("/sys/block/vda");
        let root = t.root().with_env("LANG", "C.UTF-8");
        assert_eq!(root.read("/proc/cpuinfo").unwrap(), "processor : 0\n");
        assert_eq!(
            root.read_value("/sys/class/dmi/id/sys_vendor").as_deref(),
            Some("QEMU")
        );
        assert_eq!(root.read_value("/sys/class/dmi/id/product_serial"), None);
        assert_eq!(root.read_value("/sys/class/dmi/id/product_uuid"), None);
        assert_eq!(root.list("/sys/block").unwrap(), ["loop0", "vda"]);
        assert_eq!(
            root.link("/sys/block/loop0").unwrap(),
            PathBuf::from("../devices/virtual/block/loop0")
        );
        assert!(root.link("/sys/block/vda").is_err());
        assert!(root.is_dir("/sys/block/vda"));
        assert!(!root.exists("/.dockerenv"));
        assert_eq!(root.env("LANG").as_deref(), Some("C.UTF-8"));
        assert_eq!(root.env("PATH"), None);
        assert_eq!(root.ipv4(), None);
        assert_eq!(root.arch(), None);
        assert_eq!(root.same_file("/sys", "/sys/block/../"), Some(true));
        assert_eq!(root.same_file("/sys", "/proc"), Some(false));
        assert_eq!(root.read_head("/proc/cpuinfo", 4).unwrap(), b"proc");
    }

    #[test]
    fn links_are_followed_inside_the_root() {
        let t = Tree::new();
        t.file("/usr/share/zoneinfo/Etc/UTC", "TZif")
            .link("/etc/localtime", "/usr/share/zoneinfo/Etc/UTC")
            .file("/sys/devices/virtual/block/loop0/queue/rotational", "0\n")
            .link("/sys/block/loop0", "../devices/virtual/block/loop0")
            .link("/etc/escape", "/nonexistent-outside-the-tree");
        let root = t.root();
        assert_eq!(root.read("/etc/localtime").unwrap(), "TZif");
        assert_eq!(
            root.read("/sys/block/loop0/queue/rotational").unwrap(),
            "0\n"
        );
        assert!(root.read("/etc/escape").is_err());
        assert!(root.is_dir("/sys/block/loop0/queue"));
        t.dir("/sys/devices/pci0000:00/virtio2/net/eth0")
            .link(
                "/sys/class/net/eth0",
                "../../devices/pci0000:00/virtio2/net/eth0",
            )
            .link(
                "/sys/devices/pci0000:00/virtio2/net/eth0/device",
                "../../../virtio2",
            );
        assert_eq!(
            root.link("/sys/class/net/eth0/device").unwrap(),
            PathBuf::from("../../../virtio2")
        );
    }

    #[test]
    fn fixture_ipv4_marks_the_source_working_even_without_addresses() {
        let root = Root::new("/nonexistent").with_ipv4("lo", "");
        assert_eq!(root.ipv4(), Some(Ipv4ByInterface::new()));
        let root = root.with_ipv4("eth0", "10.0.0.5/24");
        assert_eq!(
            root.ipv4().unwrap()["eth0"],
            [(Ipv4Addr::new(10, 0, 0, 5), 24)]
        );
    }
}
