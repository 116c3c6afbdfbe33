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
//! exclusive `flock`, re-reading and re-rendering under the lock, truncating
//! and writing in one write, then fsync; that is not atomic for readers, which
//! is why the caller is told ([`Written::InPlace`]). A symlinked target is
//! followed and the file it points to is replaced.
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
    /// point); readers may have seen a partial file for an instant.
    InPlace,
}

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
/// exclusive lock, from what it holds once the lock is taken.
fn rewrite_in_place(
    target: &Path,
    legacy: Option<&str>,
    entries: &[HostEntry],
) -> Result<Written, HostsError> {
    let in_place = |source| HostsError::WriteInPlace {
        path: target.to_owned(),
        source,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(target)
        .map_err(in_place)?;
    file.lock().map_err(|source| HostsError::Lock {
        path: target.to_owned(),
        source,
    })?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|source| HostsError::Read {
            path: target.to_owned(),
            source,
        })?;
    let text = utf8(target, bytes)?;
    let new = render_at(target, &text, legacy, entries)?;
    if new == text {
        return Ok(Written::Unchanged);
    }
    file.set_len(0).map_err(in_place)?;
    file.write_all_at(new.as_bytes(), 0).map_err(in_place)?;
    file.sync_all().map_err(in_place)?;
    Ok(Written::InPlace)
}
