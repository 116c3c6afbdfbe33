//! Enrolling the simulated nodes with a join token, a bounded number of
//! joins at a time, and checking each certificate is the one the master keeps.

use super::*;

/// A simulated node's enrolled identity.
pub(crate) struct SimNode {
    pub(crate) index: usize,
    pub(crate) id: String,
    pub(crate) cert_pem: String,
    pub(crate) key_pem: String,
}

pub(crate) fn node_id(index: usize) -> String {
    format!("sim-{index:05}")
}

/// A TLS endpoint to the master trusting its CA, with `identity` if given.
pub(crate) fn endpoint(url: &str, ca_pem: &str, identity: Option<Identity>) -> Endpoint {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca_pem))
        .domain_name("127.0.0.1");
    if let Some(identity) = identity {
        tls = tls.identity(identity);
    }
    Endpoint::from_shared(url.to_owned())
        .expect("the master's URL is a valid URI")
        .tls_config(tls)
        .expect("the CA and node certificates make a valid TLS configuration")
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(10))
}

/// Enrolls `count` nodes with `token`, then re-enrolls (fresh key) those
/// whose certificate the master would refuse, until none is left; returns
/// the nodes and how many were re-enrolled.
pub(crate) async fn enroll(
    url: &str,
    ca_pem: &str,
    token: &str,
    control: &mut Control,
    count: usize,
) -> Result<(Vec<SimNode>, usize), String> {
    let mut nodes = join_all(url, ca_pem, token, (0..count).collect()).await?;
    let mut reenrolled = 0;
    for _ in 0..REENROLL_ROUNDS {
        let refused = refused_certificates(control, &nodes).await?;
        if refused.is_empty() {
            return Ok((nodes, reenrolled));
        }
        reenrolled += refused.len();
        let request = pb::DecideKeysRequest {
            node_ids: refused.iter().map(|i| node_id(*i)).collect(),
            decision: pb::KeyDecision::Delete as i32,
            ..Default::default()
        };
        control
            .decide_keys(request)
            .await
            .map_err(|e| format!("cannot delete the refused keys: {e}"))?;
        for node in join_all(url, ca_pem, token, refused).await? {
            let index = node.index;
            nodes[index] = node;
        }
    }
    Err(format!(
        "still refused certificates after {REENROLL_ROUNDS} rounds of re-enrollment"
    ))
}

/// The indexes of nodes whose certificate carries another serial than the
/// one the master recorded for their key, which it therefore refuses ("no
/// longer accepted"). The master draws 16 random bytes per serial and
/// records them all as hex, but DER drops a leading zero byte, so about one
/// certificate in 256 reads back with a shorter serial.
pub(crate) async fn refused_certificates(
    control: &mut Control,
    nodes: &[SimNode],
) -> Result<Vec<usize>, String> {
    let keys = control
        .list_keys(pb::ListKeysRequest {})
        .await
        .map_err(|e| format!("ListKeys failed: {e}"))?
        .into_inner()
        .keys;
    let recorded: HashMap<String, String> =
        keys.into_iter().map(|k| (k.node_id, k.serial)).collect();
    let mut refused = Vec::new();
    for node in nodes {
        let serial = certificate_serial(&node.cert_pem)
            .map_err(|e| format!("the certificate of {} is unreadable: {e}", node.id))?;
        if recorded.get(&node.id) != Some(&serial) {
            refused.push(node.index);
        }
    }
    Ok(refused)
}

/// The serial (hex) the master reads from a certificate, as it reads it.
pub(crate) fn certificate_serial(cert_pem: &str) -> Result<String, String> {
    let certs = cluster_master::pki::pem_certs(cert_pem).map_err(|e| e.to_string())?;
    let der = certs.first().ok_or("no certificate in the PEM")?;
    let (_, serial) = cluster_master::pki::identity(der).map_err(|e| e.to_string())?;
    Ok(serial)
}

/// Joins the nodes `indexes`: a fresh key each, `JOINS_IN_FLIGHT` joins at
/// a time over `JOIN_CHANNELS` shared connections; sorted by index.
pub(crate) async fn join_all(
    url: &str,
    ca_pem: &str,
    token: &str,
    indexes: Vec<usize>,
) -> Result<Vec<SimNode>, String> {
    let mut channels = Vec::new();
    for _ in 0..JOIN_CHANNELS {
        let channel = endpoint(url, ca_pem, None)
            .connect()
            .await
            .map_err(|e| format!("cannot connect to the master to enroll: {e:?}"))?;
        channels.push(channel);
    }
    let slots = Arc::new(Semaphore::new(JOINS_IN_FLIGHT));
    let mut joins = JoinSet::new();
    for (i, index) in indexes.iter().copied().enumerate() {
        let permit = slots.clone().acquire_owned().await.expect("never closed");
        let client =
            pb::enrollment_client::EnrollmentClient::new(channels[i % JOIN_CHANNELS].clone());
        let token = token.to_owned();
        joins.spawn(async move {
            let _permit = permit;
            join(client, index, token).await
        });
    }
    let mut nodes = Vec::with_capacity(indexes.len());
    while let Some(joined) = joins.join_next().await {
        nodes.push(joined.map_err(|e| format!("a join task failed: {e}"))??);
    }
    nodes.sort_by_key(|n| n.index);
    Ok(nodes)
}

/// `Enrollment.Join` for one node; its certificate when accepted.
pub(crate) async fn join(
    mut client: pb::enrollment_client::EnrollmentClient<Channel>,
    index: usize,
    token: String,
) -> Result<SimNode, String> {
    let id = node_id(index);
    let (key_pem, csr_pem) = cluster_master::pki::new_key_and_csr(&id)
        .map_err(|e| format!("cannot make a key and CSR for {id}: {e}"))?;
    let request = pb::JoinRequest {
        node_id: id.clone(),
        csr_pem,
        token,
    };
    let resp = client
        .join(request)
        .await
        .map_err(|e| format!("join of {id} failed: {e}"))?
        .into_inner();
    if resp.status != pb::JoinStatus::Accepted as i32 {
        return Err(format!(
            "join of {id} was not accepted (status {}): {}",
            resp.status, resp.message
        ));
    }
    Ok(SimNode {
        index,
        id,
        cert_pem: resp.cert_pem,
        key_pem,
    })
}
