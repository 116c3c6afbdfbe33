//! Secrets out of text that is shown to people: a check's output or URL.
//!
//! A failing check often prints what it tried — a connection string with
//! its password, a URL with an API key in its query. [`Redactor::redact`]
//! replaces what looks like a credential with `***`, keeping enough to
//! say what was tried:
//!
//! - a URL's password: `postgres://app:***@db:5432/app`;
//! - every query value: `http://h/q?apikey=***&page=***`;
//! - `password=…`, `token: …`, `secret=…`, `api_key=…` and the like,
//!   and `Bearer …` / `Basic …` credentials;
//! - whatever the operator's own patterns match (the agent's
//!   `[redact] patterns`), also replaced with `***`.

use regex::Regex;
use std::sync::LazyLock;

pub const MASK: &str = "***";

static URL_PASSWORD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@?#]*):[^\s@/?#]*@").expect("valid")
});
static QUERY_VALUE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?P<head>[?&][^\s=&#?]+=)[^\s&#]*").expect("valid"));
static KEY_VALUE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?i)(?P<head>\b(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|auth|credentials?)\s*[=:]\s*)(?:"[^"]*"|'[^']*'|[^\s,;&]+)"#,
    )
    .expect("valid")
});
static SCHEME_CREDENTIAL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?P<head>\b(?:bearer|basic)\s+)[A-Za-z0-9._~+/=-]+").expect("valid")
});

/// What is redacted: the built-in shapes (unless turned off) and the
/// operator's own patterns.
#[derive(Debug, Clone)]
pub struct Redactor {
    builtin: bool,
    patterns: Vec<Regex>,
}

impl Default for Redactor {
    fn default() -> Redactor {
        Redactor {
            builtin: true,
            patterns: Vec::new(),
        }
    }
}

impl Redactor {
    /// `builtin`: the shapes above; `patterns`: regular expressions whose
    /// every match is masked. A pattern that does not compile is an error
    /// naming it.
    pub fn new(builtin: bool, patterns: &[String]) -> Result<Redactor, String> {
        let patterns = patterns
            .iter()
            .map(|p| Regex::new(p).map_err(|e| format!("redact pattern {p:?}: {e}")))
            .collect::<Result<_, _>>()?;
        Ok(Redactor { builtin, patterns })
    }

    /// Nothing redacted at all.
    pub fn off() -> Redactor {
        Redactor {
            builtin: false,
            patterns: Vec::new(),
        }
    }

    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        if self.builtin {
            let masked = format!("${{head}}{MASK}");
            out = URL_PASSWORD
                .replace_all(&out, format!("${{head}}:{MASK}@"))
                .into_owned();
            out = QUERY_VALUE.replace_all(&out, masked.as_str()).into_owned();
            out = KEY_VALUE.replace_all(&out, masked.as_str()).into_owned();
            out = SCHEME_CREDENTIAL
                .replace_all(&out, masked.as_str())
                .into_owned();
        }
        for p in &self.patterns {
            out = p.replace_all(&out, MASK).into_owned();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_urls_and_words_are_masked_and_the_rest_kept() {
        let r = Redactor::default();
        for (text, want) in [
            (
                "cannot reach postgres://app:S3cret@db:5432/app",
                "cannot reach postgres://app:***@db:5432/app",
            ),
            (
                "GET http://h:8080/q?apikey=K3y&page=2#top: 500",
                "GET http://h:8080/q?apikey=***&page=***#top: 500",
            ),
            ("redis://:pw@cache:6379", "redis://:***@cache:6379"),
            (
                "login failed: password=hunter2, user=bob",
                "login failed: password=***, user=bob",
            ),
            ("TOKEN: abc.def", "TOKEN: ***"),
            (r#"api_key="a b c" rejected"#, "api_key=*** rejected"),
            (
                "Authorization: Bearer eyJhbGciOi.x-y_z",
                "Authorization: Bearer ***",
            ),
            ("exit 1: connection refused", "exit 1: connection refused"),
            (
                "http://db:5432/ no credentials",
                "http://db:5432/ no credentials",
            ),
            ("user@host:22 unreachable", "user@host:22 unreachable"),
        ] {
            assert_eq!(r.redact(text), want, "{text}");
        }
    }

    #[test]
    fn the_operators_patterns_add_to_the_shapes_or_replace_them() {
        let r = Redactor::new(true, &["AKIA[0-9A-Z]{16}".into()]).unwrap();
        assert_eq!(
            r.redact("aws AKIAABCDEFGHIJKLMNOP denied, password=x"),
            "aws *** denied, password=***"
        );
        let only = Redactor::new(false, &["s[0-9]+".into()]).unwrap();
        assert_eq!(only.redact("password=s42"), "password=***");
        assert_eq!(Redactor::off().redact("password=x"), "password=x");
        let e = Redactor::new(true, &["(".into()]).unwrap_err();
        assert!(e.starts_with("redact pattern \"(\""), "{e}");
    }
}
