//! Running one executable source: directly (no shell), stdin null, in a
//! process group of its own, bounded by a timeout and by [`OUTPUT_MAX`]
//! bytes of stdout. As `checks::probe` runs a command check: on a timeout
//! the whole group is killed, and whatever the executable left behind when
//! it exited is killed too, so nothing a fact source starts outlives it.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};

/// The most an executable may print on stdout (and a data file may hold).
pub const OUTPUT_MAX: usize = 256 * 1024;
/// How much of stderr is kept to find that line in.
const STDERR_KEPT: usize = 4096;
/// How long the output may take to be read after the group died.
const DRAIN: Duration = Duration::from_millis(500);

/// The stdout of the executable at `path`, if it exited 0 within
/// `timeout` having printed at most [`OUTPUT_MAX`] bytes.
pub async fn run(path: &Path, timeout: Duration) -> Result<Vec<u8>, String> {
    let mut child = spawn(path)
        .await
        .map_err(|e| format!("cannot run it: {}", io_words(&e)))?;
    let group = Group(child.id());
    // Read on tasks of their own: a pipe stays open while anything in the
    // group holds it, and the group dies only once the leader is done.
    let stdout = tokio::spawn(bounded(child.stdout.take(), group.0));
    let stderr = tokio::spawn(head(child.stderr.take()));
    let waited = tokio::time::timeout(timeout, child.wait()).await;
    drop(group);
    let status = match waited {
        Ok(status) => Some(status),
        Err(_) => {
            let _ = child.wait().await;
            None
        }
    };
    let stdout = drain(stdout).await;
    let stderr = drain(stderr).await.unwrap_or_default();
    if let Some(Err(TooMuch)) = stdout {
        return Err(format!("printed more than {} KiB", OUTPUT_MAX / 1024));
    }
    let status = match status {
        None => {
            return Err(format!(
                "timed out after {}",
                humantime::format_duration(timeout)
            ));
        }
        Some(Err(e)) => return Err(format!("cannot wait for it: {}", io_words(&e))),
        Some(Ok(status)) => status,
    };
    if !status.success() {
        let ended = match (status.code(), status.signal()) {
            (Some(code), _) => format!("exited with status {code}"),
            (None, Some(signal)) => format!("killed by signal {signal}"),
            (None, None) => "ended without an exit status".to_owned(),
        };
        return Err(match first_line(&stderr) {
            Some(line) => format!("{ended}: {line}"),
            None => ended,
        });
    }
    match stdout {
        Some(Ok(bytes)) => Ok(bytes),
        // Something outside its group holds its stdout open.
        _ => Err("exited, but its output did not end".to_owned()),
    }
}

/// Spawns `path`. A file written a moment ago may still be open for
/// writing in a child another thread is forking (until that child's exec
/// closes the descriptor): `ETXTBSY`, which passes; a few tries.
async fn spawn(path: &Path) -> std::io::Result<tokio::process::Child> {
    let mut tries = 0;
    loop {
        let spawned = tokio::process::Command::new(path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn();
        match spawned {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 5 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            spawned => return spawned,
        }
    }
}

/// Kills the process group it names when dropped: on a timeout, when
/// `collect` is dropped, and after the executable exited.
struct Group(Option<u32>);

impl Drop for Group {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            kill_group(pgid);
        }
    }
}

fn kill_group(pgid: u32) {
    // The group's id is the leader's pid (process_group(0) above).
    unsafe {
        libc::kill(-(pgid as i32), libc::SIGKILL);
    }
}

/// Stdout went past [`OUTPUT_MAX`].
struct TooMuch;

/// A stream read to its end, or until it passes [`OUTPUT_MAX`] bytes;
/// then the group `pgid` is killed at once rather than at the timeout.
async fn bounded(
    from: Option<impl AsyncRead + Unpin>,
    pgid: Option<u32>,
) -> Result<Vec<u8>, TooMuch> {
    let Some(from) = from else {
        return Ok(Vec::new());
    };
    let mut kept = Vec::new();
    let mut from = from.take(OUTPUT_MAX as u64 + 1);
    // A read error is taken as the end: what was read is judged.
    let _ = from.read_to_end(&mut kept).await;
    if kept.len() > OUTPUT_MAX {
        if let Some(pgid) = pgid {
            kill_group(pgid);
        }
        return Err(TooMuch);
    }
    Ok(kept)
}

/// The first [`STDERR_KEPT`] bytes of a stream, read to its end (so a
/// chatty stderr never blocks the executable).
async fn head(from: Option<impl AsyncRead + Unpin>) -> Vec<u8> {
    let Some(mut from) = from else {
        return Vec::new();
    };
    let mut kept = Vec::new();
    let mut buf = vec![0u8; 4096];
    while let Ok(n @ 1..) = from.read(&mut buf).await {
        let room = STDERR_KEPT.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
    }
    kept
}

/// A reader's result within [`DRAIN`], else `None` (and it is aborted).
async fn drain<T>(reader: tokio::task::JoinHandle<T>) -> Option<T> {
    let abort = reader.abort_handle();
    match tokio::time::timeout(DRAIN, reader).await {
        Ok(Ok(value)) => Some(value),
        _ => {
            abort.abort();
            None
        }
    }
}

/// The first non-empty line of `bytes`, cut as a check's output is
/// ([`crate::checks::probe::LINE_MAX`] bytes).
fn first_line(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    Some(crate::checks::probe::cut_line(line))
}

/// An I/O error as a few words: "permission denied", not
/// "Permission denied (os error 13)".
pub fn io_words(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = text.split(" (os error").next().unwrap_or_default();
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => format!("{:?}", e.kind()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_line_of_stderr_is_cut_at_200_bytes() {
        assert_eq!(
            first_line(b"\n  disk on fire \nmore\n").as_deref(),
            Some("disk on fire")
        );
        assert_eq!(first_line(b" \n"), None);
        let long = "é".repeat(150);
        let cut = first_line(long.as_bytes()).unwrap();
        assert_eq!(cut, format!("{}…", "é".repeat(100)));
    }
}
