//! What the master and an agent keep on disk is theirs alone, whatever the
//! umask they were started under: the data and `pki/` directories 0700,
//! private keys 0600. (One test in its own binary: it sets the umask of
//! the whole test process, which the processes it starts inherit.)

use cluster_tests::{AgentProc, MasterProc, connected, crypto};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
}

#[tokio::test(flavor = "multi_thread")]
async fn data_and_pki_directories_are_0700_and_keys_0600_even_under_umask_000() {
    crypto();
    unsafe {
        libc::umask(0o000);
    }
    let master = MasterProc::builder().spawn();
    let _agent = AgentProc::builder("modes-1", &master)
        .addr("127.0.0.80")
        .spawn();
    connected(&master.admin(), 1).await;
    let agent_dir = _agent.data_dir();
    for dir in [
        master.data_dir().to_owned(),
        master.data_dir().join("pki"),
        agent_dir.clone(),
        agent_dir.join("pki"),
    ] {
        assert_eq!(mode(&dir), 0o700, "{}", dir.display());
    }
    for key in [
        master.data_dir().join("pki/ca.key"),
        agent_dir.join("pki/node.key"),
    ] {
        assert_eq!(mode(&key), 0o600, "{}", key.display());
    }
}
