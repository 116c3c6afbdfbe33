//! The dashboard in a real browser: headless Chromium through chromedriver
//! (Debian's packages; `tests/run` installs them), against a real master
//! and real agents. Screenshots go to the directory the test prints.

use cluster_tests::http::send;
use cluster_tests::process::free_port;
use cluster_tests::{AgentProc, MasterProc, Proc, api_token, ctl, eventually};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(10);
/// Every browser call is bounded: a hung page fails the test, not CI.
const BROWSER_PATIENCE: Duration = Duration::from_secs(20);

async fn bounded<T, E: std::fmt::Debug>(what: &str, f: impl Future<Output = Result<T, E>>) -> T {
    match tokio::time::timeout(BROWSER_PATIENCE, f).await {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => panic!("{what}: {e:?}"),
        Err(_) => panic!("{what}: no answer within {BROWSER_PATIENCE:?}"),
    }
}

/// chromedriver on a port of its own, and a way to open browsers on it.
struct Driver {
    _proc: Proc,
    url: String,
}

impl Driver {
    async fn start() -> Driver {
        let port = free_port("127.0.0.1".parse().unwrap());
        let mut cmd = std::process::Command::new("chromedriver");
        cmd.arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1");
        let proc =
            Proc::spawn(cmd).expect("chromedriver runs (tests/run installs chromium-driver)");
        let url = format!("http://127.0.0.1:{port}");
        eventually("chromedriver answers", PATIENCE, || async {
            cluster_tests::get(&format!("{url}/status")).await.0 == 200
        })
        .await;
        Driver { _proc: proc, url }
    }

    async fn browser(&self, width: u32, height: u32) -> Client {
        let caps = json!({
            "browserName": "chrome",
            // DOMContentLoaded is enough: the live stream never "loads".
            "pageLoadStrategy": "eager",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                         "--disable-gpu", format!("--window-size={width},{height}")],
            },
        });
        let caps = match caps {
            Value::Object(m) => m,
            _ => unreachable!(),
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = bounded(
            "open a browser",
            ClientBuilder::new(connector)
                .capabilities(caps)
                .connect(&self.url),
        )
        .await;
        bounded("size the window", client.set_window_size(width, height)).await;
        client
    }
}

async fn login(b: &Client, base: &str, token: &str) {
    bounded("the login page", b.goto(&format!("{base}/login"))).await;
    let field = bounded("the token field", b.find(Locator::Id("token"))).await;
    bounded("type the token", field.send_keys(token)).await;
    let submit = bounded(
        "the login button",
        b.find(Locator::Css("form.login button[type=submit]")),
    )
    .await;
    bounded("log in", submit.click()).await;
    bounded(
        "the nodes page",
        b.wait()
            .at_most(BROWSER_PATIENCE)
            .for_element(Locator::Css("table.nodes")),
    )
    .await;
}

/// Finds and clicks an element, each step bounded.
async fn click(b: &Client, what: &str, at: Locator<'_>) {
    let element = bounded(what, b.find(at)).await;
    bounded(what, element.click()).await;
}

async fn js(b: &Client, script: &str) -> Value {
    bounded(script, b.execute(script, Vec::new())).await
}

async fn screenshot(b: &Client, dir: &Path, name: &str) {
    let png = bounded("a screenshot", b.screenshot()).await;
    assert!(png.starts_with(b"\x89PNG"), "{name} is a PNG");
    std::fs::write(dir.join(name), png).unwrap();
}

fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    eprintln!("dashboard screenshots: {}", dir.display());
    dir
}

