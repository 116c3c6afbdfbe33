//! The I/O shell around [`render`]: reading the hosts file and the legacy
//! file, and replacing the hosts file so that a reader — any process resolving
//! a name — sees the old content or the new, never a mix.
//!
//! [`HostsFile::apply`] writes nothing when the rendered content equals what
//! is there (same inode, same mtime). Otherwise it writes a temporary file
//! beside the target (`.hosts.XXXXXX.tmp`) with the target's mode — and its
//! owner when running as root — fsyncs it, renames it over the target and
//! fsyncs the directory. A new file gets mode 0644 whatever the umask. When
//! the rename fails with EBUSY, EXDEV or EPERM — `/etc/hosts` bind-mounted
//! into a container — it rewrites the file in place instead, under an
//! exclusive `flock`, re-reading and re-rendering under the lock.
//!
//! A reader that takes no lock must not catch that rewrite half done, and a
//! plain overwrite does not hold: measured over a real bind mount, about one
//! read in 200 saw the new bytes under the old size, or a mix of both. So the
//! rewrite is done under a write lease (`fcntl(F_SETLEASE, F_WRLCK)`): the
//! kernel grants it only while no other descriptor has the file open, and
//! from then on whoever opens the file waits in `open(2)` until the lease is
//! released — a few microseconds later, with the new content whole. The
//! lease is asked for again while readers hold the file open, for up to
//! [`LEASE_PATIENCE`]. The kernel signals the lease's break with SIGURG,
//! ignored by default (SIGIO, the default, would end the agent). Without a
//! lease (the file held open all along, a filesystem without leases, an agent
//! that neither owns the file nor has `CAP_LEASE`) the rewrite is still done
//! so that the size never lags the bytes — grown first with blank lines,
//! overwritten, truncated — and the caller is told why readers were not kept
//! out ([`Written::InPlaceUnguarded`]). A symlinked target is followed and
//! the file it points to is replaced.
//!
//! A missing hosts file reads as empty. A configured legacy file must exist:
//! writing the block without it would silently drop the names it provides.
//! Errors — the target is not a regular file, either file is unreadable or not
//! UTF-8, a broken block, a bad entry — leave the target untouched.

use super::{HostEntry, RenderError, diff, render};
use std::fs::{File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::{FileExt as _, MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// Why reading, rendering or replacing the hosts file failed.
#[derive(Debug, thiserror::Error)]
pub enum HostsError {
    #[error("{path} is not a regular file")]
    NotAFile { path: PathBuf },
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path} is not UTF-8 text (line {line})")]
    NotUtf8 { path: PathBuf, line: usize },
    #[error("cannot read the legacy hosts file {path}: {source}")]
    ReadLegacy { path: PathBuf, source: io::Error },
    #[error("{path}: {source}")]
    Render { path: PathBuf, source: RenderError },
    #[error("cannot create a temporary file in {dir}: {source}")]
    CreateTemp { dir: PathBuf, source: io::Error },
    #[error("cannot write the temporary file {path}: {source}")]
    WriteTemp { path: PathBuf, source: io::Error },
    #[error("cannot rename {from} over {to}: {source}")]
    Rename {
        from: PathBuf,
        to: PathBuf,
        source: io::Error,
    },
    #[error("cannot sync the directory {path}: {source}")]
    SyncDir { path: PathBuf, source: io::Error },
    #[error("cannot lock {path}: {source}")]
    Lock { path: PathBuf, source: io::Error },
    #[error("cannot rewrite {path} in place: {source}")]
    WriteInPlace { path: PathBuf, source: io::Error },
}

/// What [`HostsFile::apply`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// The file already had this content; it was not touched.
    Unchanged,
    /// Replaced atomically by a rename.
    Renamed,
    /// Rewritten in place because the target cannot be renamed over (a mount
    /// point), under a write lease: a reader opening it meanwhile waited until
    /// it was whole.
    InPlace,
    /// Rewritten in place without a lease: a reader may have caught the
    /// write half done.
    InPlaceUnguarded(NoLease),
}

