//! Configuration in stages, one loader for the master and the agent: the
//! TOML file (the one named, else the default path when it exists) → the
//! program's raw shape (every key optional, unknown keys refused with their
//! line) → overrides from flags and `CLUSTERCTL_*` environment laid on top
//! key by key ([`overlay`]) → the program's own validation, which collects
//! every problem in [`Problems`] and reports them at once.

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid {what}{}:\n  - {}", origin(.path), .problems.join("\n  - "))]
    Invalid {
        /// "configuration", "agent configuration", …
        what: &'static str,
        path: Option<PathBuf>,
        problems: Vec<String>,
    },
}

fn origin(path: &Option<PathBuf>) -> String {
    path.as_ref()
        .map(|p| format!(" (file {})", p.display()))
        .unwrap_or_default()
}

/// Reads a TOML config file into its raw shape, naming the line of a mistake.
pub fn read_file<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        message: e.to_string().trim_end().to_owned(),
    })
}

/// The file named (which must exist), else `default` when it exists, else
/// nothing: the raw shape and the file it came from.
pub fn read_optional<T: DeserializeOwned + Default>(
    named: Option<&Path>,
    default: &Path,
) -> Result<(T, Option<PathBuf>), ConfigError> {
    match named {
        Some(p) => Ok((read_file(p)?, Some(p.to_owned()))),
        None if default.exists() => Ok((read_file(default)?, Some(default.to_owned()))),
        None => Ok((T::default(), None)),
    }
}

/// `over` laid on `base`: every key `over` sets wins, the rest is `base`'s.
/// Both are the same raw shape, so this cannot fail.
pub fn overlay<T: Serialize + DeserializeOwned>(base: T, over: T) -> T {
    use serde_json::Value;
    let to_map = |v: &T| match serde_json::to_value(v).expect("a raw config serialises") {
        Value::Object(m) => m,
        _ => unreachable!("a raw config is a table"),
    };
    let mut merged = to_map(&base);
    for (k, v) in to_map(&over) {
        if !v.is_null() {
            merged.insert(k, v);
        }
    }
    serde_json::from_value(Value::Object(merged)).expect("a merged raw config deserialises")
}

/// Problems found while validating, reported together.
#[derive(Debug, Default)]
pub struct Problems(Vec<String>);

impl Problems {
    /// Keeps the value, or records the problem.
    pub fn check<T>(&mut self, r: Result<T, String>) -> Option<T> {
        r.map_err(|p| self.0.push(p)).ok()
    }

    pub fn push(&mut self, problem: impl Into<String>) {
        self.0.push(problem.into());
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(value())` when nothing was found wrong, else every problem.
    pub fn finish<T>(
        self,
        what: &'static str,
        path: Option<&Path>,
        value: impl FnOnce() -> Option<T>,
    ) -> Result<T, ConfigError> {
        let invalid = |problems| ConfigError::Invalid {
            what,
            path: path.map(Path::to_owned),
            problems,
        };
        if !self.0.is_empty() {
            return Err(invalid(self.0));
        }
        value().ok_or_else(|| invalid(vec!["a required value is missing".into()]))
    }
}

/// Parses a duration such as `15s`, `500ms` or `2m`.
pub fn parse_duration(key: &str, value: &str) -> Result<Duration, String> {
    humantime::parse_duration(value.trim())
        .map_err(|e| format!("{key} = {value:?}: not a duration ({e}); try \"15s\" or \"500ms\""))
}

pub fn parse_addr(key: &str, value: &str) -> Result<SocketAddr, String> {
    value
        .trim()
        .parse()
        .map_err(|_| format!("{key} = {value:?}: not an address:port such as \"127.0.0.1:7440\""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Raw {
        listen: Option<String>,
        roles: Option<Vec<String>>,
        #[serde(rename = "check")]
        checks: Option<Vec<String>>,
    }

    #[test]
    fn overrides_win_key_by_key() {
        let file = Raw {
            listen: Some("a".into()),
            roles: Some(vec!["web".into()]),
            checks: Some(vec!["x".into()]),
        };
        let over = Raw {
            listen: Some("b".into()),
            ..Raw::default()
        };
        assert_eq!(
            overlay(file, over),
            Raw {
                listen: Some("b".into()),
                roles: Some(vec!["web".into()]),
                checks: Some(vec!["x".into()]),
            }
        );
    }

    #[test]
    fn unknown_keys_are_refused_with_their_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "listen = \"x\"\nlisten_addr = 3\n").unwrap();
        let err = read_file::<Raw>(&path).unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
        assert!(err.contains("unknown field `listen_addr`"), "{err}");
    }

    #[test]
    fn a_missing_default_file_is_fine_and_a_missing_named_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let absent = dir.path().join("absent.toml");
        let (raw, path) = read_optional::<Raw>(None, &absent).unwrap();
        assert_eq!((raw, path), (Raw::default(), None));
        let err = read_optional::<Raw>(Some(&absent), &absent).unwrap_err();
        assert!(
            err.to_string().starts_with("cannot read config file"),
            "{err}"
        );
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let mut p = Problems::default();
        let a = p.check(parse_addr("listen", "nowhere"));
        let d = p.check(parse_duration("down_after", "soon"));
        let err = p
            .finish("configuration", Some(Path::new("/etc/x.toml")), || {
                Some((a?, d?))
            })
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("invalid configuration (file /etc/x.toml):"),
            "{err}"
        );
        assert!(
            err.contains(r#"listen = "nowhere": not an address:port"#),
            "{err}"
        );
        assert!(
            err.contains(r#"down_after = "soon": not a duration"#),
            "{err}"
        );
    }
}
