//! Running clusterctl in-process, as the binary would run.

use cluster_cli::Env;
use std::path::PathBuf;

/// What one clusterctl invocation did.
#[derive(Debug)]
pub struct Ctl {
    pub code: u8,
    pub stdout: String,
    pub stderr: String,
}

impl Ctl {
    /// The stdout parsed as JSON; panics with the output when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    #[track_caller]
    pub fn ok(self) -> Ctl {
        assert_eq!(
            self.code, 0,
            "clusterctl failed:\n{}\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// A master's address and the admin identity it made on first start.
#[derive(Debug, Clone)]
pub struct Admin {
    pub url: String,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Admin {
    /// The environment clusterctl would see with these set in
    /// `CLUSTERCTL_MASTER`, `CLUSTERCTL_CA`, `CLUSTERCTL_CERT`, `CLUSTERCTL_KEY`.
    pub fn env(&self) -> Env {
        Env {
            master: Some(self.url.clone()),
            ca: Some(self.ca.clone()),
            cert: Some(self.cert.clone()),
            key: Some(self.key.clone()),
            ..Env::for_tests()
        }
    }

    /// A gRPC channel to the master as this identity.
    pub async fn channel(&self) -> tonic::transport::Channel {
        use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
        let read = |p: &PathBuf| std::fs::read_to_string(p).unwrap();
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(read(&self.ca)))
            .identity(Identity::from_pem(read(&self.cert), read(&self.key)))
            .domain_name("127.0.0.1");
        Endpoint::from_shared(self.url.clone())
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .tcp_nodelay(true)
            .connect()
            .await
            .unwrap()
    }

    /// The same master, reached with another identity.
    pub fn with_identity(&self, cert: PathBuf, key: PathBuf) -> Admin {
        Admin {
            cert,
            key,
            ..self.clone()
        }
    }
}

/// Runs `clusterctl ARGS` as `admin`, with an otherwise empty environment.
pub async fn ctl(admin: &Admin, args: &[&str]) -> Ctl {
    ctl_env(&admin.env(), args).await
}

pub async fn ctl_env(env: &Env, args: &[&str]) -> Ctl {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let argv = std::iter::once("clusterctl").chain(args.iter().copied());
    let code = cluster_cli::run(argv, env, &mut out, &mut err).await;
    Ctl {
        code,
        stdout: String::from_utf8_lossy(&out).into_owned(),
        stderr: String::from_utf8_lossy(&err).into_owned(),
    }
}

/// An API token made the README's way (`clusterctl token create --api`):
/// its first line, checked to be the token alone.
pub async fn api_token(admin: &Admin, role: &str, name: &str) -> String {
    let out = ctl(
        admin,
        &["token", "create", "--api", "--role", role, "--name", name],
    )
    .await
    .ok()
    .stdout;
    let token = out.lines().next().unwrap_or_default().trim().to_owned();
    assert!(
        token
            .split_once('.')
            .is_some_and(|(id, secret)| !id.is_empty() && secret.len() >= 32),
        "the token alone on the first line:\n{out}"
    );
    token
}

/// One busy loop per core on `node`, started through `clusterctl run`,
/// for as long as the file `flag` exists (it is made here): the job's
/// result when its thread is joined. clusterctl runs in-process and its
/// future stays on one thread, so the job has a runtime of its own.
pub fn busy_loop(
    admin: &Admin,
    node: &str,
    flag: &std::path::Path,
) -> std::thread::JoinHandle<Ctl> {
    std::fs::write(flag, "").expect("the flag file");
    let script = format!(
        "for i in $(seq $(nproc)); do (while [ -e {f} ]; do :; done) & done; wait",
        f = flag.display()
    );
    let (admin, node) = (admin.clone(), node.to_owned());
    std::thread::spawn(move || {
        tokio::runtime::Runtime::new()
            .expect("a runtime")
            .block_on(ctl(
                &admin,
                &["run", &node, "--timeout", "120s", "--", "sh", "-c", &script],
            ))
    })
}
