//! `Control`: the calls clusterctl makes.

use super::auth::{Permission, authorize, revocable};
use super::convert::{invalid, required_target, status_of};
use crate::cluster::{Cluster, DrainRequest, KeyDecision};
use crate::jobs::{self, Jobs};
use cluster_model::job::Builtin;
use cluster_model::wire;
use cluster_proto as pb;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio_stream::Stream;
use tokio_stream::StreamExt as _;
use tonic::{Request, Response, Status};

/// How long a drain is followed when asked to and the request names no
/// timeout.
pub(super) const DEFAULT_WAIT: Duration = Duration::from_secs(30);
/// The longest wait a client may ask for.
pub(super) const MAX_WAIT: Duration = Duration::from_secs(3600);
/// Events returned when the request names no limit.
const DEFAULT_EVENTS: usize = 100;
/// How long a join token lives when the request names no ttl.
const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(3600);

pub struct ControlSvc {
    pub cluster: Arc<Cluster>,
    pub jobs: Arc<Jobs>,
    pub rollouts: Arc<crate::rollout::Rollouts>,
    pub monitor: Arc<crate::monitor::Monitor>,
    /// Ends the followed reads (`FollowEvents`, `WatchNodes`) when the
    /// master stops: the server's graceful stop waits for open streams.
    pub shutdown: tokio_util::sync::CancellationToken,
}

impl ControlSvc {
    /// A request's target, its expression parsed outside the state's lock.
    pub(super) async fn prepared(
        &self,
        spec: cluster_model::TargetSpec,
    ) -> Result<cluster_model::TargetSpec, Status> {
        self.cluster.prepare(spec).await.map_err(status_of)
    }
}

pub(super) type RunStream = Pin<Box<dyn Stream<Item = Result<pb::RunEvent, Status>> + Send>>;
pub(super) type DrainStream = Pin<Box<dyn Stream<Item = Result<pb::DrainEvent, Status>> + Send>>;
pub(super) type WatchRolloutStream =
    Pin<Box<dyn Stream<Item = Result<pb::RolloutInfo, Status>> + Send>>;

#[tonic::async_trait]
impl pb::control_server::Control for ControlSvc {
    type RunStream = RunStream;
    type DrainStream = DrainStream;
    type WatchRolloutStream = WatchRolloutStream;
    type FollowEventsStream = super::control_watch::FollowEventsStream;
    type WatchNodesStream = super::control_watch::WatchNodesStream;

    async fn follow_events(
        &self,
        request: Request<pb::FollowEventsRequest>,
    ) -> Result<Response<Self::FollowEventsStream>, Status> {
        self.handle_follow_events(request).await
    }

    async fn watch_nodes(
        &self,
        request: Request<pb::ListNodesRequest>,
    ) -> Result<Response<Self::WatchNodesStream>, Status> {
        self.handle_watch_nodes(request).await
    }

    async fn list_masters(
        &self,
        request: Request<pb::ListMastersRequest>,
    ) -> Result<Response<pb::ListMastersResponse>, Status> {
        authorize(&self.cluster, &request, Permission::Read, "list masters").await?;
        let m = self.cluster.masters().await;
        let t = &m.topology;
        Ok(Response::new(pb::ListMastersResponse {
            store: t.store.to_owned(),
            masters: m
                .masters
                .iter()
                .map(|v| pb::MasterInfo {
                    name: v.entry.name.clone(),
                    address: v.entry.address.clone(),
                    leader: v.leader,
                    answering: v.answering,
                    revision: v.status.as_ref().map_or(0, |s| s.revision),
                    error: v.status.as_ref().err().cloned().unwrap_or_default(),
                    agents: v.status.as_ref().map_or(0, |s| s.agents),
                })
                .collect(),
            epoch: t.epoch,
            lease_remaining_ms: t.lease_remaining.map_or(0, |d| d.as_millis() as u64),
            revision: t.revision,
            endpoints: t
                .endpoints
                .iter()
                .map(|e| pb::StoreEndpoint {
                    endpoint: e.endpoint.clone(),
                    healthy: e.error.is_none(),
                    error: e.error.clone().unwrap_or_default(),
                    revision: e.revision,
                    leader: e.leader,
                    version: e.version.clone(),
                    db_size_bytes: e.db_size_bytes,
                    latency_ms: e.latency.as_secs_f64() * 1000.0,
                })
                .collect(),
        }))
    }

