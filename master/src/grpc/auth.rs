//! Who may call what. Every call but enrollment names its caller by the
//! verified client certificate; refusals are audited.
//!
//! | permission | admin | operator | read | node |
//! |---|---|---|---|---|
//! | `Read` (list nodes, events) | yes | yes | yes | no |
//! | `Drain` (drain, undrain) | yes | yes | no | no |
//! | `Admin` (tokens, keys, users, remote execution) | yes | no | no | no |
//!
//! Nodes speak only on their own session (`node`); masters only on the
//! masters' own service (`master`).

use crate::cluster::{Caller, Cluster};
use crate::tls::PeerInfo;
use cluster_model::NodeId;
use std::pin::Pin;
use std::sync::Arc;
use tokio_stream::{Stream, StreamExt as _};
use tonic::{Request, Status};

pub use crate::cluster::{Permission, Refusal};

fn peer<T>(req: &Request<T>) -> Option<&PeerInfo> {
    req.extensions().get::<PeerInfo>()
}

fn addr<T>(req: &Request<T>) -> String {
    peer(req)
        .map(|p| p.addr.to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// The caller behind `req`, if its certificate is acceptable.
pub async fn caller<T>(cluster: &Cluster, req: &Request<T>) -> Result<Caller, Status> {
    let cert = peer(req).and_then(|p| p.cert.as_ref());
    match cluster.authenticate(cert.map(|c| c.as_ref())) {
        Ok(c) => Ok(c),
        Err(e) => {
            let msg = e.to_string();
            cluster
                .deny("", "tls", format!("{msg} (from {})", addr(req)))
                .await;
            Err(Status::unauthenticated(msg))
        }
    }
}

/// The user allowed to do `action`, or the refusal (audited).
pub async fn authorize<T>(
    cluster: &Cluster,
    req: &Request<T>,
    need: Permission,
    action: &str,
) -> Result<Caller, Status> {
    let who = caller(cluster, req).await?;
    let refusal = who.refusal(need, action).map(|r| match r {
        Refusal::Unauthenticated(msg) => Status::unauthenticated(msg),
        Refusal::Denied(msg) => Status::permission_denied(msg),
    });
    match refusal {
        None => Ok(who),
        Some(status) => {
            let detail = format!("{} (from {})", status.message(), addr(req));
            cluster.deny("", &who.label(), detail).await;
            Err(status)
        }
    }
}

/// The master behind one of the masters' own calls, or the refusal (audited).
pub async fn master<T>(cluster: &Cluster, req: &Request<T>) -> Result<String, Status> {
    match caller(cluster, req).await? {
        Caller::Master { name, .. } => Ok(name),
        other => {
            let msg = format!(
                "only masters may make the masters' own calls, not {}",
                other.label()
            );
            cluster
                .deny("", &other.label(), format!("{msg} (from {})", addr(req)))
                .await;
            Err(Status::permission_denied(msg))
        }
    }
}

/// The node a session's certificate belongs to.
pub async fn node<T>(cluster: &Cluster, req: &Request<T>) -> Result<NodeId, Status> {
    match caller(cluster, req).await? {
        Caller::Node { id, .. } => Ok(id),
        other => {
            let msg = format!(
                "only node certificates may open an agent session, not {}",
                other.label()
            );
            cluster
                .deny("", &other.label(), format!("{msg} (from {})", addr(req)))
                .await;
            Err(Status::permission_denied(msg))
        }
    }
}

/// A streaming answer that ends the moment its caller's certificate is
/// revoked — on any master — with `Unauthenticated`, as if the call had
/// been refused: a `drain --wait`, a `run` or a rollout's watch does not
/// outlive the credential it was opened with.
pub fn revocable<T: Send + 'static>(
    cluster: &Arc<Cluster>,
    caller: &Caller,
    stream: impl Stream<Item = Result<T, Status>> + Send + 'static,
) -> Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>> {
    let Some(serial) = caller.serial() else {
        return Box::pin(stream);
    };
    let revoked = cluster.revocation(serial);
    let closing = Status::unauthenticated(format!(
        "certificate {serial} of {} has been revoked: the call is closed (a run it \
         started is cancelled; changes it made stand)",
        caller.label()
    ));
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        let mut stream = Box::pin(stream);
        tokio::pin!(revoked);
        loop {
            let item = tokio::select! {
                biased;
                () = &mut revoked => break,
                () = tx.closed() => return,
                item = stream.next() => match item {
                    Some(item) => item,
                    None => return,
                },
            };
            tokio::select! {
                biased;
                () = &mut revoked => break,
                sent = tx.send(item) => if sent.is_err() { return },
            }
        }
        // Dropped first: what it followed ends as if the caller had gone.
        drop(stream);
        let _ = tx.send(Err(closing)).await;
    });
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}
