//! Helpers for the access tests (`security.rs`, `hardening.rs`): raw
//! TLS channels, the event log, nodes and keys as clusterctl lists them,
//! certificates from another CA, enrollment requests.

use crate::{Admin, ctl};
use cluster_proto as pb;
use serde_json::Value;
use std::path::Path;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// A TLS channel to the master trusting `ca`, with an optional identity.
pub async fn channel(
    url: &str,
    ca: &str,
    identity: Option<(&str, &str)>,
) -> Result<Channel, String> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca))
        .domain_name("127.0.0.1");
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    Endpoint::from_shared(url.to_owned())
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .map_err(|e| format!("{e:?}"))
}

/// Exactly one TLS handshake with the master at `url` (`https://ip:port`)
/// on a connection of its own, presenting `cert`/`key`, then one byte
/// sent and read back, so the refusal of a TLS 1.3 client certificate
/// (which the client hears only after its side of the handshake is done)
/// has come before it returns. Unlike a gRPC channel, it never connects
/// again: one call, one handshake for the master to count.
pub async fn one_handshake(url: &str, ca: &str, cert: &str, key: &str) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_client_auth_cert(chain, key)
    .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let addr = url.trim_start_matches("https://").trim_end_matches('/');
    let ip: std::net::IpAddr = addr.rsplit_once(':').unwrap().0.parse().unwrap();
    let Ok(tcp) = tokio::net::TcpStream::connect(addr).await else {
        return;
    };
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    if let Ok(mut tls) = connector
        .connect(ServerName::IpAddress(ip.into()), tcp)
        .await
    {
        let _ = tls.write_all(b"\0").await;
        let mut byte = [0u8; 1];
        let _ = tls.read(&mut byte).await;
    }
}

pub fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

pub async fn events(admin: &Admin) -> Vec<Value> {
    ctl(admin, &["events", "--limit", "1000", "-o", "json"])
        .await
        .ok()
        .json()
        .as_array()
        .unwrap()
        .clone()
}

pub async fn denied_with(admin: &Admin, text: &str) -> bool {
    events(admin)
        .await
        .iter()
        .any(|e| e["kind"] == "denied" && e["detail"].as_str().unwrap_or("").contains(text))
}

pub async fn node_json(admin: &Admin, name: &str) -> Option<Value> {
    let out = ctl(admin, &["nodes", "-o", "json"]).await.ok().json();
    out.as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .cloned()
}

pub async fn connected(admin: &Admin, name: &str) -> bool {
    node_json(admin, name)
        .await
        .is_some_and(|n| n["connected"] == true)
}

pub async fn key_state(admin: &Admin, id: &str) -> Option<String> {
    let keys = ctl(admin, &["keys", "list", "-o", "json"])
        .await
        .ok()
        .json();
    keys.as_array()
        .unwrap()
        .iter()
        .find(|k| k["node_id"] == id)
        .map(|k| k["state"].as_str().unwrap().to_owned())
}

/// A certificate and key for `subject`, signed by a CA that is not the
/// cluster's; and that CA.
pub fn foreign_identity(
    subject: cluster_master::pki::Subject,
) -> (String, String, cluster_master::pki::Ca) {
    let now = std::time::SystemTime::now();
    let (other_ca, _) = cluster_master::pki::Ca::generate("elsewhere", now).unwrap();
    let (key, req) = cluster_master::pki::new_key_and_csr("mallory").unwrap();
    let (cert, _) = other_ca.issue_client(&req, &subject, now).unwrap();
    (cert, key, other_ca)
}

pub fn csr(cn: &str) -> String {
    cluster_master::pki::new_key_and_csr(cn).unwrap().1
}

pub async fn join(admin: &Admin, node: &str, token: &str) -> pb::JoinResponse {
    join_with(admin, node, token, csr(node)).await
}

/// A join request for `node` with the key behind `csr_pem`.
pub async fn join_with(
    admin: &Admin,
    node: &str,
    token: &str,
    csr_pem: String,
) -> pb::JoinResponse {
    let ch = channel(&admin.url, &read(&admin.ca), None).await.unwrap();
    pb::enrollment_client::EnrollmentClient::new(ch)
        .join(pb::JoinRequest {
            node_id: node.into(),
            csr_pem,
            token: token.into(),
        })
        .await
        .unwrap()
        .into_inner()
}
