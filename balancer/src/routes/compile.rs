//! From a stored [`Domain`] to a [`Chain`]: every problem found on the way
//! is pushed with its place, and a domain with any problem compiles to
//! nothing. A chain holds its rules in a `Vec` (in name order) with
//! `succ`/`fail` resolved to positions, and is acyclic, so a walk down it
//! ends.

use http::HeaderName;
use regex::Regex;
use std::collections::BTreeMap;

use super::{Domain, RouteError, Rule};

/// One domain's rules, ready to evaluate.
#[derive(Debug)]
pub(super) struct Chain {
    pub(super) domain: String,
    /// Position of the first rule in `rules`.
    pub(super) init: usize,
    pub(super) rules: Vec<CompiledRule>,
}

#[derive(Debug)]
pub(super) struct CompiledRule {
    pub(super) name: String,
    pub(super) test: Test,
}

#[derive(Debug)]
pub(super) enum Test {
    Ua {
        regex: Regex,
        next: Next,
    },
    Prefix {
        prefix: String,
        rewrite: bool,
        next: Next,
    },
    /// With `rewrite`, the regex has at least one capture group.
    PathRegex {
        regex: Regex,
        rewrite: bool,
        next: Next,
    },
    Header {
        name: HeaderName,
        regex: Regex,
        next: Next,
    },
    Backend {
        upstream: String,
    },
}

/// Where a filter rule goes on: positions in [`Chain::rules`].
#[derive(Debug, Clone, Copy)]
pub(super) struct Next {
    pub(super) succ: Option<usize>,
    pub(super) fail: Option<usize>,
}

impl Next {
    pub(super) fn after(self, matched: bool) -> Option<usize> {
        if matched { self.succ } else { self.fail }
    }
}

/// Checks and compiles `domain`, pushing every problem onto `errors`;
/// `None` when there was any.
pub(super) fn domain(
    name: &str,
    domain: &Domain,
    upstream_exists: &dyn Fn(&str) -> bool,
    errors: &mut Vec<RouteError>,
) -> Option<Chain> {
    let mut problems = Problems {
        domain: name,
        errors,
        found: false,
    };
    if let Err(message) = domain_name(name) {
        problems.push(None, None, message);
    }
    // `rules` is a BTreeMap: its names are sorted, so positions are found
    // by binary search.
    let names: Vec<&str> = domain.rules.keys().map(String::as_str).collect();
    let position = |rule: &str| names.binary_search(&rule).ok();

    let init = if domain.init.is_empty() {
        problems.push(None, Some("init"), "init is empty".to_owned());
        None
    } else {
        let init = position(&domain.init);
        if init.is_none() {
            problems.push(None, Some("init"), format!("no rule {:?}", domain.init));
        }
        init
    };

    let mut rules = Vec::with_capacity(names.len());
    for (rule_name, rule) in &domain.rules {
        if !is_rule_name(rule_name) {
            problems.push(
                Some(rule_name),
                None,
                r#"rule names are 1–64 of A-Z, a-z, 0-9, "_", "." and "-""#.to_owned(),
            );
        }
        let mut rule_problems = RuleProblems {
            rule: rule_name,
            problems: &mut problems,
        };
        if let Some(test) = rule_test(rule, &position, upstream_exists, &mut rule_problems) {
            rules.push(CompiledRule {
                name: rule_name.clone(),
                test,
            });
        }
    }

    for cycle in cycles(&domain.rules, &position) {
        let path: Vec<&str> = cycle
            .iter()
            .chain(cycle.first())
            .map(|&i| names[i])
            .collect();
        problems.push(
            Some(names[cycle[0]]),
            None,
            format!("cycle: {}", path.join(" → ")),
        );
    }

    if problems.found {
        return None;
    }
    Some(Chain {
        domain: name.to_owned(),
        init: init?,
        rules,
    })
}

/// Sorts by domain, then rule; problems in one place keep the order they
/// were found in.
pub(super) fn sort(errors: &mut [RouteError]) {
    errors.sort_by(|a, b| (&a.domain, &a.rule).cmp(&(&b.domain, &b.rule)));
}

