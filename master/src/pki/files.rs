//! The master's PKI on disk, under `<data_dir>/pki`:
//!
//! - `ca.crt`, `ca.key` — made on first start, kept for the cluster's life;
//! - `admin.crt`, `admin.key` — an admin identity made with the CA, and
//!   `admin.toml`, a clusterctl config file using it;
//! - the server certificate is issued afresh at every start (for the
//!   configured server names) and kept in memory only.
//!
//! Key files are created 0600 and never overwritten; a directory holding
//! one half of a pair is an error, not a reason to start over.

use super::{Ca, PkiError, Role, Subject, new_key_and_csr};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} exists but {missing} does not; refusing to make a new CA over half of an old one"
    )]
    HalfPair { path: PathBuf, missing: PathBuf },
    #[error("{path}: {source}")]
    Pki { path: PathBuf, source: PkiError },
    #[error(
        "{path} holds a CA ({local}) other than the cluster's in the store ({cluster}); \
         a master serves one cluster: move {path} away to adopt the cluster's CA, \
         or point this master at its own store"
    )]
    ForeignCa {
        path: PathBuf,
        local: String,
        cluster: String,
    },
}

pub struct Pki {
    pub ca: Ca,
    pub server_cert_pem: String,
    pub server_key_pem: String,
    /// Set when this start made the admin credentials (with the CA, or
    /// on adopting the cluster's).
    pub created: Option<AdminFiles>,
    /// Whether the CA is the cluster's, taken from the store at this
    /// start rather than made here.
    pub adopted: bool,
}

#[derive(Debug, Clone)]
pub struct AdminFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub config: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FilesError + '_ {
    move |source| FilesError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Creates `path` with `mode`, failing if it exists.
pub fn write_new(path: &Path, contents: &str, mode: u32) -> Result<(), FilesError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io(path))?;
    f.write_all(contents.as_bytes()).map_err(io(path))?;
    f.sync_all().map_err(io(path))
}

/// Loads the CA from `dir`, or makes it (with admin credentials) when the
/// directory has none; then issues the server certificate for `server_names`.
pub fn load_or_init(
    dir: &Path,
    cluster: &str,
    server_names: &[String],
    master_url: &str,
    now: SystemTime,
) -> Result<Pki, FilesError> {
    cluster_model::fs::private_dir(dir).map_err(io(dir))?;
    let (ca_crt, ca_key) = (dir.join("ca.crt"), dir.join("ca.key"));
    let (ca, created) = match (ca_crt.exists(), ca_key.exists()) {
        (true, true) => {
            let cert = std::fs::read_to_string(&ca_crt).map_err(io(&ca_crt))?;
            let key = std::fs::read_to_string(&ca_key).map_err(io(&ca_key))?;
            let ca = Ca::from_pem(&cert, &key).map_err(|source| FilesError::Pki {
                path: ca_crt.clone(),
                source,
            })?;
            (ca, None)
        }
        (false, false) => {
            let pki = |source| FilesError::Pki {
                path: ca_crt.clone(),
                source,
            };
            let (ca, key) = Ca::generate(cluster, now).map_err(pki)?;
            write_new(&ca_key, &key, 0o600)?;
            write_new(&ca_crt, &ca.cert_pem, 0o644)?;
            let admin = write_admin(dir, &ca, master_url, now)?;
            (ca, Some(admin))
        }
        (true, false) => {
            return Err(FilesError::HalfPair {
                path: ca_crt,
                missing: ca_key,
            });
        }
        (false, true) => {
            return Err(FilesError::HalfPair {
                path: ca_key,
                missing: ca_crt,
            });
        }
    };
    let (server_cert_pem, server_key_pem) =
        ca.issue_server(server_names, now)
            .map_err(|source| FilesError::Pki {
                path: dir.to_owned(),
                source,
            })?;
    Ok(Pki {
        ca,
        server_cert_pem,
        server_key_pem,
        created,
        adopted: false,
    })
}

/// The CA in `dir`, as PEM (certificate, key), when there is one.
pub fn local_ca(dir: &Path) -> Result<Option<(String, String)>, FilesError> {
    let (ca_crt, ca_key) = (dir.join("ca.crt"), dir.join("ca.key"));
    match (ca_crt.exists(), ca_key.exists()) {
        (false, false) => Ok(None),
        (true, false) => Err(FilesError::HalfPair {
            path: ca_crt,
            missing: ca_key,
        }),
        (false, true) => Err(FilesError::HalfPair {
            path: ca_key,
            missing: ca_crt,
        }),
        (true, true) => Ok(Some((
            std::fs::read_to_string(&ca_crt).map_err(io(&ca_crt))?,
            std::fs::read_to_string(&ca_key).map_err(io(&ca_key))?,
        ))),
    }
}

