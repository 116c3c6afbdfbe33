//! The managed block of `/etc/hosts`: the one stretch of the file the agent
//! owns, between [`BEGIN`] and [`END`], holding the legacy file's lines (on
//! top, as Aerostat did, so the old naming wins a lookup while it is phased
//! out) and then one line per [`HostEntry`]. Everything outside the block is
//! the administrator's and is kept byte for byte.
//!
//! # Layout
//!
//! - [`block`] — pure: finding the block ([`unmanaged`]) and replacing it
//!   ([`render`]); [`RenderError`].
//! - [`validate`] — pure: what an address, a name and a legacy file may be.
//! - [`diff`](mod@diff) — pure: the unified-style line diff `--dry-run` prints.
//! - [`file`](mod@file) — the I/O shell: [`HostsFile::apply`] (temp file, fsync,
//!   rename, fsync of the directory; rewrite in place under `flock` when the
//!   target is a bind mount) and [`HostsFile::plan`]; [`HostsError`].
//!
//! Tests: `render_tests` (tables through one helper), `prop_tests` (the
//! property test of the line-break rule), `file_tests` (temporary
//! directories, the in-place fallback, a reader racing thousands of rewrites).
//!
//! # Markers
//!
//! A line is a marker when it *starts* with [`BEGIN`] (or [`END`]) and the
//! marker text is followed by the end of the line or by whitespace, so
//! `# END clusterctl` and `# END clusterctl (v1)` are markers, while
//! `# END clusterctl-old` and `127.0.0.1 x # BEGIN clusterctl …` are not. A
//! file holds no marker or exactly one BEGIN followed later by one END; any
//! other arrangement (BEGIN without END, END without BEGIN, BEGIN inside the
//! block, a second block) is a [`RenderError`] naming the line, and nothing is
//! guessed or written. The legacy file may hold no marker at all.
//!
//! # The line break before an appended block
//!
//! [`render`] never adds or removes a byte outside the block, and the block
//! owns exactly these bytes: its lines from BEGIN through END, with END's line
//! break if it has one, and — only when END is the file's last line and has
//! no line break — the single line break just before BEGIN (the block's own
//! line ending when the text before it ends in one, otherwise `\n`). So:
//!
//! - a file ending in a line break (or empty) gets the block appended with a
//!   final line break: `"a\n"` → `"a\n# BEGIN…\n# END clusterctl\n"`;
//! - a non-empty file *not* ending in a line break keeps not ending in one: the
//!   block brings the separating line break with it and leaves its own END
//!   unterminated: `"a"` → `"a\n# BEGIN…\n# END clusterctl"`. The missing
//!   final newline moves from the administrator's last line to END, a comment,
//!   which is harmless even to readers that drop an unterminated last line;
//! - a block followed by other lines always ends in a line break and owns no
//!   separator, so it stays exactly where it is.
//!
//! With that rule [`unmanaged`] (the file with the block's bytes cut out) is an
//! exact inverse: `unmanaged(&render(f, l, e)?)? == unmanaged(f)?` for every
//! `f`, and `unmanaged(f)? == f` when `f` has no block. `render` decides
//! everything from the unmanaged text, the legacy text and the entries — the
//! line ending too — so it is idempotent, and a second [`HostsFile::apply`]
//! with the same entries finds nothing to change and does not touch the file.
//!
//! # Line endings
//!
//! The block uses CRLF when most of the line breaks outside it are CRLF, LF
//! when most are LF or it is a tie; with no line break outside it, the old
//! block's own (its BEGIN line's), else LF. The legacy file's lines are copied
//! verbatim except their line breaks, which become the block's.

pub mod block;
pub mod diff;
pub mod file;
pub mod validate;

pub use block::{RenderError, render, unmanaged};
pub use diff::diff;
pub use file::{HostsError, HostsFile, LEASE_PATIENCE, NoLease, Written};

/// The first line of the managed block.
pub const BEGIN: &str = "# BEGIN clusterctl — managed, do not edit";
/// The last line of the managed block.
pub const END: &str = "# END clusterctl";

/// One line of the block: an address and its names (the canonical name first,
/// e.g. "web-1.example.com", then "web-1", then aliases).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostEntry {
    pub address: String,
    pub names: Vec<String>,
}

impl HostEntry {
    pub fn new<N: Into<String>>(
        address: impl Into<String>,
        names: impl IntoIterator<Item = N>,
    ) -> HostEntry {
        HostEntry {
            address: address.into(),
            names: names.into_iter().map(Into::into).collect(),
        }
    }
}

#[cfg(test)]
mod file_tests;
#[cfg(test)]
mod prop_tests;
#[cfg(test)]
mod render_tests;