/// Why a rewrite in place went without a write lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoLease {
    /// Another process kept the file open for all of [`LEASE_PATIENCE`].
    HeldOpen,
    /// The agent neither owns the file nor has `CAP_LEASE`.
    NotPermitted,
    /// The filesystem grants no leases.
    Unsupported,
    /// Another refusal, by errno.
    Refused(i32),
}

impl std::fmt::Display for NoLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NoLease::HeldOpen => write!(
                f,
                "another process kept it open for {} ms",
                LEASE_PATIENCE.as_millis()
            ),
            NoLease::NotPermitted => f.write_str("the agent neither owns it nor has CAP_LEASE"),
            NoLease::Unsupported => f.write_str("its filesystem grants no leases"),
            NoLease::Refused(errno) => write!(
                f,
                "the lease was refused: {}",
                io::Error::from_raw_os_error(*errno)
            ),
        }
    }
}

/// How long a rewrite in place asks again for its write lease while other
/// processes hold the file open.
pub const LEASE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(1);

/// The file on disk.
pub struct HostsFile {
    /// The hosts file, usually `/etc/hosts`.
    pub path: PathBuf,
    /// A file whose lines go on top of the block — what a legacy naming tool
    /// writes, as Aerostat's `/etc/hosts.legacy`.
    pub legacy: Option<PathBuf>,
}

/// The target's content and, when it exists, its metadata.
struct Current {
    text: String,
    meta: Option<std::fs::Metadata>,
}

/// How the temporary file is moved over the target; a parameter so tests can
/// make it fail as a bind mount does.
pub(super) type RenameFn<'a> = &'a dyn Fn(&Path, &Path) -> io::Result<()>;

impl HostsFile {
    pub fn new(path: impl Into<PathBuf>) -> HostsFile {
        HostsFile {
            path: path.into(),
            legacy: None,
        }
    }

    pub fn with_legacy(mut self, legacy: impl Into<PathBuf>) -> HostsFile {
        self.legacy = Some(legacy.into());
        self
    }

    /// Reads the file (missing = empty) and the legacy file, renders, and
    /// writes only if the content changed; see the module documentation.
    pub fn apply(&self, entries: &[HostEntry]) -> Result<Written, HostsError> {
        self.apply_with(entries, &|from, to| std::fs::rename(from, to))
    }