    async fn export_cluster(
        &self,
        request: Request<pb::ExportClusterRequest>,
    ) -> Result<Response<pb::ClusterDescription>, Status> {
        self.handle_export_cluster(request).await
    }

    async fn apply_cluster(
        &self,
        request: Request<pb::ApplyClusterRequest>,
    ) -> Result<Response<pb::ApplyClusterResponse>, Status> {
        self.handle_apply_cluster(request).await
    }

    async fn start_rollout(
        &self,
        request: Request<pb::StartRolloutRequest>,
    ) -> Result<Response<pb::RolloutInfo>, Status> {
        self.handle_start_rollout(request).await
    }

    async fn watch_rollout(
        &self,
        request: Request<pb::RolloutRequest>,
    ) -> Result<Response<WatchRolloutStream>, Status> {
        self.handle_watch_rollout(request).await
    }

    async fn get_rollout(
        &self,
        request: Request<pb::RolloutRequest>,
    ) -> Result<Response<pb::RolloutInfo>, Status> {
        self.handle_get_rollout(request).await
    }

    async fn list_rollouts(
        &self,
        request: Request<pb::ListRolloutsRequest>,
    ) -> Result<Response<pb::ListRolloutsResponse>, Status> {
        self.handle_list_rollouts(request).await
    }

    async fn resume_rollout(
        &self,
        request: Request<pb::RolloutRequest>,
    ) -> Result<Response<pb::RolloutInfo>, Status> {
        self.handle_resume_rollout(request).await
    }

    async fn abort_rollout(
        &self,
        request: Request<pb::RolloutRequest>,
    ) -> Result<Response<pb::RolloutInfo>, Status> {
        self.handle_abort_rollout(request).await
    }

    async fn list_balancing(
        &self,
        request: Request<pb::ListBalancingRequest>,
    ) -> Result<Response<pb::ListBalancingResponse>, Status> {
        self.handle_list_balancing(request).await
    }

    async fn set_upstream(
        &self,
        request: Request<pb::SetUpstreamRequest>,
    ) -> Result<Response<pb::SetUpstreamResponse>, Status> {
        self.handle_set_upstream(request).await
    }

    async fn remove_upstream(
        &self,
        request: Request<pb::RemoveUpstreamRequest>,
    ) -> Result<Response<pb::RemoveUpstreamResponse>, Status> {
        self.handle_remove_upstream(request).await
    }

    async fn set_routes(
        &self,
        request: Request<pb::SetRoutesRequest>,
    ) -> Result<Response<pb::SetRoutesResponse>, Status> {
        self.handle_set_routes(request).await
    }

    async fn run(&self, request: Request<pb::RunRequest>) -> Result<Response<RunStream>, Status> {
        let builtin =
            Builtin::parse(&request.get_ref().builtin).map_err(Status::invalid_argument)?;
        // A built-in job runs no program: collecting facts again is an
        // operator's to ask for, as a drain is.
        let caller = match builtin {
            Some(Builtin::RefreshFacts) => {
                authorize(&self.cluster, &request, Permission::Drain, "refresh facts").await?
            }
            None => authorize(&self.cluster, &request, Permission::Admin, "run commands").await?,
        };
        let req = request.into_inner();
        let target = self
            .prepared(required_target(req.target, Vec::new())?)
            .await?;
        let spec = jobs::RunSpec {
            target,
            argv: req.argv,
            builtin,
            timeout: (req.timeout_ms > 0).then(|| Duration::from_millis(req.timeout_ms)),
            batch: req.batch,
        };
        let events = jobs::start(
            self.cluster.clone(),
            self.jobs.clone(),
            spec,
            caller.label(),
        )
        .await
        .map_err(status_of)?;
        let stream =
            tokio_stream::wrappers::ReceiverStream::new(events).map(|e| Ok(pb::RunEvent::from(&e)));
        Ok(Response::new(revocable(&self.cluster, &caller, stream)))
    }

    async fn promote(
        &self,
        request: Request<pb::PromoteRequest>,
    ) -> Result<Response<pb::RenameResponse>, Status> {
        let caller = authorize(&self.cluster, &request, Permission::Admin, "promote nodes").await?;
        let node = request.into_inner().node;
        let renames = self
            .cluster
            .promote(&node, &caller.label())
            .await
            .map_err(status_of)?;
        Ok(Response::new(renames_to_pb(renames)))
    }

