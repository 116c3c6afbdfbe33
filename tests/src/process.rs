//! One child process whose stderr is kept: [`Proc`] reads it on a thread
//! of its own (the log is shown when a test fails, and a marker line can
//! be waited for), signals it, and kills it when dropped; [`free_port`]
//! for programs that must be told their ports.

use std::io::{BufRead, BufReader};
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
    pub fn start(cmd: Command, marker: &'static str) -> Result<(Proc, String), String> {
        let (mut proc, marked) = Proc::launch(cmd, Some(marker))?;
        match marked.recv_timeout(READY_PATIENCE) {
            Ok(line) => Ok((proc, line)),
            Err(_) => {
                let _ = proc.child.kill();
                let status = proc.child.wait().ok();
                proc.read_to_end();
                Err(format!(
                    "process did not log {marker:?} (exit: {status:?}); its log:\n{}",
                    proc.log()
                ))
            }
        }
    }

    /// Starts `cmd` as [`Proc::start`] does, without waiting for anything:
    /// for programs whose readiness is asked for some other way.
    pub fn spawn(cmd: Command) -> Result<Proc, String> {
        Proc::launch(cmd, None).map(|(proc, _)| proc)
    }

    fn launch(
        mut cmd: Command,
        marker: Option<&'static str>,
    ) -> Result<(Proc, mpsc::Receiver<String>), String> {
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
                    if marker.is_some_and(|m| line.contains(m)) {
                        let _ = tx.send(line.clone());
                    }
                    let mut l = log.lock().unwrap();
                    l.push_str(&line);
                    l.push('\n');
                }
            })
        };
        Ok((
            Proc {
                child,
                log,
                reader: Some(reader),
            },
            rx,
        ))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (SIGSTOP, SIGCONT, …) without waiting for anything.
    pub fn signal(&self, signal: i32) {
        unsafe {
            libc::kill(self.child.id() as i32, signal);
        }
    }

    /// Whether the process has exited (and so will say no more).
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
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
        self.signal(libc::SIGTERM);
        // A stopped (SIGSTOP) process acts on the signal once it runs.
        self.signal(libc::SIGCONT);
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

/// A port on `ip` nobody listens on now (the kernel's choice for port 0).
pub fn free_port(ip: std::net::IpAddr) -> u16 {
    // Never the same port twice in this process: the system may hand a
    // port just released to a test running alongside, before the process
    // this one was picked for binds it.
    static GIVEN: std::sync::Mutex<Vec<(std::net::IpAddr, u16)>> =
        std::sync::Mutex::new(Vec::new());
    loop {
        let port = std::net::TcpListener::bind((ip, 0))
            .and_then(|l| l.local_addr())
            .expect("bind a free port")
            .port();
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if !given.contains(&(ip, port)) {
            given.push((ip, port));
            return port;
        }
    }
}
