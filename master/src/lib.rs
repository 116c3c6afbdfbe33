//! The master: keeps the desired state of the cluster and talks to every
//! agent and to clusterctl.
//!
//! # Layout
//!
//! - [`server`] — `run(listeners, config, shutdown)`: what `cluster-master`
//!   and the tests call.
//! - [`config`] — file → raw → validated configuration.
//! - [`cluster`] — the in-memory cluster: nodes, generation, sessions,
//!   acknowledgements; serialised durable writes.
//! - [`targets`] — Salt-style target expressions: parsing and matching, pure.
//! - [`store`] — persistence behind the `Store` trait (sled by default).
//! - [`naming`] — names from services (iterative, masterful), promotion.
//! - [`model`] — the master's own types (`Node`, `OfflineFlag`, `Event`, …).
//! - [`grpc`] — the gRPC edge; the only place that names wire types.
//! - [`http`] — read-only HTTP: central `/health?node=`, `/metrics`.
//! - [`jobs`] — remote execution: fan-out, batches, results.
//! - [`init`] — `cluster-master init`: the CA and an admin context, no serving.
//! - [`pki`] — the CA: issuing and reading certificates.
//! - [`tls`] — mutual TLS on the gRPC port: the accept loop, audited refusals.

pub mod cluster;
pub mod clusterfile;
pub mod config;
pub mod grpc;
pub mod http;
pub mod init;
pub mod jobs;
pub mod model;
pub mod naming;
pub mod pki;
pub mod rollout;
pub mod server;
pub mod store;
pub mod targets;
pub mod tls;

pub use config::Config;
pub use server::{Listeners, RunError, run};
