//! Real master and agent processes for tests and benchmarks.
//!
//! Each process's stderr is read by a thread that keeps the log (shown when
//! a test fails) and reports the line announcing the bound addresses, so
//! port 0 works. Dropping a handle kills its process.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

const READY_PATIENCE: Duration = Duration::from_secs(20);

/// A process whose stderr is kept; killed when dropped (its log shown
/// when the test is failing).
pub struct Proc {
    child: Child,
    log: Arc<Mutex<String>>,
    /// Reads stderr until the process closes it.
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Proc {
    /// Starts `cmd` (without the caller's `CLUSTERCTL_*` environment, but
    /// with what `cmd` sets itself) and waits for a stderr line containing
    /// `marker`; returns the process and that line.
    pub fn start(mut cmd: Command, marker: &'static str) -> Result<(Proc, String), String> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info");
        let own: Vec<_> = cmd.get_envs().map(|(k, _)| k.to_owned()).collect();
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("CLUSTERCTL_") && !own.contains(&k) {
                cmd.env_remove(k);
            }
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let reader = {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if line.contains(marker) {
                        let _ = tx.send(line.clone());
                    }
                    let mut l = log.lock().unwrap();
                    l.push_str(&line);
                    l.push('\n');
                }
            })
        };
        match rx.recv_timeout(READY_PATIENCE) {
            Ok(line) => Ok((
                Proc {
                    child,
                    log,
                    reader: Some(reader),
                },
                line,
            )),
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().ok();
                let _ = reader.join();
                Err(format!(
                    "process did not log {marker:?} (exit: {status:?}); its log:\n{}",
                    log.lock().unwrap()
                ))
            }
        }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.read_to_end();
    }

    /// Waits for the reader to have every line the process wrote.
    fn read_to_end(&mut self) {
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }

    /// What it has written to stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// SIGTERM, then wait; the exit code (None when killed by a signal).
    pub fn terminate(&mut self) -> Option<i32> {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let code = self.child.wait().ok().and_then(|s| s.code());
        self.read_to_end();
        code
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
        // A failing test shows what its processes said.
        if std::thread::panicking() {
            let log = self.log.lock().map(|l| l.clone()).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("--- log of {:?} (last 40 lines) ---", self.child.id());
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

/// The value of `key=` in a log line.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let start = line.find(&format!("{key}="))? + key.len() + 1;
    line[start..].split_whitespace().next()
}

pub struct MasterBuilder {
    down_after: Duration,
    listen: String,
    config: String,
}

impl MasterBuilder {
    pub fn down_after(mut self, d: Duration) -> Self {
        self.down_after = d;
        self
    }

    pub fn listen(mut self, addr: &str) -> Self {
        self.listen = addr.to_owned();
        self
    }

    /// TOML for the master's config file.
    pub fn config(mut self, toml: &str) -> Self {
        self.config.push_str(toml);
        self.config.push('\n');
        self
    }

    pub fn spawn(self) -> MasterProc {
        let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
        let config = (!self.config.is_empty()).then(|| {
            let path = dir.path().join("master.toml");
            std::fs::write(&path, &self.config).expect("write master config");
            path
        });
        let mut m = MasterProc {
            config,
            proc: None,
            last_log: String::new(),
            join: Mutex::new(None),
            grpc: self.listen.parse().expect("listen address"),
            http: "127.0.0.1:0".parse().unwrap(),
            dir,
            down_after: self.down_after,
        };
        m.start().unwrap_or_else(|e| panic!("{e}"));
        m
    }
}

pub struct MasterProc {
    proc: Option<Proc>,
    /// What the last process said, once it is gone (stopped or killed).
    last_log: String,
    config: Option<PathBuf>,
    join: Mutex<Option<(String, String)>>,
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    dir: Arc<tempfile::TempDir>,
    down_after: Duration,
}

impl MasterProc {
    pub fn builder() -> MasterBuilder {
        MasterBuilder {
            down_after: Duration::from_secs(15),
            listen: "127.0.0.1:0".into(),
            config: String::new(),
        }
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    fn start(&mut self) -> Result<(), String> {
        let mut cmd = Command::new(crate::bin("cluster-master"));
        if let Some(config) = &self.config {
            cmd.arg("--config").arg(config);
        }
        cmd.arg("--listen")
            .arg(self.grpc.to_string())
            .arg("--http-listen")
            .arg(self.http.to_string())
            .arg("--data-dir")
            .arg(self.dir.path())
            .arg("--down-after")
            .arg(format!("{}ms", self.down_after.as_millis()));
        // "master ready" comes once the CA and admin identity exist; the
        // addresses were logged just before, when the sockets were bound.
        let (proc, _) = Proc::start(cmd, "master ready")?;
        let log = proc.log.lock().unwrap().clone();
        let start = log
            .lines()
            .find(|l| l.contains("starting master"))
            .ok_or_else(|| format!("no start line in the master's log:\n{log}"))?;
        self.grpc = field(start, "grpc")
            .and_then(|a| a.parse().ok())
            .expect("grpc address in log");
        self.http = field(start, "http")
            .and_then(|a| a.parse().ok())
            .expect("http address in log");
        self.proc = Some(proc);
        Ok(())
    }

    pub fn url(&self) -> String {
        format!("https://{}", self.grpc)
    }

    /// The admin identity this master made on first start.
    pub fn admin(&self) -> crate::Admin {
        let pki = self.dir.path().join("pki");
        crate::Admin {
            url: self.url(),
            ca: pki.join("ca.crt"),
            cert: pki.join("admin.crt"),
            key: pki.join("admin.key"),
        }
    }

    /// A join token (any number of uses for an hour) and the CA fingerprint,
    /// made once and kept.
    pub fn join_token(&self) -> (String, String) {
        let mut cached = self.join.lock().unwrap();
        if let Some(t) = cached.as_ref() {
            return t.clone();
        }
        let admin = self.admin();
        let out = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(crate::ctl(&admin, &["token", "create", "-o", "json"]))
        })
        .join()
        .unwrap()
        .ok();
        let v = out.json();
        let t = (
            v["token"].as_str().unwrap().to_owned(),
            v["ca_fingerprint"].as_str().unwrap().to_owned(),
        );
        *cached = Some(t.clone());
        t
    }

    pub fn http_url(&self) -> String {
        format!("http://{}", self.http)
    }

    /// SIGKILL: a crash, nothing flushed on the way out.
    pub fn kill(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill();
            self.last_log = p.log();
        }
    }

    /// SIGTERM and wait; the exit code.
    pub fn stop(&mut self) -> Option<i32> {
        let mut p = self.proc.take()?;
        let code = p.terminate();
        self.last_log = p.log();
        code
    }

    /// Starts again on the same ports with the same data directory.
    pub fn restart(&mut self) {
        self.kill();
        self.start().unwrap_or_else(|e| panic!("{e}"));
    }

    /// What the running process has said, or the last one.
    pub fn log(&self) -> String {
        match &self.proc {
            Some(p) => p.log(),
            None => self.last_log.clone(),
        }
    }
}

