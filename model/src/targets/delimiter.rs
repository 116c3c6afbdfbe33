//! [`Delimiter`]: the character between nested keys, and between the last
//! key and the value, in `G@`, `P@`, `I@` and `F@` expressions — `:` unless
//! one is chosen: `G%@ipv6%fe80::*` in a compound expression, or
//! `-G --delimiter % 'ipv6%fe80::*'` (`F@` paths are dotted, so there only
//! the separator before the value changes). A delimiter is checked once,
//! when it is made, so every `Delimiter` is one a target can use.

use std::fmt;
use std::str::FromStr;

/// One character, not whitespace, not one the expression grammar gives a
/// meaning to. Stored as its character, checked again when read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "char", into = "char")]
pub struct Delimiter(char);

impl TryFrom<char> for Delimiter {
    type Error = DelimiterError;
    fn try_from(c: char) -> Result<Delimiter, DelimiterError> {
        Delimiter::new(c)
    }
}

impl From<Delimiter> for char {
    fn from(d: Delimiter) -> char {
        d.0
    }
}

impl Delimiter {
    /// Salt's, and what a target without one uses.
    pub const DEFAULT: Delimiter = Delimiter(':');

    /// `c`, unless it would make expressions ambiguous. Salt takes any
    /// character but a newline; these it takes and then mis-reads:
    /// whitespace and control characters (a compound expression splits
    /// words on whitespace), the glob metacharacters `*?[]` (a key may be
    /// a glob: `G@a:*:c:v`), and `@ ( ) \`, which end a prefix, group and
    /// escape in a compound expression.
    pub fn new(c: char) -> Result<Delimiter, DelimiterError> {
        if c.is_whitespace() || c.is_control() {
            return Err(DelimiterError::Blank { found: c });
        }
        let why = match c {
            '*' | '?' | '[' | ']' => {
                return Err(DelimiterError::Glob { found: c });
            }
            '@' => "it ends a compound prefix (`G%@`)",
            '(' | ')' => "parentheses group compound expressions",
            '\\' => "it escapes the next character in a compound expression",
            _ => return Ok(Delimiter(c)),
        };
        Err(DelimiterError::Reserved { found: c, why })
    }

    pub fn as_char(self) -> char {
        self.0
    }

    pub fn is_default(self) -> bool {
        self == Delimiter::DEFAULT
    }
}

impl Default for Delimiter {
    fn default() -> Delimiter {
        Delimiter::DEFAULT
    }
}

impl fmt::Display for Delimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Exactly one character, as typed after `--delimiter` or sent on the wire.
impl FromStr for Delimiter {
    type Err = DelimiterError;

    fn from_str(text: &str) -> Result<Delimiter, DelimiterError> {
        let mut chars = text.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => Delimiter::new(c),
            (None, _) => Err(DelimiterError::Empty),
            (Some(_), Some(_)) => Err(DelimiterError::NotOneChar {
                found: crate::limits::excerpt(text),
                chars: text.chars().count(),
            }),
        }
    }
}

/// Why a character cannot be a delimiter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DelimiterError {
    #[error("a delimiter is one character; none was given")]
    Empty,
    #[error("a delimiter is one character, not {chars} (`{found}`)")]
    NotOneChar { found: String, chars: usize },
    #[error("a delimiter cannot be whitespace or a control character (found {found:?})")]
    Blank { found: char },
    #[error(
        "`{found}` cannot be a delimiter: it is a glob metacharacter, and a key may be a glob (`G@a:*:c:v`)"
    )]
    Glob { found: char },
    #[error("`{found}` cannot be a delimiter: {why}")]
    Reserved { found: char, why: &'static str },
}