/// Takes the cluster's CA (shared by every master, from the store) into
/// `dir`: written with an admin identity when the directory has none;
/// refused when it holds another. The admin files, when written.
pub fn adopt(
    dir: &Path,
    cert_pem: &str,
    key_pem: &str,
    master_url: &str,
    now: SystemTime,
) -> Result<Option<AdminFiles>, FilesError> {
    cluster_model::fs::private_dir(dir).map_err(io(dir))?;
    let ca_crt = dir.join("ca.crt");
    let pki = |source| FilesError::Pki {
        path: ca_crt.clone(),
        source,
    };
    let cluster = Ca::from_pem(cert_pem, key_pem).map_err(pki)?;
    if let Some((local_cert, local_key)) = local_ca(dir)? {
        let local = Ca::from_pem(&local_cert, &local_key).map_err(pki)?;
        if local.cert_der != cluster.cert_der {
            return Err(FilesError::ForeignCa {
                path: ca_crt,
                local: local.fingerprint(),
                cluster: cluster.fingerprint(),
            });
        }
        return Ok(None);
    }
    write_new(&dir.join("ca.key"), key_pem, 0o600)?;
    write_new(&ca_crt, cert_pem, 0o644)?;
    write_admin(dir, &cluster, master_url, now).map(Some)
}

/// The admin identity made with a new CA, and a clusterctl config using it.
fn write_admin(
    dir: &Path,
    ca: &Ca,
    master_url: &str,
    now: SystemTime,
) -> Result<AdminFiles, FilesError> {
    let files = AdminFiles {
        ca: dir.join("ca.crt"),
        cert: dir.join("admin.crt"),
        key: dir.join("admin.key"),
        config: dir.join("admin.toml"),
    };
    let pki = |source| FilesError::Pki {
        path: files.cert.clone(),
        source,
    };
    let (key, csr) = new_key_and_csr("admin").map_err(pki)?;
    let subject = Subject::User {
        name: "admin".into(),
        role: Role::Admin,
    };
    let (cert, _) = ca.issue_client(&csr, &subject, now).map_err(pki)?;
    write_new(&files.key, &key, 0o600)?;
    write_new(&files.cert, &cert, 0o644)?;
    write_new(
        &files.config,
        &context_toml("default", master_url, &files),
        0o600,
    )?;
    Ok(files)
}

/// A clusterctl config file (the format `clusterctl` reads) with one context.
pub fn context_toml(name: &str, master_url: &str, files: &AdminFiles) -> String {
    format!(
        "current_context = {name:?}\n\n[contexts.{name:?}]\nmaster = {master_url:?}\nca = {:?}\ncert = {:?}\nkey = {:?}\n",
        files.ca.display().to_string(),
        files.cert.display().to_string(),
        files.key.display().to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn first_start_makes_the_ca_and_admin_files_with_private_keys_0600() {
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
        let pki = load_or_init(
            dir.path(),
            "c",
            &names,
            "https://127.0.0.1:7440",
            SystemTime::now(),
        )
        .unwrap();
        let admin = pki.created.expect("created on first start");
        for key in [
            dir.path().join("ca.key"),
            admin.key.clone(),
            admin.config.clone(),
        ] {
            let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", key.display());
        }
        let config = std::fs::read_to_string(&admin.config).unwrap();
        assert!(
            config.contains("master = \"https://127.0.0.1:7440\""),
            "{config}"
        );

        // The second start loads the same CA and makes nothing new.
        let again = load_or_init(
            dir.path(),
            "c",
            &names,
            "https://127.0.0.1:7440",
            SystemTime::now(),
        )
        .unwrap();
        assert!(again.created.is_none());
        assert_eq!(again.ca.fingerprint(), pki.ca.fingerprint());
    }

    #[test]
    fn half_a_ca_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.crt"), "x").unwrap();
        let err = load_or_init(dir.path(), "c", &[], "https://x:1", SystemTime::now())
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("refusing to make a new CA over half of an old one"),
            "{err}"
        );
    }

    #[test]
    fn a_master_adopts_the_cluster_ca_and_refuses_another() {
        let now = SystemTime::now();
        let (cluster, cluster_key) = Ca::generate("c", now).unwrap();
        let fresh = tempfile::tempdir().unwrap();
        let admin = adopt(
            fresh.path(),
            &cluster.cert_pem,
            &cluster_key,
            "https://m2:7440",
            now,
        )
        .unwrap()
        .expect("a fresh directory gets admin files");
        assert!(admin.config.exists());
        let pki = load_or_init(fresh.path(), "c", &[], "https://m2:7440", now).unwrap();
        assert_eq!(pki.ca.fingerprint(), cluster.fingerprint());
        assert!(pki.created.is_none(), "adopted, not made");
        // Adopting the same CA again is a no-op.
        assert!(
            adopt(
                fresh.path(),
                &cluster.cert_pem,
                &cluster_key,
                "https://m2:7440",
                now
            )
            .unwrap()
            .is_none()
        );

        // A directory with a CA of its own is not taken over.
        let own = tempfile::tempdir().unwrap();
        let mine = load_or_init(own.path(), "c", &[], "https://m3:7440", now).unwrap();
        let err = adopt(
            own.path(),
            &cluster.cert_pem,
            &cluster_key,
            "https://m3:7440",
            now,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains(&mine.ca.fingerprint()), "{err}");
        assert!(err.contains(&cluster.fingerprint()), "{err}");
        assert!(err.contains("move"), "{err}");
        let kept = load_or_init(own.path(), "c", &[], "https://m3:7440", now).unwrap();
        assert_eq!(kept.ca.fingerprint(), mine.ca.fingerprint());
    }
}
