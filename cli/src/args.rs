//! What clusterctl accepts: clap definitions only, no behaviour.
//! `live` holds the live views' (`top`), `target` the target flags every
//! command that takes nodes flattens.

mod live;
mod target;
pub use live::TopArgs;
pub use target::{HowKind, KindFlags, TargetFlags};

use clap::{Args as ClapArgs, Parser, Subcommand, ValueEnum};
use std::time::Duration;

/// Drive the cluster: list nodes, ask what they are, take them out of
/// service and put them back.
#[derive(Parser, Debug)]
#[command(name = "clusterctl", version, propagate_version = true)]
pub struct Cli {
    /// Master address, or several separated by commas, e.g.
    /// https://10.0.0.1:7440,https://10.0.0.2:7440 (tried in a random order;
    /// a call whose master goes away goes to the next) [env: CLUSTERCTL_MASTER]
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
    /// Show grains (facts) of the targeted nodes, or one grain by key (nested keys with ':');
    /// `grains refresh TARGET` has them collected again.
    Grains(GrainsArgs),
    /// Show Facter-shaped facts of the targeted nodes, or one by its dotted path (`os.release.full`).
    Facts(FactsArgs),
    /// Run a command on the targeted nodes, output streamed back (admin).
    Run(RunArgs),
    /// Recent jobs.
    Jobs(JobsArgs),
    /// One job: every node's result and output.
    Job(JobArgs),
    /// Set labels on the targeted nodes: KEY=VALUE, or KEY- to remove (admin).
    Label(LabelArgs),
    /// Node groups, for `-N` and `N@` (admin to change).
    #[command(subcommand)]
    Nodegroup(NodegroupCommand),
    /// Try a target expression offline against grains in a JSON file.
    Target(TargetArgs),
    /// Make a node the master of its masterful service; the old master becomes a slave (admin).
    Promote { node: String },
    /// Give a node another name (a valid hostname, unique) (admin).
    Rename { node: String, new_name: String },
    /// What a node's managed hosts block holds.
    Hosts { node: Option<String> },
    /// Take nodes out of service: their health endpoint answers 503.
    Drain(DrainArgs),
    /// Put nodes back into service.
    Undrain(UndrainArgs),
    /// Show the audit log: who drained what, when and why; nodes going down.
    Events(EventsArgs),
    /// A node's usage over time (CPU, memory, swap, disk, load, network),
    /// from the history its master keeps (an hour by default).
    Usage(crate::usage::UsageArgs),
    /// Alerts firing on the targeted nodes (usage past its levels, agents
    /// silent).
    Alerts(crate::usage::AlertsArgs),
    /// A live full-screen view of the fleet: usage per node, sortable, filtered by a target.
    Top(TopArgs),
    /// The cluster's masters: which one leads, each one's revision and
    /// agents; the store's epoch, lease and endpoints.
    Masters,
    /// Join tokens for new agents (admin).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Node keys: list, accept, reject, delete (admin; Salt's salt-key).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// People's certificates (admin).
    #[command(subcommand)]
    User(UserCommand),
    /// The cluster's certificates: what expires when.
    #[command(subcommand)]
    Ca(CaCommand),
    /// Run a master and three agents locally, for trying things out.
    Dev(DevArgs),
    /// One master of `dev --masters`, run by it.
    #[command(hide = true)]
    DevMaster(DevMasterArgs),
    /// Upstreams the proxies balance over: listed servers or a role's nodes.
    #[command(subcommand)]
    Upstream(UpstreamCommand),
    /// Routes: per-domain rule chains (ua, path, header, backend).
    #[command(subcommand)]
    Route(RouteCommand),
    /// Rolling deploy, run by the master: per batch, drain (until really out
    /// of rotation) → run the command → healthy for a while → undrain → back
    /// in rotation. `rollout status|resume|abort|list` for the rest (admin).
    Rollout(RolloutArgs),
    /// Compare a cluster file with the cluster: what `apply` would change.
    Plan { file: std::path::PathBuf },
    /// Make the cluster match a cluster file, all or nothing (admin).
    Apply { file: std::path::PathBuf },
    /// Write the cluster as a cluster file (to stdout, or --file).
    Export {
        #[arg(long, short = 'f')]
        file: Option<std::path::PathBuf>,
    },
}

