//! clusterctl: parses what the user typed, asks the master, prints the
//! answer. Thin on purpose: behaviour lives in the master.
//!
//! # Layout
//!
//! - [`args`] — clap definitions, nothing else.
//! - [`context`] — the config file with named contexts; which master to use.
//! - [`client`] — the gRPC edge: requests and the CLI's view types.
//! - [`commands`] — what each subcommand does.
//! - [`targeting`] — what the target flags and words mean; `clusterctl
//!   target`, offline.
//! - [`render`] — tables and JSON.
//! - [`run`] — `clusterctl run`: streamed output, summary, Ctrl-C.
//! - `dev` — `clusterctl dev`: an embedded master and local agents (the
//!   default-on `dev` feature).
//! - [`drain`] — `drain` and `undrain`, followed until really out (or in).
//! - [`keys`] — a user's key and certificate request, made here.
//! - [`follow`] — `events --follow` and `nodes --watch`, pushed by the
//!   master, resumed after a break.
//! - [`top`] — `clusterctl top`: the fleet live, full screen.
//!
//! # Exit codes
//!
//! `0` success; `1` the request was valid but some node failed, timed out or
//! was not connected; `2` bad input (usage, unknown node, invalid value);
//! `3` the master could not be reached; `4` refused: no valid certificate,
//! or a role without the permission.

pub mod args;
pub mod balancing;
pub mod client;
pub mod commands;
pub mod context;
pub mod declare;
#[cfg(feature = "dev")]
pub mod dev;
pub mod drain;
pub mod follow;
pub mod keys;
pub mod render;
pub mod rollout;
pub mod run;
pub mod targeting;
pub mod top;
pub mod usage;

use clap::Parser;
use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

/// The process environment, read once, so tests can supply their own.
#[derive(Debug, Clone)]
pub struct Env {
    /// `$XDG_CONFIG_HOME`, else `$HOME/.config`.
    pub config_home: PathBuf,
    /// `CLUSTERCTL_MASTER`: one master, or several separated by commas.
    pub master: Option<String>,
    /// `CLUSTERCTL_CONTEXT`
    pub context: Option<String>,
    /// `CLUSTERCTL_CONFIG`: the config file, instead of the one under `config_home`.
    pub config_file: Option<PathBuf>,
    /// `CLUSTERCTL_CA`, `CLUSTERCTL_CERT`, `CLUSTERCTL_KEY`: credentials
    /// over the context's.
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// Who is asking, recorded in the event log: `user@host`.
    pub user: String,
    /// Whether stdout is a terminal (progress bars) or not (plain lines).
    pub terminal: bool,
}

impl Env {
    pub fn from_process() -> Env {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let config_home = var("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(var("HOME").unwrap_or_else(|| "/".into())).join(".config")
            });
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "localhost".into());
        let user = var("USER")
            .or_else(|| var("LOGNAME"))
            .unwrap_or_else(|| "unknown".into());
        Env {
            config_home,
            master: var("CLUSTERCTL_MASTER"),
            context: var("CLUSTERCTL_CONTEXT"),
            config_file: var("CLUSTERCTL_CONFIG").map(PathBuf::from),
            ca: var("CLUSTERCTL_CA").map(PathBuf::from),
            cert: var("CLUSTERCTL_CERT").map(PathBuf::from),
            key: var("CLUSTERCTL_KEY").map(PathBuf::from),
            user: format!("{user}@{host}"),
            terminal: std::io::IsTerminal::is_terminal(&std::io::stdout()),
        }
    }

    /// An environment with nothing set, for tests.
    pub fn for_tests() -> Env {
        Env {
            config_home: PathBuf::from("/nonexistent"),
            master: None,
            context: None,
            config_file: None,
            ca: None,
            cert: None,
            key: None,
            user: "test@localhost".into(),
            terminal: false,
        }
    }
}

/// Why a command did not succeed, and the exit code that says so.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub const PARTIAL: u8 = 1;
    pub const BAD_INPUT: u8 = 2;
    pub const UNREACHABLE: u8 = 3;
    pub const REFUSED: u8 = 4;

    pub fn partial(message: impl Into<String>) -> Failure {
        Failure {
            code: Self::PARTIAL,
            message: message.into(),
        }
    }
    pub fn bad_input(message: impl Into<String>) -> Failure {
        Failure {
            code: Self::BAD_INPUT,
            message: message.into(),
        }
    }
    pub fn unreachable(message: impl Into<String>) -> Failure {
        Failure {
            code: Self::UNREACHABLE,
            message: message.into(),
        }
    }

    pub fn from_status(s: tonic::Status) -> Failure {
        use tonic::Code::*;
        let message = s.message().to_owned();
        match s.code() {
            InvalidArgument | NotFound | AlreadyExists | FailedPrecondition | OutOfRange => {
                Failure::bad_input(message)
            }
            Unavailable => Failure::unreachable(format!("the master is unavailable: {message}")),
            Unauthenticated | PermissionDenied => Failure {
                code: Self::REFUSED,
                message: format!("refused: {message}"),
            },
            DeadlineExceeded => {
                Failure::partial(format!("the master did not answer in time: {message}"))
            }
            _ => Failure::partial(format!("{:?}: {message}", s.code())),
        }
    }
}

impl From<context::ContextError> for Failure {
    fn from(e: context::ContextError) -> Failure {
        Failure::bad_input(e.to_string())
    }
}

/// Runs clusterctl with `args` (including the program name) and returns the
/// exit code. What a command prints goes to `out`; errors go to `err`.
pub async fn run<I, T>(args: I, env: &Env, out: &mut dyn Write, err: &mut dyn Write) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    // One process-wide crypto provider (ring); a no-op when already set.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = match args::Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                Failure::BAD_INPUT
            } else {
                0
            };
            let text = e.render().to_string();
            let _ = if code == 0 {
                write!(out, "{text}")
            } else {
                write!(err, "{text}")
            };
            return code;
        }
    };
    match commands::dispatch(cli, env, out).await {
        Ok(()) => 0,
        Err(f) => {
            let _ = writeln!(err, "error: {}", f.message);
            f.code
        }
    }
}