    /// Removes the temporary files an interrupted write left beside the
    /// target (`.hosts.XXXXXX.tmp`: a write that was killed before its
    /// rename); run once at start, before any write of this process. Other
    /// files are never touched. The names removed.
    pub fn remove_leftovers(&self) -> Result<Vec<PathBuf>, HostsError> {
        let target = self.target()?;
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let name = target.file_name().unwrap_or_default().to_string_lossy();
        let prefix = format!(".{name}.");
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(HostsError::Read {
                    path: dir.to_owned(),
                    source,
                });
            }
        };
        let mut removed = Vec::new();
        for entry in entries.flatten() {
            let file = entry.file_name();
            let Some(file) = file.to_str() else { continue };
            // tempfile's random part: 6 alphanumerics.
            let leftover = file
                .strip_prefix(&prefix)
                .and_then(|rest| rest.strip_suffix(".tmp"))
                .is_some_and(|mid| {
                    mid.len() == 6 && mid.bytes().all(|b| b.is_ascii_alphanumeric())
                });
            if leftover && entry.file_type().is_ok_and(|t| t.is_file()) {
                let path = entry.path();
                if std::fs::remove_file(&path).is_ok() {
                    removed.push(path);
                }
            }
        }
        Ok(removed)
    }

    /// What `apply` would write, and the diff from what is there (no writing).
    pub fn plan(&self, entries: &[HostEntry]) -> Result<(String, String), HostsError> {
        let target = self.target()?;
        let legacy = self.legacy_text()?;
        let current = read_current(&target)?;
        let new = render_at(&target, &current.text, legacy.as_deref(), entries)?;
        let diff = diff(&current.text, &new);
        Ok((new, diff))
    }

    pub(super) fn apply_with(
        &self,
        entries: &[HostEntry],
        rename: RenameFn<'_>,
    ) -> Result<Written, HostsError> {
        let target = self.target()?;
        let legacy = self.legacy_text()?;
        let current = read_current(&target)?;
        let new = render_at(&target, &current.text, legacy.as_deref(), entries)?;
        if new == current.text {
            return Ok(Written::Unchanged);
        }

        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let name = target.file_name().unwrap_or_default().to_string_lossy();
        let temp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(|source| HostsError::CreateTemp {
                dir: dir.to_owned(),
                source,
            })?;
        let (mut file, temp_path) = temp.into_parts();
        let written = (|| {
            let mode = current.meta.as_ref().map_or(0o644, |m| m.mode() & 0o7777);
            file.set_permissions(std::fs::Permissions::from_mode(mode))?;
            if let Some(meta) = &current.meta
                && running_as_root()
            {
                std::os::unix::fs::fchown(&file, Some(meta.uid()), Some(meta.gid()))?;
            }
            file.write_all(new.as_bytes())?;
            file.sync_all()
        })();
        drop(file);
        written.map_err(|source| HostsError::WriteTemp {
            path: temp_path.to_path_buf(),
            source,
        })?;

        match rename(&temp_path, &target) {
            Ok(()) => {
                // The temporary name is gone; nothing is left to delete.
                let _ = temp_path.keep();
                sync_dir(dir)?;
                Ok(Written::Renamed)
            }
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EBUSY | libc::EXDEV | libc::EPERM)
                ) =>
            {
                drop(temp_path);
                tracing::debug!(path = %target.display(), error = %e, "cannot rename over the hosts file; rewriting it in place");
                rewrite_in_place(&target, legacy.as_deref(), entries)
            }
            Err(source) => Err(HostsError::Rename {
                from: temp_path.to_path_buf(),
                to: target,
                source,
            }),
        }
    }

    /// The file to read and replace: `path`, or what it links to.
    fn target(&self) -> Result<PathBuf, HostsError> {
        match std::fs::symlink_metadata(&self.path) {
            Ok(m) if m.file_type().is_symlink() => {
                std::fs::canonicalize(&self.path).map_err(|source| HostsError::Read {
                    path: self.path.clone(),
                    source,
                })
            }
            _ => Ok(self.path.clone()),
        }
    }

    fn legacy_text(&self) -> Result<Option<String>, HostsError> {
        let Some(path) = &self.legacy else {
            return Ok(None);
        };
        let bytes = std::fs::read(path).map_err(|source| HostsError::ReadLegacy {
            path: path.clone(),
            source,
        })?;
        utf8(path, bytes).map(Some)
    }
}

fn render_at(
    target: &Path,
    existing: &str,
    legacy: Option<&str>,
    entries: &[HostEntry],
) -> Result<String, HostsError> {
    render(existing, legacy, entries).map_err(|source| HostsError::Render {
        path: target.to_owned(),
        source,
    })
}

fn read_current(path: &Path) -> Result<Current, HostsError> {
    let read_error = |source| HostsError::Read {
        path: path.to_owned(),
        source,
    };
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(Current {
                text: String::new(),
                meta: None,
            });
        }
        Err(e) => return Err(read_error(e)),
    };
    let meta = file.metadata().map_err(read_error)?;
    if !meta.is_file() {
        return Err(HostsError::NotAFile {
            path: path.to_owned(),
        });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.read_to_end(&mut bytes).map_err(read_error)?;
    Ok(Current {
        text: utf8(path, bytes)?,
        meta: Some(meta),
    })
}

fn utf8(path: &Path, bytes: Vec<u8>) -> Result<String, HostsError> {
    String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        HostsError::NotUtf8 {
            path: path.to_owned(),
            line: valid.iter().filter(|&&b| b == b'\n').count() + 1,
        }
    })
}

