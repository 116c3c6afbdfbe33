//! `/api/v1/nodes/{name}/usage` serialises the report as the agent sent it:
//! every figure, the later ones included, and those an older agent did
//! not send as absent (`null`, empty lists).

use super::{fixture, get};
use cluster_model::{DiskIo, InterfaceUsage, Role, Usage};
use serde_json::json;

#[tokio::test]
async fn a_nodes_usage_has_every_figure_it_reported() {
    let f = fixture(&[("web-1", "10.0.0.1"), ("web-2", "10.0.0.2")]).await;
    let token = f.token("reader", Role::Read).await;
    f.cluster.report_usage(
        &f._sessions[0],
        Usage {
            sampled_at_ms: 5,
            cpu_percent: 37.5,
            cpu_core_percent: vec![25.0, 50.0],
            mem_available_bytes: Some(600),
            swap_free_bytes: Some(7),
            interfaces: vec![InterfaceUsage {
                name: "eth0".into(),
                rx_bytes_per_sec: 1500,
                tx_errors_per_sec: 0.2,
                ..InterfaceUsage::default()
            }],
            disk_io: vec![DiskIo {
                device: "nvme0n1".into(),
                write_bytes_per_sec: 4096,
                writes_per_sec: 1.5,
                ..DiskIo::default()
            }],
            processes: Some(123),
            uptime_secs: Some(3600),
            ..Usage::default()
        },
    );
    // web-2's agent is an older one: none of the later figures.
    f.cluster.report_usage(
        &f._sessions[1],
        Usage {
            cpu_percent: 5.0,
            ..Usage::default()
        },
    );

    let (status, _, body) = f.send(get("/api/v1/nodes/web-1/usage", Some(&token))).await;
    assert_eq!(status, 200, "{body}");
    let u = &body["usage"];
    assert_eq!(u["cpu_percent"], 37.5, "{body}");
    assert_eq!(u["cpu_core_percent"], json!([25.0, 50.0]), "{body}");
    assert_eq!(u["mem_available_bytes"], 600, "{body}");
    assert_eq!(u["swap_free_bytes"], 7, "{body}");
    assert_eq!(
        u["interfaces"],
        json!([{"name": "eth0", "rx_bytes_per_sec": 1500, "tx_bytes_per_sec": 0,
                "rx_packets_per_sec": 0.0, "tx_packets_per_sec": 0.0,
                "rx_errors_per_sec": 0.0, "tx_errors_per_sec": 0.2}]),
        "{body}"
    );
    assert_eq!(
        u["disk_io"],
        json!([{"device": "nvme0n1", "read_bytes_per_sec": 0, "write_bytes_per_sec": 4096,
                "reads_per_sec": 0.0, "writes_per_sec": 1.5}]),
        "{body}"
    );
    assert_eq!(
        (&u["processes"], &u["uptime_secs"]),
        (&json!(123), &json!(3600))
    );

    let (status, _, body) = f.send(get("/api/v1/nodes/web-2/usage", Some(&token))).await;
    assert_eq!(status, 200, "{body}");
    let u = &body["usage"];
    assert_eq!(u["cpu_percent"], 5.0, "{body}");
    for absent in [
        "mem_available_bytes",
        "swap_free_bytes",
        "processes",
        "uptime_secs",
    ] {
        assert!(u[absent].is_null(), "{absent}: {body}");
    }
    for empty in ["cpu_core_percent", "interfaces", "disk_io"] {
        assert_eq!(u[empty], json!([]), "{empty}: {body}");
    }
}
