//! Python programs from PyPI (ELB's client), in a virtual environment
//! made once per directory.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A virtual environment in `dir` with `requirement` installed (made, or
/// remade, unless `import` already imports there): its `python`.
pub fn venv(dir: &Path, requirement: &str, import: &str) -> PathBuf {
    let python = dir.join("bin/python");
    let has = |python: &Path| {
        Command::new(python)
            .args(["-c", &format!("import {import}")])
            .status()
            .is_ok_and(|s| s.success())
    };
    if has(&python) {
        return python;
    }
    let made = Command::new("python3")
        .args(["-m", "venv", "--clear"])
        .arg(dir)
        .status()
        .expect("python3 runs (tests/run installs python3-venv)");
    assert!(made.success(), "python3 -m venv {}", dir.display());
    let pip = Command::new("timeout")
        .arg("300")
        .arg(dir.join("bin/pip"))
        .args(["install", "--disable-pip-version-check", "-q", requirement])
        .output()
        .expect("pip runs");
    assert!(
        pip.status.success(),
        "pip install {requirement}: {}",
        String::from_utf8_lossy(&pip.stderr)
    );
    assert!(has(&python), "{requirement} imports as {import}");
    python
}

/// The Salt release the grains are compared and timed against (the one
/// bench/salt/salt.sh measured in bench/RESULTS.md).
pub const SALT: &str = "salt==3008.3";

/// `salt-call --local grains.items --out json` from a venv in `venv`, with
/// a config directory of its own (kept alive by the returned directory), so
/// it writes nothing under /etc or /var.
pub fn salt_grains_command(venv: &Path) -> (Command, tempfile::TempDir) {
    let python = self::venv(venv, SALT, "salt.version");
    let conf = tempfile::tempdir().expect("a config directory");
    std::fs::write(
        conf.path().join("minion"),
        format!(
            "file_client: local\nroot_dir: {}\nlog_level_logfile: quiet\n",
            conf.path().join("root").display()
        ),
    )
    .expect("write the minion config");
    let mut cmd = Command::new(python.with_file_name("salt-call"));
    cmd.args(["--local", "--config-dir"])
        .arg(conf.path())
        .args(["grains.items", "--out", "json"]);
    (cmd, conf)
}
