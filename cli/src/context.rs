//! clusterctl's config file (`--config-file`, `CLUSTERCTL_CONFIG`, else
//! `$XDG_CONFIG_HOME/clusterctl/config.toml`, else
//! `~/.config/clusterctl/config.toml`): named contexts, one current, in the
//! manner of kubeconfig; each names a master and the CA, certificate and key
//! to reach it with. Which master a command talks to: `--master`, then
//! `CLUSTERCTL_MASTER`, then the context (`--context`, `CLUSTERCTL_CONTEXT`,
//! then `current_context`), then the default. The credentials come from the
//! context, each overridable by `CLUSTERCTL_CA`, `CLUSTERCTL_CERT`,
//! `CLUSTERCTL_KEY`.

use crate::Env;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const DEFAULT_MASTER: &str = "https://127.0.0.1:7440";

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_context: Option<String>,
    #[serde(default)]
    pub contexts: BTreeMap<String, Context>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Context {
    pub master: String,
    /// The cluster CA (PEM file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
    /// This user's certificate and key (PEM files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no context {name:?} in {path} (known: {known})")]
    Unknown {
        name: String,
        path: PathBuf,
        known: String,
    },
}

pub fn path(env: &Env) -> PathBuf {
    env.config_file
        .clone()
        .unwrap_or_else(|| env.config_home.join("clusterctl").join("config.toml"))
}

pub fn load(path: &Path) -> Result<ConfigFile, ContextError> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).map_err(|e| ContextError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ConfigFile::default()),
        Err(source) => Err(ContextError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Writes the file atomically (temp file and rename), mode 0600.
pub fn save(path: &Path, file: &ConfigFile) -> Result<(), ContextError> {
    use std::io::Write as _;
    let err = |source| ContextError::Write {
        path: path.to_owned(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(err)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(err)?;
    let text = toml::to_string_pretty(file).expect("a config file always serialises");
    tmp.write_all(text.as_bytes()).map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}

/// Adds or replaces context `name` and makes it current.
pub fn set_current(path: &Path, name: &str, ctx: Context) -> Result<(), ContextError> {
    let mut file = load(path)?;
    file.contexts.insert(name.to_owned(), ctx);
    file.current_context = Some(name.to_owned());
    save(path, &file)
}

/// The master to talk to, where that choice came from (for messages), and
/// the credentials to talk with.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub master: String,
    pub origin: String,
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

pub fn resolve(
    flag_master: Option<&str>,
    flag_context: Option<&str>,
    env: &Env,
) -> Result<Target, ContextError> {
    let path = path(env);
    let file = load(&path)?;
    let wanted = flag_context
        .map(str::to_owned)
        .or_else(|| env.context.clone())
        .or(file.current_context.clone());
    let (context, context_origin) = match wanted {
        Some(name) => match file.contexts.get(&name) {
            Some(c) => (
                Some(c.clone()),
                format!("context {name:?} in {}", path.display()),
            ),
            None => {
                return Err(ContextError::Unknown {
                    known: if file.contexts.is_empty() {
                        "none".into()
                    } else {
                        file.contexts.keys().cloned().collect::<Vec<_>>().join(", ")
                    },
                    name,
                    path,
                });
            }
        },
        None => (None, "the default (no context configured)".into()),
    };
    let (master, origin) = if let Some(m) = flag_master {
        (m.to_owned(), "--master".to_owned())
    } else if let Some(m) = &env.master {
        (m.clone(), "CLUSTERCTL_MASTER".to_owned())
    } else if let Some(c) = &context {
        (c.master.clone(), context_origin)
    } else {
        (DEFAULT_MASTER.to_owned(), context_origin)
    };
    let pick = |over: &Option<PathBuf>, from: fn(&Context) -> &Option<PathBuf>| {
        over.clone()
            .or_else(|| context.as_ref().and_then(|c| from(c).clone()))
    };
    Ok(Target {
        master: https(&master),
        origin,
        ca: pick(&env.ca, |c| &c.ca),
        cert: pick(&env.cert, |c| &c.cert),
        key: pick(&env.key, |c| &c.key),
    })
}

/// The master is always reached over TLS.
pub fn https(master: &str) -> String {
    match master.split_once("://") {
        Some((_, rest)) => format!("https://{rest}"),
        None => format!("https://{master}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(master: &str) -> Context {
        Context {
            master: master.into(),
            ca: Some("/c/ca.crt".into()),
            cert: Some("/c/admin.crt".into()),
            key: Some("/c/admin.key".into()),
        }
    }

    fn env(dir: &Path) -> Env {
        Env {
            config_home: dir.to_owned(),
            ..Env::for_tests()
        }
    }

    #[test]
    fn precedence_flag_env_context_default() {
        let dir = tempfile::tempdir().unwrap();
        let mut e = env(dir.path());
        assert_eq!(resolve(None, None, &e).unwrap().master, DEFAULT_MASTER);
        set_current(&path(&e), "dev", ctx("127.0.0.1:9")).unwrap();
        let t = resolve(None, None, &e).unwrap();
        assert_eq!(t.master, "https://127.0.0.1:9");
        assert_eq!(t.cert.as_deref(), Some(Path::new("/c/admin.crt")));
        e.master = Some("https://10.0.0.1:7440".into());
        assert_eq!(
            resolve(None, None, &e).unwrap().master,
            "https://10.0.0.1:7440"
        );
        assert_eq!(
            resolve(Some("h:1"), None, &e).unwrap().master,
            "https://h:1"
        );
        // The credentials still come from the context, unless overridden.
        e.cert = Some("/elsewhere.crt".into());
        let t = resolve(Some("h:1"), None, &e).unwrap();
        assert_eq!(t.cert.as_deref(), Some(Path::new("/elsewhere.crt")));
        assert_eq!(t.key.as_deref(), Some(Path::new("/c/admin.key")));
    }

    #[test]
    fn an_unknown_context_names_the_known_ones() {
        let dir = tempfile::tempdir().unwrap();
        let e = env(dir.path());
        set_current(&path(&e), "dev", ctx("x:1")).unwrap();
        let err = resolve(None, Some("prod"), &e).unwrap_err().to_string();
        assert!(
            err.contains("no context \"prod\"") && err.contains("known: dev"),
            "{err}"
        );
    }

    #[test]
    fn setting_a_context_keeps_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let p = path(&env(dir.path()));
        set_current(&p, "prod", ctx("a:1")).unwrap();
        set_current(&p, "dev", ctx("b:1")).unwrap();
        let file = load(&p).unwrap();
        assert_eq!(file.current_context.as_deref(), Some("dev"));
        assert_eq!(file.contexts.len(), 2);
    }

    #[test]
    fn a_garbage_file_is_a_parse_error_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let p = path(&env(dir.path()));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, "current_context = [").unwrap();
        let err = load(&p).unwrap_err().to_string();
        assert!(err.starts_with(&p.display().to_string()), "{err}");
    }
}
