//! Tests of [`HostsFile`] on real files in temporary directories: writing
//! only on change, keeping mode and owner, refusing bad input without touching
//! anything, the in-place fallback, `plan`, and readers never seeing a partial
//! file while the agent rewrites it.

use super::{HostEntry, HostsError, HostsFile, NoLease, RenderError, Written, render};
use std::io;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn e(address: &str, names: &[&str]) -> HostEntry {
    HostEntry::new(address, names.iter().copied())
}

fn web() -> Vec<HostEntry> {
    vec![
        e("10.0.0.1", &["web-1.example.com", "web-1"]),
        e("10.0.0.2", &["web-2.example.com", "web-2"]),
    ]
}

/// A hosts file at `dir/hosts` holding `content` (none when `None`).
fn hosts(dir: &Path, content: Option<&str>) -> HostsFile {
    let path = dir.join("hosts");
    if let Some(c) = content {
        std::fs::write(&path, c).unwrap();
    }
    HostsFile::new(path)
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Inode, mtime and content: what "untouched" means.
fn fingerprint(path: &Path) -> (u64, i64, i64, Vec<u8>) {
    let m = std::fs::metadata(path).unwrap();
    (
        m.ino(),
        m.mtime(),
        m.mtime_nsec(),
        std::fs::read(path).unwrap(),
    )
}

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn apply_writes_once_then_leaves_the_file_alone() {
    let dir = tempfile::tempdir().unwrap();
    let original = "127.0.0.1\tlocalhost\n10.9.9.9 web-1\n";
    let file = hosts(dir.path(), Some(original));
    assert_eq!(file.apply(&web()).unwrap(), Written::Renamed);
    let expected = render(original, None, &web()).unwrap();
    assert_eq!(std::fs::read_to_string(&file.path).unwrap(), expected);
    let before = fingerprint(&file.path);
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(file.apply(&web()).unwrap(), Written::Unchanged);
    assert_eq!(fingerprint(&file.path), before);
    assert_eq!(listing(dir.path()), ["hosts"], "no temporary file is left");
    // New entries are written; the text outside the block is not touched.
    assert_eq!(file.apply(&web()[..1]).unwrap(), Written::Renamed);
    let now = std::fs::read_to_string(&file.path).unwrap();
    assert!(now.starts_with(original), "{now:?}");
    assert!(!now.contains("web-2"), "{now:?}");
}

#[test]
fn a_missing_file_is_created_0644_whatever_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    let file = hosts(dir.path(), None);
    // SAFETY: umask has no preconditions; the old mask is restored at once.
    let old = unsafe { libc::umask(0o077) };
    let written = file.apply(&web());
    unsafe { libc::umask(old) };
    assert_eq!(written.unwrap(), Written::Renamed);
    let mode = std::fs::metadata(&file.path).unwrap().permissions().mode();
    assert_eq!(mode & 0o7777, 0o644);
}

#[test]
fn mode_and_owner_are_kept() {
    for mode in [0o644, 0o640, 0o604, 0o600] {
        let dir = tempfile::tempdir().unwrap();
        let file = hosts(dir.path(), Some("127.0.0.1 localhost\n"));
        std::fs::set_permissions(&file.path, std::fs::Permissions::from_mode(mode)).unwrap();
        if running_as_root() {
            std::os::unix::fs::chown(&file.path, Some(1234), Some(5678)).unwrap();
        }
        assert_eq!(file.apply(&web()).unwrap(), Written::Renamed);
        let m = std::fs::metadata(&file.path).unwrap();
        assert_eq!(m.permissions().mode() & 0o7777, mode, "mode {mode:o}");
        if running_as_root() {
            assert_eq!((m.uid(), m.gid()), (1234, 5678));
        }
    }
}

#[test]
fn a_directory_is_an_error_and_nothing_is_created() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("hosts")).unwrap();
    let file = HostsFile::new(dir.path().join("hosts"));
    let err = file.apply(&web()).unwrap_err();
    assert!(
        matches!(&err, HostsError::NotAFile { path } if *path == file.path),
        "{err:?}"
    );
    assert!(matches!(
        file.plan(&web()),
        Err(HostsError::NotAFile { .. })
    ));
    assert_eq!(listing(dir.path()), ["hosts"]);
    assert!(listing(&file.path).is_empty());
}

