//! Mounted filesystems and the filesystem types the kernel knows:
//! `/proc/self/mounts` (parsed as text, octal escapes undone) with each
//! mount's size from `statvfs(3)`, and `/proc/filesystems`. Only the size
//! is kept: what is free or used changes by the second and comes from the
//! usage report instead (see `cluster_model::facts`).

use super::root::Root;

/// One line of `/proc/self/mounts`, with its size when `statvfs` answered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mount {
    pub device: String,
    pub path: String,
    pub fstype: String,
    pub options: Vec<String>,
    /// Blocks times fragment size; `None` when `statvfs` failed.
    pub size_bytes: Option<u64>,
}

pub fn collect(root: &Root) -> Option<Vec<Mount>> {
    let text = root.read("/proc/self/mounts").ok()?;
    let mut mounts = parse_mounts(&text);
    // A fixture tree's mounts are not mounted here: no sizes for them.
    if root.path("/") == std::path::Path::new("/") {
        for m in &mut mounts {
            m.size_bytes = size_of(std::path::Path::new(&m.path));
        }
    }
    Some(mounts)
}

/// `/proc/filesystems`' types that need a device (no `nodev` mark).
pub fn collect_filesystems(root: &Root) -> Option<Vec<String>> {
    root.read("/proc/filesystems")
        .ok()
        .map(|t| parse_filesystems(&t))
}

/// Each well-formed line: device, path, type, options (then dump and
/// pass, ignored). Fields are unescaped (`\040` is a space).
pub fn parse_mounts(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let (device, path, fstype, options) = (f.next()?, f.next()?, f.next()?, f.next()?);
            Some(Mount {
                device: unescape(device),
                path: unescape(path),
                fstype: unescape(fstype),
                options: options.split(',').map(unescape).collect(),
                size_bytes: None,
            })
        })
        .collect()
}

/// The kernel's `\ooo` escapes (space, tab, newline, backslash) undone;
/// anything else is kept as written.
pub fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) if b[i] == b'\\' => {
                let v = d.iter().fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
                match u8::try_from(v) {
                    Ok(v) => out.push(v),
                    Err(_) => out.extend_from_slice(&b[i..i + 4]),
                }
                i += 4;
            }
            _ => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The types without `nodev`, sorted.
pub fn parse_filesystems(text: &str) -> Vec<String> {
    let mut types: Vec<String> = text
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let first = w.next()?;
            w.next().is_none().then(|| first.to_owned())
        })
        .collect();
    types.sort();
    types.dedup();
    types
}

/// The filesystem's size at `path`. `statvfs` on a stale network mount can
/// block; the agent collects facts on a blocking thread, off the runtime.
fn size_of(path: &std::path::Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `c` is a NUL-terminated path and `st` is a valid out pointer
    // for one `statvfs`, read only after the call reports success.
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: the call succeeded, so it filled `st`.
    let st = unsafe { st.assume_init() };
    // `fsblkcnt_t` and `c_ulong` are 32 bits on some targets.
    #[allow(clippy::useless_conversion)]
    let size = u64::from(st.f_blocks).saturating_mul(u64::from(st.f_frsize));
    Some(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(device: &str, path: &str, fstype: &str, options: &[&str]) -> Mount {
        Mount {
            device: device.into(),
            path: path.into(),
            fstype: fstype.into(),
            options: options.iter().map(|o| o.to_string()).collect(),
            size_bytes: None,
        }
    }

    #[test]
    fn mounts_parsed_and_unescaped() {
        let text = "/dev/vda1 / ext4 rw,relatime,errors=remount-ro 0 0\n\
            proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0\n\
            /dev/sdb1 /mnt/My\\040Disk vfat rw,fmask=0022 0 0\n\
            server:/a\\011b /srv/back\\134slash nfs4 rw 0 0\n\
            short line\n\
            \n";
        assert_eq!(
            parse_mounts(text),
            [
                mount(
                    "/dev/vda1",
                    "/",
                    "ext4",
                    &["rw", "relatime", "errors=remount-ro"]
                ),
                mount(
                    "proc",
                    "/proc",
                    "proc",
                    &["rw", "nosuid", "nodev", "noexec", "relatime"]
                ),
                mount("/dev/sdb1", "/mnt/My Disk", "vfat", &["rw", "fmask=0022"]),
                mount("server:/a\tb", "/srv/back\\slash", "nfs4", &["rw"]),
            ]
        );
    }

    #[test]
    fn escapes() {
        let cases = [
            ("plain", "plain"),
            ("a\\040b", "a b"),
            ("new\\012line", "new\nline"),
            ("\\134", "\\"),
            ("trailing\\04", "trailing\\04"),
            ("not\\089octal", "not\\089octal"),
            ("\\777", "\\777"),
        ];
        for (field, want) in cases {
            assert_eq!(unescape(field), want, "{field}");
        }
    }

    #[test]
    fn filesystems_without_nodev_sorted() {
        let text = "nodev\tsysfs\nnodev\ttmpfs\n\text4\n\tvfat\nnodev\tproc\n\tbtrfs\n\tfuseblk\n";
        assert_eq!(
            parse_filesystems(text),
            ["btrfs", "ext4", "fuseblk", "vfat"]
        );
    }

    #[test]
    fn sizes_from_statvfs() {
        assert!(size_of(std::path::Path::new("/")).is_some_and(|s| s > 0));
        assert_eq!(size_of(std::path::Path::new("/no/such/mount")), None);
    }
}
