//! Reading expression text into an [`Expr`] tree: a recursive-descent
//! parser with Salt's precedence (`not` binds tightest, then `and`, then
//! `or`, each left to right), the `X@` prefixes and their custom delimiters
//! (`G%@`), and node-group expansion with cycle detection. Every mistake
//! becomes a [`TargetError`] pointing into the text it is in: the
//! expression, or the definition of the node group it was found in.
//!
//! - `tokens` — the compound tokenizer.

mod tokens;

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{Delimiter, Expr, Fault, Kind, TargetError, matchers};
use tokens::{Spanned, Token, tokenize};

/// How deep parentheses, `not`s and node groups may nest: far beyond any
/// real expression, well within the stack.
const MAX_NESTING: usize = crate::limits::TARGET_MAX_NESTING;
/// How many matchers one expression may compile (each glob or regex is
/// compiled once, and costs memory: the bound keeps the parser's small).
const MAX_TERMS: usize = crate::limits::TARGET_MAX_TERMS;
/// How many readings beyond their first the `key:value` words of one
/// expression may compile (`G@a:b:c` has one).
const MAX_READINGS: usize = crate::limits::TARGET_MAX_READINGS;

/// Why `.` cannot be `F@`'s delimiter.
pub(super) const DOT_IN_FACTS: &str =
    "`.` cannot be F@'s delimiter: it separates the keys of a fact's path (os.family)";

pub(super) fn parse(
    kind: Kind,
    expr: &str,
    groups: &BTreeMap<String, String>,
    delimiter: Delimiter,
) -> Result<Expr, TargetError> {
    let mut groups = Groups::new(groups);
    let compiled = match kind {
        Kind::Compound => return compound(expr, &mut groups),
        Kind::NodeGroup => return node_group(expr, &mut groups),
        _ if expr.trim().is_empty() => {
            return Err(TargetError::at(expr, 0, "empty expression"));
        }
        Kind::Glob => matchers::name_glob(expr),
        Kind::Regex => matchers::name_regex(expr),
        Kind::List => matchers::name_list(expr),
        Kind::Grain => matchers::grain(expr, delimiter),
        Kind::GrainRegex => matchers::grain_regex(expr, delimiter),
        Kind::Label => matchers::label(expr, delimiter),
        Kind::Fact => matchers::fact(expr, delimiter),
        Kind::Subnet => matchers::subnet(expr),
        Kind::Role => matchers::role(expr),
    };
    compiled
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
    /// Readings of `key:value` words compiled beyond each word's first.
    readings: usize,
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
            readings: 0,
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

    /// A bare word (a glob on the name) or a prefixed one (`G@os:Debian`,
    /// `G%@ipv6%fe80::*`).
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
        let mut chars = prefix.chars();
        let (letter, custom) = match (chars.next(), chars.next(), chars.next()) {
            (Some(letter), custom, None) if PREFIXES.contains(&letter) => (letter, custom),
            _ => return Err(self.error(at, unknown_prefix(prefix))),
        };
        let delimiter = match custom {
            None => Delimiter::DEFAULT,
            Some(custom) => self.delimiter(letter, custom, at + letter.len_utf8())?,
        };
        if letter == 'N' {
            return self.group_reference(value, value_at);
        }
        if value.is_empty() {
            return Err(self.error(value_at, format!("expected a value after `{prefix}@`")));
        }
        let compiled = match letter {
            'G' => matchers::grain(value, delimiter),
            'P' => matchers::grain_regex(value, delimiter),
            'I' => matchers::label(value, delimiter),
            'F' => matchers::fact(value, delimiter),
            'E' => matchers::name_regex(value),
            'L' => matchers::name_list(value),
            'S' => matchers::subnet(value),
            // `R`, the last of `PREFIXES`.
            _ => matchers::role(value),
        };
        if let Ok(matcher) = &compiled {
            self.groups.readings += matcher.extra_readings();
            if self.groups.readings > MAX_READINGS {
                let message = format!(
                    "the key:value words of this expression can be read more than {MAX_READINGS} ways \
                     (each delimiter after a word's first adds one)"
                );
                return Err(self.error(at, message));
            }
        }
        self.leaf(compiled, value_at)
    }

    /// The delimiter `custom` written after `letter` (`G%@`), at byte `at`.
    fn delimiter(&self, letter: char, custom: char, at: usize) -> Result<Delimiter, TargetError> {
        if !matches!(letter, 'G' | 'P' | 'I' | 'F') {
            let message = format!(
                "`{letter}@` takes no delimiter (`{letter}{custom}@`): only G@, P@, I@ and F@ do"
            );
            return Err(self.error(at, message));
        }
        if letter == 'F' && custom == '.' {
            return Err(self.error(at, DOT_IN_FACTS));
        }
        Delimiter::new(custom).map_err(|err| self.error(at, err.to_string()))
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

/// The prefix letters, in the order messages list them.
const PREFIXES: [char; 9] = ['G', 'P', 'E', 'L', 'I', 'F', 'S', 'R', 'N'];

fn unknown_prefix(prefix: &str) -> String {
    let mut chars = prefix.chars();
    if let (Some(first), rest) = (chars.next(), chars.as_str()) {
        let upper = first.to_ascii_uppercase();
        if upper != first && PREFIXES.contains(&upper) && rest.chars().count() <= 1 {
            return format!(
                "unknown prefix `{prefix}@`: prefixes are case-sensitive, did you mean `{upper}{rest}@`?"
            );
        }
    }
    let known: Vec<String> = PREFIXES.iter().map(|p| format!("{p}@")).collect();
    format!(
        "unknown prefix `{prefix}@` (expected one of {})",
        known.join(", ")
    )
}
