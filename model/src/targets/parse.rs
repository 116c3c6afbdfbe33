//! Reading expression text into an [`Expr`] tree: the compound tokenizer, a
//! recursive-descent parser with Salt's precedence (`not` binds tightest,
//! then `and`, then `or`, each left to right), the `X@` prefixes, and
//! node-group expansion with cycle detection. Every mistake becomes a
//! [`TargetError`] pointing into the text it is in: the expression, or the
//! definition of the node group it was found in.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{Expr, Fault, Kind, TargetError, matchers};

/// How deep parentheses, `not`s and node groups may nest: far beyond any
/// real expression, well within the stack.
const MAX_NESTING: usize = crate::limits::TARGET_MAX_NESTING;
/// How many matchers one expression may compile (each glob or regex is
/// compiled once, and costs memory: the bound keeps the parser's small).
const MAX_TERMS: usize = crate::limits::TARGET_MAX_TERMS;

pub(super) fn parse(
    kind: Kind,
    expr: &str,
    groups: &BTreeMap<String, String>,
) -> Result<Expr, TargetError> {
    let mut groups = Groups::new(groups);
    let compile = match kind {
        Kind::Compound => return compound(expr, &mut groups),
        Kind::NodeGroup => return node_group(expr, &mut groups),
        Kind::Glob => matchers::name_glob,
        Kind::Regex => matchers::name_regex,
        Kind::List => matchers::name_list,
        Kind::Grain => matchers::grain,
        Kind::GrainRegex => matchers::grain_regex,
        Kind::Label => matchers::label,
        Kind::Subnet => matchers::subnet,
        Kind::Role => matchers::role,
    };
    if expr.trim().is_empty() {
        return Err(TargetError::at(expr, 0, "empty expression"));
    }
    compile(expr)
        .map(Expr::Leaf)
        .map_err(|fault| TargetError::at(expr, fault.at, fault.message))
}

/// `-N name`: the group's definition.
fn node_group(expr: &str, groups: &mut Groups<'_>) -> Result<Expr, TargetError> {
    let name = expr.trim();
    let at = expr.len() - expr.trim_start().len();
    if name.is_empty() {
        return Err(TargetError::at(expr, at, "expected a node group name"));
    }
    groups
        .expand(name)
        .map(Expr::Group)
        .map_err(|failure| match failure {
            Expansion::Refused(message) => TargetError::at(expr, at, message),
            Expansion::Invalid(err) => err,
        })
}

/// Parses a whole compound expression: the top-level one, or a group's
/// definition.
fn compound(text: &str, groups: &mut Groups<'_>) -> Result<Expr, TargetError> {
    let mut parser = Parser {
        text,
        tokens: tokenize(text),
        next: 0,
        groups,
    };
    if parser.tokens.is_empty() {
        return Err(parser.error(0, "empty expression"));
    }
    let expr = parser.or(None)?;
    match parser.peek() {
        None => Ok(expr),
        Some(extra) => Err(parser.unexpected(extra)),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<'t> {
    Open,
    Close,
    And,
    Or,
    Not,
    Word(&'t str),
}

/// A token and the byte offset it starts at.
#[derive(Debug, Clone, Copy)]
struct Spanned<'t> {
    token: Token<'t>,
    at: usize,
}

/// Splits on whitespace and around parentheses. A word runs to whitespace or
/// to a parenthesis, except that in a prefixed word (`E@web-(1|2)`) balanced
/// parentheses belong to the value; `[…]` classes and `\`-escaped characters
/// never end a word.
fn tokenize(text: &str) -> Vec<Spanned<'_>> {
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

/// Node group definitions and what has been made of them so far.
struct Groups<'g> {
    definitions: &'g BTreeMap<String, String>,
    /// The groups being expanded, outermost first: for cycles and messages.
    expanding: Vec<&'g str>,
    /// Groups already parsed, shared by every later reference.
    expanded: BTreeMap<&'g str, Arc<Expr>>,
    /// Current nesting of parentheses, `not`s and groups, across texts.
    depth: usize,
    /// Matchers compiled so far, across texts.
    terms: usize,
}

/// Why a node group reference could not be expanded.
enum Expansion {
    /// Unknown group or a cycle: an error at the reference.
    Refused(String),
    /// The group's definition is invalid: an error inside it.
    Invalid(TargetError),
}

