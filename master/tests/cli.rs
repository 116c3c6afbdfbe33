//! `cluster-master` as a process: configuration mistakes are clear errors
//! with a non-zero exit, before anything is bound or written.

use std::process::Command;

fn master(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cluster-master"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run cluster-master");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_garbage_config_file_names_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.toml");
    std::fs::write(&path, "listen = \"127.0.0.1:0\"\n[[[ not toml\n").unwrap();
    let (code, err) = master(&["--config", path.to_str().unwrap()]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains(&format!("config file {}", path.display())),
        "{err}"
    );
    assert!(err.contains("line 2"), "{err}");
}

#[test]
fn invalid_values_are_all_reported_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = master(&[
        "--listen",
        "nowhere",
        "--down-after",
        "soon",
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("listen = \"nowhere\": not an address:port"),
        "{err}"
    );
    assert!(
        err.contains("down_after = \"soon\": not a duration"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing written"
    );
}

#[test]
fn a_missing_config_file_is_an_error() {
    let (code, err) = master(&["--config", "/nonexistent/master.toml"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("cannot read config file /nonexistent/master.toml"),
        "{err}"
    );
}
