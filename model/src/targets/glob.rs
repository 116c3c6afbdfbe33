//! Shell-style globs with Python `fnmatch` rules, which is what Salt matches
//! node names, roles, grain and label values with: `*`, `?`, `[seq]`,
//! `[!seq]`, ranges such as `[0-9]`; no `{a,b}` and no backslash escapes
//! (`[*]` matches a literal `*`, `[[]` a literal `[`). A glob is translated
//! into an anchored regex once. Matching is on `&str`, char by char rather
//! than byte by byte, and case folding, when asked for, is Unicode's.

use regex::{Regex, RegexBuilder};

use super::Fault;

/// Whether letters must match in case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Case {
    Sensitive,
    Insensitive,
}

#[derive(Debug, Clone)]
pub(super) struct Glob(Regex);

impl Glob {
    pub(super) fn new(pattern: &str, case: Case) -> Result<Glob, Fault> {
        let regex = translate(pattern)?;
        RegexBuilder::new(&regex)
            .case_insensitive(case == Case::Insensitive)
            .size_limit(crate::limits::TARGET_REGEX_BYTES)
            .dfa_size_limit(crate::limits::TARGET_REGEX_BYTES)
            .build()
            .map(Glob)
            .map_err(|err| Fault::new(0, format!("glob too large to compile: {err}")))
    }

    /// Whether the whole of `text` matches.
    pub(super) fn is_match(&self, text: &str) -> bool {
        self.0.is_match(text)
    }
}

/// The regex equivalent to `pattern` (as Python's `fnmatch.translate`), or
/// where it is invalid.
fn translate(pattern: &str) -> Result<String, Fault> {
    // `(?s)`: `*` and `?` match newlines too, as in fnmatch.
    let mut regex = String::from("(?s)^");
    let mut chars = pattern.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match c {
            '*' => {
                while chars.next_if(|&(_, c)| c == '*').is_some() {}
                regex.push_str(".*");
            }
            '?' => regex.push('.'),
            '[' => {
                let end = class_end(pattern, at).ok_or_else(|| {
                    Fault::new(at, "unclosed `[` in glob (`[[]` matches a literal `[`)")
                })?;
                push_class(&mut regex, pattern, at, end)?;
                while chars.next_if(|&(i, _)| i <= end).is_some() {}
            }
            literal => push_literal(&mut regex, literal),
        }
    }
    regex.push('$');
    Ok(regex)
}

/// The byte offset of the `]` closing the class opened at `open`. As in
/// fnmatch, a `]` right after `[` or `[!` is a member, not the end.
fn class_end(pattern: &str, open: usize) -> Option<usize> {
    let mut first = open + 1;
    if pattern[first..].starts_with('!') {
        first += 1;
    }
    if pattern[first..].starts_with(']') {
        first += 1;
    }
    pattern[first..].find(']').map(|i| first + i)
}

/// Appends the regex class for `pattern[open..=end]`, which is `[…]`.
fn push_class(regex: &mut String, pattern: &str, open: usize, end: usize) -> Result<(), Fault> {
    let mut body = open + 1;
    regex.push('[');
    if pattern[body..].starts_with('!') {
        regex.push('^');
        body += 1;
    }
    let mut members = pattern[body..end].char_indices().peekable();
    while let Some((i, low)) = members.next() {
        let mut rest = members.clone();
        let high = match (rest.next(), rest.next()) {
            (Some((_, '-')), Some((_, high))) => {
                members = rest;
                high
            }
            _ => low,
        };
        if low > high {
            return Err(Fault::new(
                body + i,
                format!("invalid range `{low}-{high}` in glob: its start is after its end"),
            ));
        }
        // Every member as a code point escape: nothing in it can mean
        // anything else to the regex parser (`^`, `&&`, `--`, `[`, `\`).
        regex.push_str(&format!("\\x{{{:x}}}", u32::from(low)));
        if high != low {
            regex.push_str(&format!("-\\x{{{:x}}}", u32::from(high)));
        }
    }
    regex.push(']');
    Ok(())
}

fn push_literal(regex: &mut String, c: char) {
    let mut buffer = [0; 4];
    regex.push_str(&regex::escape(c.encode_utf8(&mut buffer)));
}