impl<'g> Groups<'g> {
    fn new(definitions: &'g BTreeMap<String, String>) -> Groups<'g> {
        Groups {
            definitions,
            expanding: Vec::new(),
            expanded: BTreeMap::new(),
            depth: 0,
            terms: 0,
        }
    }

    fn expand(&mut self, name: &str) -> Result<Arc<Expr>, Expansion> {
        if let Some(done) = self.expanded.get(name) {
            return Ok(Arc::clone(done));
        }
        let Some((name, definition)) = self.definitions.get_key_value(name) else {
            return Err(Expansion::Refused(self.unknown(name)));
        };
        if let Some(start) = self.expanding.iter().position(|g| *g == name) {
            let mut cycle = self.expanding[start..].to_vec();
            cycle.push(name);
            return Err(Expansion::Refused(format!(
                "node group cycle: {}",
                cycle.join(" -> ")
            )));
        }
        self.expanding.push(name);
        let parsed = compound(definition, self);
        self.expanding.pop();
        let expr = Arc::new(parsed.map_err(Expansion::Invalid)?);
        self.expanded.insert(name, Arc::clone(&expr));
        Ok(expr)
    }

    fn unknown(&self, name: &str) -> String {
        if self.definitions.is_empty() {
            return format!("unknown node group \"{name}\" (no node groups are defined)");
        }
        let known: Vec<&str> = self.definitions.keys().map(String::as_str).collect();
        format!(
            "unknown node group \"{name}\" (known: {})",
            known.join(", ")
        )
    }

    /// Where an error is, for messages: nothing at the top level.
    fn context(&self) -> String {
        match self.expanding.as_slice() {
            [] => String::new(),
            [group] => format!("in node group \"{group}\": "),
            [outer @ .., group] => {
                let via: Vec<String> = outer.iter().map(|g| format!("\"{g}\"")).collect();
                format!("in node group \"{group}\" (via {}): ", via.join(" -> "))
            }
        }
    }
}

struct Parser<'t, 'p, 'g> {
    text: &'t str,
    tokens: Vec<Spanned<'t>>,
    next: usize,
    groups: &'p mut Groups<'g>,
}

