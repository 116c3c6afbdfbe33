//! Pure: finding the managed block in a hosts file and replacing it. Owns the
//! marker grammar and the byte span a block occupies — the rule for the line
//! break before an appended block is spelled out in the parent module and
//! implemented by `locate` (cutting) and [`render`] (writing) together.

use super::{BEGIN, END, HostEntry, validate};

/// Why a file or its new block cannot be rendered. Line numbers count from 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("line {line}: the BEGIN marker has no END marker after it")]
    Unclosed { line: usize },
    #[error("line {line}: an END marker with no BEGIN marker before it")]
    Unopened { line: usize },
    #[error("line {line}: a BEGIN marker inside the block opened at line {open}")]
    Nested { line: usize, open: usize },
    #[error("line {line}: a second managed block (the first opens at line {first})")]
    SecondBlock { line: usize, first: usize },
    #[error("legacy line {line}: a marker line, which the legacy file may not hold")]
    LegacyMarker { line: usize },
    #[error("entry address `{address}` is not an IP address")]
    Address { address: String },
    #[error("entry `{address}` has no names")]
    NoNames { address: String },
    #[error("name `{name}` for {address} is not a valid hostname: {reason}")]
    Name {
        address: String,
        name: String,
        reason: &'static str,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Marker {
    Begin,
    End,
}

/// Whether `line` (with or without its line break) is a marker: it starts
/// with the marker text, followed by its end or by whitespace.
pub(crate) fn marker(line: &str) -> Option<Marker> {
    if !line.starts_with('#') {
        return None;
    }
    let is = |text: &str| {
        line.strip_prefix(text)
            .is_some_and(|rest| rest.chars().next().is_none_or(char::is_whitespace))
    };
    if is(BEGIN) {
        Some(Marker::Begin)
    } else if is(END) {
        Some(Marker::End)
    } else {
        None
    }
}

/// The bytes `start..end` of a file that belong to its block, and the line
/// break of its BEGIN line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub start: usize,
    pub end: usize,
    pub eol: &'static str,
}

/// Finds the block, or `None` when there is no marker at all.
pub(crate) fn locate(content: &str) -> Result<Option<Span>, RenderError> {
    // (line number, byte offset, line break) of a BEGIN not yet closed.
    let mut open: Option<(usize, usize, &'static str)> = None;
    let mut found: Option<(usize, Span)> = None;
    let mut offset = 0;
    for (index, line) in content.split_inclusive('\n').enumerate() {
        let number = index + 1;
        let start = offset;
        offset += line.len();
        match marker(line) {
            None => {}
            Some(Marker::Begin) => {
                if let Some((open, _, _)) = open {
                    return Err(RenderError::Nested { line: number, open });
                }
                if let Some((first, _)) = found {
                    return Err(RenderError::SecondBlock {
                        line: number,
                        first,
                    });
                }
                open = Some((number, start, line_break(line)));
            }
            Some(Marker::End) => {
                let Some((begin, start, eol)) = open.take() else {
                    return Err(RenderError::Unopened { line: number });
                };
                let end = offset;
                found = Some((begin, Span { start, end, eol }));
            }
        }
    }
    if let Some((line, _, _)) = open {
        return Err(RenderError::Unclosed { line });
    }
    Ok(found.map(|(_, mut span)| {
        // END is the unterminated last line: the block also owns the line
        // break that separates it from the text before it.
        if span.end == content.len() && !content.ends_with('\n') && span.start > 0 {
            let before = &content[..span.start];
            span.start -= if before.ends_with(span.eol) {
                span.eol.len()
            } else {
                1
            };
        }
        span
    }))
}

fn line_break(line: &str) -> &'static str {
    if line.ends_with("\r\n") { "\r\n" } else { "\n" }
}

fn without_line_break(line: &str) -> &str {
    line.strip_suffix("\r\n")
        .or_else(|| line.strip_suffix('\n'))
        .unwrap_or(line)
}

/// The block's line ending, decided from the text outside it (see the parent
/// module), falling back to the old block's, then LF.
fn choose_eol(before: &str, after: &str, old: Option<&'static str>) -> &'static str {
    let breaks = |s: &str| s.bytes().filter(|&b| b == b'\n').count();
    let crlf = |s: &str| s.matches("\r\n").count();
    let all = breaks(before) + breaks(after);
    let windows = crlf(before) + crlf(after);
    if all == 0 {
        old.unwrap_or("\n")
    } else if windows > all - windows {
        "\r\n"
    } else {
        "\n"
    }
}

/// Pure. `existing` with its managed block (markers included) replaced by one
/// holding `legacy` (verbatim, first — Aerostat kept legacy data on top) and
/// then one line per entry (`address<TAB>names joined by a space`), in the
/// order given. Without a block, the block is appended at the end. Everything
/// outside the block is kept byte for byte; the block uses the file's own line
/// ending. See the parent module for the line break before an appended block.
pub fn render(
    existing: &str,
    legacy: Option<&str>,
    entries: &[HostEntry],
) -> Result<String, RenderError> {
    let span = locate(existing)?;
    let legacy = legacy.unwrap_or("");
    validate::legacy(legacy)?;
    for entry in entries {
        validate::entry(entry)?;
    }
    let (before, after) = match span {
        Some(s) => (&existing[..s.start], &existing[s.end..]),
        None => (existing, ""),
    };
    let eol = choose_eol(before, after, span.map(|s| s.eol));
    // Text without a final line break and nothing after the block: the block
    // brings the separating line break and leaves END unterminated.
    let dangling = after.is_empty() && !before.is_empty() && !before.ends_with('\n');

    let legacy_lines = legacy.split_inclusive('\n').count();
    let entry_bytes: usize = entries
        .iter()
        .map(|e| e.address.len() + e.names.iter().map(|n| n.len() + 1).sum::<usize>() + 2)
        .sum();
    let mut out = String::with_capacity(
        before.len()
            + after.len()
            + BEGIN.len()
            + END.len()
            + legacy.len()
            + entry_bytes
            + (legacy_lines + 3) * 2
            + entries.len(),
    );
    out.push_str(before);
    if dangling {
        out.push_str(eol);
    }
    out.push_str(BEGIN);
    out.push_str(eol);
    for line in legacy.split_inclusive('\n') {
        out.push_str(without_line_break(line));
        out.push_str(eol);
    }
    for entry in entries {
        out.push_str(&entry.address);
        out.push('\t');
        for (i, name) in entry.names.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(name);
        }
        out.push_str(eol);
    }
    out.push_str(END);
    if !dangling {
        out.push_str(eol);
    }
    out.push_str(after);
    Ok(out)
}

/// Pure. What a reader sees outside the managed block: `content` with the
/// block's bytes cut out (the inverse [`render`] keeps).
pub fn unmanaged(content: &str) -> Result<String, RenderError> {
    Ok(match locate(content)? {
        Some(span) => {
            let mut out = String::with_capacity(content.len() - (span.end - span.start));
            out.push_str(&content[..span.start]);
            out.push_str(&content[span.end..]);
            out
        }
        None => content.to_owned(),
    })
}
