//! `clusterctl dev --masters 3`: a real 3-member etcd cluster (Debian's
//! `etcd` on 127.0.0.1) and several masters on it, each its own process
//! (this executable, `clusterctl dev-master`), so a newcomer can `kill -9`
//! the leader and watch another take over. The agents stay in this
//! process, each given every master.

use crate::Failure;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The leader's lease in the dev cluster: etcd's minimum, so a killed
/// leader is replaced within about two seconds.
pub const LEASE_TTL: Duration = Duration::from_secs(2);
const ETCD_MEMBERS: usize = 3;

/// A child process, stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Managed {
    pub what: String,
    pub child: Child,
    pub log: PathBuf,
}

impl Managed {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it has exited (and how), without waiting.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    pub fn stop(&mut self) {
        if self.exited().is_some() {
            return;
        }
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if self.exited().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Managed {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A free port on 127.0.0.1 (bound then released: the child binds it),
/// never one this process handed out before: the system may give a port
/// just released again, and two children on one port is one that fails.
fn free_port() -> Result<u16, Failure> {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..100 {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| Failure::partial(format!("cannot find a free port: {e}")))?;
        if !given.contains(&port) {
            given.push(port);
            return Ok(port);
        }
    }
    Err(Failure::partial(
        "cannot find a free port not already given to another process of this cluster",
    ))
}

/// `etcd` on PATH, or the error naming the package.
pub fn etcd_binary() -> Result<PathBuf, Failure> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("etcd"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Failure::bad_input(
                "`clusterctl dev --masters` runs a real etcd cluster, and `etcd` is not on PATH\n\
                 hint: install Debian's etcd-server package (apt-get install etcd-server)",
            )
        })
}

fn spawn(what: String, mut cmd: Command, log: PathBuf) -> Result<Managed, Failure> {
    let file = std::fs::File::create(&log)
        .map_err(|e| Failure::partial(format!("cannot write {}: {e}", log.display())))?;
    let err = file
        .try_clone()
        .map_err(|e| Failure::partial(format!("cannot write {}: {e}", log.display())))?;
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork
    // and exec. The child goes when this process does, however it ends.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    let child = cmd
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err)
        .spawn()
        .map_err(|e| Failure::partial(format!("cannot start {what}: {e}")))?;
    Ok(Managed { what, child, log })
}

/// Starts a 3-member etcd cluster in `dir`; its client URLs.
pub fn start_etcd(dir: &Path) -> Result<(Vec<Managed>, Vec<String>), Failure> {
    let etcd = etcd_binary()?;
    let mut ports = Vec::new();
    for _ in 0..ETCD_MEMBERS {
        ports.push((free_port()?, free_port()?));
    }
    let initial: Vec<String> = ports
        .iter()
        .enumerate()
        .map(|(i, (_, peer))| format!("e{}=http://127.0.0.1:{peer}", i + 1))
        .collect();
    let mut members = Vec::new();
    let mut urls = Vec::new();
    for (i, (client, peer)) in ports.iter().enumerate() {
        let name = format!("e{}", i + 1);
        let client_url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let mut cmd = Command::new(&etcd);
        cmd.arg("--name")
            .arg(&name)
            .arg("--data-dir")
            .arg(dir.join(format!("{name}.etcd")))
            .arg("--listen-client-urls")
            .arg(&client_url)
            .arg("--advertise-client-urls")
            .arg(&client_url)
            .arg("--listen-peer-urls")
            .arg(&peer_url)
            .arg("--initial-advertise-peer-urls")
            .arg(&peer_url)
            .arg("--initial-cluster")
            .arg(initial.join(","))
            .arg("--initial-cluster-state")
            .arg("new")
            .arg("--initial-cluster-token")
            .arg(format!("clusterctl-dev-{}", std::process::id()));
        members.push(spawn(
            format!("etcd member {name}"),
            cmd,
            dir.join(format!("{name}.log")),
        )?);
        urls.push(client_url);
    }
    Ok((members, urls))
}

/// One master of the dev cluster: where it listens.
pub struct MasterSpec {
    pub name: String,
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    pub data_dir: PathBuf,
}

/// The masters' addresses: the first on `port`/`http_port` (0: any), the
/// others on the next free ports.
pub fn plan_masters(
    n: u8,
    port: u16,
    http_port: u16,
    dir: &Path,
) -> Result<Vec<MasterSpec>, Failure> {
    let loopback = IpAddr::from([127, 0, 0, 1]);
    let mut out = Vec::new();
    for i in 0..n {
        let (grpc, http) = match (i, port, http_port) {
            (0, p, h) if p != 0 && h != 0 => (p, h),
            _ => (free_port()?, free_port()?),
        };
        let name = format!("m{}", i + 1);
        out.push(MasterSpec {
            data_dir: dir.join(&name),
            name,
            grpc: (loopback, grpc).into(),
            http: (loopback, http).into(),
        });
    }
    Ok(out)
}

/// Starts `spec` as its own process: this executable's hidden
/// `dev-master` command.
pub fn start_master(spec: &MasterSpec, etcd: &[String], dir: &Path) -> Result<Managed, Failure> {
    let me = std::env::current_exe()
        .map_err(|e| Failure::partial(format!("cannot find this executable: {e}")))?;
    let mut cmd = Command::new(me);
    cmd.arg("dev-master")
        .arg("--name")
        .arg(&spec.name)
        .arg("--listen")
        .arg(spec.grpc.to_string())
        .arg("--http-listen")
        .arg(spec.http.to_string())
        .arg("--data-dir")
        .arg(&spec.data_dir)
        .arg("--etcd-endpoint")
        .arg(etcd.join(","))
        .env("NO_COLOR", "1");
    spawn(
        format!("master {}", spec.name),
        cmd,
        dir.join(format!("{}.log", spec.name)),
    )
}

/// Starts master `spec` and waits until it serves — its HTTP side
/// answers `GET /health`, which it does only once its state is loaded
/// (its ports are bound before, so a port that takes a connection says
/// nothing yet). When it exits first (its port was taken meanwhile by
/// another process), it is started again on new ports, up to 3 times.
pub async fn start_master_serving(
    spec: &mut MasterSpec,
    etcd: &[String],
    dir: &Path,
) -> Result<Managed, Failure> {
    let mut last = String::new();
    for _ in 0..3 {
        let mut child = start_master(spec, etcd, dir)?;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if serves(spec.http).await {
                return Ok(child);
            }
            if child.exited().is_some() {
                last = tail(&child.log);
                break;
            }
            if std::time::Instant::now() >= deadline {
                return Err(Failure::partial(format!(
                    "{} does not serve after 30s; its log ({}):\n{}",
                    child.what,
                    child.log.display(),
                    tail(&child.log)
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let ip = spec.grpc.ip();
        spec.grpc = SocketAddr::new(ip, free_port()?);
        spec.http = SocketAddr::new(ip, free_port()?);
    }
    Err(Failure::partial(format!(
        "master {} stopped while starting, 3 times; its log:\n{last}",
        spec.name
    )))
}

/// Whether the master whose HTTP side is `http` answers `GET /health`
/// with 200 within a second.
async fn serves(http: SocketAddr) -> bool {
    use http_body_util::Empty;
    use hyper::body::Bytes;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let Ok(uri) = format!("http://{http}/health").parse() else {
        return false;
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(1), client.get(uri)).await,
        Ok(Ok(r)) if r.status() == hyper::StatusCode::OK
    )
}

/// The last lines of a child's log, for an error.
pub fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}
