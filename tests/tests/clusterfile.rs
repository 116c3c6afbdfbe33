//! The whole cluster in one file, end to end: plan, apply (twice), export
//! and apply the export, and a bad file refused with every line.

use cluster_tests::{AgentProc, MasterProc, ctl, eventually};
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(20);

const FILE: &str = r#"[cluster]
name = "shop"
base_domain = "shop.internal"

[roles.web]
service = "web"
ports = { http = 8080 }
aliases = ["www"]

[upstreams.app]
role = "web"
port = "http"

[upstreams.legacy]
servers = [{ addr = "10.0.0.9:80", weight = 5 }]

[routes."example.com"]
init = "r1"
rules.r1 = { type = "path", pattern = "/old/", succ = "r3", fail = "r2" }
rules.r2 = { type = "backend", upstream = "app" }
rules.r3 = { type = "backend", upstream = "legacy" }

[nodegroups]
front = "G@roles:web"

[labels.web-0]
tier = "gold"
"#;

#[tokio::test(flavor = "multi_thread")]
async fn plan_apply_export_round_trip_and_a_bad_file_changes_nothing() {
    let master = MasterProc::builder().spawn();
    let admin = master.admin();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cluster.toml");
    std::fs::write(&file, FILE).unwrap();
    let f = file.to_str().unwrap();

    // Plan refuses what apply would refuse: labels for a node that does
    // not exist, placed at their line.
    let out = ctl(&admin, &["plan", f]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr
            .contains(&format!("{f}:26: labels.web-0: no node named \"web-0\"")),
        "{}",
        out.stderr
    );

    // Plan on an empty cluster: everything is an addition; nothing changes.
    let no_labels = FILE.split("[labels.web-0]").next().unwrap().to_owned();
    std::fs::write(&file, &no_labels).unwrap();
    let plan = ctl(&admin, &["plan", f]).await.ok().stdout;
    for want in [
        "+ cluster base_domain: (none) → shop.internal",
        "+ role web: service web (iterative), ports http=8080, aliases www",
        "+ upstream app: role web port 8080",
        "+ upstream legacy: servers 10.0.0.9:80 weight 5",
        "+ route example.com: 3 rules from r1",
        "+ nodegroup front: G@roles:web",
    ] {
        assert!(plan.contains(want), "missing {want:?} in:\n{plan}");
    }
    let before = ctl(&admin, &["upstream", "list", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(before["upstreams"], serde_json::json!({}));
    std::fs::write(&file, FILE).unwrap();

    // The labels name web-0, which a node with role web becomes: the role's
    // service names it.
    let web = AgentProc::builder("node-a", &master)
        .addr("127.0.0.2")
        .role("web")
        .spawn();
    eventually("node-a connected", PATIENCE, || async {
        let out = ctl(&admin, &["nodes", "-o", "json"]).await;
        out.code == 0 && out.json().as_array().is_some_and(|a| a.len() == 1)
    })
    .await;
    // Named before the file said anything: by its id.
    let out = ctl(&admin, &["apply", f]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr
            .contains(&format!("{f}:26: labels.web-0: no node named \"web-0\"")),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("nothing was applied"), "{}", out.stderr);
    let still = ctl(&admin, &["upstream", "list", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(still["upstreams"], serde_json::json!({}));

    // Without the labels it applies; a new web node is then named web-0.
    std::fs::write(&file, &no_labels).unwrap();
    let out = ctl(&admin, &["apply", f]).await.ok().stdout;
    assert!(out.contains("7 added, 0 changed, 0 removed"), "{out}");
    let again = ctl(&admin, &["apply", f]).await.ok().stdout;
    assert_eq!(again, "no changes: the cluster matches the file\n");
    let web0 = AgentProc::builder("node-b", &master)
        .addr("127.0.0.3")
        .role("web")
        .spawn();
    eventually(
        "node-b named web-0 from its role's service",
        PATIENCE,
        || async {
            let out = ctl(&admin, &["nodes", "web-0", "-o", "json"]).await;
            out.code == 0 && out.json()[0]["id"] == "node-b"
        },
    )
    .await;
    // Hosts files follow the domain and the role's alias.
    eventually(
        "hosts lines with the domain and the alias",
        PATIENCE,
        || async {
            let hosts = std::fs::read_to_string(web0.hosts_file()).unwrap_or_default();
            hosts.contains("web-0.shop.internal web-0 www")
                && hosts.contains("node-a.shop.internal node-a www")
        },
    )
    .await;
    std::fs::write(&file, FILE).unwrap();
    let out = ctl(&admin, &["apply", f]).await.ok().stdout;
    assert!(out.contains("+ labels of web-0: tier=gold"), "{out}");
    let upstreams = ctl(&admin, &["upstream", "list", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(
        upstreams["resolved"]["app"].as_array().unwrap().len(),
        2,
        "{upstreams}"
    );

    // Export → apply: nothing to do; and the export reads as the same file.
    let exported = dir.path().join("exported.toml");
    ctl(&admin, &["export", "-f", exported.to_str().unwrap()])
        .await
        .ok();
    let out = ctl(&admin, &["plan", exported.to_str().unwrap()])
        .await
        .ok()
        .stdout;
    assert_eq!(
        out,
        "no changes: the cluster matches the file\n",
        "{}",
        std::fs::read_to_string(&exported).unwrap()
    );
    let out = ctl(&admin, &["apply", exported.to_str().unwrap()])
        .await
        .ok()
        .stdout;
    assert_eq!(out, "no changes: the cluster matches the file\n");

    // A removal shows in the plan and applies.
    let fewer = FILE
        .replace(
            "[upstreams.legacy]\nservers = [{ addr = \"10.0.0.9:80\", weight = 5 }]\n",
            "",
        )
        .replace("succ = \"r3\"", "succ = \"r2\"")
        .replace(
            "rules.r3 = { type = \"backend\", upstream = \"legacy\" }\n",
            "",
        );
    std::fs::write(&file, &fewer).unwrap();
    let plan = ctl(&admin, &["plan", f]).await.ok().stdout;
    assert!(plan.contains("- upstream legacy"), "{plan}");
    assert!(
        plan.contains("~ route example.com: 3 rules from r1 → 2 rules from r1"),
        "{plan}"
    );
    ctl(&admin, &["apply", f]).await.ok();

    // A bad file: every problem with its line, nothing applied.
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[roles.web]\n\n[upstreams.app]\nrole = \"wbe\"\nport = 80\n\n[upstreams.x]\nservers = [{ addr = \"10.0.0.1\" }]\n\n[routes.\"a.com\"]\ninit = \"r1\"\nrules.r1 = { type = \"path\", pattern = \"/\", succ = \"r1\" }\n",
    )
    .unwrap();
    let out = ctl(&admin, &["apply", bad.to_str().unwrap()]).await;
    assert_eq!(out.code, 2, "{out:?}");
    let b = bad.to_str().unwrap();
    for want in [
        format!("{b}:3: unknown role \"wbe\""),
        format!("{b}:7: upstream \"x\", server 1"),
        format!("{b}:12: domain \"a.com\", rule \"r1\": cycle: r1 → r1"),
        "nothing was applied".to_owned(),
    ] {
        assert!(
            out.stderr.contains(&want),
            "missing {want:?} in:\n{}",
            out.stderr
        );
    }
    let after = ctl(&admin, &["export", "-o", "json"]).await.ok().json();
    assert!(after["upstreams"].get("x").is_none(), "{after}");
    assert!(after["upstreams"].get("app").is_some(), "{after}");
    drop(web);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_export_of_a_cluster_built_without_a_file_applies_back_to_no_change() {
    let master = MasterProc::builder().spawn();
    let admin = master.admin();
    // Built the everyday way: no cluster file, so no [roles.web] anywhere.
    ctl(
        &admin,
        &["upstream", "set", "app", "--role", "web", "--port", "8080"],
    )
    .await
    .ok();
    let dir = tempfile::tempdir().unwrap();
    let exported = dir.path().join("exported.toml");
    let e = exported.to_str().unwrap();
    ctl(&admin, &["export", "-f", e]).await.ok();
    let text = std::fs::read_to_string(&exported).unwrap();
    assert!(text.contains("[roles.web]"), "{text}");
    for command in ["plan", "apply"] {
        let out = ctl(&admin, &[command, e]).await.ok().stdout;
        assert_eq!(
            out, "no changes: the cluster matches the file\n",
            "{command}:\n{text}"
        );
    }
}

/// A file of 10,000 upstreams and as many routes plans as readily as a
/// small one (placing each table was a scan from the file's start: 4.2 s
/// for 16,000 upstreams); one over the masters' message limit is refused
/// before it is read, the limit named, nothing sent.
#[tokio::test(flavor = "multi_thread")]
async fn a_big_file_plans_and_one_over_the_message_limit_is_refused_up_front() {
    let master = MasterProc::builder().spawn();
    let admin = master.admin();
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.toml");
    let mut text = String::from("[cluster]\nname = \"big\"\n\n");
    for i in 0..10_000 {
        let (a, b) = (i / 250, i % 250 + 1);
        text.push_str(&format!(
            "[upstreams.u{i}]\nservers = [{{ addr = \"10.{a}.{b}.1:80\" }}]\n\n[routes.\"d{i}.example\"]\ninit = \"b\"\nrules.b = {{ type = \"backend\", upstream = \"u{i}\" }}\n\n"
        ));
    }
    std::fs::write(&big, &text).unwrap();
    let out = ctl(&admin, &["plan", big.to_str().unwrap()]).await.ok();
    assert!(
        out.stdout
            .contains("20001 to add, 0 to change, 0 to remove"),
        "{}",
        out.stdout.lines().last().unwrap_or_default()
    );

    let huge = dir.path().join("huge.toml");
    text.push_str(&"# padding\n".repeat(500_000));
    std::fs::write(&huge, &text).unwrap();
    let refused = ctl(&admin, &["apply", huge.to_str().unwrap()]).await;
    assert_eq!(refused.code, 2, "{refused:?}");
    assert!(
        refused
            .stderr
            .contains("a cluster file may be at most 4 MiB (the masters' message limit)"),
        "{}",
        refused.stderr
    );
    let after = ctl(&admin, &["upstream", "list", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(after["upstreams"], serde_json::json!({}), "nothing applied");
}