/// What is wrong with a domain name, if anything.
pub(super) fn domain_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("domain name is empty".to_owned());
    }
    if name == "*" {
        return Ok(());
    }
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err("domain names are lower-case".to_owned());
    }
    let labels = name.strip_prefix("*.").unwrap_or(name);
    if let Some(bad) = labels
        .chars()
        .find(|&c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.'))
    {
        return Err(if bad == '*' {
            r#""*" is allowed only as a leading "*." or as the whole name"#.to_owned()
        } else {
            format!(
                r#"invalid character {bad:?} (domain names are a-z, 0-9, "-" and ".", with an optional leading "*.")"#
            )
        });
    }
    if labels.split('.').any(str::is_empty) {
        return Err(r#"empty label (a leading, trailing or doubled ".")"#.to_owned());
    }
    Ok(())
}

/// 1–64 of `[A-Za-z0-9_.-]`.
fn is_rule_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Pushes problems at one domain, remembering whether there were any.
pub(crate) struct Problems<'a> {
    pub(crate) domain: &'a str,
    pub(crate) errors: &'a mut Vec<RouteError>,
    pub(crate) found: bool,
}

impl Problems<'_> {
    pub(crate) fn push(&mut self, rule: Option<&str>, field: Option<&str>, message: String) {
        self.found = true;
        self.errors.push(RouteError {
            domain: self.domain.to_owned(),
            rule: rule.map(str::to_owned),
            field: field.map(str::to_owned),
            message,
        });
    }
}

/// Pushes problems at one rule.
struct RuleProblems<'a, 'b> {
    rule: &'a str,
    problems: &'a mut Problems<'b>,
}

impl RuleProblems<'_, '_> {
    fn push(&mut self, field: &str, message: String) {
        self.problems.push(Some(self.rule), Some(field), message);
    }

    /// Where `field` (`succ` or `fail`) leads: `Some(None)` when it is
    /// absent, `None` when it names no rule.
    fn link(
        &mut self,
        field: &str,
        target: Option<&str>,
        position: &dyn Fn(&str) -> Option<usize>,
    ) -> Option<Option<usize>> {
        let Some(target) = target else {
            return Some(None);
        };
        let at = position(target);
        if at.is_none() {
            self.push(field, format!("no rule {target:?}"));
        }
        at.map(Some)
    }

    fn regex(&mut self, field: &str, pattern: &str) -> Option<Regex> {
        Regex::new(pattern)
            .map_err(|err| self.push(field, format!("invalid regex: {}", regex_problem(&err))))
            .ok()
    }
}

