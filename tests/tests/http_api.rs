//! The REST API and bethel's calls against real processes: a master, real
//! agents answering their load balancers' probes, API tokens made with
//! clusterctl, and the seed's own Fabric task run by Python.

use cluster_tests::http::send;
use cluster_tests::{AgentProc, MasterProc, api_token, ctl, eventually};
use serde_json::Value;
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(10);

/// bethel's `alter_service_status`, as its README gives it, in Python 3
/// (urllib2 → urllib.request, base64.encodestring → encodebytes); only the
/// URL's host and the credentials differ.
const FABRIC_TASK: &str = r#"
import base64, json, sys, urllib.parse, urllib.request

rest_creds = ("rest", sys.argv[3])

def alter_service_status(newstatus, host, node):
    url = 'http://%s/silva/varnish_node_is_up/++rest++setstatus' % host
    query = {'change': json.dumps({node: {'status': newstatus}}),
             'skip-bethel-auth': 1}
    req = urllib.request.Request(url, urllib.parse.urlencode(query).encode())
    authh = "Basic " + base64.encodebytes(('%s:%s' % rest_creds).encode()).decode()[:-1]
    req.add_header("Authorization", authh)
    response = urllib.request.urlopen(req)
    back = ''.join(line.decode() for line in response.readlines())
    return 'OK'

print(alter_service_status(sys.argv[4], sys.argv[1], sys.argv[2]))
"#;

