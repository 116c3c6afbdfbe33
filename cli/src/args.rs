//! What clusterctl accepts: clap definitions only, no behaviour.

use clap::{Args as ClapArgs, Parser, Subcommand, ValueEnum};
use std::time::Duration;

/// Drive the cluster: list nodes, ask what they are, take them out of
/// service and put them back.
#[derive(Parser, Debug)]
#[command(name = "clusterctl", version, propagate_version = true)]
pub struct Cli {
    /// Master address, e.g. http://10.0.0.1:7440 [env: CLUSTERCTL_MASTER]
    #[arg(long, global = true)]
    pub master: Option<String>,
    /// Context from the config file to use [env: CLUSTERCTL_CONTEXT]
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// Config file to read instead of ~/.config/clusterctl/config.toml [env: CLUSTERCTL_CONFIG]
    #[arg(long, global = true)]
    pub config_file: Option<std::path::PathBuf>,
    /// Output format.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Table,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// List nodes with their state, address and load.
    Nodes(NodesArgs),
    /// Show a node's grains (facts), or one grain by key (nested keys with ':').
    Grains(GrainsArgs),
    /// Take nodes out of service: their health endpoint answers 503.
    Drain(DrainArgs),
    /// Put nodes back into service.
    Undrain(UndrainArgs),
    /// Show the audit log: who drained what, when and why; nodes going down.
    Events(EventsArgs),
    /// Join tokens for new agents (admin).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Node keys: list, accept, reject, delete (admin; Salt's salt-key).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// People's certificates (admin).
    #[command(subcommand)]
    User(UserCommand),
    /// Run a master and three agents locally, for trying things out.
    Dev(DevArgs),
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Create a join token; prints it with the CA fingerprint agents pin.
    Create(TokenCreateArgs),
}

#[derive(ClapArgs, Debug)]
pub struct TokenCreateArgs {
    /// How long the token can be used.
    #[arg(long, value_parser = parse_duration, default_value = "1h")]
    pub ttl: Duration,
    /// How many agents may join with it (default: any number until it expires).
    #[arg(long)]
    pub uses: Option<u32>,
    /// Roles given to every node that joins with it (repeat or comma-separate).
    #[arg(long = "roles", value_delimiter = ',')]
    pub roles: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// List node keys: accepted, pending, rejected.
    List,
    /// Accept pending (or rejected) keys: the nodes are admitted.
    Accept(KeyNames),
    /// Reject keys; an accepted key's certificate is revoked and its session closed.
    Reject(KeyNames),
    /// Delete keys: revoked at once, open sessions closed; the node must enroll again.
    Delete(KeyNames),
}

#[derive(ClapArgs, Debug)]
pub struct KeyNames {
    /// Node ids (or names).
    #[arg(required = true)]
    pub nodes: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Issue a certificate for a person and write a ready config file.
    Add(UserAddArgs),
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserRole {
    /// Everything.
    Admin,
    /// Read, drain and undrain only.
    Operator,
}

#[derive(ClapArgs, Debug)]
pub struct UserAddArgs {
    pub name: String,
    #[arg(long, value_enum)]
    pub role: UserRole,
    /// Where to write NAME.key, NAME.crt, ca.crt and NAME.toml.
    #[arg(long, default_value = ".")]
    pub out: std::path::PathBuf,
}

#[derive(ClapArgs, Debug)]
pub struct NodesArgs {
    /// Only these nodes (by name or id).
    pub names: Vec<String>,
}

#[derive(ClapArgs, Debug)]
pub struct GrainsArgs {
    /// Node name or id.
    pub node: String,
    /// Grain key; nested keys joined with ':' (e.g. `os_family`, `datacenter:rack`).
    pub key: Option<String>,
}

#[derive(ClapArgs, Debug)]
pub struct WaitArgs {
    /// Wait until every node's agent acknowledged (its health endpoint answers accordingly).
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits, e.g. 30s, 2m.
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    pub timeout: Duration,
}

#[derive(ClapArgs, Debug)]
pub struct DrainArgs {
    /// Nodes to drain (names or ids).
    #[arg(required = true)]
    pub names: Vec<String>,
    /// Why; shown by the health endpoint and kept in the event log.
    #[arg(long, short)]
    pub reason: Option<String>,
    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(ClapArgs, Debug)]
pub struct UndrainArgs {
    /// Nodes to put back (names or ids).
    #[arg(required = true)]
    pub names: Vec<String>,
    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(ClapArgs, Debug)]
pub struct EventsArgs {
    /// Only events about this node.
    #[arg(long)]
    pub node: Option<String>,
    /// At most this many (the newest).
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
}

#[derive(ClapArgs, Debug)]
pub struct DevArgs {
    /// Number of agents (on 127.0.0.2, 127.0.0.3, …).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=50))]
    pub agents: u8,
    /// Master gRPC port (0: any free port).
    #[arg(long, default_value_t = 7440)]
    pub port: u16,
    /// Master HTTP port (health, metrics; 0: any free port).
    #[arg(long, default_value_t = 7441)]
    pub http_port: u16,
    /// Agents' health port (0: any free port).
    #[arg(long, default_value_t = 7442)]
    pub health_port: u16,
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e}; try 30s, 2m or 500ms"))
}
