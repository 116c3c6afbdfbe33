//! Splitting compound expression text into tokens: parentheses, `and`,
//! `or`, `not`, and words, which keep what belongs to them (a prefixed
//! word's balanced parentheses, a glob's `[…]`, a `\`-escaped character, a
//! `G%@` prefix's delimiter).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Token<'t> {
    Open,
    Close,
    And,
    Or,
    Not,
    Word(&'t str),
}

/// A token and the byte offset it starts at.
#[derive(Debug, Clone, Copy)]
pub(super) struct Spanned<'t> {
    pub(super) token: Token<'t>,
    pub(super) at: usize,
}

/// Splits on whitespace and around parentheses. A word runs to whitespace or
/// to a parenthesis, except that in a prefixed word (`E@web-(1|2)`) balanced
/// parentheses belong to the value; `[…]` classes and `\`-escaped characters
/// never end a word.
pub(super) fn tokenize(text: &str) -> Vec<Spanned<'_>> {
    let mut tokens = Vec::new();
    let mut at = 0;
    while let Some(c) = text[at..].chars().next() {
        let token = match c {
            c if c.is_whitespace() => {
                at += c.len_utf8();
                continue;
            }
            '(' => Token::Open,
            ')' => Token::Close,
            _ => {
                let end = word_end(text, at);
                let word = match &text[at..end] {
                    "and" => Token::And,
                    "or" => Token::Or,
                    "not" => Token::Not,
                    word => Token::Word(word),
                };
                tokens.push(Spanned { token: word, at });
                at = end;
                continue;
            }
        };
        tokens.push(Spanned { token, at });
        at += 1;
    }
    tokens
}

/// The byte offset where the word starting at `start` ends.
fn word_end(text: &str, start: usize) -> usize {
    let mut chars = text[start..].char_indices().peekable();
    let mut prefixed = false;
    // In `G%@`, whatever stands between the letter and the `@` is the
    // delimiter (`G(@` too, refused later with its reason).
    if let Some(after) = delimited_prefix_len(&text[start..]) {
        while chars.next_if(|&(i, _)| i < after).is_some() {}
        prefixed = true;
    }
    let mut depth = 0usize;
    let mut in_class = false;
    while let Some((i, c)) = chars.next() {
        if c.is_whitespace() {
            return start + i;
        }
        match c {
            '\\' => {
                chars.next_if(|&(_, c)| !c.is_whitespace());
            }
            ']' if in_class => in_class = false,
            _ if in_class => {}
            '[' => {
                in_class = true;
                // A `]` first in a class is a member: `[]a]`, `[!]a]`, `[^]a]`.
                chars.next_if(|&(_, c)| c == '!' || c == '^');
                chars.next_if(|&(_, c)| c == ']');
            }
            '@' => prefixed = true,
            '(' if prefixed => depth += 1,
            ')' if depth > 0 => depth -= 1,
            '(' | ')' => return start + i,
            _ => {}
        }
    }
    text.len()
}

/// The length of a `X<delimiter>@` prefix at the start of `word`: an ASCII
/// capital, one character that is neither whitespace nor `@`, then `@`.
fn delimited_prefix_len(word: &str) -> Option<usize> {
    let mut chars = word.char_indices();
    let (_, letter) = chars.next()?;
    let (_, delimiter) = chars.next()?;
    let (at, sign) = chars.next()?;
    let delimited = letter.is_ascii_uppercase()
        && !delimiter.is_whitespace()
        && delimiter != '@'
        && sign == '@';
    delimited.then_some(at + 1)
}