#[test]
fn bad_input_is_an_error_and_the_file_is_untouched() {
    let broken = "127.0.0.1 localhost\n# BEGIN clusterctl — managed, do not edit\n10.0.0.1 a\n";
    let twice = format!("{}\n{}\n", super::BEGIN, super::END).repeat(2);
    type IsExpected = fn(&HostsError) -> bool;
    let cases: Vec<(&[u8], Vec<HostEntry>, IsExpected)> = vec![
        (broken.as_bytes(), web(), |e| {
            matches!(
                e,
                HostsError::Render {
                    source: RenderError::Unclosed { line: 2 },
                    ..
                }
            )
        }),
        (twice.as_bytes(), web(), |e| {
            matches!(
                e,
                HostsError::Render {
                    source: RenderError::SecondBlock { line: 3, first: 1 },
                    ..
                }
            )
        }),
        (
            b"127.0.0.1 localhost\n",
            vec![e("10.0.0.300", &["x"])],
            |e| {
                matches!(
                    e,
                    HostsError::Render {
                        source: RenderError::Address { .. },
                        ..
                    }
                )
            },
        ),
        (
            b"127.0.0.1 localhost\n",
            vec![e("10.0.0.3", &["bad_name"])],
            |e| {
                matches!(
                    e,
                    HostsError::Render {
                        source: RenderError::Name { .. },
                        ..
                    }
                )
            },
        ),
        (b"ok\n\xff\xfe bad\n", web(), |e| {
            matches!(e, HostsError::NotUtf8 { line: 2, .. })
        }),
    ];
    for (content, entries, is_expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        let file = HostsFile::new(dir.path().join("hosts"));
        std::fs::write(&file.path, content).unwrap();
        let before = fingerprint(&file.path);
        let err = file.apply(&entries).unwrap_err();
        assert!(is_expected(&err), "{err:?}");
        assert!(err.to_string().contains("hosts"), "names the file: {err}");
        let err = file.plan(&entries).unwrap_err();
        assert!(is_expected(&err), "{err:?}");
        assert_eq!(fingerprint(&file.path), before);
        assert_eq!(listing(dir.path()), ["hosts"]);
    }
}

#[test]
fn legacy_lines_go_on_top_and_a_missing_legacy_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let legacy = dir.path().join("hosts.legacy");
    let file = hosts(dir.path(), Some("127.0.0.1 localhost\n")).with_legacy(&legacy);
    let err = file.apply(&web()).unwrap_err();
    assert!(
        matches!(&err, HostsError::ReadLegacy { path, source }
            if *path == legacy && source.kind() == io::ErrorKind::NotFound),
        "{err:?}"
    );
    assert_eq!(listing(dir.path()), ["hosts"]);
    std::fs::write(&legacy, "10.5.5.5 old-db\r\n").unwrap();
    assert_eq!(file.apply(&web()).unwrap(), Written::Renamed);
    let text = std::fs::read_to_string(&file.path).unwrap();
    let block = format!(
        "{}\n10.5.5.5 old-db\n10.0.0.1\tweb-1.example.com web-1\n",
        super::BEGIN
    );
    assert!(text.contains(&block), "{text:?}");
}

#[test]
fn plan_returns_the_content_and_diff_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = hosts(dir.path(), None);
    let (content, diff) = missing.plan(&web()).unwrap();
    assert_eq!(content, render("", None, &web()).unwrap());
    assert!(diff.starts_with("@@ -0,0 +1,4 @@\n+# BEGIN"), "{diff}");
    assert!(listing(dir.path()).is_empty(), "plan created nothing");

    let file = hosts(dir.path(), Some("127.0.0.1 localhost\n"));
    file.apply(&web()).unwrap();
    let before = fingerprint(&file.path);
    let (content, diff) = file.plan(&web()[..1]).unwrap();
    assert_eq!(
        diff,
        format!(
            "@@ -1,5 +1,4 @@\n 127.0.0.1 localhost\n {}\n \
             10.0.0.1\tweb-1.example.com web-1\n\
             -10.0.0.2\tweb-2.example.com web-2\n {}\n",
            super::BEGIN,
            super::END
        )
    );
    assert!(!content.contains("web-2"));
    assert_eq!(file.plan(&web()).unwrap().1, "", "no change, no diff");
    assert_eq!(fingerprint(&file.path), before);
}