impl<'t> Parser<'t, '_, '_> {
    fn peek(&self) -> Option<Spanned<'t>> {
        self.tokens.get(self.next).copied()
    }

    fn error(&self, at: usize, message: impl AsRef<str>) -> TargetError {
        let message = format!("{}{}", self.groups.context(), message.as_ref());
        TargetError::at(self.text, at, message)
    }

    /// `and`-terms joined by `or`. `after` names what came just before, for
    /// messages about a missing operand (`None` at the start of the text).
    fn or(&mut self, after: Option<&str>) -> Result<Expr, TargetError> {
        let mut any = vec![self.and(after)?];
        while let Some(Spanned {
            token: Token::Or, ..
        }) = self.peek()
        {
            self.next += 1;
            any.push(self.and(Some("or"))?);
        }
        Ok(if any.len() == 1 {
            any.remove(0)
        } else {
            Expr::Any(any)
        })
    }

    /// Operands joined by `and`. As in Salt, `a not b` means `a and not b`.
    fn and(&mut self, after: Option<&str>) -> Result<Expr, TargetError> {
        let mut all = vec![self.operand(after)?];
        loop {
            match self.peek().map(|s| s.token) {
                Some(Token::And) => {
                    self.next += 1;
                    all.push(self.operand(Some("and"))?);
                }
                Some(Token::Not) => all.push(self.operand(None)?),
                _ => break,
            }
        }
        Ok(if all.len() == 1 {
            all.remove(0)
        } else {
            Expr::All(all)
        })
    }

    /// A word, `not` and its operand, or a parenthesised expression.
    fn operand(&mut self, after: Option<&str>) -> Result<Expr, TargetError> {
        let Some(Spanned { token, at }) = self.peek() else {
            return Err(match after {
                Some(previous) => self.error(
                    self.text.len(),
                    format!("expected an expression after `{previous}`"),
                ),
                None => self.error(self.text.len(), "empty expression"),
            });
        };
        let found = match token {
            Token::Word(word) => {
                self.next += 1;
                return self.word(word, at);
            }
            Token::Not => {
                self.next += 1;
                let inner = self.nested(at, |p| p.operand(Some("not")))?;
                return Ok(Expr::Not(Box::new(inner)));
            }
            Token::Open => {
                self.next += 1;
                return self.parenthesised(at);
            }
            Token::And => "and",
            Token::Or => "or",
            Token::Close => ")",
        };
        Err(match after {
            Some(previous) => self.error(
                at,
                format!("expected an expression after `{previous}`, found `{found}`"),
            ),
            None if found == ")" => self.error(at, "unmatched `)`"),
            None => self.error(at, format!("`{found}` needs an expression before it")),
        })
    }

    /// What follows a `(` at byte `open`.
    fn parenthesised(&mut self, open: usize) -> Result<Expr, TargetError> {
        if let Some(Spanned {
            token: Token::Close,
            ..
        }) = self.peek()
        {
            return Err(self.error(open, "empty parentheses"));
        }
        let inner = self.nested(open, |p| p.or(Some("(")))?;
        match self.peek() {
            Some(Spanned {
                token: Token::Close,
                ..
            }) => {
                self.next += 1;
                Ok(inner)
            }
            None => Err(self.error(open, "unclosed `(`")),
            Some(other) => Err(self.unexpected(other)),
        }
    }

    /// A token where only `and`, `or`, `)` or the end could follow.
    fn unexpected(&self, found: Spanned<'_>) -> TargetError {
        let found_text = match found.token {
            Token::Close => return self.error(found.at, "unmatched `)`"),
            Token::Word(word) => word,
            Token::Open => "(",
            Token::And => "and",
            Token::Or => "or",
            Token::Not => "not",
        };
        let lowercase_hint = if ["and", "or", "not"]
            .iter()
            .any(|op| found_text.eq_ignore_ascii_case(op))
        {
            " (operators are lowercase)"
        } else {
            ""
        };
        self.error(
            found.at,
            format!("expected `and` or `or` before `{found_text}`{lowercase_hint}"),
        )
    }

    /// Runs `inside` one nesting level deeper, refusing absurd depths.
    fn nested<T>(
        &mut self,
        at: usize,
        inside: impl FnOnce(&mut Self) -> Result<T, TargetError>,
    ) -> Result<T, TargetError> {
        if self.groups.depth >= MAX_NESTING {
            return Err(self.error(at, format!("nested more than {MAX_NESTING} levels deep")));
        }
        self.groups.depth += 1;
        let result = inside(self);
        self.groups.depth -= 1;
        result
    }

    /// A bare word (a glob on the name) or a prefixed one (`G@os:Debian`).
    fn word(&mut self, word: &str, at: usize) -> Result<Expr, TargetError> {
        if !word.starts_with("N@") {
            self.groups.terms += 1;
            if self.groups.terms > MAX_TERMS {
                return Err(self.error(at, format!("more than {MAX_TERMS} terms")));
            }
        }
        let Some((prefix, value)) = word.split_once('@') else {
            return self.leaf(matchers::name_glob(word), at);
        };
        let value_at = at + prefix.len() + 1;
        let compile = match prefix {
            "G" => matchers::grain,
            "P" => matchers::grain_regex,
            "E" => matchers::name_regex,
            "L" => matchers::name_list,
            "I" => matchers::label,
            "S" => matchers::subnet,
            "R" => matchers::role,
            "N" => return self.group_reference(value, value_at),
            _ => return Err(self.error(at, unknown_prefix(prefix))),
        };
        if value.is_empty() {
            return Err(self.error(value_at, format!("expected a value after `{prefix}@`")));
        }
        self.leaf(compile(value), value_at)
    }

    fn leaf(
        &self,
        compiled: Result<matchers::Matcher, Fault>,
        value_at: usize,
    ) -> Result<Expr, TargetError> {
        compiled
            .map(Expr::Leaf)
            .map_err(|fault| self.error(value_at + fault.at, fault.message))
    }

    fn group_reference(&mut self, name: &str, at: usize) -> Result<Expr, TargetError> {
        if name.is_empty() {
            return Err(self.error(at, "expected a value after `N@`"));
        }
        let expanded = self.nested(at, |p| Ok(p.groups.expand(name)))?;
        expanded.map(Expr::Group).map_err(|failure| match failure {
            Expansion::Refused(message) => self.error(at, message),
            Expansion::Invalid(err) => err,
        })
    }
}

fn unknown_prefix(prefix: &str) -> String {
    const KNOWN: [&str; 8] = ["G", "P", "E", "L", "I", "S", "R", "N"];
    let upper = prefix.to_ascii_uppercase();
    if KNOWN.contains(&upper.as_str()) {
        return format!(
            "unknown prefix `{prefix}@`: prefixes are case-sensitive, did you mean `{upper}@`?"
        );
    }
    format!("unknown prefix `{prefix}@` (expected one of G@, P@, E@, L@, I@, S@, R@, N@)")
}
