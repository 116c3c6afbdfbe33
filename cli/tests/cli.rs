//! `clusterctl` as a process: usage mistakes and a broken config file are
//! clear errors with exit code 2.

use std::process::Command;

fn clusterctl(config_home: &std::path::Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_clusterctl"))
        .args(args)
        .env("XDG_CONFIG_HOME", config_home)
        .env_remove("CLUSTERCTL_MASTER")
        .env_remove("CLUSTERCTL_CONTEXT")
        .output()
        .expect("run clusterctl");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_garbage_config_file_is_named_with_its_line() {
    let home = tempfile::tempdir().unwrap();
    let path = home.path().join("clusterctl/config.toml");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, "current_context = \"dev\"\n[contexts.dev\n").unwrap();
    let (code, _, err) = clusterctl(home.path(), &["nodes"]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains(&path.display().to_string()) && err.contains("line 2"),
        "{err}"
    );
}

#[test]
fn an_unknown_context_is_refused() {
    let home = tempfile::tempdir().unwrap();
    let (code, _, err) = clusterctl(home.path(), &["--context", "prod", "nodes"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("no context \"prod\""), "{err}");
}

#[test]
fn usage_errors_exit_2_and_help_exits_0() {
    let home = tempfile::tempdir().unwrap();
    let (code, _, err) = clusterctl(home.path(), &["drain"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("NAMES"), "{err}");
    let (code, out, _) = clusterctl(home.path(), &["--help"]);
    assert_eq!(code, Some(0));
    for cmd in ["nodes", "grains", "drain", "undrain", "events", "dev"] {
        assert!(out.contains(cmd), "--help lists {cmd}:\n{out}");
    }
}
