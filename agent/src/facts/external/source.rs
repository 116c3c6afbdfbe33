//! The directory's files as sources: which file is which kind, in name
//! order, and reading one source to its facts.
//!
//! An executable is a regular file with any execute bit, whatever its
//! name. Any other regular file is data when its extension (in any case)
//! is `.json`, `.yaml`, `.yml`, `.toml` or `.txt`, and is ignored
//! otherwise, as Facter ignores it. Hidden files (`.name`), backups
//! (`name~`), directories, and other kinds of file (sockets, FIFOs) are
//! ignored too.

use super::parse::{self, Format, Parsed};
use super::run::{self, OUTPUT_MAX, io_words};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::sync::Semaphore;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Executable,
    Data(Format),
}

/// One file of the directory that is a source.
#[derive(Debug)]
pub struct Source {
    /// The file's name, as problems name it (lossy for non-UTF-8 names).
    pub name: String,
    pub path: PathBuf,
    /// `Err` when the file could not even be looked at.
    pub kind: Result<Kind, String>,
}

/// What a file named `name` is, from its name and, for a regular file, its
/// permission bits (`None` for anything else: a directory, a socket).
pub fn classify(name: &str, mode: Option<u32>) -> Option<Kind> {
    if hidden_or_backup(name) {
        return None;
    }
    let mode = mode?;
    if mode & 0o111 != 0 {
        return Some(Kind::Executable);
    }
    let (_, extension) = name.rsplit_once('.')?;
    let format = match extension.to_ascii_lowercase().as_str() {
        "json" => Format::Json,
        "yaml" | "yml" => Format::Yaml,
        "toml" => Format::Toml,
        "txt" => Format::KeyValue,
        _ => return None,
    };
    Some(Kind::Data(format))
}

fn hidden_or_backup(name: &str) -> bool {
    name.starts_with('.') || name.ends_with('~')
}

/// The sources in `dir`, in name order (byte order of the names). A
/// missing directory has none; `Err` when it cannot be read.
pub async fn list(dir: &Path) -> Result<Vec<Source>, String> {
    let mut entries = match tokio::fs::read_dir(dir).await {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot read the directory: {}", io_words(&e))),
    };
    let mut names = Vec::new();
    loop {
        match entries.next_entry().await {
            Ok(Some(entry)) => names.push(entry.file_name()),
            Ok(None) => break,
            Err(e) => return Err(format!("cannot read the directory: {}", io_words(&e))),
        }
    }
    names.sort();
    let mut sources = Vec::new();
    for file_name in names {
        let name = file_name.to_string_lossy().into_owned();
        let path = dir.join(&file_name);
        // Symbolic links are followed: a link to a script is the script.
        let mode = match tokio::fs::metadata(&path).await {
            Ok(m) if m.is_file() => Some(m.permissions().mode()),
            Ok(_) => None,
            // A dangling link, say: it may be a source, so it is told.
            Err(e) => {
                if !hidden_or_backup(&name) {
                    sources.push(Source {
                        name,
                        path,
                        kind: Err(format!("cannot look at it: {}", io_words(&e))),
                    });
                }
                continue;
            }
        };
        if let Some(kind) = classify(&name, mode) {
            sources.push(Source {
                name,
                path,
                kind: Ok(kind),
            });
        }
    }
    Ok(sources)
}

/// The facts of one source; an executable waits for a permit of `gate`
/// first, and its `timeout` starts when it starts.
pub async fn read(
    path: &Path,
    kind: Kind,
    timeout: Duration,
    gate: Arc<Semaphore>,
) -> Result<Parsed, String> {
    match kind {
        Kind::Executable => {
            let _permit = gate
                .acquire_owned()
                .await
                .expect("the gate is never closed");
            parse::output(&run::run(path, timeout).await?)
        }
        Kind::Data(format) => parse::parse(format, &read_bounded(path).await?),
    }
}

/// A data file's bytes, if it holds at most [`OUTPUT_MAX`].
async fn read_bounded(path: &Path) -> Result<Vec<u8>, String> {
    let cannot = |e: std::io::Error| format!("cannot read it: {}", io_words(&e));
    let file = tokio::fs::File::open(path).await.map_err(cannot)?;
    let mut bytes = Vec::new();
    file.take(OUTPUT_MAX as u64 + 1)
        .read_to_end(&mut bytes)
        .await
        .map_err(cannot)?;
    if bytes.len() > OUTPUT_MAX {
        return Err(format!("larger than {} KiB", OUTPUT_MAX / 1024));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_modes_decide_the_kind() {
        use Format::*;
        use Kind::*;
        let (file, exec) = (Some(0o644), Some(0o755));
        for (name, mode, want) in [
            ("site.json", file, Some(Data(Json))),
            ("site.JSON", file, Some(Data(Json))),
            ("site.yaml", file, Some(Data(Yaml))),
            ("site.yml", file, Some(Data(Yaml))),
            ("site.toml", file, Some(Data(Toml))),
            ("site.txt", file, Some(Data(KeyValue))),
            // Any execute bit, whatever the name.
            ("rack", exec, Some(Executable)),
            ("rack.json", Some(0o744), Some(Executable)),
            ("rack.sh", Some(0o701), Some(Executable)),
            // Ignored.
            ("rack.sh", file, None),
            ("README", file, None),
            ("site.json.bak", file, None),
            (".site.json", file, None),
            (".rack", exec, None),
            ("site.json~", file, None),
            ("rack~", exec, None),
            ("site.json", None, None),
        ] {
            assert_eq!(classify(name, mode), want, "{name} {mode:?}");
        }
    }
}