pub struct AgentBuilder {
    id: String,
    master: String,
    /// (token, CA fingerprint); `None` enrolls without a token (pending).
    join: Option<(String, String)>,
    addr: String,
    roles: Vec<String>,
    report_interval: Duration,
    extra_config: String,
    ca_file: PathBuf,
}

impl AgentBuilder {
    /// The loopback address to serve health on, e.g. "127.0.0.3".
    pub fn addr(mut self, ip: &str) -> Self {
        self.addr = ip.to_owned();
        self
    }

    pub fn role(mut self, role: &str) -> Self {
        self.roles.push(role.to_owned());
        self
    }

    pub fn report_interval(mut self, d: Duration) -> Self {
        self.report_interval = d;
        self
    }

    /// Enroll without a token: the key waits as pending.
    pub fn without_token(mut self) -> Self {
        self.join = None;
        self
    }

    /// More TOML for the agent's config file.
    pub fn config(mut self, toml: &str) -> Self {
        self.extra_config.push_str(toml);
        self.extra_config.push('\n');
        self
    }

    pub fn spawn(self) -> AgentProc {
        let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
        let mut a = AgentProc {
            proc: None,
            id: self.id,
            health_url: String::new(),
            listen: format!("{}:0", self.addr),
            dir,
        };
        let roles = self
            .roles
            .iter()
            .map(|r| format!("{r:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        let join = match &self.join {
            Some((token, fingerprint)) => {
                format!("join_token = {token:?}\nca_fingerprint = {fingerprint:?}\n")
            }
            None => format!("ca_file = {:?}\n", self.ca_file),
        };
        let config = format!(
            "id = {:?}\nmaster = {:?}\ndata_dir = {:?}\nhosts_file = {:?}\nreport_interval = \"{}ms\"\nroles = [{roles}]\nreconnect_min = \"50ms\"\nreconnect_max = \"300ms\"\n{join}{}",
            a.id,
            self.master,
            a.dir.path().join("data"),
            a.dir.path().join("hosts"),
            self.report_interval.as_millis(),
            self.extra_config,
        );
        std::fs::write(a.config_path(), config).expect("write agent config");
        a.start().unwrap_or_else(|e| panic!("{e}"));
        a
    }
}

pub struct AgentProc {
    proc: Option<Proc>,
    pub id: String,
    /// e.g. http://127.0.0.3:40123/health
    pub health_url: String,
    listen: String,
    dir: Arc<tempfile::TempDir>,
}

impl AgentProc {
    pub fn builder(id: &str, master: &MasterProc) -> AgentBuilder {
        AgentBuilder {
            id: id.to_owned(),
            master: master.url(),
            join: Some(master.join_token()),
            ca_file: master.admin().ca,
            addr: "127.0.0.1".into(),
            roles: Vec::new(),
            report_interval: Duration::from_millis(200),
            extra_config: String::new(),
        }
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("agent.toml")
    }