#[derive(ClapArgs, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct RolloutArgs {
    #[command(subcommand)]
    pub action: Option<RolloutAction>,
    #[command(flatten)]
    pub how: TargetFlags,
    /// Which nodes: names, globs, or one expression with a target flag.
    #[arg(required = true)]
    pub target: Option<String>,
    /// The command and its arguments (no shell; use `sh -c '…'` for one).
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
    /// Nodes out of rotation at once: a number or a percentage.
    #[arg(long, short = 'b', default_value = "1")]
    pub batch: String,
    /// Failed nodes tolerated before halting (they stay drained).
    #[arg(long, default_value_t = 0)]
    pub max_failures: u32,
    /// How long a batch may take to be really out of rotation.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub drain_timeout: Duration,
    /// How long a node's checks must pass before it goes back in.
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    pub healthy_for: Duration,
    /// How long a node may take to become healthy, and to be back in rotation.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub health_timeout: Duration,
    /// The command's timeout per node (default: none).
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Start even if a batch would take every online node of a role out.
    #[arg(long)]
    pub allow_last: bool,
    /// Start it and return; `clusterctl rollout status ID` follows it.
    #[arg(long, short = 'd')]
    pub detach: bool,
}

#[derive(Subcommand, Debug)]
pub enum RolloutAction {
    /// Where a rollout is (`--follow` to watch it until it stops).
    Status {
        id: String,
        #[arg(long, short = 'f')]
        follow: bool,
    },
    /// Go on with a failed, aborted or interrupted rollout (failed nodes first).
    Resume { id: String },
    /// Stop a rollout after its current step; drained nodes stay drained.
    Abort { id: String },
    /// Recent rollouts.
    List {
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
}

#[derive(Subcommand, Debug)]
pub enum UpstreamCommand {
    /// Every upstream, its source and the servers the proxies use now.
    List,
    /// Create or replace an upstream (admin).
    Set(UpstreamSetArgs),
    /// Remove an upstream no route uses (admin).
    Rm { name: String },
}

#[derive(ClapArgs, Debug)]
pub struct UpstreamSetArgs {
    pub name: String,
    /// Every online node with this role…
    #[arg(long, conflicts_with = "server", requires = "port")]
    pub role: Option<String>,
    /// …at this port.
    #[arg(long)]
    pub port: Option<u16>,
    /// A listed server: ADDR[,weight=N][,max_fails=N][,fail_timeout=10s][,backup][,down]
    /// (repeat for more).
    #[arg(long, required_unless_present = "role")]
    pub server: Vec<String>,
    /// Weight of role-derived servers.
    #[arg(long, default_value_t = 1)]
    pub weight: u32,
    /// Failures within --fail-timeout that take a server out (0: never).
    #[arg(long, default_value_t = 1)]
    pub max_fails: u32,
    /// The window failures are counted in, and how long a server stays out.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub fail_timeout: Duration,
}

#[derive(Subcommand, Debug)]
pub enum RouteCommand {
    /// Every domain's rule chain (`-o json`: ELB's format).
    List { domain: Option<String> },
    /// Set a domain's rule chain from a JSON file ({"init": …, "rules": …}),
    /// or send the whole domain to one upstream with --backend (admin).
    Set(RouteSetArgs),
    /// Remove a domain's routes (admin).
    Rm { domains: Vec<String> },
    /// Show which rules a request goes through and the upstream it reaches.
    Test(RouteTestArgs),
    /// Import ELB's JSON domain file (and, with --upstreams, its upstream
    /// file) as one change (admin).
    Import(RouteImportArgs),
}

#[derive(ClapArgs, Debug)]
pub struct RouteSetArgs {
    pub domain: String,
    /// The chain as JSON: {"init": "r1", "rules": {"r1": {"type": …, "args": …}}}.
    #[arg(conflicts_with = "backend", required_unless_present = "backend")]
    pub file: Option<std::path::PathBuf>,
    /// Send every request for the domain to this upstream.
    #[arg(long)]
    pub backend: Option<String>,
}

#[derive(ClapArgs, Debug)]
pub struct RouteTestArgs {
    /// The Host the request is for.
    pub host: String,
    /// The path (a query string is ignored).
    #[arg(default_value = "/")]
    pub path: String,
    /// The User-Agent.
    #[arg(long, default_value = "")]
    pub ua: String,
    /// A request header, "Name: value" (repeat for more).
    #[arg(long = "header", short = 'H')]
    pub headers: Vec<String>,
}

#[derive(ClapArgs, Debug)]
pub struct RouteImportArgs {
    /// ELB's domain JSON: {"example.com": {"init": …, "rules": …}, …}.
    pub file: std::path::PathBuf,
    /// ELB's upstream JSON, set in the same change.
    #[arg(long)]
    pub upstreams: Option<std::path::PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Create a join token (prints it with the CA fingerprint agents pin),
    /// or with `--api` a token for the HTTP API and the dashboard.
    Create(TokenCreateArgs),
    /// List tokens: join and API, uses left, roles, expiry (never the secret).
    List,
    /// Delete tokens by id (the part before the dot) or glob: from that
    /// moment they open nothing.
    Delete(TokenIds),
}

#[derive(ClapArgs, Debug)]
pub struct TokenIds {
    /// Token ids or globs.
    #[arg(required = true)]
    pub ids: Vec<String>,
}

#[derive(ClapArgs, Debug)]
pub struct TokenCreateArgs {
    /// How long the token can be used (default: 1h for a join token; an
    /// API token does not expire unless given one).
    #[arg(long, value_parser = parse_duration)]
    pub ttl: Option<Duration>,
    /// How many agents may join with it (default: any number until it expires).
    #[arg(long, conflicts_with = "api")]
    pub uses: Option<u32>,
    /// Roles given to every node that joins with it (repeat or comma-separate).
    #[arg(long = "roles", value_delimiter = ',', conflicts_with = "api")]
    pub roles: Vec<String>,
    /// A token for the HTTP API and the dashboard (sent as `Authorization:
    /// Bearer`, or as HTTP Basic's password), not for joining nodes.
    #[arg(long)]
    pub api: bool,
    /// What an API token may do: read, operator (drain too) or admin.
    #[arg(long, requires = "api", default_value = "read", value_parser = parse_role)]
    pub role: cluster_model::Role,
    /// Whom the event log names for what an API token does (default:
    /// `api-ID`).
    #[arg(long, requires = "api")]
    pub name: Option<String>,
}

fn parse_role(s: &str) -> Result<cluster_model::Role, String> {
    s.parse()
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
    /// Node ids (or names, or globs).
    #[arg(required = true)]
    pub nodes: Vec<String>,
    /// Which of one node's pending requests (a unique prefix of the
    /// fingerprint `keys list` shows): needed to accept when several wait;
    /// with reject or delete, drops that request alone.
    #[arg(long, value_name = "FP")]
    pub fingerprint: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum CaCommand {
    /// The CA's, every node's and every person's certificate, soonest to
    /// expire first, with when each node's agent renews its own.
    Status,
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Issue a certificate for a person and write a ready config file.
    Add(UserAddArgs),
    /// List people's certificates: role, serial, issued, revoked.
    List,
    /// Revoke a person's certificate: refused from now on, on every master.
    Revoke(UserName),
}

#[derive(ClapArgs, Debug)]
pub struct UserName {
    /// The user's name.
    pub name: String,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserRole {
    /// Everything.
    Admin,
    /// Read, drain and undrain only.
    Operator,
    /// Read only: nodes, grains, events, jobs.
    Read,
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
#[command(args_conflicts_with_subcommands = true)]
pub struct NodesArgs {
    #[command(subcommand)]
    pub action: Option<NodesAction>,
    #[command(flatten)]
    pub how: TargetFlags,
    /// Only these nodes (names or globs), or one expression with a target flag.
    pub target: Vec<String>,
    /// Print the table, then a line per node whose state, flag, health or name changes.
    #[arg(long, short = 'w')]
    pub watch: bool,
}

#[derive(Subcommand, Debug)]
pub enum NodesAction {
    /// Forget a node that is gone: its record, key and hosts line; its name is free again (admin).
    Remove { node: String },
}

#[derive(ClapArgs, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct GrainsArgs {
    #[command(subcommand)]
    pub action: Option<GrainsAction>,
    #[command(flatten)]
    pub how: TargetFlags,
    /// Node name, glob, or expression with a target flag.
    #[arg(required = true)]
    pub target: Option<String>,
    /// Grain key; nested keys joined with ':' (e.g. `os_family`, `datacenter:rack`).
    pub key: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum GrainsAction {
    /// Have the targeted agents collect grains and facts again (external
    /// facts too) and send them; prints what changed on each (operator).
    Refresh(GrainsRefreshArgs),
}

#[derive(ClapArgs, Debug)]
pub struct GrainsRefreshArgs {
    #[command(flatten)]
    pub how: TargetFlags,
    /// Which nodes: a name, a glob, or an expression with a target flag.
    pub target: String,
    /// Per node, e.g. 30s (default: no limit; a hanging external fact is
    /// stopped at the agent's facts_timeout anyway).
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Nodes at once: a number or a percentage (a sliding window).
    #[arg(long, short = 'b')]
    pub batch: Option<String>,
}

#[derive(ClapArgs, Debug)]
pub struct FactsArgs {
    #[command(flatten)]
    pub how: TargetFlags,
    /// Node name, glob, or expression with a target flag.
    pub target: String,
    /// A fact's dotted path, as Facter's (`os.family`, `networking.interfaces.eth0.ip`,
    /// `processors.models.0`).
    pub path: Option<String>,
}

#[derive(ClapArgs, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub how: TargetFlags,
    /// Which nodes: a name, a glob, or an expression with a target flag.
    pub target: String,
    /// The command and its arguments (no shell; use `sh -c '…'` for one).
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
    /// Per node, e.g. 30s, 5m (default: no limit).
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Nodes at once: a number or a percentage (a sliding window).
    #[arg(long, short = 'b')]
    pub batch: Option<String>,
}

#[derive(ClapArgs, Debug)]
pub struct JobsArgs {
    #[arg(long, default_value_t = 20)]
    pub limit: u32,
}

#[derive(ClapArgs, Debug)]
pub struct JobArgs {
    pub id: String,
}

#[derive(ClapArgs, Debug)]
pub struct LabelArgs {
    #[command(flatten)]
    pub how: TargetFlags,
    /// Which nodes.
    pub target: String,
    /// KEY=VALUE to set, KEY- to remove.
    #[arg(required = true)]
    pub labels: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum NodegroupCommand {
    /// List node groups.
    List,
    /// Define a node group as a compound expression.
    Set { name: String, expr: String },
    /// Remove a node group.
    Rm { name: String },
}

#[derive(ClapArgs, Debug)]
pub struct TargetArgs {
    #[command(flatten)]
    pub how: TargetFlags,
    pub expr: String,
    /// A JSON object {node_name: grains}; addresses for -S come from the
    /// ipv4/ipv6 grains, roles from the roles grain, facts (for `F@`) from
    /// a `facts` key.
    #[arg(long)]
    pub nodes: std::path::PathBuf,
    /// Node groups for -N / N@, as a JSON object {name: expression}.
    #[arg(long)]
    pub groups: Option<std::path::PathBuf>,
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
    #[command(flatten)]
    pub how: TargetFlags,
    /// Nodes to drain: names or globs, or one expression with a target flag.
    #[arg(required = true)]
    pub names: Vec<String>,
    /// Why; shown by the health endpoint and kept in the event log.
    #[arg(long, short)]
    pub reason: Option<String>,
    /// Maintenance: no traffic at all (HAProxy MAINT) instead of a drain
    /// (no new traffic).
    #[arg(long)]
    pub maint: bool,
    /// With --wait: wait until the nodes are really out of rotation — the
    /// agent applied it, every proxy dropped them with nothing in flight,
    /// and HAProxy (when reported) holds no session to them.
    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(ClapArgs, Debug)]
pub struct UndrainArgs {
    #[command(flatten)]
    pub how: TargetFlags,
    /// Nodes to put back: names or globs, or one expression with a target flag.
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
    /// Then each new event as it is appended, until interrupted.
    #[arg(long, short = 'f')]
    pub follow: bool,
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
    /// Masters: 1 (embedded, on sled), or several on a real 3-member etcd
    /// cluster started alongside (needs `etcd` on PATH, and a clusterctl
    /// built with the `etcd` feature).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=5))]
    pub masters: u8,
}

#[derive(clap::Args, Debug)]
pub struct DevMasterArgs {
    #[arg(long)]
    pub name: String,
    #[arg(long)]
    pub listen: std::net::SocketAddr,
    #[arg(long)]
    pub http_listen: std::net::SocketAddr,
    #[arg(long)]
    pub data_dir: std::path::PathBuf,
    #[arg(long, value_delimiter = ',')]
    pub etcd_endpoint: Vec<String>,
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e}; try 30s, 2m or 500ms"))
}
