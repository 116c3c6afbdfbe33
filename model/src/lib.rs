//! The cluster's own types, shared by the master, the agent and
//! clusterctl: what the master stores and reasons about, what an agent
//! reports, and what people type. Plain data and pure functions; no I/O
//! but reading a config file, no server code.
//!
//! # Layout
//!
//! - [`ids`] — [`NodeId`] and [`NodeName`], holding the one validity check.
//! - [`node`] — a node's record, spec, health and state ([`NodeState`]
//!   derived in one place), balancer reports.
//! - [`usage`], [`event`], [`access`] (tokens, keys, roles), [`job`],
//!   [`rollout`] — the other records.
//! - [`proxy`] — what the proxies route with, resolved and versioned.
//! - [`session`] — an agent's hello, the snapshot and deltas it is sent,
//!   its acknowledgements.
//! - [`rotation`] — drains: per-node results, why a node is not yet out
//!   of rotation ([`rotation::Pending`]), the events of a wait.
//! - [`targets`] — Salt-style target expressions, parsed once and matched
//!   against plain data; [`TargetSpec`].
//! - [`naming`] — names from services (iterative, masterful), promotion.
//! - [`clusterfile`] — the cluster file: parse, check, diff, export.
//! - [`labels`] — label keys.
//! - [`config`] — the staged configuration loader of the master and agent.
//! - [`wire`] — conversions to and from the `cluster_proto` types, written
//!   once, with precise errors.
//! - [`time`] — the clock, for shells only.
//! - [`facts`] — Facter's size format, and the live figures of a usage
//!   report laid into a node's Facter-shaped facts where they are shown.
//! - [`watch`] — what a watch on nodes reports: the part of a node's
//!   status whose change is news, and the diff of two listings.

pub mod access;
pub mod alerts;
pub mod clusterfile;
pub mod config;
pub mod event;
pub mod facts;
pub mod fs;
pub mod ids;
pub mod job;
pub mod labels;
pub mod limits;
pub mod metrics;
pub mod naming;
pub mod node;
pub mod proxy;
pub mod redact;
pub mod retry;
pub mod rollout;
pub mod rotation;
pub mod session;
pub mod targets;
pub mod time;
pub mod usage;
pub mod watch;
pub mod wire;

pub use access::{ApiAccess, KeyRecord, KeyState, Role, Token, UserRecord};
pub use event::{Event, EventKind};
pub use ids::{InvalidName, NodeId, NodeName};
pub use job::{JobNodeResult, JobRecord, JobStatus};
pub use node::{
    Applied, CheckResult, FactProblem, Facts, Grains, HealthStatus, HostEntry, LbBackend, LbReport,
    LbSource, Node, NodeSpec, NodeState, NodeStatus, OfflineFlag,
};
pub use proxy::{ProxyView, ResolvedServer};
pub use targets::TargetSpec;
pub use usage::{DiskIo, DiskUsage, InterfaceUsage, Usage};