    /// The hosts file this agent manages (never the real /etc/hosts).
    pub fn hosts_file(&self) -> PathBuf {
        self.dir.path().join("hosts")
    }

    /// The agent's working directory (where its jobs run).
    pub fn work_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn start(&mut self) -> Result<(), String> {
        let mut cmd = Command::new(crate::bin("cluster-agent"));
        // Jobs run here: a test can give each node its own script.
        cmd.current_dir(self.dir.path());
        cmd.arg("--config")
            .arg(self.config_path())
            .arg("--health-listen")
            .arg(&self.listen);
        let (proc, line) = Proc::start(cmd, "agent ready")?;
        self.health_url = field(&line, "health_url")
            .expect("health_url in log")
            .to_owned();
        // Keep the port for restarts.
        if let Some(hostport) = self.health_url.strip_prefix("http://") {
            self.listen = hostport.trim_end_matches("/health").to_owned();
        }
        self.proc = Some(proc);
        Ok(())
    }

    pub fn kill(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill();
        }
    }

    pub fn stop(&mut self) -> Option<i32> {
        self.proc.take().and_then(|mut p| p.terminate())
    }

    /// Starts again with the same config, port and data directory.
    pub fn restart(&mut self) {
        self.kill();
        self.start().unwrap_or_else(|e| panic!("{e}"));
    }

    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().map(|p| p.child.id())
    }

    pub fn log(&self) -> String {
        self.proc
            .as_ref()
            .map(|p| p.log.lock().unwrap().clone())
            .unwrap_or_default()
    }

    /// `(status, body)` of this agent's health endpoint.
    pub async fn health(&self) -> (u16, String) {
        crate::get(&self.health_url).await
    }
}
