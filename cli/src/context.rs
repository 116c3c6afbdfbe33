//! clusterctl's config file (`--config-file`, `CLUSTERCTL_CONFIG`, else
//! `$XDG_CONFIG_HOME/clusterctl/config.toml`, else
//! `~/.config/clusterctl/config.toml`): named contexts, one current, in the
//! manner of kubeconfig; each names the cluster's masters and the CA,
//! certificate and key to reach them with. Which masters a command talks
//! to: `--master`, then `CLUSTERCTL_MASTER` (each one URL or several
//! separated by commas), then the context (`--context`,
//! `CLUSTERCTL_CONTEXT`, then `current_context`: its `master`, which may
//! hold several separated by commas, and its `masters` array), then the
//! default. The credentials come from the context, each overridable by
//! `CLUSTERCTL_CA`, `CLUSTERCTL_CERT`, `CLUSTERCTL_KEY`.

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
    /// One master, or several separated by commas (what files written
    /// before `masters` hold; either or both may be set).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub master: String,
    /// The cluster's masters, when it has several.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub masters: Vec<String>,
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
    #[error("invalid masters (from {origin}):\n  - {}", .problems.join("\n  - "))]
    Masters {
        origin: String,
        problems: Vec<String>,
    },
}

impl Context {
    /// A context for `masters`: `master` when there is one, else `masters`.
    pub fn for_masters(
        masters: &[String],
        ca: Option<PathBuf>,
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
    ) -> Context {
        let (master, masters) = match masters {
            [one] => (one.clone(), Vec::new()),
            many => (String::new(), many.to_vec()),
        };
        Context {
            master,
            masters,
            ca,
            cert,
            key,
        }
    }