fn fabric(master: &MasterProc, node: &str, token: &str, status: &str) -> String {
    let host = master.http_url().trim_start_matches("http://").to_owned();
    let out = std::process::Command::new("python3")
        .args(["-c", FABRIC_TASK, &host, node, token, status])
        .output()
        .expect("python3 runs (tests/run installs it)");
    assert!(
        out.status.success(),
        "the Fabric task failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_seeds_fabric_task_takes_a_node_out_and_back_through_setstatus() {
    cluster_tests::crypto();
    let master = MasterProc::builder().spawn();
    let node1 = AgentProc::builder("node1", &master)
        .addr("127.0.0.95")
        .spawn();
    let _node2 = AgentProc::builder("node2", &master)
        .addr("127.0.0.96")
        .spawn();
    let admin = master.admin();
    let token = api_token(&admin, "operator", "fabric").await;
    let base = master.http_url();
    eventually("both nodes known", PATIENCE, || async {
        let (code, body) = send("GET", &format!("{base}/++rest++nodestatus"), &token, None).await;
        code == 200 && body.contains("node1") && body.contains("node2")
    })
    .await;

    assert_eq!(fabric(&master, "node1", &token, "offline"), "OK");
    eventually("node1's agent answers 503", PATIENCE, || async {
        node1.health().await.0 == 503
    })
    .await;
    let (code, body) = send("GET", &format!("{base}/++rest++nodestatus"), &token, None).await;
    assert_eq!(code, 200, "{body}");
    let status: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (&status["node1"]["status"], &status["node2"]["status"]),
        (&"offline".into(), &"online".into()),
        "{status:#}"
    );
    let events = ctl(&admin, &["events", "-o", "json"]).await.ok().stdout;
    let events: Vec<Value> = serde_json::from_str(&events).unwrap();
    assert!(
        events
            .iter()
            .any(|e| e["node"] == "node1" && e["by"] == "fabric" && e["kind"] == "drain"),
        "the audit names the token's holder: {events:#?}"
    );

    assert_eq!(fabric(&master, "node1", &token, "online"), "OK");
    eventually("node1's agent answers 200", PATIENCE, || async {
        node1.health().await.0 == 200
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_drain_over_rest_waits_until_out_and_a_deleted_token_opens_nothing() {
    cluster_tests::crypto();
    let master = MasterProc::builder().spawn();
    let web = AgentProc::builder("web-7", &master)
        .addr("127.0.0.97")
        .spawn();
    let admin = master.admin();
    let token = api_token(&admin, "operator", "deploy-bot").await;
    let reader = api_token(&admin, "read", "grafana").await;
    let base = master.http_url();
    let node = format!("{base}/api/v1/nodes/web-7");
    eventually("web-7 connected", PATIENCE, || async {
        let (code, body) = send("GET", &node, &reader, None).await;
        code == 200 && body.contains("\"connected\":true")
    })
    .await;

    // Open to all: the probe; behind a token: everything else.
    assert_eq!(
        cluster_tests::get(&format!("{base}/health?node=web-7"))
            .await
            .0,
        200
    );
    let (code, body) = cluster_tests::get(&format!("{base}/api/v1/nodes")).await;
    assert_eq!(code, 401, "{body}");
    let (code, body) = send(
        "PUT",
        &format!("{node}/drain"),
        &reader,
        Some(r#"{"reason": "x"}"#),
    )
    .await;
    assert_eq!(code, 403, "{body}");

    let (code, body) = send(
        "PUT",
        &format!("{node}/drain?wait=out&timeout=20s"),
        &token,
        Some(r#"{"reason": "kernel 6.18"}"#),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let drained: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(drained["state"], "drained", "{drained:#}");
    assert_eq!(drained["offline"]["by"], "deploy-bot");
    // Out means out: the agent answered 503 before the call returned.
    assert_eq!(web.health().await.0, 503);
    assert_eq!(
        cluster_tests::get(&format!("{base}/health?node=web-7"))
            .await
            .0,
        503
    );

    let (code, body) = send(
        "DELETE",
        &format!("{node}/drain?wait=in&timeout=20s"),
        &token,
        None,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(web.health().await.0, 200);

    let id = token.split('.').next().unwrap().to_owned();
    let listed = ctl(&admin, &["token", "list"]).await.ok().stdout;
    assert!(
        listed.lines().any(|l| l.starts_with(&id)
            && l.contains("api")
            && l.contains("operator (deploy-bot)")),
        "{listed}"
    );
    ctl(&admin, &["token", "delete", &id]).await.ok();
    let (code, body) = send("GET", &node, &token, None).await;
    assert_eq!(code, 401, "refused at once: {body}");
    assert!(body.contains("invalid API token"), "{body}");
    let (code, _) = send("GET", &node, &reader, None).await;
    assert_eq!(code, 200, "the other token still opens");
}

/// `GET path` over TLS, trusting only the cluster's CA and offering
/// `alpn`: the protocol agreed on, and the response's first line.
async fn https_get(
    addr: &str,
    ca_pem: &[u8],
    alpn: &[&[u8]],
    path: &str,
) -> Result<(String, String), String> {
    use rustls::pki_types::pem::PemObject;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem) {
        roots
            .add(c.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let mut config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let ip: std::net::IpAddr = addr.rsplit_once(':').unwrap().0.parse().unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(rustls::pki_types::ServerName::IpAddress(ip.into()), tcp)
        .await
        .map_err(|e| e.to_string())?;
    let agreed =
        String::from_utf8_lossy(tls.get_ref().1.alpn_protocol().unwrap_or_default()).into_owned();
    if agreed == "h2" {
        return Ok((agreed, String::new()));
    }
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let mut out = String::new();
    tls.read_to_string(&mut out)
        .await
        .map_err(|e| e.to_string())?;
    Ok((agreed, out.lines().next().unwrap_or_default().to_owned()))
}

#[tokio::test(flavor = "multi_thread")]
async fn with_http_tls_the_http_side_is_https_with_the_masters_certificate() {
    cluster_tests::crypto();
    let master = MasterProc::builder().config("http_tls = true\n").spawn();
    let admin = master.admin();
    let ca = std::fs::read(&admin.ca).unwrap();
    let addr = master.http_url().trim_start_matches("http://").to_owned();
    let (agreed, status) = https_get(&addr, &ca, &[b"http/1.1"], "/health")
        .await
        .unwrap();
    assert_eq!(
        (agreed.as_str(), status.as_str()),
        ("http/1.1", "HTTP/1.1 200 OK")
    );
    let (agreed, _) = https_get(&addr, &ca, &[b"h2", b"http/1.1"], "/health")
        .await
        .unwrap();
    assert_eq!(agreed, "h2", "HTTP/2 is offered first");
    // Plain HTTP is not answered.
    let (code, _) = cluster_tests::get(&format!("http://{addr}/health")).await;
    assert_ne!(code, 200);
    // A client that trusts another CA refuses the master.
    let (other, _) =
        cluster_master::pki::Ca::generate("another cluster", std::time::SystemTime::now()).unwrap();
    assert!(
        https_get(&addr, other.cert_pem.as_bytes(), &[b"http/1.1"], "/health")
            .await
            .is_err()
    );
}
