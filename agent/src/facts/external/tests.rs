//! A facts directory in a tempdir, with real scripts (`#!/bin/sh`, mode
//! 0755) and data files: each test asserts what every source it wrote
//! gave, facts or problems.

use super::*;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Instant;

const PATIENT: Duration = Duration::from_secs(10);

struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Dir {
        Dir(tempfile::tempdir().unwrap())
    }

    fn path(&self) -> &Path {
        self.0.path()
    }

    fn write(&self, name: &str, text: &[u8], mode: u32) -> &Dir {
        let path = self.path().join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        self
    }

    fn script(&self, name: &str, body: &str) -> &Dir {
        self.write(name, format!("#!/bin/sh\n{body}\n").as_bytes(), 0o755)
    }

    fn file(&self, name: &str, text: &str) -> &Dir {
        self.write(name, text.as_bytes(), 0o644)
    }

    async fn collect(&self, timeout: Duration) -> ExternalFacts {
        collect(self.path(), timeout).await
    }
}

/// The problems of `source`, in order.
fn problems<'a>(external: &'a ExternalFacts, source: &str) -> Vec<&'a str> {
    external
        .problems
        .iter()
        .filter(|p| p.source == source)
        .map(|p| p.problem.as_str())
        .collect()
}

fn no_problems(external: &ExternalFacts) {
    assert_eq!(external.problems, [], "{external:#?}");
}

#[tokio::test]
async fn a_json_script_gives_typed_facts() {
    let dir = Dir::new();
    dir.script(
        "rack",
        r#"echo '{"rack": 4, "ssd": true, "dc": {"name": "ams1"}, "disks": ["sda"]}'"#,
    );
    let got = dir.collect(PATIENT).await;
    no_problems(&got);
    assert_eq!(
        Value::Object(got.facts),
        json!({"rack": 4, "ssd": true, "dc": {"name": "ams1"}, "disks": ["sda"]})
    );
}

#[tokio::test]
async fn a_key_value_script_gives_strings_and_a_line_without_equals_is_its_problem() {
    let dir = Dir::new();
    dir.script("owner", "printf 'role = web\\n\\nowner=ops=team\\n'");
    dir.script("tier", "echo tier=gold; echo just words; echo rack=4");
    let got = dir.collect(PATIENT).await;
    assert_eq!(
        Value::Object(got.facts.clone()),
        json!({"role": "web", "owner": "ops=team", "tier": "gold", "rack": "4"})
    );
    assert_eq!(problems(&got, "owner"), Vec::<&str>::new());
    assert_eq!(problems(&got, "tier"), ["line 2 has no \"=\""]);
    assert_eq!(got.problems.len(), 1);
}