    /// Every master it names, as written: `master`'s, then `masters`.
    fn master_entries(&self) -> Vec<String> {
        let mut all: Vec<String> = Vec::new();
        if !self.master.is_empty() {
            all.push(self.master.clone());
        }
        all.extend(self.masters.iter().cloned());
        all
    }
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

/// The masters to talk to (never none), where that choice came from (for
/// messages), and the credentials to talk with.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// `https://host:port` each, as configured; the client tries them in
    /// an order of its own.
    pub masters: Vec<String>,
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
    let (entries, origin) = if let Some(m) = flag_master {
        (vec![m.to_owned()], "--master".to_owned())
    } else if let Some(m) = &env.master {
        (vec![m.clone()], "CLUSTERCTL_MASTER".to_owned())
    } else if let Some(c) = &context {
        (c.master_entries(), context_origin)
    } else {
        (vec![DEFAULT_MASTER.to_owned()], context_origin)
    };
    let masters = parse_masters(&entries).map_err(|problems| ContextError::Masters {
        origin: origin.clone(),
        problems,
    })?;
    let pick = |over: &Option<PathBuf>, from: fn(&Context) -> &Option<PathBuf>| {
        over.clone()
            .or_else(|| context.as_ref().and_then(|c| from(c).clone()))
    };
    Ok(Target {
        masters,
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

/// The masters `entries` name — each one URL or several separated by
/// commas — each `https://`, in the order written; or every problem, each
/// naming its entry: an empty one, one that is not a URL with a host, one
/// listed twice, or none at all.
pub fn parse_masters(entries: &[String]) -> Result<Vec<String>, Vec<String>> {
    let parts: Vec<&str> = entries.iter().flat_map(|e| e.split(',')).collect();
    let mut problems = Vec::new();
    if parts.is_empty() {
        problems.push("no master given: name one such as \"https://10.0.0.1:7440\"".to_owned());
    }
    let mut masters: Vec<String> = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let part = part.trim();
        let which = if parts.len() > 1 {
            format!("master {} of {}", i + 1, parts.len())
        } else {
            "master".to_owned()
        };
        if part.is_empty() {
            problems.push(format!(
                "{which} is empty: give URLs such as \"https://10.0.0.1:7440\", separated by commas"
            ));
            continue;
        }
        let url = https(part);
        let has_host = url
            .parse::<http::Uri>()
            .is_ok_and(|u| u.host().is_some_and(|h| !h.is_empty()));
        if !has_host {
            problems.push(format!(
                "{which} {part:?}: not a URL such as \"https://10.0.0.1:7440\""
            ));
        } else if masters.contains(&url) {
            problems.push(format!("{which} {part:?}: {url} is listed twice"));
        } else {
            masters.push(url);
        }
    }
    if problems.is_empty() {
        Ok(masters)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(master: &str) -> Context {
        Context {
            master: master.into(),
            masters: Vec::new(),
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
        assert_eq!(resolve(None, None, &e).unwrap().masters, [DEFAULT_MASTER]);
        set_current(&path(&e), "dev", ctx("127.0.0.1:9")).unwrap();
        let t = resolve(None, None, &e).unwrap();
        assert_eq!(t.masters, ["https://127.0.0.1:9"]);
        assert_eq!(t.cert.as_deref(), Some(Path::new("/c/admin.crt")));
        e.master = Some("https://10.0.0.1:7440,10.0.0.2:7440".into());
        assert_eq!(
            resolve(None, None, &e).unwrap().masters,
            ["https://10.0.0.1:7440", "https://10.0.0.2:7440"]
        );
        assert_eq!(
            resolve(Some("h:1"), None, &e).unwrap().masters,
            ["https://h:1"]
        );
        // The credentials still come from the context, unless overridden.
        e.cert = Some("/elsewhere.crt".into());
        let t = resolve(Some("h:1"), None, &e).unwrap();
        assert_eq!(t.cert.as_deref(), Some(Path::new("/elsewhere.crt")));
        assert_eq!(t.key.as_deref(), Some(Path::new("/c/admin.key")));
    }

    /// The masters `entries` parse to, or every problem.
    fn check(entries: &[&str]) -> Result<Vec<String>, Vec<String>> {
        parse_masters(&entries.iter().map(|e| e.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn a_list_of_masters_parses_entry_by_entry() {
        let ok = |e: &[&str], want: &[&str]| assert_eq!(check(e).unwrap(), want);
        ok(&["10.0.0.1:7440"], &["https://10.0.0.1:7440"]);
        ok(
            &["https://a:7440, http://b:7440 ,c:7440"],
            &["https://a:7440", "https://b:7440", "https://c:7440"],
        );
        ok(
            &["a:1,b:1", "c:1"],
            &["https://a:1", "https://b:1", "https://c:1"],
        );
        ok(&["https://[::1]:7440"], &["https://[::1]:7440"]);
        assert_eq!(
            check(&["a:1,,not a url,https://a:1"]).unwrap_err(),
            [
                "master 2 of 4 is empty: give URLs such as \"https://10.0.0.1:7440\", separated by commas",
                "master 3 of 4 \"not a url\": not a URL such as \"https://10.0.0.1:7440\"",
                "master 4 of 4 \"https://a:1\": https://a:1 is listed twice",
            ]
        );
        assert_eq!(
            check(&[]).unwrap_err(),
            ["no master given: name one such as \"https://10.0.0.1:7440\""]
        );
    }

    #[test]
    fn a_context_holds_several_masters_either_way_and_old_files_load() {
        let dir = tempfile::tempdir().unwrap();
        let e = env(dir.path());
        let p = path(&e);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(
            &p,
            r#"current_context = "prod"
[contexts.prod]
master = "https://a:7440,https://b:7440"
masters = ["https://c:7440"]
[contexts.old]
master = "https://a:7440"
ca = "/c/ca.crt"
[contexts.listed]
masters = ["a:7440", "b:7440"]
[contexts.none]
ca = "/c/ca.crt"
"#,
        )
        .unwrap();
        let masters = |name: &str| resolve(None, Some(name), &e).map(|t| t.masters);
        assert_eq!(
            masters("prod").unwrap(),
            ["https://a:7440", "https://b:7440", "https://c:7440"]
        );
        assert_eq!(masters("old").unwrap(), ["https://a:7440"]);
        assert_eq!(
            masters("listed").unwrap(),
            ["https://a:7440", "https://b:7440"]
        );
        let err = masters("none").unwrap_err().to_string();
        assert!(
            err.starts_with("invalid masters (from context \"none\" in")
                && err.contains("no master given"),
            "{err}"
        );
        // Written back: one master as `master`, several as `masters`.
        let one = Context::for_masters(&["https://a:7440".into()], None, None, None);
        let two = Context::for_masters(
            &["https://a:7440".into(), "https://b:7440".into()],
            None,
            None,
            None,
        );
        set_current(&p, "one", one).unwrap();
        set_current(&p, "two", two).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(
            text.contains("[contexts.one]\nmaster = \"https://a:7440\"\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "[contexts.two]\nmasters = [\n    \"https://a:7440\",\n    \"https://b:7440\",\n]"
            ),
            "{text}"
        );
        assert_eq!(
            masters("two").unwrap(),
            ["https://a:7440", "https://b:7440"]
        );
    }

    #[test]
    fn a_bad_master_names_the_entry_and_where_it_came_from() {
        let dir = tempfile::tempdir().unwrap();
        let e = env(dir.path());
        let err = resolve(Some("https://a:7440,"), None, &e)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "invalid masters (from --master):\n  - master 2 of 2 is empty: give URLs such as \"https://10.0.0.1:7440\", separated by commas"
        );
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
