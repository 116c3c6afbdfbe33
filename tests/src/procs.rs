//! Real master and agent processes for tests and benchmarks.
//!
//! Each is a [`Proc`] whose log reports the line announcing the bound
//! addresses, so port 0 works. Dropping a handle kills its process. A
//! master keeps its state in sled in its data directory, or in etcd with
//! other masters ([`MasterBuilder::etcd`]); masters and agents can be
//! paused (SIGSTOP) and resumed.

pub use crate::process::{Proc, free_port};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The value of `key=` in a log line.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let start = line.find(&format!("{key}="))? + key.len() + 1;
    line[start..].split_whitespace().next()
}

pub struct MasterBuilder {
    down_after: Duration,
    listen: String,
    config: String,
    /// etcd's client URLs: the state lives there, shared with other masters.
    etcd: Option<Vec<String>>,
    name: Option<String>,
    lease_ttl: Option<Duration>,
}

impl MasterBuilder {
    /// Keep the state in the etcd cluster at `endpoints` (with other
    /// masters) instead of sled in the data directory.
    pub fn etcd(mut self, endpoints: &[String]) -> Self {
        self.etcd = Some(endpoints.to_vec());
        self
    }

    /// This master's name among several.
    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.to_owned());
        self
    }

    /// The leader's lease with etcd (2 s at least).
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = Some(ttl);
        self
    }

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
        let mut m = self.build();
        m.start().unwrap_or_else(|e| panic!("{e}"));
        m
    }

    /// The master, configured but not started ([`MasterProc::restart`]
    /// starts it): its URL is known before it runs.
    pub fn build(mut self) -> MasterProc {
        let mut grpc: SocketAddr = self.listen.parse().expect("listen address");
        if let Some(endpoints) = &self.etcd {
            let list = endpoints
                .iter()
                .map(|e| format!("{e:?}"))
                .collect::<Vec<_>>()
                .join(", ");
            self.config
                .push_str(&format!("store = \"etcd\"\netcd_endpoints = [{list}]\n"));
            // Other masters and agents reach it at its advertised URL,
            // which names the port: it cannot be 0.
            if grpc.port() == 0 {
                grpc.set_port(free_port(grpc.ip()));
            }
        }
        if let Some(name) = &self.name {
            self.config.push_str(&format!("name = {name:?}\n"));
        }
        if let Some(ttl) = self.lease_ttl {
            self.config
                .push_str(&format!("lease_ttl = \"{}ms\"\n", ttl.as_millis()));
        }
        let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
        let config = (!self.config.is_empty()).then(|| {
            let path = dir.path().join("master.toml");
            std::fs::write(&path, &self.config).expect("write master config");
            path
        });
        MasterProc {
            config,
            proc: None,
            paused: false,
            last_log: String::new(),
            join: Mutex::new(None),
            grpc,
            http: "127.0.0.1:0".parse().unwrap(),
            dir,
            down_after: self.down_after,
        }
    }
}

pub struct MasterProc {
    proc: Option<Proc>,
    /// Stopped with SIGSTOP: it holds its sockets but answers nothing.
    paused: bool,
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
            etcd: None,
            name: None,
            lease_ttl: None,
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
        let log = proc.log();
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
        self.paused = false;
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

    /// SIGSTOP: the process holds its sockets and leases but does nothing
    /// (a long GC pause, a frozen VM).
    pub fn pause(&mut self) {
        if let Some(p) = &self.proc {
            p.signal(libc::SIGSTOP);
            self.paused = true;
        }
    }

    /// SIGCONT after [`MasterProc::pause`].
    pub fn resume(&mut self) {
        if let Some(p) = &self.proc {
            p.signal(libc::SIGCONT);
            self.paused = false;
        }
    }

    /// Running, and not paused.
    pub fn is_up(&self) -> bool {
        self.proc.is_some() && !self.paused
    }

    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().map(Proc::pid)
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
    /// The masters it may talk to, in place of the one it was built with
    /// (the token and CA still come from that one).
    pub fn masters(mut self, urls: &[String]) -> Self {
        self.master = urls.join(",");
        self
    }

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
        self.proc.as_ref().map(|p| p.pid())
    }

    /// SIGHUP: it collects its grains and facts again.
    pub fn hangup(&self) {
        if let Some(p) = &self.proc {
            p.signal(libc::SIGHUP);
        }
    }

    /// SIGSTOP: it answers nothing, its session hangs.
    pub fn pause(&self) {
        if let Some(p) = &self.proc {
            p.signal(libc::SIGSTOP);
        }
    }

    /// SIGCONT after [`AgentProc::pause`].
    pub fn resume(&self) {
        if let Some(p) = &self.proc {
            p.signal(libc::SIGCONT);
        }
    }

    pub fn log(&self) -> String {
        self.proc.as_ref().map(|p| p.log()).unwrap_or_default()
    }

    /// `(status, body)` of this agent's health endpoint.
    pub async fn health(&self) -> (u16, String) {
        crate::get(&self.health_url).await
    }
}
