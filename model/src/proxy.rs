//! What every proxy routes with: the upstreams resolved to servers (a
//! role's nodes in service, or the listed servers) and the route chains,
//! whole and versioned. The master computes it; agents that run the proxy
//! are sent it and cache it.

use cluster_balancer::{Domain, Server};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One server of an upstream as the proxies are sent it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedServer {
    #[serde(flatten)]
    pub server: Server,
    /// The node it is, for servers derived from a role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyView {
    pub version: u64,
    pub upstreams: BTreeMap<String, Vec<ResolvedServer>>,
    pub routes: BTreeMap<String, Domain>,
}