    async fn rename(
        &self,
        request: Request<pb::RenameRequest>,
    ) -> Result<Response<pb::RenameResponse>, Status> {
        let caller = authorize(&self.cluster, &request, Permission::Admin, "rename nodes").await?;
        let req = request.into_inner();
        let renames = self
            .cluster
            .rename(&req.node, &req.new_name, &caller.label())
            .await
            .map_err(status_of)?;
        Ok(Response::new(renames_to_pb(renames)))
    }

    async fn remove_node(
        &self,
        request: Request<pb::RemoveNodeRequest>,
    ) -> Result<Response<pb::RemoveNodeResponse>, Status> {
        let caller = authorize(&self.cluster, &request, Permission::Admin, "remove nodes").await?;
        let node = request.into_inner().node;
        self.cluster
            .remove_node(&node, &caller.label())
            .await
            .map_err(status_of)?;
        Ok(Response::new(pb::RemoveNodeResponse {}))
    }

    async fn hosts(
        &self,
        request: Request<pb::HostsRequest>,
    ) -> Result<Response<pb::HostsResponse>, Status> {
        authorize(&self.cluster, &request, Permission::Read, "read hosts").await?;
        let node = request.into_inner().node;
        // Every node gets the same lines; naming one checks it exists.
        if !node.is_empty() {
            self.cluster.nodes(&[node]).map_err(status_of)?;
        }
        let (_, hosts) = self.cluster.hosts();
        Ok(Response::new(pb::HostsResponse {
            hosts: hosts.iter().map(Into::into).collect(),
        }))
    }

    async fn list_jobs(
        &self,
        request: Request<pb::ListJobsRequest>,
    ) -> Result<Response<pb::ListJobsResponse>, Status> {
        authorize(&self.cluster, &request, Permission::Read, "list jobs").await?;
        let limit = match request.get_ref().limit {
            0 => 50,
            n => n as usize,
        };
        let jobs = self
            .cluster
            .jobs(limit)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        Ok(Response::new(pb::ListJobsResponse {
            jobs: jobs.iter().map(|j| wire::job_to_pb(j, false)).collect(),
        }))
    }

    async fn get_job(
        &self,
        request: Request<pb::GetJobRequest>,
    ) -> Result<Response<pb::GetJobResponse>, Status> {
        authorize(&self.cluster, &request, Permission::Read, "read jobs").await?;
        let id = request.into_inner().id;
        let job = self
            .cluster
            .job(id.trim())
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?
            .ok_or_else(|| Status::not_found(format!("no job {id:?}")))?;
        Ok(Response::new(pb::GetJobResponse {
            job: Some(wire::job_to_pb(&job, true)),
        }))
    }

    async fn set_labels(
        &self,
        request: Request<pb::SetLabelsRequest>,
    ) -> Result<Response<pb::SetLabelsResponse>, Status> {
        let caller = authorize(&self.cluster, &request, Permission::Admin, "set labels").await?;
        let req = request.into_inner();
        let spec = self
            .prepared(required_target(req.target, Vec::new())?)
            .await?;
        let labels = req.labels.into_iter().collect();
        let nodes = self
            .cluster
            .set_labels(&spec, &labels, &caller.label())
            .await
            .map_err(status_of)?;
        Ok(Response::new(pb::SetLabelsResponse { nodes }))
    }

    async fn set_node_group(
        &self,
        request: Request<pb::SetNodeGroupRequest>,
    ) -> Result<Response<pb::SetNodeGroupResponse>, Status> {
        let caller = authorize(
            &self.cluster,
            &request,
            Permission::Admin,
            "define node groups",
        )
        .await?;
        let req = request.into_inner();
        self.cluster
            .set_group(&req.name, &req.expr, &caller.label())
            .await
            .map_err(status_of)?;
        Ok(Response::new(pb::SetNodeGroupResponse {}))
    }

    async fn list_node_groups(
        &self,
        request: Request<pb::ListNodeGroupsRequest>,
    ) -> Result<Response<pb::ListNodeGroupsResponse>, Status> {
        authorize(
            &self.cluster,
            &request,
            Permission::Read,
            "list node groups",
        )
        .await?;
        Ok(Response::new(pb::ListNodeGroupsResponse {
            groups: self.cluster.groups().into_iter().collect(),
        }))
    }