#[test]
fn a_target_that_cannot_be_renamed_over_is_rewritten_in_place() {
    for errno in [libc::EBUSY, libc::EXDEV, libc::EPERM] {
        let dir = tempfile::tempdir().unwrap();
        let file = hosts(dir.path(), Some("127.0.0.1 localhost\n"));
        let ino = std::fs::metadata(&file.path).unwrap().ino();
        let busy = |_: &Path, _: &Path| Err(io::Error::from_raw_os_error(errno));
        assert_eq!(file.apply_with(&web(), &busy).unwrap(), Written::InPlace);
        let text = std::fs::read_to_string(&file.path).unwrap();
        assert_eq!(text, render("127.0.0.1 localhost\n", None, &web()).unwrap());
        assert_eq!(std::fs::metadata(&file.path).unwrap().ino(), ino);
        assert_eq!(
            listing(dir.path()),
            ["hosts"],
            "the temporary file is removed"
        );
        // Shorter content truncates; the same content is not rewritten.
        assert_eq!(file.apply_with(&[], &busy).unwrap(), Written::InPlace);
        let shorter = render("127.0.0.1 localhost\n", None, &[]).unwrap();
        assert_eq!(std::fs::read_to_string(&file.path).unwrap(), shorter);
        assert_eq!(file.apply_with(&[], &busy).unwrap(), Written::Unchanged);
    }
}

#[test]
fn without_a_lease_the_rewrite_in_place_still_completes_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let file = hosts(dir.path(), Some("127.0.0.1 localhost\n"));
    let busy = |_: &Path, _: &Path| Err(io::Error::from_raw_os_error(libc::EBUSY));
    // Another process's reader, holding the file open all along: no lease
    // can be granted while it does.
    let held = std::fs::File::open(&file.path).unwrap();
    let started = Instant::now();
    assert_eq!(
        file.apply_with(&web(), &busy).unwrap(),
        Written::InPlaceUnguarded(NoLease::HeldOpen)
    );
    assert!(started.elapsed() >= super::LEASE_PATIENCE);
    let grown = render("127.0.0.1 localhost\n", None, &web()).unwrap();
    assert_eq!(std::fs::read_to_string(&file.path).unwrap(), grown);
    assert_eq!(
        file.apply_with(&[], &busy).unwrap(),
        Written::InPlaceUnguarded(NoLease::HeldOpen)
    );
    let shrunk = render("127.0.0.1 localhost\n", None, &[]).unwrap();
    assert_eq!(std::fs::read_to_string(&file.path).unwrap(), shrunk);
    drop(held);
    assert_eq!(file.apply_with(&web(), &busy).unwrap(), Written::InPlace);
    assert_eq!(std::fs::read_to_string(&file.path).unwrap(), grown);
}

/// A file bind-mounted over another — `/etc/hosts` in a container — undone
/// when dropped.
struct BindMount(PathBuf);

impl BindMount {
    fn new(source: &Path, target: &Path) -> BindMount {
        use std::os::unix::ffi::OsStrExt as _;
        let c = |p: &Path| std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
        let (src, dst) = (c(source), c(target));
        // SAFETY: two NUL-terminated paths; a bind mount takes no type or data.
        let rc = unsafe {
            libc::mount(
                src.as_ptr(),
                dst.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            )
        };
        assert_eq!(
            rc,
            0,
            "cannot bind-mount {} over {}: {} (the tests run as root, as CI runs them)",
            source.display(),
            target.display(),
            io::Error::last_os_error()
        );
        BindMount(target.to_owned())
    }
}

