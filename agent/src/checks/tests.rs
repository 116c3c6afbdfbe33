//! Rise/fall, each kind of check against real listeners and processes,
//! and the status watch moving only on changes.

use super::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// `results` fed one by one; the judged state after each.
fn judge(rise: u32, fall: u32, results: &str) -> String {
    let mut j = RiseFall::new(rise, fall);
    results
        .chars()
        .map(|c| if j.observe(c == '+') { '+' } else { '-' })
        .collect()
}

#[test]
fn rise_and_fall_as_haproxy() {
    for (rise, fall, results, want) in [
        // The first result sets the state directly.
        (2, 3, "-", "-"),
        (2, 3, "+", "+"),
        // Passing: `fall` consecutive failures to fail; a pass resets.
        (2, 3, "+--+--+---", "+++++++++-"),
        (2, 3, "+---", "+++-"),
        // Failing: `rise` consecutive passes to pass; a failure resets.
        (2, 3, "-+-+-++", "------+"),
        (2, 3, "-++-", "--++"),
        (1, 1, "+-+-", "+-+-"),
        (3, 1, "+-++++", "+---++"),
    ] {
        assert_eq!(
            judge(rise, fall, results),
            want,
            "rise {rise} fall {fall}: {results}"
        );
    }
}

fn attempt(pass: bool, output: &str) -> probe::Attempt {
    probe::Attempt {
        pass,
        output: output.into(),
    }
}

#[test]
fn only_flips_and_new_failures_change_the_published_state() {
    let spec = CheckSpec {
        name: "app".into(),
        kind: CheckKind::Tcp { addr: "a:1".into() },
        interval: Duration::from_secs(1),
        timeout: Duration::from_secs(1),
        rise: 2,
        fall: 2,
    };
    let mut status = CheckStatus::new(&[spec]);
    let s = &mut status.checks[0];
    assert_eq!((s.ran, s.passing, s.kind), (false, true, "tcp"));
    assert_eq!(record(s, true, &attempt(true, "up"), 1), Change::Flipped);
    assert_eq!(
        (s.ran, s.passing, s.since_ms, s.output.as_str()),
        (true, true, 1, "up")
    );
    // A failure not yet judged, then a pass: nothing changes.
    assert_eq!(record(s, true, &attempt(false, "500"), 2), Change::None);
    assert_eq!(record(s, true, &attempt(true, "up again"), 3), Change::None);
    assert_eq!(s.output, "up");
    assert_eq!(record(s, false, &attempt(false, "500"), 4), Change::Flipped);
    assert_eq!(
        (s.passing, s.since_ms, s.output.as_str()),
        (false, 4, "500")
    );
    assert_eq!(record(s, false, &attempt(false, "500"), 5), Change::None);
    assert_eq!(record(s, false, &attempt(false, "503"), 6), Change::Output);
    assert_eq!((s.since_ms, s.output.as_str()), (4, "503"));
    // A pass not yet judged keeps the failure's output.
    assert_eq!(record(s, false, &attempt(true, "up"), 7), Change::None);
    assert_eq!(s.output, "503");
}

#[test]
fn failing_and_pending_look_at_checks_that_ran() {
    let state = |name: &str, ran, passing| CheckState {
        name: name.into(),
        kind: "http",
        passing,
        ran,
        output: format!("{name} output"),
        since_ms: 0,
    };
    let status = CheckStatus {
        checks: vec![
            state("a", false, true),
            state("b", true, true),
            state("c", true, false),
            state("d", true, false),
        ],
    };
    assert_eq!(status.failing().map(|c| c.name.as_str()), Some("c"));
    assert!(status.pending());
    let none = CheckStatus::default();
    assert_eq!((none.failing(), none.pending()), (None, false));
}

/// An HTTP server that tells `arrived` of every request and answers it
/// with the next status from `answers`.
async fn scripted_server(arrived: mpsc::Sender<()>, mut answers: mpsc::Receiver<u16>) -> http::Uri {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = vec![0u8; 4096];
            let _ = s.read(&mut buf).await;
            if arrived.send(()).await.is_err() {
                return;
            }
            let Some(code) = answers.recv().await else {
                return;
            };
            let reply =
                format!("HTTP/1.1 {code} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let _ = s.write_all(reply.as_bytes()).await;
        }
    });
    format!("http://{addr}/ping").parse().unwrap()
}

const PATIENCE: Duration = Duration::from_secs(10);

#[tokio::test]
async fn an_http_check_rises_and_falls_exactly() {
    let (arrived_tx, mut arrived) = mpsc::channel(1);
    let (answer, answers) = mpsc::channel(1);
    let url = scripted_server(arrived_tx, answers).await;
    let spec = CheckSpec {
        name: "app".into(),
        kind: CheckKind::Http {
            url: url.clone(),
            expect_status: 200,
        },
        interval: Duration::from_millis(10),
        // Longer than the interval: the server answers when the test says.
        timeout: Duration::from_secs(10),
        rise: 2,
        fall: 3,
    };
    let (status, mut seen) = watch::channel(CheckStatus::default());
    let shutdown = CancellationToken::new();
    let runner = spawn(vec![spec], Default::default(), status, shutdown.clone());
    assert!(seen.borrow_and_update().pending());
    let next_attempt = async |arrived: &mut mpsc::Receiver<()>| {
        tokio::time::timeout(PATIENCE, arrived.recv())
            .await
            .expect("the check's next attempt")
            .expect("the server runs");
    };
    next_attempt(&mut arrived).await;
    // Each answer; then, once the next attempt has begun (the runner
    // records a result before it starts the next attempt), the judged
    // state, what it says, and whether the watch changed.
    for (i, (code, passing, says, changed)) in [
        (500, false, "500 Internal Server Error", true), // the first result sets the state
        (200, false, "500 Internal Server Error", false),
        (200, true, "200 OK", true), // rise 2
        (500, true, "200 OK", false),
        (500, true, "200 OK", false),
        (200, true, "200 OK", false), // a pass resets the count
        (500, true, "200 OK", false),
        (500, true, "200 OK", false),
        (500, false, "500 Internal Server Error", true), // fall 3
        (500, false, "500 Internal Server Error", false),
        (503, false, "503 Service Unavailable", true), // failing differently
        (200, false, "503 Service Unavailable", false),
        (500, false, "500 Internal Server Error", true), // a failure resets the count
        (200, false, "500 Internal Server Error", false),
        (200, true, "200 OK", true),
    ]
    .into_iter()
    .enumerate()
    {
        answer.send(code).await.unwrap();
        next_attempt(&mut arrived).await;
        let step = format!("after answer {i} ({code})");
        assert_eq!(seen.has_changed().unwrap(), changed, "{step}");
        let s = seen.borrow_and_update().checks[0].clone();
        assert_eq!(
            (s.ran, s.passing, s.output),
            (true, passing, format!("GET {url}: {says}")),
            "{step}"
        );
    }
    shutdown.cancel();
    tokio::time::timeout(PATIENCE, runner)
        .await
        .expect("the runner stops at shutdown, even mid-attempt")
        .unwrap();
}