    async fn list_nodes(
        &self,
        request: Request<pb::ListNodesRequest>,
    ) -> Result<Response<pb::ListNodesResponse>, Status> {
        authorize(&self.cluster, &request, Permission::Read, "list nodes").await?;
        let req = request.into_inner();
        let spec = match wire::target_of(req.target, req.names).map_err(invalid)? {
            Some(spec) => Some(self.prepared(spec).await?),
            None => None,
        };
        let mut nodes = self
            .cluster
            .nodes_matching(spec.as_ref())
            .map_err(status_of)?;
        self.monitor.with_levels(&mut nodes);
        Ok(Response::new(pb::ListNodesResponse {
            nodes: nodes.iter().map(Into::into).collect(),
            generation: self.cluster.generation(),
        }))
    }

    async fn drain(
        &self,
        request: Request<pb::DrainRequest>,
    ) -> Result<Response<DrainStream>, Status> {
        let action = if request.get_ref().offline {
            "drain"
        } else {
            "undrain"
        };
        let caller = authorize(&self.cluster, &request, Permission::Drain, action).await?;
        let req = request.into_inner();
        let target = self
            .prepared(required_target(req.target, req.names)?)
            .await?;
        // The certificate says who; the client's own note (user@host) is
        // kept in a field of its own, escaped and bounded.
        let by = caller.label();
        let note = cluster_model::event::sanitised_hint(&req.by);
        let timeout = match req.timeout_ms {
            0 => DEFAULT_WAIT,
            ms => Duration::from_millis(ms).min(MAX_WAIT),
        };
        tracing::info!(%target, offline = req.offline, %by, "drain");
        let events = self
            .cluster
            .drain(DrainRequest {
                target,
                offline: req.offline,
                reason: req.reason,
                maintenance: req.maintenance,
                by,
                note,
                wait: req.wait,
                timeout,
            })
            .await
            .map_err(status_of)?;
        let stream = tokio_stream::wrappers::ReceiverStream::new(events)
            .map(|e| Ok(pb::DrainEvent::from(&e)));
        Ok(Response::new(revocable(&self.cluster, &caller, stream)))
    }

    async fn usage_history(
        &self,
        request: Request<pb::UsageHistoryRequest>,
    ) -> Result<Response<pb::UsageHistoryResponse>, Status> {
        self.handle_usage_history(request).await
    }

    async fn list_events(
        &self,
        request: Request<pb::ListEventsRequest>,
    ) -> Result<Response<pb::ListEventsResponse>, Status> {
        authorize(&self.cluster, &request, Permission::Read, "read events").await?;
        let req = request.into_inner();
        let node = Some(req.node.trim()).filter(|n| !n.is_empty());
        let limit = match req.limit {
            0 => DEFAULT_EVENTS,
            n => n as usize,
        };
        let events = self
            .cluster
            .events(req.after_seq, limit, node)
            .await
            .map_err(status_of)?;
        Ok(Response::new(pb::ListEventsResponse {
            events: events.iter().map(Into::into).collect(),
        }))
    }

    async fn create_token(
        &self,
        request: Request<pb::CreateTokenRequest>,
    ) -> Result<Response<pb::CreateTokenResponse>, Status> {
        let action = if request.get_ref().api_role.is_empty() {
            "create join tokens"
        } else {
            "create API tokens"
        };
        let caller = authorize(&self.cluster, &request, Permission::Admin, action).await?;
        let req = request.into_inner();
        let api = match req.api_role.as_str() {
            "" => None,
            role => Some(cluster_model::ApiAccess {
                name: req.api_name.clone(),
                role: role.parse().map_err(Status::invalid_argument)?,
            }),
        };
        let ttl = match (req.ttl_ms, req.never_expires) {
            (_, true) => None,
            (0, false) => Some(DEFAULT_TOKEN_TTL),
            (ms, false) => Some(Duration::from_millis(ms)),
        };
        let uses = (req.uses > 0).then_some(req.uses);
        let grant = self
            .cluster
            .create_token(&caller.label(), ttl, uses, req.roles, api)
            .await
            .map_err(status_of)?;
        Ok(Response::new(pb::CreateTokenResponse {
            token: grant.token,
            ca_fingerprint: grant.ca_fingerprint,
            expires_ms: grant.expires_ms,
            api_name: grant
                .api
                .as_ref()
                .map(|a| a.name.clone())
                .unwrap_or_default(),
            api_role: grant
                .api
                .as_ref()
                .map(|a| a.role.as_str().to_owned())
                .unwrap_or_default(),
        }))
    }

    async fn list_users(
        &self,
        request: Request<pb::ListUsersRequest>,
    ) -> Result<Response<pb::ListUsersResponse>, Status> {
        authorize(&self.cluster, &request, Permission::Admin, "list users").await?;
        Ok(Response::new(pb::ListUsersResponse {
            users: self.cluster.users().iter().map(Into::into).collect(),
        }))
    }