fn alive(pid: i32) -> bool {
    let exists = unsafe { libc::kill(pid, 0) } == 0;
    exists
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

/// Waits, with bounded patience, for `pid` to die of the SIGKILL sent to
/// its group (delivery is not instantaneous).
async fn gone(pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(pid) {
        assert!(Instant::now() < deadline, "process {pid} survived");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn pid_in(path: &Path) -> i32 {
    std::fs::read_to_string(path)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn a_hanging_script_times_out_its_processes_die_and_the_others_count() {
    let dir = Dir::new();
    let pids = tempfile::tempdir().unwrap();
    let (shell, sleeper) = (pids.path().join("sh"), pids.path().join("sleep"));
    dir.script(
        "hangs",
        &format!(
            "echo $$ > {}\nsleep 60 &\necho $! > {}\nwait",
            shell.display(),
            sleeper.display()
        ),
    );
    dir.file("site.txt", "dc=ams1\n");
    let started = Instant::now();
    let got = dir.collect(Duration::from_millis(300)).await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert_eq!(problems(&got, "hangs"), ["timed out after 300ms"]);
    assert_eq!(problems(&got, "site.txt"), Vec::<&str>::new());
    assert_eq!(got.facts["dc"], "ams1");
    gone(pid_in(&shell)).await;
    gone(pid_in(&sleeper)).await;
}

#[tokio::test]
async fn a_failing_script_says_its_status_and_the_first_line_of_its_stderr() {
    let dir = Dir::new();
    dir.script(
        "fails",
        "echo half=done\necho >&2\necho >&2 'disk on fire  '\necho >&2 more\nexit 3",
    );
    dir.script("quiet", "exit 1");
    dir.script("long", "printf 'x%.0s' $(seq 300) >&2; exit 2");
    dir.script("killed", "kill -9 $$");
    let got = dir.collect(PATIENT).await;
    assert_eq!(
        problems(&got, "fails"),
        ["exited with status 3: disk on fire"]
    );
    assert_eq!(problems(&got, "quiet"), ["exited with status 1"]);
    assert_eq!(
        problems(&got, "long"),
        [format!("exited with status 2: {}…", "x".repeat(200))]
    );
    assert_eq!(problems(&got, "killed"), ["killed by signal 9"]);
    // A failing source gives nothing, not what it printed before failing.
    assert_eq!(got.facts, Map::new());
}

#[tokio::test]
async fn a_script_printing_more_than_256_kib_fails_at_once() {
    let dir = Dir::new();
    dir.script("chatty", "yes a=1");
    dir.file("site.json", r#"{"dc": "ams1"}"#);
    let started = Instant::now();
    let got = dir.collect(PATIENT).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(problems(&got, "chatty"), ["printed more than 256 KiB"]);
    assert_eq!(Value::Object(got.facts), json!({"dc": "ams1"}));
}

#[tokio::test]
async fn data_files_by_extension_keep_their_types() {
    let dir = Dir::new();
    dir.file("a.json", r#"{"json": {"rack": 4}}"#)
        .file("b.yaml", "yaml:\n  ssd: true\n  disks: [sda, sdb]\n")
        .file("c.yml", "yml: 1.5\n")
        .file(
            "d.toml",
            "since = 2024-05-01T10:00:00Z\n[toml]\nports = [80, 443]\n",
        )
        .file("e.txt", "# no comments: this line is a problem\ntxt = 42\n");
    let got = dir.collect(PATIENT).await;
    for source in ["a.json", "b.yaml", "c.yml", "d.toml"] {
        assert_eq!(problems(&got, source), Vec::<&str>::new(), "{source}");
    }
    assert_eq!(problems(&got, "e.txt"), ["line 1 has no \"=\""]);
    assert_eq!(
        Value::Object(got.facts),
        json!({
            "json": {"rack": 4},
            "yaml": {"ssd": true, "disks": ["sda", "sdb"]},
            "yml": 1.5,
            "since": "2024-05-01T10:00:00Z",
            "toml": {"ports": [80, 443]},
            "txt": "42",
        })
    );
}

#[tokio::test]
async fn malformed_files_are_problems_and_hide_nothing() {
    let dir = Dir::new();
    dir.file("a.json", r#"{"a": }"#)
        .file("b.json", "[1, 2]")
        .file("c.yaml", "- a\n- b\n")
        .file("d.toml", "a = \n")
        .file("e.json", r#"{"": 1, "ok": 2}"#)
        .write("f.txt", b"bad=\xff\n", 0o644)
        .file("g.txt", "fine=yes\n");
    let got = dir.collect(PATIENT).await;
    for (source, want) in [
        (
            "a.json",
            "not a JSON object: expected value at line 1 column 7",
        ),
        ("b.json", "not a JSON object: a list"),
        ("c.yaml", "not a YAML mapping: a list"),
        (
            "d.toml",
            "not a TOML table: string values must be quoted, expected literal string at line 1 column 5",
        ),
        ("e.json", "a fact name is empty"),
        ("f.txt", "not UTF-8 text: a bad byte at offset 4"),
    ] {
        assert_eq!(problems(&got, source), [want], "{source}");
    }
    assert_eq!(problems(&got, "g.txt"), Vec::<&str>::new());
    assert_eq!(Value::Object(got.facts), json!({"ok": 2, "fine": "yes"}));
}

#[tokio::test]
async fn hidden_backup_unknown_and_non_executable_files_are_ignored() {
    let dir = Dir::new();
    dir.file(".hidden.json", r#"{"hidden": 1}"#)
        .file("site.json~", r#"{"backup": 1}"#)
        .script(".hidden-script", "echo hidden=1")
        .script("script~", "echo backup=1")
        .file("README", "read=me")
        .file("site.json.bak", r#"{"bak": 1}"#)
        .file("not-run.sh", "#!/bin/sh\necho not=run\n")
        .file("kept.txt", "kept=1\n");
    std::fs::create_dir(dir.path().join("sub.json")).unwrap();
    let got = dir.collect(PATIENT).await;
    no_problems(&got);
    assert_eq!(Value::Object(got.facts), json!({"kept": "1"}));
}

#[tokio::test]
async fn the_later_name_wins_a_fact_whole() {
    let dir = Dir::new();
    // Scripts run concurrently; the outcome is still by name.
    dir.script("30-script", "sleep 0.2; echo dc=fra3")
        .file(
            "10-base.json",
            r#"{"dc": "ams1", "tier": "bronze", "site": {"rack": 1, "row": 2}}"#,
        )
        .file("20-site.yaml", "site:\n  rack: 7\ntier: silver\n")
        .script("05-first", "echo dc=lon1; echo early=yes");
    let got = dir.collect(PATIENT).await;
    no_problems(&got);
    assert_eq!(
        Value::Object(got.facts),
        json!({"dc": "fra3", "tier": "silver", "site": {"rack": 7}, "early": "yes"})
    );
}

#[tokio::test]
async fn a_source_over_256_kib_fails_and_the_total_is_bounded() {
    let dir = Dir::new();
    dir.file("big.txt", &format!("big={}\n", "x".repeat(300_000)));
    // Each about 244 KiB of JSON: four fit in 1 MiB, the fifth would not.
    for name in ["a", "b", "c", "d", "e", "f"] {
        dir.file(
            &format!("{name}.json"),
            &format!(r#"{{"{name}": "{}"}}"#, "x".repeat(250_000)),
        );
    }
    dir.file("g.json", "[]");
    let got = dir.collect(PATIENT).await;
    assert_eq!(problems(&got, "big.txt"), ["larger than 256 KiB"]);
    for name in ["a", "b", "c", "d"] {
        assert_eq!(problems(&got, &format!("{name}.json")), Vec::<&str>::new());
        assert!(got.facts.contains_key(name), "{name}");
    }
    for name in ["e", "f"] {
        assert_eq!(
            problems(&got, &format!("{name}.json")),
            ["dropped: the external facts would pass 1 MiB of JSON"]
        );
        assert!(!got.facts.contains_key(name), "{name}");
    }
    // A failure past the bound is still told as itself.
    assert_eq!(problems(&got, "g.json"), ["not a JSON object: a list"]);
    assert!(serde_json::to_vec(&got.facts).unwrap().len() <= TOTAL_MAX);
}

#[test]
fn a_replaced_fact_counts_once_toward_the_bound() {
    let big = |name: &str| {
        let mut facts = Map::new();
        facts.insert(name.to_owned(), Value::String("x".repeat(600 * 1024)));
        (
            format!("{name}.json"),
            Ok(Parsed {
                facts,
                problems: Vec::new(),
            }),
        )
    };
    let mut second = big("a");
    second.0 = "b.json".into();
    let got = merge(vec![big("a"), second, big("c")]);
    assert_eq!(got.facts.keys().collect::<Vec<_>>(), ["a"]);
    assert_eq!(
        got.problems,
        [SourceProblem {
            source: "c.json".into(),
            problem: "dropped: the external facts would pass 1 MiB of JSON".into(),
        }]
    );
}

#[tokio::test]
async fn an_absent_or_unset_directory_has_no_facts_and_no_problem() {
    let dir = Dir::new();
    for path in [dir.path().join("missing"), PathBuf::new()] {
        assert_eq!(
            collect(&path, PATIENT).await,
            ExternalFacts::default(),
            "{path:?}"
        );
    }
}

#[tokio::test]
async fn an_unreadable_directory_is_one_problem() {
    let dir = Dir::new();
    dir.file("plain", "");
    let path = dir.path().join("plain");
    let got = collect(&path, PATIENT).await;
    assert_eq!(
        got,
        ExternalFacts {
            facts: Map::new(),
            problems: vec![SourceProblem {
                source: path.display().to_string(),
                problem: "cannot read the directory: not a directory".into(),
            }],
        }
    );
}

#[tokio::test]
async fn a_dangling_link_is_a_problem_and_a_linked_script_runs() {
    let dir = Dir::new();
    let elsewhere = Dir::new();
    elsewhere.script("rack", "echo rack=4");
    std::os::unix::fs::symlink(elsewhere.path().join("rack"), dir.path().join("rack")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("nowhere"), dir.path().join("gone.json")).unwrap();
    let got = dir.collect(PATIENT).await;
    assert_eq!(
        problems(&got, "gone.json"),
        ["cannot look at it: no such file or directory"]
    );
    assert_eq!(problems(&got, "rack"), Vec::<&str>::new());
    assert_eq!(Value::Object(got.facts), json!({"rack": "4"}));
}

#[tokio::test]
async fn at_most_four_scripts_run_at_once_each_with_its_own_timeout() {
    let dir = Dir::new();
    let marks = tempfile::tempdir().unwrap();
    let (running, counts) = (marks.path().join("running"), marks.path().join("counts"));
    std::fs::create_dir(&running).unwrap();
    std::fs::create_dir(&counts).unwrap();
    for i in 0..8 {
        dir.script(
            &format!("s{i}"),
            &format!(
                "mkdir {running}/$$\nls {running} | wc -l > {counts}/$$\nsleep 0.6\nrmdir {running}/$$\necho s{i}=ok",
                running = running.display(),
                counts = counts.display(),
            ),
        );
    }
    let started = Instant::now();
    // Eight scripts of 600 ms in two waves, none timing out at 1 s: each
    // timeout starts when its script starts, not when collect does.
    let got = dir.collect(Duration::from_secs(1)).await;
    let took = started.elapsed();
    no_problems(&got);
    assert_eq!(got.facts.len(), 8);
    assert!(took < Duration::from_secs(3), "ran one by one? {took:?}");
    let most = std::fs::read_dir(&counts)
        .unwrap()
        .map(|e| pid_in(&e.unwrap().path()))
        .max()
        .unwrap();
    assert!((1..=4).contains(&most), "{most} at once");
}