/// A row's state as the page shows it now.
async fn row_state(b: &Client, node: &str) -> String {
    js(
        b,
        &format!("return document.getElementById('node-{node}')?.dataset.state ?? 'absent'"),
    )
    .await
    .as_str()
    .unwrap_or_default()
    .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_drains_two_nodes_from_the_browser_and_another_tab_sees_it_live() {
    cluster_tests::crypto();
    let master = MasterProc::builder().spawn();
    let agents: Vec<AgentProc> = [
        ("web-1", "127.0.0.101", "web"),
        ("web-2", "127.0.0.102", "web"),
        ("web-3", "127.0.0.103", "web"),
        ("db-1", "127.0.0.104", "db"),
    ]
    .into_iter()
    .map(|(id, ip, role)| AgentProc::builder(id, &master).addr(ip).role(role).spawn())
    .collect();
    let admin = master.admin();
    let operator = api_token(&admin, "operator", "olga").await;
    let reader = api_token(&admin, "read", "grafana").await;
    let base = master.http_url();
    eventually("four nodes online", PATIENCE, || async {
        let (_, body) = send("GET", &format!("{base}/api/v1/nodes"), &reader, None).await;
        serde_json::from_str::<Value>(&body).ok().is_some_and(|v| {
            v["nodes"]
                .as_array()
                .is_some_and(|n| n.len() == 4 && n.iter().all(|n| n["state"] == "online"))
        })
    })
    .await;
    let shots = screenshots();
    let driver = Driver::start().await;

    // A second tab, read-only: it cannot act, and it follows along.
    let watcher = driver.browser(1280, 900).await;
    login(&watcher, &base, &reader).await;
    let fieldset = bounded(
        "the bulk form",
        watcher.find(Locator::Css("#bulk fieldset")),
    )
    .await;
    assert!(
        bounded("is it disabled", fieldset.attr("disabled"))
            .await
            .is_some(),
        "a read token's page has the bulk actions disabled"
    );
    js(&watcher, "window.__not_reloaded = true; return null").await;

    let b = driver.browser(1280, 900).await;
    login(&b, &base, &operator).await;
    screenshot(&b, &shots, "nodes-1280x900.png").await;

    // Filter with a compound target.
    let target = bounded("the filter", b.find(Locator::Id("target"))).await;
    bounded("type a target", target.send_keys("web-* and not web-3")).await;
    click(&b, "filter", Locator::Css("form.filter button")).await;
    eventually("two rows", PATIENCE, || async {
        js(
            &b,
            "return document.querySelectorAll('table.nodes tbody tr').length",
        )
        .await
            == json!(2)
    })
    .await;
    // A bad one is shown as the CLI shows it, with its position.
    bounded("back", b.goto(&format!("{base}/?target=web-1%20and%20("))).await;
    let error = bounded("the error", b.find(Locator::Css(".error pre"))).await;
    let error = bounded("the error's text", error.text()).await;
    assert!(error.contains('^'), "a caret under the column: {error}");
    bounded(
        "filter again",
        b.goto(&format!("{base}/?target=web-*%20and%20not%20web-3")),
    )
    .await;

    // Tick two, give a reason, preview, confirm.
    for node in ["web-1", "web-2"] {
        click(&b, "tick", Locator::Id(&format!("pick-{node}"))).await;
    }
    let reason = bounded("reason", b.find(Locator::Id("reason"))).await;
    bounded("type a reason", reason.send_keys("kernel upgrade")).await;
    click(&b, "drain…", Locator::Css("#bulk button[value=drain]")).await;
    let preview = bounded(
        "the preview",
        b.wait()
            .at_most(BROWSER_PATIENCE)
            .for_element(Locator::Css("dialog[open] table.census")),
    )
    .await;
    let census = bounded("its text", preview.text()).await;
    assert!(
        census.contains("web 3 1"),
        "web: 3 in rotation now, 1 after: {census}"
    );
    screenshot(&b, &shots, "preview-1280x900.png").await;
    click(
        &b,
        "confirm",
        Locator::Css("dialog[open] form[data-apply] button[type=submit]"),
    )
    .await;

    for a in &agents[..2] {
        eventually("the agent answers 503", PATIENCE, || async {
            a.health().await.0 == 503
        })
        .await;
    }
    assert_eq!(agents[2].health().await.0, 200);
    let events = ctl(&admin, &["events", "-o", "json"]).await.ok().stdout;
    let events: Vec<Value> = serde_json::from_str(&events).unwrap();
    for node in ["web-1", "web-2"] {
        assert!(
            events
                .iter()
                .any(|e| e["node"] == node && e["kind"] == "drain" && e["by"] == "olga"),
            "the audit names the token's holder for {node}: {events:#?}"
        );
    }

    // The other tab: the change arrives on its stream, no reload.
    let started = std::time::Instant::now();
    loop {
        if row_state(&watcher, "web-1").await == "drained"
            && row_state(&watcher, "web-2").await == "drained"
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the second tab still shows web-1 {}",
            row_state(&watcher, "web-1").await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        js(&watcher, "return window.__not_reloaded === true").await,
        json!(true)
    );

    // Undrain one from its page.
    bounded("the node page", b.goto(&format!("{base}/nodes/web-1"))).await;
    click(&b, "undrain…", Locator::Css("button[value=undrain]")).await;
    bounded(
        "confirm",
        b.wait()
            .at_most(BROWSER_PATIENCE)
            .for_element(Locator::Css(
                "dialog[open] form[data-apply] button[type=submit]",
            ))
            .await
            .unwrap()
            .click(),
    )
    .await;
    eventually("web-1 answers 200", PATIENCE, || async {
        agents[0].health().await.0 == 200
    })
    .await;
    screenshot(&b, &shots, "node-1280x900.png").await;

    // A phone, and the dark theme.
    bounded("narrow", b.set_window_size(390, 844)).await;
    bounded("nodes", b.goto(&format!("{base}/"))).await;
    screenshot(&b, &shots, "nodes-390x844.png").await;
    bounded("wide", b.set_window_size(1280, 900)).await;
    click(&b, "dark", Locator::Css("[data-theme-toggle]")).await;
    let theme = js(&b, "return document.documentElement.dataset.theme").await;
    assert!(theme == json!("dark") || theme == json!("light"), "{theme}");
    if theme == json!("light") {
        click(&b, "dark", Locator::Css("[data-theme-toggle]")).await;
    }
    assert_eq!(
        js(&b, "return document.documentElement.dataset.theme").await,
        json!("dark")
    );
    screenshot(&b, &shots, "nodes-dark-1280x900.png").await;

    // A cross-site form post, from another origin, is refused.
    let evil = tempfile::tempdir().unwrap();
    std::fs::write(
        evil.path().join("index.html"),
        format!(
            "<form id=f method=post action='{base}/nodes/apply'>\
             <input name=node value=web-3><input name=action value=drain><input name=reason value=evil></form>\
             <script>document.getElementById('f').submit()</script>"
        ),
    )
    .unwrap();
    let port = free_port("127.0.0.105".parse().unwrap());
    let mut server = std::process::Command::new("python3");
    server
        .args([
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.105",
            "--directory",
        ])
        .arg(evil.path());
    let _server = Proc::spawn(server).unwrap();
    eventually("the other site serves", PATIENCE, || async {
        cluster_tests::get(&format!("http://127.0.0.105:{port}/"))
            .await
            .0
            == 200
    })
    .await;
    bounded(
        "the other site",
        b.goto(&format!("http://127.0.0.105:{port}/")),
    )
    .await;
    eventually("the post was answered", PATIENCE, || async {
        bounded("url", b.current_url())
            .await
            .as_str()
            .starts_with(&base)
    })
    .await;
    let answer = js(&b, "return document.body.innerText").await;
    assert!(
        answer.as_str().unwrap_or_default().contains("cross-site")
            || answer.as_str().unwrap_or_default().contains("Log in"),
        "{answer}"
    );
    assert_eq!(agents[2].health().await.0, 200, "web-3 was not drained");

    // A running job's output arrives on its page as the node prints it.
    let gate = tempfile::tempdir().unwrap();
    let flag = gate.path().join("go");
    let script = format!(
        "echo first; while [ ! -e {} ]; do sleep 0.05; done; echo second",
        flag.display()
    );
    // clusterctl's future is not `Send`: it gets a runtime of its own.
    let run = tokio::task::spawn_blocking({
        let admin = admin.clone();
        move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(ctl(&admin, &["run", "db-1", "--", "sh", "-c", &script]))
        }
    });
    let job = std::sync::Mutex::new(String::new());
    eventually("the job is listed as running", PATIENCE, || async {
        let (_, body) = send("GET", &format!("{base}/api/v1/jobs"), &reader, None).await;
        let v: Value = serde_json::from_str(&body).unwrap_or_default();
        let found = v["jobs"].as_array().and_then(|jobs| {
            jobs.iter()
                .find(|j| j["finished"].is_null() && j["argv"].to_string().contains("echo second"))
        });
        if let Some(j) = found {
            *job.lock().unwrap() = j["id"].as_str().unwrap().to_owned();
        }
        found.is_some()
    })
    .await;
    let job = job.into_inner().unwrap();
    bounded("the job's page", b.goto(&format!("{base}/jobs/{job}"))).await;
    js(&b, "window.__not_reloaded = true; return null").await;
    let output = "return document.querySelector('#jobnode-db-1 [data-out]')?.textContent ?? ''";
    eventually("the first line shows", PATIENCE, || async {
        js(&b, output).await == json!("first\n")
    })
    .await;
    std::fs::write(&flag, "").unwrap();
    eventually("the second line and the result show", PATIENCE, || async {
        js(&b, output).await == json!("first\nsecond\n")
            && js(
                &b,
                "return document.querySelector('#jobnode-db-1 .badge')?.textContent",
            )
            .await
                == json!("ok")
    })
    .await;
    eventually("the page shows the stored record", PATIENCE, || async {
        js(
            &b,
            "return document.querySelector('main h1 + p .badge.running') === null",
        )
        .await
            == json!(true)
    })
    .await;
    assert_eq!(
        js(&b, "return window.__not_reloaded === true").await,
        json!(true),
        "followed without a reload"
    );
    screenshot(&b, &shots, "job-1280x900.png").await;
    let run = bounded("the run", run).await.ok();
    assert!(run.stdout.contains("second"), "{}", run.stdout);

    // A deleted token: its next page goes to the login.
    ctl(
        &admin,
        &["token", "delete", reader.split('.').next().unwrap()],
    )
    .await
    .ok();
    bounded("reload", watcher.goto(&format!("{base}/"))).await;
    bounded(
        "the login form",
        watcher
            .wait()
            .at_most(BROWSER_PATIENCE)
            .for_element(Locator::Id("token")),
    )
    .await;
    let _ = watcher.close().await;
    let _ = b.close().await;
}
