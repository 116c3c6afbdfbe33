//! `facts_dir` and `facts_timeout`: where external facts are read from
//! (`facts::external`), and how long each executable there may run; the
//! node's roles, from `roles` and a static `roles` grain; and [`Reread`],
//! the configuration read again for a facts refresh.

use super::DEFAULTS;
use cluster_model::config::{Problems, parse_duration};
use serde_json::{Map, Value};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// What a facts refresh takes from the configuration read again (as
/// Salt's `saltutil.refresh_grains` reads the grains file again): the
/// roles and the static grains. Everything else needs a restart.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Statics {
    pub roles: Vec<String>,
    pub grains: Map<String, Value>,
}

/// Reads the configuration again as it was read at start (the same file,
/// flags and environment); its roles and grains, or why it cannot.
#[derive(Clone)]
pub struct Reread(pub Arc<dyn Fn() -> Result<Statics, String> + Send + Sync>);

impl std::fmt::Debug for Reread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reread")
    }
}

/// The node's roles: `roles`, then those of a static `roles` grain not
/// among them (a grain of role names, as Salt's custom `roles` grain), each
/// a valid name.
pub(super) fn roles(
    configured: Option<Vec<String>>,
    grains: &Map<String, Value>,
    p: &mut Problems,
) -> Vec<String> {
    let mut roles = configured.unwrap_or_default();
    match grains.get("roles") {
        None => {}
        Some(Value::Array(list)) => {
            for r in list {
                match r.as_str() {
                    Some(r) if !roles.iter().any(|have| have == r) => roles.push(r.to_owned()),
                    Some(_) => {}
                    None => p.push(format!(
                        "grains.roles: {r} is not a role name (a list of names, as `roles`)"
                    )),
                }
            }
        }
        Some(other) => p.push(format!(
            "grains.roles = {other}: a list of role names, as `roles`"
        )),
    }
    for r in &roles {
        if let Err(e) = cluster_model::ids::check_name(r) {
            p.push(format!("role {r:?} {e}"));
        }
    }
    roles
}

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
