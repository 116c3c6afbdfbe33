//! ELB's own Python client (`elb.py` 0.0.6 from PyPI, in a virtual
//! environment the test makes) drives two masters on a real three-member
//! etcd cluster through ELB's admin API, unchanged: its routes reach a
//! real agent's proxy, which sends requests where ELB would; its bad input
//! is refused with the place named and changes nothing. Addresses
//! 127.0.0.131–134.

use cluster_tests::lb::{App, free_port, get_as, listening};
use cluster_tests::{EtcdCluster, Masters, crypto, eventually};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(20);
const ELB_PY: &str = "elb.py==0.0.6";

/// A virtual environment with `elb.py`, made once per target directory.
fn venv() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("elb-venv");
    cluster_tests::python::venv(&dir, ELB_PY, "elb, requests")
}

/// Runs one phase of `elb/client.py`: what it printed.
fn client(python: &Path, phase: &str, bases: &[String], addrs: [&str; 3]) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/elb/client.py");
    let out = Command::new("timeout")
        .arg("60")
        .arg(python)
        .arg(script)
        .arg(phase)
        .arg(bases.join(","))
        .args(addrs)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "client.py {phase}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[tokio::test(flavor = "multi_thread")]
async fn elbs_python_client_drives_the_cluster_unchanged() {
    crypto();
    let python = tokio::task::spawn_blocking(venv).await.unwrap();
    let etcd = EtcdCluster::start(3).await;
    let masters = Masters::spawn(2, &etcd);
    let admin = masters.admin();
    let up1 = App::start("up1", "127.0.0.132").await;
    let up2 = App::start("up2", "127.0.0.133").await;
    let direct = App::start("direct", "127.0.0.134").await;
    let proxy = format!("127.0.0.131:{}", free_port("127.0.0.131"));
    let _lb = masters
        .agent("lb-1")
        .addr("127.0.0.131")
        .config(&format!("[proxy]\nlisten = [\"{proxy}\"]\n"))
        .spawn();
    listening(&proxy).await;
    let token = cluster_tests::api_token(&admin, "admin", "ops").await;
    // elb.py's base URL carries the credentials; one per master.
    let bases: Vec<String> = (0..2)
        .map(|i| {
            let url = masters[i].http_url();
            url.replacen("http://", &format!("http://ops:{token}@"), 1)
        })
        .collect();
    eventually("both masters know the token", PATIENCE, || async {
        for i in 0..2 {
            let url = format!("{}/__erulb__/domain", masters[i].http_url());
            if cluster_tests::http::send("GET", &url, &token, None).await.0 != 200 {
                return false;
            }
        }
        true
    })
    .await;
    let addrs = [
        up1.addr.to_string(),
        up2.addr.to_string(),
        direct.addr.to_string(),
    ];
    let addrs = [addrs[0].as_str(), addrs[1].as_str(), addrs[2].as_str()];

    // set_upstream, set_domain_rules, dump_to_etcd over ELBSet; both
    // masters answer the same.
    let set = client(&python, "set", &bases, addrs);
    assert_eq!(set["dump"], serde_json::json!({"msg": "OK"}));
    assert_eq!(set["domains"][0], set["domains"][1], "{set}");
    assert_eq!(set["upstreams"][0], set["upstreams"][1], "{set}");
    let domains = &set["domains"][0];
    assert_eq!(
        domains["example.com"]["rules"]["r4"]["args"]["regex"], true,
        "{domains}"
    );
    assert_eq!(
        set["upstreams"][0]["up1"][addrs[0]],
        "weight=10 max_fails=2 fail_timeout=10s"
    );
    let url = format!("http://{proxy}");
    eventually("the proxy routes as ELB would", PATIENCE, || async {
        get_as(&format!("{url}/blog/x"), "example.com", "HTTPie/0.9.9")
            .await
            .1
            == "up1 /blog/x"
            && get_as(&format!("{url}/blog/x"), "example.com", "curl/8")
                .await
                .1
                == "up2 /blog/x"
            && get_as(&format!("{url}/"), "example.com", "HTTPie/0.9.9")
                .await
                .1
                == "up2 /"
            && get_as(&format!("{url}/a"), "direct.example.com", "curl/8")
                .await
                .1
                == "direct /a"
    })
    .await;
    let events = cluster_tests::access::events(&admin).await;
    assert!(
        events
            .iter()
            .any(|e| e["by"] == "ops" && e["detail"].as_str().unwrap_or("").contains("example.com")),
        "audited as the token's holder"
    );

    // Bad input: refused with its place named; nothing changed.
    let bad = client(&python, "bad", &bases, addrs);
    assert_eq!(bad["client"], "refused", "elb.py itself checks succ/fail");
    for (key, place) in [
        ("dangling", r#"rule \"r1\", field \"succ\": no rule \"r9\""#),
        ("regex", r#"rule \"r1\", field \"pattern\": invalid regex"#),
        (
            "upstream",
            r#"rule \"r1\", field \"servername\": unknown upstream \"up3\""#,
        ),
        ("param", r#"upstream \"up1\", server \"127.0.0.132"#),
        ("in_use", r#"domain \"example.com\" rule \"r2\" (up1)"#),
    ] {
        let body = bad[key]
            .as_str()
            .unwrap_or_else(|| panic!("{key} was accepted"));
        assert!(body.contains(place), "{key}: {body}");
    }
    assert!(bad["param"].as_str().unwrap().contains("weight"), "{bad}");
    assert_eq!(bad["domains"], set["domains"], "no rule changed");
    assert_eq!(bad["upstreams"], set["upstreams"], "no upstream changed");
    assert_eq!(
        get_as(&format!("{url}/blog/x"), "example.com", "HTTPie/0.9.9")
            .await
            .1,
        "up1 /blog/x"
    );

    // delete_domain_rules, delete_upstream: gone, and the proxy knows.
    let gone = client(&python, "delete", &bases, addrs);
    assert_eq!(gone["domains"][0], serde_json::json!({}), "{gone}");
    assert_eq!(gone["upstreams"][0], serde_json::json!({}), "{gone}");
    eventually(
        "the proxy no longer routes example.com",
        PATIENCE,
        || async {
            get_as(&format!("{url}/"), "example.com", "HTTPie/0.9.9")
                .await
                .0
                == 404
        },
    )
    .await;
}