impl Drop for BindMount {
    fn drop(&mut self) {
        use std::os::unix::ffi::OsStrExt as _;
        let dst = std::ffi::CString::new(self.0.as_os_str().as_bytes()).unwrap();
        // SAFETY: a NUL-terminated path this test mounted.
        unsafe { libc::umount2(dst.as_ptr(), libc::MNT_DETACH) };
    }
}

/// The rewrite in place, over a real bind mount, while two readers that take
/// no lock read the file as a busy resolver does (open, read, close, some
/// 10,000 times a second each): 1,000 rewrites between a long block (several
/// pages) and a short one, and not one read sees anything but one whole
/// version or the other — no empty file, no prefix, no mix. (Without the
/// lease, about one read in 200 does.)
#[test]
fn a_bind_mounted_hosts_file_is_never_seen_empty_or_partial() {
    const REWRITES: usize = 1_000;
    let dir = tempfile::tempdir().unwrap();
    let original = "127.0.0.1 localhost\n::1 localhost\n";
    let source = dir.path().join("container-hosts");
    std::fs::write(&source, original).unwrap();
    let file = hosts(dir.path(), Some(original));
    let _mount = BindMount::new(&source, &file.path);
    let long: Vec<HostEntry> = (0..300u32)
        .map(|i| {
            let name = format!("web-{i:03}");
            e(
                &format!("10.0.{}.{}", i / 250, i % 250 + 1),
                &[&format!("{name}.cluster.example.com"), &name],
            )
        })
        .collect();
    let sets = [long, vec![e("10.0.9.9", &["db-1.example.com", "db-1"])]];
    let expected: Vec<String> = sets
        .iter()
        .map(|s| render(original, None, s).unwrap())
        .collect();
    assert!(expected[0].len() > 3 * 4096, "{}", expected[0].len());
    assert_eq!(file.apply(&sets[1]).unwrap(), Written::InPlace);

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (stop, path, expected) = (stop.clone(), file.path.clone(), expected.clone());
            std::thread::spawn(move || -> Result<[usize; 2], String> {
                let mut seen = [0, 0];
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
                    match expected.iter().position(|x| *x == text) {
                        Some(i) => seen[i] += 1,
                        None => {
                            return Err(format!(
                                "a read of {} bytes is neither version: {:?}…",
                                text.len(),
                                &text[..text.len().min(200)]
                            ));
                        }
                    }
                    std::thread::sleep(Duration::from_micros(50));
                }
                Ok(seen)
            })
        })
        .collect();
    for i in 0..REWRITES {
        assert_eq!(
            file.apply(&sets[i % 2]).unwrap(),
            Written::InPlace,
            "rewrite {i}"
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for reader in readers {
        let seen = reader.join().unwrap().unwrap();
        assert!(seen.iter().all(|&n| n > 0), "each version read: {seen:?}");
    }
    assert_eq!(std::fs::read_to_string(&source).unwrap(), expected[1]);
}

#[test]
fn another_rename_failure_is_an_error_and_the_file_is_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let file = hosts(dir.path(), Some("127.0.0.1 localhost\n"));
    let before = fingerprint(&file.path);
    let denied = |_: &Path, _: &Path| Err(io::Error::from_raw_os_error(libc::EACCES));
    let err = file.apply_with(&web(), &denied).unwrap_err();
    assert!(
        matches!(&err, HostsError::Rename { to, source, .. }
            if *to == file.path && source.raw_os_error() == Some(libc::EACCES)),
        "{err:?}"
    );
    assert_eq!(fingerprint(&file.path), before);
    assert_eq!(listing(dir.path()), ["hosts"]);
}

#[test]
fn a_symlink_is_followed_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real-hosts");
    std::fs::write(&real, "127.0.0.1 localhost\n").unwrap();
    let link = dir.path().join("hosts");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let file = HostsFile::new(&link);
    assert_eq!(file.apply(&web()).unwrap(), Written::Renamed);
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(std::fs::read_to_string(&real).unwrap().contains("web-2"));
    assert_eq!(file.apply(&web()).unwrap(), Written::Unchanged);
}

