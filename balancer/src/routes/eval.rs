//! One request's walk down a compiled chain, and how the resulting
//! [`Decision`] reads. The walk allocates only what the decision carries,
//! the lower-cased User-Agent (once, when a `ua` rule first asks) and a
//! rewritten path.

use std::borrow::Cow;
use std::fmt;

use super::compile::{Chain, Test};
use super::{Decision, Outcome, Request, Step};

/// Where a walk ended, borrowing the chain's names: what the proxy needs
/// per request, without the trace `route test` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pick<'a> {
    Backend {
        upstream: &'a str,
        /// Set when a rule rewrote the path.
        path: Option<String>,
    },
    Forbidden {
        rule: &'a str,
    },
}

impl Chain {
    /// Walks from `init` until a backend, or a filter rule without the next
    /// rule this request needs, telling `visit` each rule and what it did.
    /// Ends: a chain is acyclic.
    fn walk<'a>(&'a self, request: &Request<'_>, mut visit: impl FnMut(&'a str, Step)) -> Pick<'a> {
        let mut path = Cow::Borrowed(request.path);
        let mut rewritten = false;
        // ASCII lower-casing, as ELB's `string.lower`.
        let mut user_agent: Option<String> = None;
        let mut at = self.init;
        loop {
            let rule = &self.rules[at];
            let (matched, next, step) = match &rule.test {
                Test::Backend { upstream } => {
                    visit(&rule.name, Step::Backend);
                    return Pick::Backend {
                        upstream,
                        path: rewritten.then(|| path.into_owned()),
                    };
                }
                Test::Ua { regex, next } => {
                    let user_agent =
                        user_agent.get_or_insert_with(|| request.user_agent.to_ascii_lowercase());
                    let matched = regex.is_match(user_agent);
                    (matched, next, Step::Ua { matched })
                }
                Test::Prefix {
                    prefix,
                    rewrite,
                    next,
                } => {
                    let matched = path.starts_with(prefix.as_str());
                    let rewrote = matched && *rewrite;
                    if rewrote {
                        path = Cow::Owned(rooted(&path[prefix.len()..]));
                        rewritten = true;
                    }
                    (matched, next, Step::Path { matched, rewrote })
                }
                Test::PathRegex {
                    regex,
                    rewrite: false,
                    next,
                } => {
                    let matched = regex.is_match(&path);
                    let step = Step::Path {
                        matched,
                        rewrote: false,
                    };
                    (matched, next, step)
                }
                Test::PathRegex {
                    regex,
                    rewrite: true,
                    next,
                } => {
                    // An optional group that took no part captures "".
                    let capture = regex
                        .captures(&path)
                        .map(|c| rooted(c.get(1).map_or("", |m| m.as_str())));
                    let matched = capture.is_some();
                    if let Some(capture) = capture {
                        path = Cow::Owned(capture);
                        rewritten = true;
                    }
                    let step = Step::Path {
                        matched,
                        rewrote: matched,
                    };
                    (matched, next, step)
                }
                Test::Header { name, regex, next } => {
                    // Any of the header's values; one that is not UTF-8
                    // does not match.
                    let matched = request.headers.any_value(name.as_str(), &mut |value| {
                        std::str::from_utf8(value).is_ok_and(|v| regex.is_match(v))
                    });
                    (matched, next, Step::Header { matched })
                }
            };
            visit(&rule.name, step);
            match next.after(matched) {
                Some(next) => at = next,
                None => return Pick::Forbidden { rule: &rule.name },
            }
        }
    }

    /// The walk, with every rule visited and what it did.
    pub(super) fn evaluate(&self, request: &Request<'_>) -> Decision {
        let mut trace = Vec::new();
        let mut steps = Vec::new();
        let pick = self.walk(request, |name, step| {
            trace.push(name.to_owned());
            steps.push(step);
        });
        let outcome = match pick {
            Pick::Backend { upstream, path } => Outcome::Backend {
                upstream: upstream.to_owned(),
                path,
            },
            Pick::Forbidden { rule } => Outcome::Forbidden {
                rule: rule.to_owned(),
            },
        };
        Decision {
            trace,
            steps,
            outcome,
        }
    }

    /// The walk's end only: no allocation unless the User-Agent or the
    /// path need it.
    pub(super) fn pick<'a>(&'a self, request: &Request<'_>) -> Pick<'a> {
        self.walk(request, |_, _| {})
    }
}

/// `rest` as a path: starting with `/`, `/` when empty.
fn rooted(rest: &str) -> String {
    if rest.starts_with('/') {
        rest.to_owned()
    } else {
        format!("/{rest}")
    }
}

/// `r1 (ua: match) → r4 (path: match, rewritten) → r2 → backend upstream1,
/// path /x`, or for a 403
/// `r1 (ua: match) → r4 (path: no match) → 403: rule r4 has no "fail"`.
impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, rule) in self.trace.iter().enumerate() {
            if i > 0 {
                f.write_str(" → ")?;
            }
            f.write_str(rule)?;
            match self.steps.get(i) {
                Some(Step::Ua { matched }) => write!(f, " (ua: {})", said(*matched))?,
                Some(Step::Path { matched, rewrote }) => {
                    let rewrote = if *rewrote { ", rewritten" } else { "" };
                    write!(f, " (path: {}{rewrote})", said(*matched))?;
                }
                Some(Step::Header { matched }) => write!(f, " (header: {})", said(*matched))?,
                Some(Step::Backend) | None => {}
            }
        }
        if !self.trace.is_empty() {
            f.write_str(" → ")?;
        }
        match &self.outcome {
            Outcome::Backend { upstream, path } => {
                write!(f, "backend {upstream}")?;
                if let Some(path) = path {
                    write!(f, ", path {path}")?;
                }
                Ok(())
            }
            Outcome::Forbidden { rule } => {
                let missing = match self.steps.last().and_then(|step| step.matched()) {
                    Some(true) => r#""succ""#,
                    Some(false) => r#""fail""#,
                    None => "next rule",
                };
                write!(f, "403: rule {rule} has no {missing}")
            }
        }
    }
}

fn said(matched: bool) -> &'static str {
    if matched { "match" } else { "no match" }
}
