//! The `cluster.v1` wire contract, generated from `proto/cluster/v1/cluster.proto`.
//!
//! Nothing but generated code lives here, and the codec the services use
//! ([`codec`]: prost's, writing hosts lines encoded once as they are): each
//! side converts these types into
//! its own domain types at its gRPC edge (`master::grpc::convert`,
//! `agent::session::convert`), so prost types are never persisted or passed
//! around inside the master or the agent.

#![allow(clippy::all, missing_docs)]

pub mod v1 {
    tonic::include_proto!("cluster.v1");
}

pub mod codec;

pub use v1::*;
