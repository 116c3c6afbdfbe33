//! `ListMasters`: the cluster's masters, who leads and under which epoch,
//! and the store's endpoints, as the master that answers sees them. No
//! domain type stands between: the answer is read straight into the view
//! `-o json` prints.

use super::Client;
use super::failover::Call;
use crate::Failure;
use cluster_proto as pb;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MastersView {
    /// "sled" (one master) or "etcd".
    pub store: String,
    /// The leader's epoch (its fence revision with etcd; 0 with one master).
    pub epoch: u64,
    pub lease_remaining_ms: u64,
    /// The store's revision now.
    pub revision: u64,
    pub masters: Vec<MasterView>,
    pub endpoints: Vec<EndpointView>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MasterView {
    pub name: String,
    pub address: String,
    pub leader: bool,
    /// The master that answered.
    pub answering: bool,
    /// 0 when it could not be asked.
    pub revision: u64,
    pub agents: u32,
    /// Why it could not be asked.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub error: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EndpointView {
    pub endpoint: String,
    pub healthy: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub error: String,
    pub revision: u64,
    pub leader: bool,
    pub version: String,
    pub db_size_bytes: u64,
    pub latency_ms: f64,
}

impl From<pb::ListMastersResponse> for MastersView {
    fn from(r: pb::ListMastersResponse) -> MastersView {
        MastersView {
            store: r.store,
            epoch: r.epoch,
            lease_remaining_ms: r.lease_remaining_ms,
            revision: r.revision,
            masters: r
                .masters
                .into_iter()
                .map(|m| MasterView {
                    name: m.name,
                    address: m.address,
                    leader: m.leader,
                    answering: m.answering,
                    revision: m.revision,
                    agents: m.agents,
                    error: m.error,
                })
                .collect(),
            endpoints: r
                .endpoints
                .into_iter()
                .map(|e| EndpointView {
                    endpoint: e.endpoint,
                    healthy: e.healthy,
                    error: e.error,
                    revision: e.revision,
                    leader: e.leader,
                    version: e.version,
                    db_size_bytes: e.db_size_bytes,
                    latency_ms: e.latency_ms,
                })
                .collect(),
        }
    }
}

impl Client {
    pub async fn masters(&mut self) -> Result<MastersView, Failure> {
        let answer = self
            .unary_status(
                Call::Read,
                pb::ListMastersRequest {},
                |mut c, r| async move { c.list_masters(r).await },
            )
            .await?;
        match answer {
            Ok(r) => Ok(r.into()),
            Err(s) if s.code() == tonic::Code::Unimplemented => Err(Failure::partial(format!(
                "the master at {} does not serve ListMasters: it is older than this clusterctl",
                self.master()
            ))),
            Err(s) => Err(Failure::from_status(s)),
        }
    }
}
