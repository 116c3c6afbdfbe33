//! The one Server-Sent Events stream of a tab (`GET /live`): re-rendered
//! rows of the nodes it shows, new events, and "refresh" for pages of
//! records. Each message's id is `ROWS:EVENTS` (the board's version and the
//! last event's sequence number), so a stream that breaks resumes with
//! `Last-Event-ID` where it stopped and misses nothing. A deleted or expired
//! token ends its streams at the next change.
//!
//! A running job's page has a stream of its own kind (`view=job`): each
//! node's new output appended as it comes, and a node sent whole when it
//! is new to the stream or gets its result; ids are `job:VERSION`.

use super::super::Http;
use super::Session;
use super::records::{event_row, live_node};
use crate::jobs::live::text_from;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use cluster_model::TargetSpec;
use serde::Deserialize;
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::mpsc;

#[derive(Deserialize)]
pub struct LiveQuery {
    /// `nodes`, `node`, `events` or `records`.
    view: String,
    /// The board version the page was rendered at.
    v: Option<u64>,
    /// The last event the page shows.
    e: Option<u64>,
    /// The nodes page's filter.
    target: Option<String>,
    /// The node page's node.
    node: Option<String>,
    /// The job page's job.
    job: Option<String>,
}

/// Messages queued per tab: a slow tab drops out (and resumes) rather
/// than holding the master's memory.
const QUEUE: usize = 16;
/// The least time between two "refresh" messages of a records page.
const REFRESH_EVERY: Duration = Duration::from_secs(1);
/// The least time between two messages of a job's output: a chatty
/// command is sent ten times a second, not once per chunk.
const OUTPUT_EVERY: Duration = Duration::from_millis(100);

pub async fn stream(
    State(http): State<Http>,
    s: Session,
    headers: HeaderMap,
    Query(q): Query<LiveQuery>,
) -> impl IntoResponse {
    let resumed = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(':'))
        .and_then(|(v, e)| Some((v.parse::<u64>().ok()?, e.parse::<u64>().ok()?)));
    let board = http.board();
    let (mut seen_v, mut seen_e) = match resumed {
        Some((v, e)) => (v, e),
        None => (q.v.unwrap_or_else(|| board.version()), q.e.unwrap_or(0)),
    };
    if seen_e == 0 && (q.view == "events" || q.view == "node") {
        // Only what happens from now on.
        seen_e = http
            .cluster
            .read(|st| st.next_event_seq().saturating_sub(1));
    }
    let spec = match q.target.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        Some(t) => http
            .cluster
            .prepare(TargetSpec::expr(cluster_model::targets::Kind::Compound, t))
            .await
            .ok(),
        None => None,
    };
    let token = match &s.caller {
        crate::cluster::Caller::Api { token, .. } => token.clone(),
        _ => String::new(),
    };
    let (tx, rx) = mpsc::channel::<Result<Event, Infallible>>(QUEUE);
    if q.view == "job" {
        let resumed = headers
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("job:"))
            .and_then(|v| v.parse::<u64>().ok());
        let job = q.job.clone().unwrap_or_default();
        tokio::spawn(follow_job(http, token, job, resumed.or(q.v), tx));
        return Sse::new(tokio_stream::wrappers::ReceiverStream::new(rx))
            .keep_alive(KeepAlive::default());
    }
    tokio::spawn(async move {
        let mut rows = board.subscribe();
        let mut changes = http.cluster.changes();
        let mut last_refresh = tokio::time::Instant::now();
        loop {
            // What the view shows, from what it last sent.
            let names: Option<Vec<String>> = match q.view.as_str() {
                "node" => Some(q.node.iter().cloned().collect()),
                "nodes" => spec.as_ref().map(|spec| {
                    http.cluster
                        .select(spec)
                        .map(|found| found.into_iter().map(|(_, name, _)| name).collect())
                        .unwrap_or_default()
                }),
                _ => Some(Vec::new()),
            };
            let mut out = Vec::new();
            if q.view == "nodes" || q.view == "node" {
                let (v, changed) = board.since(seen_v, names.as_deref());
                seen_v = v;
                if !changed.is_empty() {
                    let data: Vec<serde_json::Value> = changed
                        .iter()
                        .map(|(name, html)| serde_json::json!({ "name": name, "html": html.as_deref() }))
                        .collect();
                    out.push(("rows", serde_json::Value::from(data).to_string()));
                }
            } else {
                seen_v = board.version();
            }
            if q.view == "events" || q.view == "node" {
                let node = q.node.as_deref().filter(|_| q.view == "node");
                if let Ok(events) = http.cluster.events(seen_e, 100, node).await
                    && let Some(last) = events.last()
                {
                    seen_e = last.seq;
                    let data: Vec<serde_json::Value> = events
                        .iter()
                        .map(|e| serde_json::json!({ "seq": e.seq, "html": event_row(e).into_string() }))
                        .collect();
                    out.push(("events", serde_json::Value::from(data).to_string()));
                }
            }
            for (kind, data) in out {
                let event = Event::default()
                    .event(kind)
                    .id(format!("{seen_v}:{seen_e}"))
                    .data(data);
                if tx.send(Ok(event)).await.is_err() {
                    return;
                }
            }
            tokio::select! {
                _ = tx.closed() => return,
                r = rows.changed() => if r.is_err() { return },
                r = changes.changed() => if r.is_err() { return },
            }
            if logged_out(&http, &token, &tx).await {
                return;
            }
            if q.view == "records" && last_refresh.elapsed() >= REFRESH_EVERY {
                last_refresh = tokio::time::Instant::now();
                let event = refresh().id(format!("{seen_v}:{seen_e}"));
                if tx.send(Ok(event)).await.is_err() {
                    return;
                }
            }
        }
    });
    Sse::new(tokio_stream::wrappers::ReceiverStream::new(rx)).keep_alive(KeepAlive::default())
}

