//! The bounds on what callers send: checked before anything is parsed or
//! stored, each breach a precise error naming the limit. The numbers are
//! far above real use and far below what could hurt the master.
//!
//! | what                          | limit                        |
//! |-------------------------------|------------------------------|
//! | ids, names, roles, groups     | 253 bytes (`ids::MAX_LEN`)   |
//! | a target expression           | [`TARGET_MAX_BYTES`] bytes, [`TARGET_MAX_TERMS`] terms, [`TARGET_MAX_NESTING`] levels, [`TARGET_MAX_KEY_DEPTH`] keys a path, [`TARGET_MAX_READINGS`] extra readings |
//! | a drain's reason              | [`REASON_MAX_BYTES`] bytes, one line |
//! | a label's key / value         | 63 / [`LABEL_VALUE_MAX_BYTES`] bytes, one line |
//! | labels on one node            | [`LABELS_MAX`]               |
//! | one message (a cluster file)  | [`MESSAGE_MAX_BYTES`]        |
//! | a usage report's lists        | cores, mounts, interfaces, devices: [`crate::usage::CORES_MAX`], [`crate::usage::LIST_MAX`] each |
//!
//! Text that goes into an error is cut with [`excerpt`], so an error about
//! a 100 KB input is not 100 KB itself.

/// A target expression's length in bytes (a `-L` list of ~5,000 names).
pub const TARGET_MAX_BYTES: usize = 64 * 1024;
/// Matcher terms in one expression, node groups' definitions included.
pub const TARGET_MAX_TERMS: usize = 1_000;
/// Parentheses, `not`s and node groups nested.
pub const TARGET_MAX_NESTING: usize = 100;
/// Keys one grain or fact path follows (`G@a:b:c:v` is three). serde_json
/// reads no deeper than 128 levels, so no deeper path could match: grain
/// text with more delimiters is not read deeper, a longer fact path is
/// refused.
pub const TARGET_MAX_KEY_DEPTH: usize = 128;
/// Readings compiled beyond the first of the `key:value` words of one
/// expression: `G@a:b:c` is read as `a` → `b:c` and `a:b` → `c`, one more
/// pattern to compile. As many as terms: one per term is already a nested
/// grain in every word.
pub const TARGET_MAX_READINGS: usize = TARGET_MAX_TERMS;
/// What one regex or glob of a target may compile to (the regex crate's
/// own default is 10 MiB — times 1,000 terms, far too much).
pub const TARGET_REGEX_BYTES: usize = 256 * 1024;
/// A drain's or a maintenance's reason.
pub const REASON_MAX_BYTES: usize = 1024;
/// A label's value.
pub const LABEL_VALUE_MAX_BYTES: usize = 1024;
/// Labels on one node.
pub const LABELS_MAX: usize = 64;
/// The largest message a master accepts (a cluster file as sent, a big
/// host's grains); clusterctl refuses a bigger cluster file before
/// reading it.
pub const MESSAGE_MAX_BYTES: usize = 4 * 1024 * 1024;
/// How much of an offending input an error quotes.
pub const EXCERPT_CHARS: usize = 64;

/// Why a piece of text is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("{what} is {len} bytes long; at most {max} are allowed")]
    TooLong {
        what: String,
        len: usize,
        max: usize,
    },
    #[error(
        "{what} contains the control character {found:?} at byte {at}; it must be one line of printable text"
    )]
    Control {
        what: String,
        found: char,
        at: usize,
    },
}

/// `text` is at most `max` bytes, with no control characters (no newline,
/// no tab, no escape sequence): one line that prints as it is.
pub fn one_line(what: &str, text: &str, max: usize) -> Result<(), TextError> {
    if text.len() > max {
        return Err(TextError::TooLong {
            what: what.to_owned(),
            len: text.len(),
            max,
        });
    }
    match text.char_indices().find(|(_, c)| c.is_control()) {
        Some((at, found)) => Err(TextError::Control {
            what: what.to_owned(),
            found,
            at,
        }),
        None => Ok(()),
    }
}

/// The start of `text`, for an error: at most [`EXCERPT_CHARS`] chars,
/// control characters escaped, "…" when cut.
pub fn excerpt(text: &str) -> String {
    printable_cut(text, EXCERPT_CHARS)
}

/// At most `max` chars of `text`, control characters escaped, "…" when
/// cut.
pub fn printable_cut(text: &str, max: usize) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// `text` with its control characters escaped (`\n`, `\u{1b}`), for
/// printing what was stored before these limits existed.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return text.into();
    }
    text.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect::<String>()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_of_bounded_printable_text() {
        assert_eq!(one_line("reason", "disk swap, ticket #4", 1024), Ok(()));
        assert_eq!(
            one_line("reason", &"x".repeat(1025), 1024)
                .unwrap_err()
                .to_string(),
            "reason is 1025 bytes long; at most 1024 are allowed"
        );
        assert_eq!(
            one_line("reason", "ok\n2026 forged", 1024)
                .unwrap_err()
                .to_string(),
            "reason contains the control character '\\n' at byte 2; it must be one line of printable text"
        );
        assert!(one_line("label", "a\x1b[2Jb", 10).is_err());
        assert!(one_line("label", "a\tb", 10).is_err());
        assert_eq!(one_line("label", "été", 10), Ok(()));
    }

    #[test]
    fn excerpts_are_short_and_printable() {
        assert_eq!(excerpt("web-1"), "web-1");
        let long = excerpt(&"n".repeat(100_000));
        assert_eq!(long.chars().count(), EXCERPT_CHARS + 1);
        assert!(long.ends_with('…'));
        assert_eq!(excerpt("a\nb"), "a\\nb");
        assert_eq!(printable("a\nb\x1b"), "a\\nb\\u{1b}");
        assert!(matches!(printable("plain"), std::borrow::Cow::Borrowed(_)));
    }
}