#[test]
fn ten_thousand_entries_render_and_write_quickly() {
    let entries: Vec<HostEntry> = (0..10_000u32)
        .map(|i| {
            let [_, _, a, b] = i.to_be_bytes();
            let name = format!("node-{i}");
            e(
                &format!("10.1.{a}.{b}"),
                &[&format!("{name}.cluster.example.com"), &name],
            )
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let file = hosts(dir.path(), Some("127.0.0.1 localhost\n"));
    let started = Instant::now();
    assert_eq!(file.apply(&entries).unwrap(), Written::Renamed);
    let elapsed = started.elapsed();
    let text = std::fs::read_to_string(&file.path).unwrap();
    assert_eq!(text.lines().count(), 10_003);
    // Generous: this is a debug build on a shared machine.
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    assert_eq!(file.apply(&entries).unwrap(), Written::Unchanged);
}

/// A reader reading in a tight loop while the file is rewritten thousands of
/// times sees one complete version or the other, never an empty or partial
/// file.
#[test]
fn readers_never_see_a_partial_file() {
    const APPLIES: usize = 2_000;
    // What is tested is what a rename shows readers, the same on every
    // filesystem; on tmpfs the fsyncs cost nothing, so all 2,000 rewrites fit
    // in a second. On disk each costs milliseconds, hence the time bound.
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    };
    let original = "127.0.0.1 localhost\n::1 localhost\n";
    let file = hosts(dir.path(), Some(original));
    let sets = [web(), vec![e("10.0.0.9", &["db-1.example.com", "db-1"])]];
    let expected: Vec<String> = sets
        .iter()
        .map(|s| render(original, None, s).unwrap())
        .collect();
    file.apply(&sets[0]).unwrap();

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (stop, path, expected) = (stop.clone(), file.path.clone(), expected.clone());
        std::thread::spawn(move || -> Result<usize, String> {
            let mut reads = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let seen = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
                if !expected.contains(&seen) {
                    return Err(format!("read {seen:?}"));
                }
                reads += 1;
            }
            Ok(reads)
        })
    };
    let started = Instant::now();
    let mut applied = 0;
    for i in 1..=APPLIES {
        assert_eq!(file.apply(&sets[i % 2]).unwrap(), Written::Renamed);
        applied = i;
        // Bounded in time whatever the disk: enough rewrites is enough.
        if started.elapsed() > Duration::from_secs(5) && applied >= 200 {
            break;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let reads = reader.join().unwrap().unwrap();
    assert!(
        reads > applied / 10,
        "{reads} reads during {applied} applies"
    );
    assert_eq!(listing(dir.path()), ["hosts"]);
}

#[test]
fn leftovers_of_an_interrupted_write_are_removed_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let file = hosts(dir.path(), Some("127.0.0.1 localhost\n"));
    for name in [".hosts.a1B2c3.tmp", ".hosts.zzzzzz.tmp"] {
        std::fs::write(dir.path().join(name), "half a file").unwrap();
    }
    // Not ours: another file's, another shape, a directory.
    for name in [
        ".hosts.keep",
        ".hosts.toolong1.tmp",
        ".other.a1B2c3.tmp",
        "hosts.a1B2c3.tmp",
    ] {
        std::fs::write(dir.path().join(name), "x").unwrap();
    }
    std::fs::create_dir(dir.path().join(".hosts.dirdir.tmp")).unwrap();
    let mut removed: Vec<String> = file
        .remove_leftovers()
        .unwrap()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    removed.sort();
    assert_eq!(removed, [".hosts.a1B2c3.tmp", ".hosts.zzzzzz.tmp"]);
    assert_eq!(
        listing(dir.path()),
        [
            ".hosts.dirdir.tmp",
            ".hosts.keep",
            ".hosts.toolong1.tmp",
            ".other.a1B2c3.tmp",
            "hosts",
            "hosts.a1B2c3.tmp"
        ]
    );
    assert_eq!(
        std::fs::read_to_string(&file.path).unwrap(),
        "127.0.0.1 localhost\n"
    );
}