/// Checks and compiles one rule; `None` when it has a problem.
fn rule_test(
    rule: &Rule,
    position: &dyn Fn(&str) -> Option<usize>,
    upstream_exists: &dyn Fn(&str) -> bool,
    problems: &mut RuleProblems<'_, '_>,
) -> Option<Test> {
    let mut next = |succ: &Option<String>, fail: &Option<String>| {
        let succ = problems.link("succ", succ.as_deref(), position);
        let fail = problems.link("fail", fail.as_deref(), position);
        Some(Next {
            succ: succ?,
            fail: fail?,
        })
    };
    match rule {
        Rule::Ua {
            pattern,
            succ,
            fail,
        } => {
            let next = next(succ, fail);
            let regex = problems.regex("pattern", pattern);
            Some(Test::Ua {
                regex: regex?,
                next: next?,
            })
        }
        Rule::Path {
            pattern,
            regex: false,
            rewrite,
            succ,
            fail,
        } => {
            let next = next(succ, fail);
            if !(pattern.is_empty() || pattern.starts_with('/')) {
                problems.push(
                    "pattern",
                    format!(r#"a path prefix starts with "/" (got {pattern:?})"#),
                );
                return None;
            }
            Some(Test::Prefix {
                prefix: pattern.clone(),
                rewrite: *rewrite,
                next: next?,
            })
        }
        Rule::Path {
            pattern,
            regex: true,
            rewrite,
            succ,
            fail,
        } => {
            let next = next(succ, fail);
            let regex = problems.regex("pattern", pattern)?;
            if *rewrite && regex.captures_len() < 2 {
                problems.push(
                    "rewrite",
                    "the pattern has no capture group to rewrite the path to".to_owned(),
                );
                return None;
            }
            Some(Test::PathRegex {
                regex,
                rewrite: *rewrite,
                next: next?,
            })
        }
        Rule::Header {
            name,
            pattern,
            succ,
            fail,
        } => {
            let next = next(succ, fail);
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| problems.push("name", format!("invalid header name {name:?}")))
                .ok();
            let regex = problems.regex("pattern", pattern);
            Some(Test::Header {
                name: header?,
                regex: regex?,
                next: next?,
            })
        }
        Rule::Backend { servername } => {
            if servername.is_empty() {
                problems.push("servername", "servername is empty".to_owned());
                return None;
            }
            // ELB's backends may name an address instead of an upstream.
            if !upstream_exists(servername) && !crate::upstream::is_address(servername) {
                let message = if servername.contains(':') {
                    format!(
                        "unknown upstream {servername:?}, nor an address ({})",
                        crate::upstream::address_problem(servername)
                    )
                } else {
                    format!("unknown upstream {servername:?}")
                };
                problems.push("servername", message);
                return None;
            }
            Some(Test::Backend {
                upstream: servername.clone(),
            })
        }
    }
}

/// The line of a regex error that says what is wrong: `unclosed group`
/// rather than the `regex parse error:` heading and the caret drawing.
fn regex_problem(err: &regex::Error) -> String {
    let text = err.to_string();
    let line = text
        .lines()
        .find_map(|line| line.strip_prefix("error: "))
        .or_else(|| text.lines().next())
        .unwrap_or_default();
    line.to_owned()
}

/// Every cycle of the `succ`/`fail` graph that a depth-first search meets
/// (at least one per tangle of rules), each as positions in rule order,
/// from the rule the search entered it by. Dangling names are no edges.
fn cycles(
    rules: &BTreeMap<String, Rule>,
    position: &dyn Fn(&str) -> Option<usize>,
) -> Vec<Vec<usize>> {
    let edges: Vec<[Option<usize>; 2]> = rules
        .values()
        .map(|rule| match rule {
            Rule::Ua { succ, fail, .. }
            | Rule::Path { succ, fail, .. }
            | Rule::Header { succ, fail, .. } => {
                let at = |name: &Option<String>| name.as_deref().and_then(position);
                [at(succ), at(fail)]
            }
            Rule::Backend { .. } => [None, None],
        })
        .collect();

    #[derive(Clone, Copy, PartialEq)]
    enum Seen {
        Not,
        OnPath,
        Done,
    }
    let mut seen = vec![Seen::Not; edges.len()];
    let mut found: Vec<Vec<usize>> = Vec::new();
    for start in 0..edges.len() {
        if seen[start] != Seen::Not {
            continue;
        }
        // The search path: each rule with the index of its next edge.
        let mut path = vec![(start, 0)];
        seen[start] = Seen::OnPath;
        while let Some((rule, edge)) = path.last_mut() {
            let Some(&next) = edges[*rule].get(*edge) else {
                seen[*rule] = Seen::Done;
                path.pop();
                continue;
            };
            *edge += 1;
            let Some(next) = next else { continue };
            match seen[next] {
                Seen::Not => {
                    seen[next] = Seen::OnPath;
                    path.push((next, 0));
                }
                Seen::OnPath => {
                    let from = path.iter().position(|&(r, _)| r == next).unwrap_or(0);
                    let cycle: Vec<usize> = path[from..].iter().map(|&(r, _)| r).collect();
                    if !found.contains(&cycle) {
                        found.push(cycle);
                    }
                }
                Seen::Done => {}
            }
        }
    }
    found
}
