//! `facts_dir` and `facts_timeout`: where external facts are read from
//! (`facts::external`), and how long each executable there may run.

use super::DEFAULTS;
use cluster_model::config::{Problems, parse_duration};
use std::path::PathBuf;
use std::time::Duration;

/// The shortest `facts_timeout` taken: below it no script could start.
const TIMEOUT_MIN: Duration = Duration::from_millis(10);

/// `facts_dir` (empty: none; else absolute) and `facts_timeout`.
pub(super) fn facts(
    dir: Option<PathBuf>,
    timeout: Option<String>,
    p: &mut Problems,
) -> (PathBuf, Option<Duration>) {
    let dir = dir.unwrap_or_else(|| DEFAULTS.facts_dir.into());
    if !dir.as_os_str().is_empty() && !dir.is_absolute() {
        p.push(format!(
            "facts_dir = {:?}: give an absolute path, or \"\" for none",
            dir.display().to_string()
        ));
    }
    let timeout = p.check(parse_duration(
        "facts_timeout",
        timeout.as_deref().unwrap_or(DEFAULTS.facts_timeout),
    ));
    if let Some(t) = timeout
        && t < TIMEOUT_MIN
    {
        p.push(format!("facts_timeout ({t:?}) must be at least 10ms"));
    }
    (dir, timeout)
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, RawConfig};
    use std::path::Path;
    use std::time::Duration;

    fn validate(text: &str) -> Result<Config, String> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        Config::validate(raw, None, "box").map_err(|e| e.to_string())
    }

    #[test]
    fn facts_dir_and_timeout_default_and_can_be_set_or_switched_off() {
        let c = validate("").unwrap();
        assert_eq!(c.facts_dir, Path::new("/etc/clusterctl/facts.d"));
        assert_eq!(c.facts_timeout, Duration::from_secs(10));
        let c = validate("facts_dir = \"/srv/facts\"\nfacts_timeout = \"1m 30s\"").unwrap();
        assert_eq!(c.facts_dir, Path::new("/srv/facts"));
        assert_eq!(c.facts_timeout, Duration::from_secs(90));
        let c = validate("facts_dir = \"\"").unwrap();
        assert_eq!(c.facts_dir, Path::new(""));
    }

    #[test]
    fn a_relative_dir_and_a_bad_timeout_are_refused_together() {
        let err = validate("facts_dir = \"facts.d\"\nfacts_timeout = \"soon\"").unwrap_err();
        for want in [
            "facts_dir = \"facts.d\": give an absolute path, or \"\" for none",
            "facts_timeout = \"soon\": not a duration",
        ] {
            assert!(err.contains(want), "missing {want:?} in:\n{err}");
        }
        let err = validate("facts_timeout = \"1ms\"").unwrap_err();
        assert!(
            err.contains("facts_timeout (1ms) must be at least 10ms"),
            "{err}"
        );
    }
}