fn sync_dir(dir: &Path) -> Result<(), HostsError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| HostsError::SyncDir {
            path: dir.to_owned(),
            source,
        })
}

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The fallback for a target that cannot be renamed over: rewrite it under an
/// exclusive lock and, when it can be had, a write lease, from what it holds
/// once both are taken.
fn rewrite_in_place(
    target: &Path,
    legacy: Option<&str>,
    entries: &[HostEntry],
) -> Result<Written, HostsError> {
    let in_place = |source| HostsError::WriteInPlace {
        path: target.to_owned(),
        source,
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(target)
        .map_err(in_place)?;
    file.lock().map_err(|source| HostsError::Lock {
        path: target.to_owned(),
        source,
    })?;
    let lease = Lease::take(&file);
    let mut bytes = Vec::new();
    (&file)
        .read_to_end(&mut bytes)
        .map_err(|source| HostsError::Read {
            path: target.to_owned(),
            source,
        })?;
    let old_len = bytes.len();
    let text = utf8(target, bytes)?;
    let new = render_at(target, &text, legacy, entries)?;
    if new == text {
        return Ok(Written::Unchanged);
    }
    overwrite(&file, old_len, new.as_bytes()).map_err(in_place)?;
    let written = match lease {
        Ok(lease) => {
            // Readers wait on the lease, not on the disk: released first.
            drop(lease);
            Written::InPlace
        }
        Err(why) => Written::InPlaceUnguarded(why),
    };
    file.sync_all().map_err(in_place)?;
    Ok(written)
}

/// Writes `new` over a file `old_len` bytes long so that the size never lags
/// the bytes — a reader without a lease sees no prefix of the new content
/// under the old size: grown first with blank lines, then overwritten whole
/// (padded with blank lines to the old size), then truncated.
fn overwrite(file: &File, old_len: usize, new: &[u8]) -> io::Result<()> {
    if new.len() > old_len {
        file.write_all_at(&vec![b'\n'; new.len() - old_len], old_len as u64)?;
    }
    let mut padded = new.to_vec();
    padded.resize(old_len.max(new.len()), b'\n');
    file.write_all_at(&padded, 0)?;
    file.set_len(new.len() as u64)
}

/// A write lease on a file, released when dropped.
struct Lease<'a>(&'a File);

impl<'a> Lease<'a> {
    /// Asks for the lease until it is granted or [`LEASE_PATIENCE`] has
    /// passed, backing off from 20 µs to 1 ms between tries.
    fn take(file: &'a File) -> Result<Lease<'a>, NoLease> {
        use std::os::fd::AsRawFd as _;
        let fd = file.as_raw_fd();
        // SAFETY: fcntl on a descriptor this function's caller keeps open;
        // F_SETSIG takes a signal number.
        if unsafe { libc::fcntl(fd, F_SETSIG, libc::SIGURG) } != 0 {
            return Err(NoLease::Refused(errno()));
        }
        let deadline = std::time::Instant::now() + LEASE_PATIENCE;
        let mut pause = std::time::Duration::from_micros(20);
        loop {
            // SAFETY: as above; F_SETLEASE takes a lease type.
            if unsafe { libc::fcntl(fd, libc::F_SETLEASE, libc::F_WRLCK) } == 0 {
                return Ok(Lease(file));
            }
            match errno() {
                libc::EAGAIN if std::time::Instant::now() < deadline => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(std::time::Duration::from_millis(1));
                }
                libc::EAGAIN => return Err(NoLease::HeldOpen),
                libc::EACCES | libc::EPERM => return Err(NoLease::NotPermitted),
                libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP => {
                    return Err(NoLease::Unsupported);
                }
                other => return Err(NoLease::Refused(other)),
            }
        }
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd as _;
        // SAFETY: the descriptor outlives the lease (it borrows the file).
        // Closing the file would release it too; this only comes sooner.
        unsafe { libc::fcntl(self.0.as_raw_fd(), libc::F_SETLEASE, libc::F_UNLCK) };
    }
}

/// `fcntl`'s command naming the signal a lease break sends (Linux's
/// `F_SETSIG`, which the libc crate does not export).
const F_SETSIG: libc::c_int = 10;

fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}
