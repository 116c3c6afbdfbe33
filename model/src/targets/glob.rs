//! Shell-style globs with Python `fnmatch` rules, which is what Salt matches
//! node names, roles, grain and label values with: `*`, `?`, `[seq]`,
//! `[!seq]`, ranges such as `[0-9]`; no `{a,b}` and no backslash escapes
//! (`[*]` matches a literal `*`, `[[]` a literal `[`). A pattern is read
//! into tokens once; a [`Glob`] translates them into an anchored regex, a
//! [`KeyGlob`] (for the keys of a path, short and possibly many) walks them
//! directly, with nothing to compile. Matching is on `&str`, char by char
//! rather than byte by byte, and case folding, when asked for, is Unicode's.

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
        let regex = translate(&tokens(pattern)?);
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

/// A case-sensitive glob matched without a regex: as cheap to make as its
/// tokens, at most `pattern × text` steps to match.
#[derive(Debug, Clone)]
pub(super) struct KeyGlob(Vec<Token>);

impl KeyGlob {
    pub(super) fn new(pattern: &str) -> Result<KeyGlob, Fault> {
        tokens(pattern).map(KeyGlob)
    }

    /// Whether the whole of `text` matches: left to right, and on a
    /// mismatch back to the last `*`, which then takes one more char.
    pub(super) fn is_match(&self, text: &str) -> bool {
        let tokens = &self.0;
        let (mut token, mut at) = (0, 0);
        // The token after the last `*`, and where in `text` it resumes.
        let mut star: Option<(usize, usize)> = None;
        loop {
            let next = text[at..].chars().next();
            match (tokens.get(token), next) {
                (Some(Token::Any), _) => {
                    token += 1;
                    star = Some((token, at));
                    continue;
                }
                (Some(t), Some(c)) if t.takes(c) => {
                    token += 1;
                    at += c.len_utf8();
                    continue;
                }
                (None, None) => return true,
                _ => {}
            }
            let Some((after, from)) = star else {
                return false;
            };
            let Some(c) = text[from..].chars().next() else {
                return false;
            };
            star = Some((after, from + c.len_utf8()));
            (token, at) = (after, from + c.len_utf8());
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Char(char),
    /// `?`
    One,
    /// `*` (several in a row are one)
    Any,
    /// `[…]`: inclusive ranges (a single member is `(c, c)`).
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl Token {
    /// Whether this token, not `*`, takes `c`.
    fn takes(&self, c: char) -> bool {
        match self {
            Token::Char(literal) => *literal == c,
            Token::One => true,
            Token::Any => false,
            Token::Class { negated, ranges } => {
                ranges.iter().any(|&(low, high)| low <= c && c <= high) != *negated
            }
        }
    }
}

/// `pattern` as tokens, or where it is invalid.
fn tokens(pattern: &str) -> Result<Vec<Token>, Fault> {
    let mut tokens = Vec::new();
    let mut chars = pattern.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        let token = match c {
            '*' => {
                while chars.next_if(|&(_, c)| c == '*').is_some() {}
                Token::Any
            }
            '?' => Token::One,
            '[' => {
                let end = class_end(pattern, at).ok_or_else(|| {
                    Fault::new(at, "unclosed `[` in glob (`[[]` matches a literal `[`)")
                })?;
                let class = class(pattern, at, end)?;
                while chars.next_if(|&(i, _)| i <= end).is_some() {}
                class
            }
            literal => Token::Char(literal),
        };
        tokens.push(token);
    }
    Ok(tokens)
}

/// The regex equivalent to `tokens` (as Python's `fnmatch.translate`).
fn translate(tokens: &[Token]) -> String {
    // `(?s)`: `*` and `?` match newlines too, as in fnmatch.
    let mut regex = String::from("(?s)^");
    for token in tokens {
        match token {
            Token::Any => regex.push_str(".*"),
            Token::One => regex.push('.'),
            Token::Char(c) => {
                let mut buffer = [0; 4];
                regex.push_str(&regex::escape(c.encode_utf8(&mut buffer)));
            }
            Token::Class { negated, ranges } => {
                regex.push('[');
                if *negated {
                    regex.push('^');
                }
                // Every member as a code point escape: nothing in it can mean
                // anything else to the regex parser (`^`, `&&`, `--`, `[`, `\`).
                for &(low, high) in ranges {
                    regex.push_str(&format!("\\x{{{:x}}}", u32::from(low)));
                    if high != low {
                        regex.push_str(&format!("-\\x{{{:x}}}", u32::from(high)));
                    }
                }
                regex.push(']');
            }
        }
    }
    regex.push('$');
    regex
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

/// The class `pattern[open..=end]`, which is `[…]`.
fn class(pattern: &str, open: usize, end: usize) -> Result<Token, Fault> {
    let mut body = open + 1;
    let negated = pattern[body..].starts_with('!');
    if negated {
        body += 1;
    }
    let mut ranges = Vec::new();
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
        ranges.push((low, high));
    }
    Ok(Token::Class { negated, ranges })
}
