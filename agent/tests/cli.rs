//! `cluster-agent` as a process: configuration mistakes are clear errors
//! with a non-zero exit.

use std::process::Command;

fn agent(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cluster-agent"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run cluster-agent");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_garbage_config_file_names_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    std::fs::write(&path, "id = \"web-1\"\nroles = web\n").unwrap();
    let (code, err) = agent(&["--config", path.to_str().unwrap()]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains(&format!("config file {}", path.display())),
        "{err}"
    );
    assert!(err.contains("line 2"), "{err}");
}

#[test]
fn unknown_keys_and_bad_values_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    std::fs::write(&path, "id = \"web-1\"\nrole = [\"web\"]\n").unwrap();
    let (code, err) = agent(&["--config", path.to_str().unwrap()]);
    assert_eq!(code, Some(1));
    assert!(err.contains("unknown field `role`"), "{err}");

    std::fs::write(&path, "id = \"web 1\"\nreport_interval = \"often\"\n").unwrap();
    let (code, err) = agent(&["--config", path.to_str().unwrap()]);
    assert_eq!(code, Some(1));
    assert!(err.contains("id \"web 1\" contains ' '"), "{err}");
    assert!(
        err.contains("report_interval = \"often\": not a duration"),
        "{err}"
    );
}

#[test]
fn a_busy_health_port_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = agent(&[
        "--id",
        "web-1",
        "--health-listen",
        &addr,
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains(&format!("cannot listen for health checks on {addr}")),
        "{err}"
    );
}