    async fn ca_status(
        &self,
        request: Request<pb::CaStatusRequest>,
    ) -> Result<Response<pb::CaStatusResponse>, Status> {
        authorize(
            &self.cluster,
            &request,
            Permission::Read,
            "read certificates",
        )
        .await?;
        let mut certificates = self.cluster.certificates();
        certificates.sort_by_key(|c| c.not_after_ms);
        Ok(Response::new(pb::CaStatusResponse { certificates }))
    }

    async fn revoke_user(
        &self,
        request: Request<pb::RevokeUserRequest>,
    ) -> Result<Response<pb::UserInfo>, Status> {
        let caller = authorize(&self.cluster, &request, Permission::Admin, "revoke users").await?;
        let req = request.into_inner();
        let user = self
            .cluster
            .revoke_user(&req.name, &caller.label())
            .await
            .map_err(status_of)?;
        Ok(Response::new((&user).into()))
    }

    async fn list_tokens(
        &self,
        request: Request<pb::ListTokensRequest>,
    ) -> Result<Response<pb::ListTokensResponse>, Status> {
        authorize(
            &self.cluster,
            &request,
            Permission::Admin,
            "list join tokens",
        )
        .await?;
        Ok(Response::new(pb::ListTokensResponse {
            tokens: self.cluster.tokens().iter().map(Into::into).collect(),
        }))
    }

    async fn delete_tokens(
        &self,
        request: Request<pb::DeleteTokensRequest>,
    ) -> Result<Response<pb::ListTokensResponse>, Status> {
        let caller = authorize(
            &self.cluster,
            &request,
            Permission::Admin,
            "delete join tokens",
        )
        .await?;
        let req = request.into_inner();
        let gone = self
            .cluster
            .delete_tokens(&req.ids, &caller.label())
            .await
            .map_err(status_of)?;
        Ok(Response::new(pb::ListTokensResponse {
            tokens: gone.iter().map(Into::into).collect(),
        }))
    }

    async fn list_keys(
        &self,
        request: Request<pb::ListKeysRequest>,
    ) -> Result<Response<pb::ListKeysResponse>, Status> {
        authorize(&self.cluster, &request, Permission::Admin, "list keys").await?;
        Ok(Response::new(pb::ListKeysResponse {
            keys: self
                .cluster
                .keys()
                .iter()
                .flat_map(wire::key_rows)
                .collect(),
        }))
    }

    async fn decide_keys(
        &self,
        request: Request<pb::DecideKeysRequest>,
    ) -> Result<Response<pb::DecideKeysResponse>, Status> {
        let decision = match pb::KeyDecision::try_from(request.get_ref().decision) {
            Ok(pb::KeyDecision::Accept) => KeyDecision::Accept,
            Ok(pb::KeyDecision::Reject) => KeyDecision::Reject,
            Ok(pb::KeyDecision::Delete) => KeyDecision::Delete,
            _ => return Err(Status::invalid_argument("missing field `decision`")),
        };
        let caller =
            authorize(&self.cluster, &request, Permission::Admin, "decide on keys").await?;
        let req = request.into_inner();
        let keys = self
            .cluster
            .decide_keys(
                &req.node_ids,
                decision,
                Some(req.fingerprint.trim()).filter(|f| !f.is_empty()),
                &caller.label(),
            )
            .await
            .map_err(status_of)?;
        Ok(Response::new(pb::DecideKeysResponse {
            keys: keys.iter().map(Into::into).collect(),
        }))
    }

    async fn add_user(
        &self,
        request: Request<pb::AddUserRequest>,
    ) -> Result<Response<pb::AddUserResponse>, Status> {
        let caller = authorize(&self.cluster, &request, Permission::Admin, "add users").await?;
        let req = request.into_inner();
        let role = wire::role_of(req.role).map_err(invalid)?;
        let cert_pem = self
            .cluster
            .add_user(&req.name, role, &req.csr_pem, &caller.label())
            .await
            .map_err(status_of)?;
        Ok(Response::new(pb::AddUserResponse {
            cert_pem,
            ca_pem: self.cluster.ca_pem().to_owned(),
        }))
    }
}

fn renames_to_pb(renames: Vec<(String, String)>) -> pb::RenameResponse {
    pb::RenameResponse {
        renames: renames
            .into_iter()
            .map(|(from, to)| pb::Rename { from, to })
            .collect(),
    }
}
