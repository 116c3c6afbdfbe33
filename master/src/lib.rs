//! The master: keeps the desired state of the cluster and talks to every
//! agent and to clusterctl.
//!
//! # Layout
//!
//! - [`server`] — `run(listeners, config, shutdown)`: what `cluster-master`
//!   and the tests call.
//! - [`config`] — file → raw → validated configuration.
//! - [`state`] — the state machine, pure: the records, the live state of
//!   sessions, the derived views, and the planners of every mutation
//!   (`plan(&State, command, now) -> Change`), applied in one place.
//! - [`cluster`] — the shell around it: plan, commit to the store, apply,
//!   wake sessions and waiters; agent sessions; drains.
//! - [`store`] — persistence behind the `Store` trait (sled by default):
//!   atomic commits with preconditions, revisions.
//! - [`grpc`] — the gRPC edge; the only place that names wire types.
//! - [`http`] — read-only HTTP: central `/health?node=`, `/metrics`.
//! - [`jobs`] — remote execution: fan-out, batches, results.
//! - [`monitor`] — usage history for every master; alert rules run by the
//!   leader, their changes stored, then delivered.
//! - [`notify`] — alert delivery: Alertmanager, email, webhooks; queued,
//!   retried, every failure reported.
//! - [`init`] — `cluster-master init`: the CA and an admin context, no serving.
//! - [`pki`] — the CA: issuing and reading certificates.
//! - [`tls`] — mutual TLS on the gRPC port: the accept loop, audited refusals.

pub mod cluster;
pub mod config;
pub mod grpc;
pub mod http;
pub mod init;
pub mod jobs;
pub mod monitor;
pub mod notify;
pub mod pki;
pub mod rollout;
pub mod server;
pub mod state;
pub mod store;
pub mod tls;

pub use config::Config;
pub use server::{Listeners, RunError, run};