type Tx = mpsc::Sender<Result<Event, Infallible>>;

/// Whether the session's token is gone; if so the tab is told, and goes
/// to the login.
async fn logged_out(http: &Http, token: &str, tx: &Tx) -> bool {
    if http.cluster.api_caller_by_id(token).is_ok() {
        return false;
    }
    let logout = Event::default()
        .event("logout")
        .data("the session's token is gone");
    let _ = tx.send(Ok(logout)).await;
    true
}

/// "Fetch the page anew". Never with empty data: a browser drops a
/// message whose data is empty without dispatching it.
fn refresh() -> Event {
    Event::default().event("refresh").data("the page changed")
}

/// What was sent of one node: how far into each stream, and in which
/// state (a node is sent whole again when it starts and when it ends).
struct Sent {
    out: usize,
    err: usize,
    started: bool,
    done: bool,
}

/// A running job's stream. `seen` is the version the page was rendered
/// at (or the stream got to before it broke); `None` for a page rendered
/// from the stored record, which needs nothing more.
async fn follow_job(http: Http, token: String, job: String, seen: Option<u64>, tx: Tx) {
    let live = http.jobs.as_ref().and_then(|jobs| jobs.live(&job));
    let (Some(live), Some(mut seen)) = (live, seen) else {
        if seen.is_some() {
            // It finished since the page was rendered: show the record.
            let _ = tx.send(Ok(refresh())).await;
        }
        // Held open: a stream that ends is reopened by the browser.
        tx.closed().await;
        return;
    };
    let mut wake = live.subscribe();
    let mut sent: std::collections::HashMap<String, Sent> = Default::default();
    loop {
        let (data, version, finished) = {
            let st = live.read();
            let mut data = Vec::new();
            for (name, n) in st.nodes.iter().filter(|(_, n)| n.changed > seen) {
                let done = n.result.is_some();
                match sent.get_mut(name.as_str()) {
                    Some(was) if (was.started, was.done) == (n.started, done) => {
                        let (out, out_at) = text_from(&n.stdout, was.out, done);
                        let (err, err_at) = text_from(&n.stderr, was.err, done);
                        (was.out, was.err) = (out_at, err_at);
                        if !out.is_empty() || !err.is_empty() {
                            data.push(serde_json::json!({ "node": name, "out": out, "err": err }));
                        }
                    }
                    _ => {
                        let (html, out, err) = live_node(name, n);
                        let started = n.started;
                        sent.insert(
                            name.clone(),
                            Sent {
                                out,
                                err,
                                started,
                                done,
                            },
                        );
                        data.push(serde_json::json!({ "node": name, "html": html.into_string() }));
                    }
                }
            }
            (data, st.version, st.finished)
        };
        seen = version;
        if !data.is_empty() {
            let event = Event::default()
                .event("output")
                .id(format!("job:{seen}"))
                .data(serde_json::Value::from(data).to_string());
            if tx.send(Ok(event)).await.is_err() {
                return;
            }
        }
        if finished {
            let _ = tx.send(Ok(refresh())).await;
            tx.closed().await;
            return;
        }
        tokio::time::sleep(OUTPUT_EVERY).await;
        tokio::select! {
            _ = tx.closed() => return,
            r = wake.changed() => if r.is_err() { return },
        }
        if logged_out(&http, &token, &tx).await {
            return;
        }
    }
}
