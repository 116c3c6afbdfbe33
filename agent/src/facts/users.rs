//! The agent process itself: `/proc/self/status` (pid, real uid and gid),
//! `/etc/passwd` and `/etc/group` (their names), and its `PATH` and
//! `SHELL` — Salt's `pid`, `uid`, `username`, `gid`, `groupname`, `path`,
//! `systempath` and `shell`.
//!
//! Names come from the two files only, not from NSS (LDAP, SSSD): a user
//! they do not list has no `username` grain.

use super::root::Root;

/// Who and where the agent runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Process {
    pub pid: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub username: Option<String>,
    pub groupname: Option<String>,
    /// `PATH`, trimmed; `None` when unset or empty.
    pub path: Option<String>,
    /// `SHELL`; Salt's `/bin/sh` when unset.
    pub shell: String,
}

pub fn collect(root: &Root) -> Process {
    let status = root.read("/proc/self/status").ok();
    let status = status.as_deref().map(parse_status).unwrap_or_default();
    let username = status
        .uid
        .and_then(|uid| root.read("/etc/passwd").ok().and_then(|t| name_of(&t, uid)));
    let groupname = status
        .gid
        .and_then(|gid| root.read("/etc/group").ok().and_then(|t| name_of(&t, gid)));
    Process {
        pid: status.pid,
        uid: status.uid,
        gid: status.gid,
        username,
        groupname,
        path: root
            .env("PATH")
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty()),
        shell: root
            .env("SHELL")
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "/bin/sh".into()),
    }
}

/// The ids in `/proc/self/status`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Status {
    pub pid: Option<u32>,
    /// The real ids: the first of `Uid:`'s and `Gid:`'s four.
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

pub fn parse_status(text: &str) -> Status {
    let first = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
    };
    Status {
        pid: first("Pid:"),
        uid: first("Uid:"),
        gid: first("Gid:"),
    }
}

/// The name of the entry whose third field is `id`, in a file of
/// `/etc/passwd`'s or `/etc/group`'s form.
pub fn name_of(text: &str, id: u32) -> Option<String> {
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let _password = f.next()?;
        let this: u32 = f.next()?.trim().parse().ok()?;
        (this == id && !name.is_empty() && !name.starts_with('#')).then(|| name.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::root::Tree;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
        +::::::\nbroken line\ncluster:x:998:997::/var/lib/cluster:/usr/sbin/nologin\n";
    const GROUP: &str = "root:x:0:\nadm:x:4:syslog\ncluster:x:997:\n";

    #[test]
    fn ids_and_names() {
        let s = parse_status(
            "Name:\tcluster-agent\nPid:\t4242\nUid:\t998\t998\t998\t998\nGid:\t997\t0\t997\t997\n",
        );
        assert_eq!(
            s,
            Status {
                pid: Some(4242),
                uid: Some(998),
                gid: Some(997)
            }
        );
        assert_eq!(name_of(PASSWD, 998).as_deref(), Some("cluster"));
        assert_eq!(name_of(PASSWD, 0).as_deref(), Some("root"));
        assert_eq!(name_of(PASSWD, 5000), None);
        assert_eq!(name_of(GROUP, 997).as_deref(), Some("cluster"));
        assert_eq!(parse_status(""), Status::default());
    }

    #[test]
    fn the_process_from_a_tree_and_its_environment() {
        let t = Tree::new();
        t.file(
            "/proc/self/status",
            "Pid:\t7\nUid:\t998\t998\t998\t998\nGid:\t997\t997\t997\t997\n",
        )
        .file("/etc/passwd", PASSWD)
        .file("/etc/group", GROUP);
        let p = collect(&t.root().with_env("PATH", " /usr/bin:/bin \n"));
        assert_eq!(p.pid, Some(7));
        assert_eq!(p.username.as_deref(), Some("cluster"));
        assert_eq!(p.groupname.as_deref(), Some("cluster"));
        assert_eq!(p.path.as_deref(), Some("/usr/bin:/bin"));
        assert_eq!(p.shell, "/bin/sh");
        let p = collect(&Tree::new().root().with_env("SHELL", "/bin/zsh"));
        assert_eq!((p.uid, p.username, p.path), (None, None, None));
        assert_eq!(p.shell, "/bin/zsh");
    }
}
