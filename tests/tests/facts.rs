//! Facts end to end: a real agent with a facts directory (Facter's
//! external facts: a data file, a `key=value` file, a script that hangs, a
//! malformed file), what reaches the master (`clusterctl facts`, `F@`
//! targets, `clusterctl nodes`, events), and SIGHUP collecting again.
//! Everything on 127.0.0.187–199.

use cluster_tests::{AgentProc, MasterProc, connected, ctl, eventually};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(30);

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

fn script(dir: &Path, name: &str, body: &str) {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

async fn fact_events(admin: &cluster_tests::Admin) -> Vec<String> {
    cluster_tests::access::events(admin)
        .await
        .iter()
        .filter(|e| e["kind"] == "facts")
        .map(|e| e["detail"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn external_facts_reach_the_master_and_sighup_sends_what_changed() {
    let ip = "127.0.0.190";
    let master = MasterProc::builder()
        .listen(&format!("{ip}:{}", cluster_tests::lb::free_port(ip)))
        .spawn();
    let admin = master.admin();
    let dir = tempfile::tempdir().unwrap();
    let facts_d = dir.path();
    write(
        facts_d,
        "rack.json",
        r#"{"rack": "a1", "power": {"feeds": 2}}"#,
    );
    write(facts_d, "site.txt", "datacenter=ams1\n");
    script(facts_d, "owner.sh", "echo team=storage");
    script(facts_d, "hang.sh", "sleep 60");
    write(facts_d, "broken.json", "{nope");
    let agent = AgentProc::builder("web-1", &master)
        .addr("127.0.0.191")
        .role("web")
        .config(&format!(
            "facts_dir = {:?}\nfacts_timeout = \"500ms\"\n",
            facts_d.display().to_string()
        ))
        .spawn();
    connected(&admin, 1).await;

    let facts = || async {
        ctl(&admin, &["facts", "web-1", "-o", "json"])
            .await
            .ok()
            .json()
    };
    eventually("the external facts at the master", PATIENCE, || async {
        facts().await["web-1"]["rack"] == "a1"
    })
    .await;
    let all = facts().await;
    let f = &all["web-1"];
    assert_eq!(f["power"]["feeds"], 2, "JSON keeps its types: {f}");
    assert_eq!(f["datacenter"], "ams1", "{f}");
    assert_eq!(f["team"], "storage", "a script's key=value lines: {f}");
    assert!(f.get("hang").is_none(), "{f}");
    // One fact by its dotted path, printed alone.
    let out = ctl(&admin, &["facts", "web-1", "power.feeds"])
        .await
        .ok()
        .stdout;
    assert_eq!(out.trim(), "2");

    // The failing sources: by name, in `nodes` and as one event; the
    // others still count.
    let node = ctl(&admin, &["nodes", "web-1", "-o", "json"])
        .await
        .ok()
        .json();
    let problems: Vec<&str> = node[0]["fact_problems"]
        .as_array()
        .unwrap_or_else(|| panic!("fact_problems in {node}"))
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].starts_with("broken.json: "), "{problems:?}");
    assert_eq!(problems[1], "hang.sh: timed out after 500ms");
    let table = ctl(&admin, &["nodes"]).await.ok().stdout;
    assert!(
        table.contains("external facts failed: broken.json"),
        "{table}"
    );
    let events = fact_events(&admin).await;
    assert!(
        events
            .iter()
            .any(|e| e.starts_with("external facts failed: broken.json")
                && e.contains("hang.sh: timed out after 500ms")),
        "{events:?}"
    );

    // Targeting reaches them.
    let matched = ctl(
        &admin,
        &["nodes", "-C", "F@rack:a1 and F@power.feeds:2", "-o", "json"],
    )
    .await
    .ok()
    .json();
    assert_eq!(matched[0]["name"], "web-1", "{matched}");

    // A changed file and a SIGHUP: the change reaches the master, as an
    // event naming it; the sources mended are read again.
    write(
        facts_d,
        "rack.json",
        r#"{"rack": "b2", "power": {"feeds": 2}}"#,
    );
    write(facts_d, "broken.json", r#"{"mended": true}"#);
    std::fs::remove_file(facts_d.join("hang.sh")).unwrap();
    agent.hangup();
    eventually("the new rack at the master", PATIENCE, || async {
        facts().await["web-1"]["rack"] == "b2"
    })
    .await;
    let events = fact_events(&admin).await;
    assert!(
        events
            .iter()
            .any(|e| e.starts_with("facts changed: ") && e.contains("facts.rack")),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e == "external facts read again: broken.json, hang.sh"),
        "{events:?}"
    );
    let node = ctl(&admin, &["nodes", "web-1", "-o", "json"])
        .await
        .ok()
        .json();
    assert!(node[0].get("fact_problems").is_none(), "{node}");

    // A SIGHUP with nothing changed: said in the agent's log, nothing
    // written, no event; the agent runs on, connected.
    let before = fact_events(&admin).await.len();
    agent.hangup();
    eventually("the agent saying it collected again", PATIENCE, || async {
        agent.log().contains("facts collected again, unchanged")
    })
    .await;
    assert_eq!(fact_events(&admin).await.len(), before);
    assert_eq!(
        ctl(&admin, &["nodes", "web-1", "-o", "json"])
            .await
            .ok()
            .json()[0]["connected"],
        true
    );
}

/// `clusterctl grains refresh`: a built-in job each agent does itself (on
/// a node with remote execution off too, and for an operator, who may not
/// run commands); each node says what changed, and when the job is done
/// the master has the new facts — read at once, not waited for.
#[tokio::test(flavor = "multi_thread")]
async fn grains_refresh_collects_again_and_the_master_has_it_when_done() {
    let ip = "127.0.0.192";
    let master = MasterProc::builder()
        .listen(&format!("{ip}:{}", cluster_tests::lb::free_port(ip)))
        .spawn();
    let admin = master.admin();
    let dir = tempfile::tempdir().unwrap();
    let facts_d = dir.path().join("facts.d");
    std::fs::create_dir(&facts_d).unwrap();
    let _web1 = AgentProc::builder("web-1", &master)
        .addr("127.0.0.193")
        .config(&format!(
            "remote_exec = false\nfacts_dir = {:?}\n",
            facts_d.display().to_string()
        ))
        .spawn();
    let _web2 = AgentProc::builder("web-2", &master)
        .addr("127.0.0.194")
        .spawn();
    connected(&admin, 2).await;
    let users = tempfile::tempdir().unwrap();
    let out = users.path().to_str().unwrap();
    for (name, role) in [("olga", "operator"), ("rita", "read")] {
        ctl(&admin, &["user", "add", name, "--role", role, "--out", out])
            .await
            .ok();
    }
    let as_user = |name: &str| {
        admin.with_identity(
            users.path().join(format!("{name}.crt")),
            users.path().join(format!("{name}.key")),
        )
    };
    let (olga, rita) = (as_user("olga"), as_user("rita"));

    write(&facts_d, "zone.txt", "zone=z1\n");
    let refreshed = ctl(&olga, &["grains", "refresh", "web-*"]).await.ok();
    let text = &refreshed.stdout;
    assert!(
        text.contains("[web-1] out: facts changed: facts.zone\n"),
        "{text}"
    );
    assert!(text.contains("[web-2] out: facts unchanged\n"), "{text}");
    // Done means recorded: no waiting here.
    let zone = ctl(&admin, &["facts", "web-1", "zone"]).await.ok().stdout;
    assert_eq!(zone.trim(), "z1");
    let events = fact_events(&admin).await;
    assert!(
        events.iter().any(|e| e == "facts changed: facts.zone"),
        "{events:?}"
    );

    // The same again changes nothing; the job is listed by what it is.
    let again = ctl(&admin, &["grains", "refresh", "web-1", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(again["builtin"], "refresh_facts", "{again}");
    assert_eq!(
        again["results"][0]["stdout"], "facts unchanged\n",
        "{again}"
    );
    let jobs = ctl(&admin, &["jobs"]).await.ok().stdout;
    assert!(jobs.contains("clusterctl grains refresh"), "{jobs}");

    // Still not a way to run commands: web-1 refuses them, olga may not.
    let run = ctl(&admin, &["run", "web-1", "--", "true"]).await;
    assert!(run.stdout.contains("remote_exec = false"), "{run:?}");
    let run = ctl(&olga, &["run", "web-2", "--", "true"]).await;
    assert!(
        run.stderr.contains("run commands needs an admin"),
        "{run:?}"
    );
    // A reader may not refresh.
    let denied = ctl(&rita, &["grains", "refresh", "web-1"]).await;
    assert!(
        denied
            .stderr
            .contains("refresh facts needs an operator or an admin"),
        "{denied:?}"
    );
}

/// Roles that come from the agent's configuration follow it at a refresh,
/// as Salt's grains file does: the `roles` grain changes, the node's roles
/// with it, and a role upstream takes the node in; a configuration that
/// no longer reads is reported and the last roles stand.
#[tokio::test(flavor = "multi_thread")]
async fn roles_read_again_at_a_refresh_move_the_node_into_role_upstreams() {
    let ip = "127.0.0.195";
    let master = MasterProc::builder()
        .listen(&format!("{ip}:{}", cluster_tests::lb::free_port(ip)))
        .spawn();
    let admin = master.admin();
    let web1 = AgentProc::builder("web-1", &master)
        .addr("127.0.0.196")
        .role("web")
        .spawn();
    connected(&admin, 1).await;
    ctl(
        &admin,
        &["upstream", "set", "api", "--role", "api", "--port", "8080"],
    )
    .await
    .ok();
    let servers = || async {
        let list = ctl(&admin, &["upstream", "list", "-o", "json"])
            .await
            .ok()
            .json();
        list["resolved"]["api"].clone()
    };
    assert_eq!(servers().await, serde_json::json!([]));

    let config = std::fs::read_to_string(web1.config_path()).unwrap();
    let with_api = format!("{config}\n[grains]\nroles = [\"api\"]\n");
    std::fs::write(web1.config_path(), &with_api).unwrap();
    let out = ctl(&admin, &["grains", "refresh", "web-1"])
        .await
        .ok()
        .stdout;
    assert!(out.contains("[web-1] out: facts changed: roles\n"), "{out}");
    let node = ctl(&admin, &["nodes", "web-1", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(
        node[0]["roles"],
        serde_json::json!(["web", "api"]),
        "{node}"
    );
    let servers_now = servers().await;
    assert!(
        servers_now.to_string().contains("127.0.0.196:8080"),
        "{servers_now}"
    );
    let matched = ctl(&admin, &["nodes", "-C", "R@api", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(matched[0]["name"], "web-1", "{matched}");
    let events = fact_events(&admin).await;
    assert!(
        events.iter().any(|e| e == "roles now web, api (were web)"),
        "{events:?}"
    );

    // A configuration broken meanwhile: said, and nothing moves.
    std::fs::write(web1.config_path(), format!("roles = nope\n{with_api}")).unwrap();
    let out = ctl(&admin, &["grains", "refresh", "web-1"])
        .await
        .ok()
        .stdout;
    assert!(
        out.contains("external facts failing: agent configuration: "),
        "{out}"
    );
    let node = ctl(&admin, &["nodes", "web-1", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(
        node[0]["roles"],
        serde_json::json!(["web", "api"]),
        "{node}"
    );
}

/// A running rollout matches its target again before each batch: a node
/// whose facts come to match joins it, a pending one that no longer
/// matches is skipped, and the nodes it did are left as they were.
#[tokio::test(flavor = "multi_thread")]
async fn a_running_rollout_follows_its_target_when_facts_change() {
    let ip = "127.0.0.197";
    let master = MasterProc::builder()
        .listen(&format!("{ip}:{}", cluster_tests::lb::free_port(ip)))
        .spawn();
    let admin = master.admin();
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let tiers = ["blue", "blue", "green"];
    let mut agents = Vec::new();
    for (i, (dir, tier)) in dirs.iter().zip(tiers).enumerate() {
        write(dir.path(), "tier.txt", &format!("tier={tier}\n"));
        agents.push(
            AgentProc::builder(&format!("app-{}", i + 1), &master)
                .addr(&format!("127.0.0.{}", 197 + i))
                .config(&format!(
                    "facts_dir = {:?}\n",
                    dir.path().display().to_string()
                ))
                .spawn(),
        );
    }
    connected(&admin, 3).await;
    let marks = tempfile::tempdir().unwrap();
    let m = marks.path().display();
    // Each node waits for the test's word, then says it was done.
    let cmd = format!("until [ -e {m}/go ]; do sleep 0.05; done; touch {m}/done-$CLUSTERCTL_NODE");
    let started = ctl(
        &admin,
        &[
            "rollout",
            "-F",
            "tier:blue",
            "--detach",
            "-o",
            "json",
            "--",
            "sh",
            "-c",
            &cmd,
        ],
    )
    .await
    .ok()
    .json();
    let id = started["id"].as_str().unwrap().to_owned();
    assert_eq!(started["order"], serde_json::json!(["app-1", "app-2"]));
    let status = || async {
        ctl(&admin, &["rollout", "status", &id, "-o", "json"])
            .await
            .ok()
            .json()
    };
    eventually("app-1 running the command", PATIENCE, || async {
        status().await["nodes"]["app-1"] == "running"
    })
    .await;

    // app-2 turns green, app-3 blue; done means the master has it.
    write(dirs[1].path(), "tier.txt", "tier=green\n");
    write(dirs[2].path(), "tier.txt", "tier=blue\n");
    ctl(&admin, &["grains", "refresh", "app-*"]).await.ok();
    std::fs::write(marks.path().join("go"), "").unwrap();
    eventually("the rollout finished", PATIENCE, || async {
        status().await["state"] != "running"
    })
    .await;
    let rec = status().await;
    assert_eq!(rec["state"], "succeeded", "{rec:#}");
    assert_eq!(
        rec["nodes"],
        serde_json::json!({"app-1": "done", "app-2": "skipped", "app-3": "done"}),
        "{rec:#}"
    );
    assert_eq!(rec["order"], serde_json::json!(["app-1", "app-2", "app-3"]));
    let log = rec["log"].to_string();
    assert!(
        log.contains("skipped: no longer matches the target"),
        "{log}"
    );
    assert!(log.contains("joins: now matches the target"), "{log}");
    assert!(log.contains("2 node(s) done, 1 skipped"), "{log}");
    assert!(marks.path().join("done-app-1").exists());
    assert!(marks.path().join("done-app-3").exists());
    assert!(!marks.path().join("done-app-2").exists());
}

/// A join token that names roles binds the node to them: the roles it
/// declares beyond them — at its join or later through its `roles` grain —
/// are refused with an event, so a token for `db` cannot put a node in
/// `web`'s upstream.
#[tokio::test(flavor = "multi_thread")]
async fn a_tokens_roles_bind_the_node_whatever_it_declares() {
    let ip = "127.0.0.187";
    let master = MasterProc::builder()
        .listen(&format!("{ip}:{}", cluster_tests::lb::free_port(ip)))
        .spawn();
    let admin = master.admin();
    let created = ctl(&admin, &["token", "create", "--roles", "db", "-o", "json"])
        .await
        .ok()
        .json();
    let token = created["token"].as_str().unwrap().to_owned();
    let (_, fingerprint) = master.join_token();
    let db1 = AgentProc::builder("db-1", &master)
        .addr("127.0.0.188")
        .role("web")
        .without_token()
        .config(&format!(
            "join_token = {token:?}\nca_fingerprint = {fingerprint:?}\n"
        ))
        .spawn();
    connected(&admin, 1).await;
    let roles = || async {
        ctl(&admin, &["nodes", "db-1", "-o", "json"])
            .await
            .ok()
            .json()[0]["roles"]
            .clone()
    };
    assert_eq!(roles().await, serde_json::json!(["db"]));
    let denied = || async {
        cluster_tests::access::events(&admin)
            .await
            .iter()
            .filter(|e| e["kind"] == "denied")
            .map(|e| e["detail"].as_str().unwrap_or_default().to_owned())
            .collect::<Vec<_>>()
    };
    let said = denied().await;
    assert!(
        said.iter()
            .any(|e| e == "roles web refused: the join token of db-1 allows db"),
        "{said:?}"
    );
    ctl(
        &admin,
        &["upstream", "set", "front", "--role", "web", "--port", "80"],
    )
    .await
    .ok();

    // Asking again through the roles grain changes nothing either.
    let config = std::fs::read_to_string(db1.config_path()).unwrap();
    std::fs::write(
        db1.config_path(),
        format!("{config}\n[grains]\nroles = [\"api\"]\n"),
    )
    .unwrap();
    ctl(&admin, &["grains", "refresh", "db-1"]).await.ok();
    assert_eq!(roles().await, serde_json::json!(["db"]));
    let said = denied().await;
    assert!(
        said.iter()
            .any(|e| e == "roles web, api refused: the join token of db-1 allows db"),
        "{said:?}"
    );
    let list = ctl(&admin, &["upstream", "list", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(list["resolved"]["front"], serde_json::json!([]), "{list}");
}
