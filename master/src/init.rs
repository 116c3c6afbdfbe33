//! `cluster-master init`: make the data directory, the CA and the admin
//! identity without serving, and put an admin context into the invoking
//! user's clusterctl config file (other contexts are kept).

use crate::config::Config;
use crate::pki::files::{self, AdminFiles, FilesError};
use std::path::{Path, PathBuf};

pub struct Report {
    pub ca_fingerprint: String,
    /// Whether this run made the CA (false: it was there already).
    pub created: bool,
    pub admin: AdminFiles,
    /// The clusterctl config file the context went into, if any.
    pub user_config: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(transparent)]
    Files(#[from] FilesError),
    #[error("{path}: {message}")]
    UserConfig { path: PathBuf, message: String },
}

/// The URL clusterctl should use for `config`'s master.
pub fn master_url(config: &Config) -> String {
    let ip = config.listen.ip();
    let host = if ip.is_unspecified() {
        config
            .server_names
            .iter()
            .find(|n| {
                n.parse::<std::net::IpAddr>()
                    .map(|a| !a.is_loopback())
                    .unwrap_or(*n != "localhost")
            })
            .cloned()
            .unwrap_or_else(|| "127.0.0.1".into())
    } else {
        ip.to_string()
    };
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    format!("https://{host}:{}", config.listen.port())
}

pub fn init(config: &Config, user_config: Option<&Path>) -> Result<Report, InitError> {
    let dir = config.data_dir.join("pki");
    let pki = files::load_or_init(
        &dir,
        &config.cluster_name,
        &config.server_names,
        &master_url(config),
        std::time::SystemTime::now(),
    )?;
    let admin = AdminFiles {
        ca: dir.join("ca.crt"),
        cert: dir.join("admin.crt"),
        key: dir.join("admin.key"),
        config: dir.join("admin.toml"),
    };
    if let Some(path) = user_config {
        add_context(path, &config.cluster_name, &master_url(config), &admin)?;
    }
    Ok(Report {
        ca_fingerprint: pki.ca.fingerprint(),
        created: pki.created.is_some(),
        admin,
        user_config: user_config.map(Path::to_owned),
    })
}

/// Adds (or replaces) context `name` in the clusterctl config at `path` and
/// makes it current.
fn add_context(path: &Path, name: &str, url: &str, admin: &AdminFiles) -> Result<(), InitError> {
    let err = |message: String| InitError::UserConfig {
        path: path.to_owned(),
        message,
    };
    let mut doc: toml::Table = match std::fs::read_to_string(path) {
        Ok(text) => text
            .parse()
            .map_err(|e: toml::de::Error| err(e.to_string()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => toml::Table::new(),
        Err(e) => return Err(err(e.to_string())),
    };
    let mut ctx = toml::Table::new();
    ctx.insert("master".into(), url.into());
    for (k, v) in [
        ("ca", &admin.ca),
        ("cert", &admin.cert),
        ("key", &admin.key),
    ] {
        ctx.insert(k.into(), v.display().to_string().into());
    }
    let contexts = doc
        .entry("contexts")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        .as_table_mut()
        .ok_or_else(|| err("`contexts` is not a table".into()))?;
    contexts.insert(name.into(), toml::Value::Table(ctx));
    doc.insert("current_context".into(), name.into());
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
    }
    let tmp = path.with_extension("toml.tmp");
    let _ = std::fs::remove_file(&tmp);
    files::write_new(&tmp, &doc.to_string(), 0o600)?;
    std::fs::rename(&tmp, path).map_err(|e| err(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RawConfig;

    #[test]
    fn init_makes_the_ca_once_and_keeps_other_contexts() {
        let dir = tempfile::tempdir().unwrap();
        let raw = RawConfig {
            data_dir: Some(dir.path().join("data")),
            listen: Some("10.1.2.3:7440".into()),
            cluster_name: Some("prod".into()),
            ..RawConfig::default()
        };
        let config = Config::validate(raw, None, "").unwrap();
        let user = dir.path().join("home/clusterctl/config.toml");
        std::fs::create_dir_all(user.parent().unwrap()).unwrap();
        std::fs::write(
            &user,
            "current_context = \"dev\"\n[contexts.dev]\nmaster = \"https://127.0.0.1:7440\"\n",
        )
        .unwrap();

        let first = init(&config, Some(&user)).unwrap();
        assert!(first.created);
        let second = init(&config, Some(&user)).unwrap();
        assert!(!second.created);
        assert_eq!(first.ca_fingerprint, second.ca_fingerprint);

        let text = std::fs::read_to_string(&user).unwrap();
        let doc: toml::Table = text.parse().unwrap();
        assert_eq!(doc["current_context"].as_str(), Some("prod"));
        assert_eq!(
            doc["contexts"]["prod"]["master"].as_str(),
            Some("https://10.1.2.3:7440")
        );
        assert!(doc["contexts"].get("dev").is_some(), "{text}");
    }
}
