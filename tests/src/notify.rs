//! Real receivers of alerts, for `tests/notify.rs`: Alertmanager (Debian's
//! `prometheus-alertmanager`, clustering off, its storage in a temporary
//! directory), an SMTP server (aiosmtpd from PyPI, run by
//! `tests/notify/smtp.py`, each mail a JSON file), and a webhook receiver
//! in the test's own runtime that keeps every body it is sent.

use crate::Proc;
use crate::process::free_port;
use serde_json::Value;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// A running Alertmanager.
pub struct Alertmanager {
    _proc: Proc,
    _dir: tempfile::TempDir,
    /// `http://ip:port`.
    pub url: String,
}

impl Alertmanager {
    /// Starts one on `ip:port` and waits until it says it is ready.
    pub async fn start(ip: &str, port: u16) -> Alertmanager {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(
            &config,
            "route:\n  receiver: nobody\nreceivers:\n  - name: nobody\n",
        )
        .expect("write alertmanager.yml");
        let mut cmd = Command::new("prometheus-alertmanager");
        cmd.arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={ip}:{port}"))
            .arg("--cluster.listen-address=");
        let proc = Proc::spawn(cmd)
            .expect("prometheus-alertmanager runs (tests/run installs prometheus-alertmanager)");
        let url = format!("http://{ip}:{port}");
        let ready = format!("{url}/-/ready");
        crate::eventually("alertmanager ready", Duration::from_secs(20), || async {
            crate::get(&ready).await.0 == 200
        })
        .await;
        Alertmanager {
            _proc: proc,
            _dir: dir,
            url,
        }
    }

    /// `GET /api/v2/alerts`: what it holds (resolved alerts are not listed).
    pub async fn alerts(&self) -> Vec<Value> {
        let (status, body) = crate::get(&format!("{}/api/v2/alerts", self.url)).await;
        assert_eq!(status, 200, "GET /api/v2/alerts: {body}");
        serde_json::from_str::<Value>(&body)
            .expect("alerts are JSON")
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The alert whose labels include every pair of `labels`.
    pub async fn alert(&self, labels: &[(&str, &str)]) -> Option<Value> {
        self.alerts().await.into_iter().find(|a| {
            labels
                .iter()
                .all(|(k, v)| a["labels"][*k].as_str() == Some(*v))
        })
    }
}

/// How an SMTP server wants to be spoken to.
pub enum SmtpTls {
    None,
    /// STARTTLS, required before MAIL.
    Starttls,
    /// TLS from the first byte.
    Implicit,
}

/// A CA and a server certificate for `ip`, as files in `dir`:
/// (CA certificate, server certificate, server key).
pub fn certificates(dir: &Path, ip: &str) -> (PathBuf, PathBuf, PathBuf) {
    let now = SystemTime::now();
    let (ca, _) = cluster_master::pki::Ca::generate("notify-test", now).expect("a CA");
    let (cert, key) = ca
        .issue_server(&[ip.to_owned()], now)
        .expect("a server certificate");
    let paths = (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    );
    std::fs::write(&paths.0, &ca.cert_pem).unwrap();
    std::fs::write(&paths.1, cert).unwrap();
    std::fs::write(&paths.2, key).unwrap();
    paths
}

/// A running aiosmtpd.
pub struct Smtp {
    _proc: Proc,
    mails: tempfile::TempDir,
}

impl Smtp {
    /// Starts `tests/notify/smtp.py` with `python` (a venv's, with
    /// aiosmtpd) on `ip:port`. `certs`: (certificate, key) for TLS modes;
    /// `auth`: the one user and password it accepts (and requires).
    pub fn start(
        python: &Path,
        ip: &str,
        port: u16,
        tls: SmtpTls,
        certs: Option<(&Path, &Path)>,
        auth: Option<(&str, &str)>,
    ) -> Smtp {
        let mails = tempfile::tempdir().expect("tempdir");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/notify/smtp.py");
        let mut cmd = Command::new(python);
        cmd.arg(script)
            .args(["--host", ip, "--port", &port.to_string()])
            .arg("--dir")
            .arg(mails.path());
        if !matches!(tls, SmtpTls::None) {
            let (cert, key) = certs.expect("certificates for TLS");
            cmd.arg("--cert").arg(cert).arg("--key").arg(key);
        }
        if matches!(tls, SmtpTls::Implicit) {
            cmd.arg("--implicit-tls");
        }
        if let Some((user, password)) = auth {
            cmd.args(["--user", user, "--password", password]);
        }
        let (proc, _) = Proc::start(cmd, "smtp ready").expect("smtp.py starts");
        Smtp { _proc: proc, mails }
    }

    /// Every mail taken so far, in order.
    pub fn mails(&self) -> Vec<Value> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.mails.path())
            .expect("the mail directory")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).expect("a mail record"))
            .collect()
    }
}

/// A webhook receiver: answers 200 to every POST and keeps its JSON body.
pub struct Hook {
    pub url: String,
    bodies: Arc<Mutex<Vec<Value>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Hook {
    pub async fn start(ip: &str) -> Hook {
        use http_body_util::{BodyExt, Full};
        use hyper::body::Bytes;
        let port = free_port(ip.parse::<IpAddr>().unwrap());
        let listener = tokio::net::TcpListener::bind((ip, port))
            .await
            .expect("bind");
        let bodies: Arc<Mutex<Vec<Value>>> = Arc::default();
        let kept = bodies.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let kept = kept.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let kept = kept.clone();
                            async move {
                                let body = req.into_body().collect().await?.to_bytes();
                                let value = serde_json::from_slice(&body).unwrap_or_else(|_| {
                                    Value::String(String::from_utf8_lossy(&body).into())
                                });
                                kept.lock().unwrap().push(value);
                                Ok::<_, hyper::Error>(hyper::Response::new(Full::new(
                                    Bytes::from_static(b"ok"),
                                )))
                            }
                        },
                    );
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await;
                });
            }
        });
        Hook {
            url: format!("http://{ip}:{port}/hook"),
            bodies,
            task,
        }
    }

    pub fn bodies(&self) -> Vec<Value> {
        self.bodies.lock().unwrap().clone()
    }
}

impl Drop for Hook {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The aiosmtpd release the tests run.
pub const AIOSMTPD: &str = "aiosmtpd==1.4.6";

/// A virtual environment with aiosmtpd under `tmp` (a test target's
/// `CARGO_TARGET_TMPDIR`), made once: its Python.
pub fn aiosmtpd(tmp: &Path) -> PathBuf {
    crate::python::venv(&tmp.join("aiosmtpd-venv"), AIOSMTPD, "aiosmtpd")
}
