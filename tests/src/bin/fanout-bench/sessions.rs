//! One real agent session per simulated node: hello, acknowledge what the
//! master sends, answer every job at once, report usage like a real agent.

use super::*;

/// Sessions that ended before the bench did.
#[derive(Default)]
pub(crate) struct Ended {
    pub(crate) count: AtomicUsize,
    /// Set when the bench stops the master: sessions ending after that are
    /// expected.
    pub(crate) closing: AtomicBool,
}

/// Opens one agent session per node, `HANDSHAKES_IN_FLIGHT` at a time,
/// node `i` with `urls[i % urls.len()]`; each then runs on its own task
/// until the process exits.
pub(crate) async fn open_sessions(
    urls: &[String],
    ca_pem: &str,
    nodes: Vec<SimNode>,
    ended: Arc<Ended>,
) -> Result<(), String> {
    let slots = Arc::new(Semaphore::new(HANDSHAKES_IN_FLIGHT));
    let mut opening = JoinSet::new();
    for node in nodes {
        let permit = slots.clone().acquire_owned().await.expect("never closed");
        let identity = Identity::from_pem(&node.cert_pem, &node.key_pem);
        let url = &urls[node.index % urls.len()];
        let endpoint = endpoint(url, ca_pem, Some(identity));
        let ended = ended.clone();
        opening.spawn(async move {
            let session = open_session(&endpoint, &node).await;
            drop(permit);
            let (client, tx, inbound) = session?;
            tokio::spawn(async move {
                let why = serve(node.index, client, tx, inbound).await;
                if ended.closing.load(Ordering::Relaxed) {
                    return;
                }
                if ended.count.fetch_add(1, Ordering::Relaxed) < 5 {
                    eprintln!("fanout-bench: session of {} ended: {why}", node.id);
                }
            });
            Ok::<(), String>(())
        });
    }
    while let Some(opened) = opening.join_next().await {
        opened.map_err(|e| format!("a session task failed: {e}"))??;
    }
    Ok(())
}

type Session = (
    Channel,
    mpsc::Sender<pb::AgentMessage>,
    Streaming<light::MasterMessage>,
);

/// Connects (own TLS connection) and opens the session with `Hello`,
/// retrying a few times; returns once the master has answered.
pub(crate) async fn open_session(endpoint: &Endpoint, node: &SimNode) -> Result<Session, String> {
    let mut last_error = String::new();
    for attempt in 0..OPEN_ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
        }
        let channel = match endpoint.connect().await {
            Ok(c) => c,
            Err(e) => {
                last_error = format!("cannot connect: {e:?}");
                continue;
            }
        };
        let (tx, rx) = mpsc::channel(16);
        tx.send(hello(&node.id))
            .await
            .expect("the receiver is still here");
        match light::session(channel.clone(), ReceiverStream::new(rx)).await {
            Ok(inbound) => return Ok((channel, tx, inbound)),
            Err(status) => last_error = format!("session refused: {status}"),
        }
    }
    Err(format!(
        "cannot open the session of {} after {OPEN_ATTEMPTS} attempts: {last_error}",
        node.id
    ))
}

pub(crate) fn hello(id: &str) -> pb::AgentMessage {
    pb::AgentMessage {
        msg: Some(Out::Hello(pb::Hello {
            node_id: id.to_owned(),
            grains_json: "{}".into(),
            roles: vec!["sim".into()],
            health_url: String::new(),
            addresses: vec!["127.0.0.1".into()],
            agent_version: "fanout-bench".into(),
            report_interval_ms: REPORT_INTERVAL.as_millis() as u32,
            wants_hosts: crate::WANTS_HOSTS.load(std::sync::atomic::Ordering::Relaxed),
            takes_hosts_in_parts: true,
            ..Default::default()
        })),
    }
}

/// What a simulated agent answers to a message from the master.
pub(crate) fn reply_to(msg: light::MasterMessage) -> Option<pb::AgentMessage> {
    use light::In;
    let ack = |generation| {
        Out::Ack(pb::Ack {
            generation,
            health: pb::HealthStatus::Online as i32,
            cache_error: String::new(),
        })
    };
    let reply = match msg.msg? {
        // A state sent in parts is acknowledged once its last part is in.
        In::Snapshot(s) if !s.hosts_more => ack(s.generation),
        In::Delta(d) if !d.hosts_more => ack(d.generation),
        In::HostsChunk(c) if !c.more => ack(c.generation),
        In::Run(job) => Out::Done(pb::JobDone {
            job_id: job.job_id,
            exit_code: 0,
            duration_ms: 0,
            ..Default::default()
        }),
        _ => return None,
    };
    Some(pb::AgentMessage { msg: Some(reply) })
}

pub(crate) fn usage_report() -> pb::AgentMessage {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    pb::AgentMessage {
        msg: Some(Out::Usage(pb::Usage {
            sampled_at_ms: now_ms,
            ..Default::default()
        })),
    }
}

/// One open session: answers the master and reports usage until the
/// session ends; returns why it ended. Holds `_channel` so the connection
/// lives as long as the session.
pub(crate) async fn serve(
    index: usize,
    _channel: Channel,
    tx: mpsc::Sender<pb::AgentMessage>,
    mut inbound: Streaming<light::MasterMessage>,
) -> String {
    // Spread the reports over the interval, as agents started at different
    // times would.
    let offset = REPORT_INTERVAL * (index % 1000) as u32 / 1000;
    let mut reports =
        tokio::time::interval_at(tokio::time::Instant::now() + offset, REPORT_INTERVAL);
    reports.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let reply = tokio::select! {
            msg = inbound.message() => match msg {
                Ok(Some(msg)) => reply_to(msg),
                Ok(None) => return "the master closed it".into(),
                Err(status) => return format!("stream error: {status}"),
            },
            _ = reports.tick() => Some(usage_report()),
        };
        if let Some(reply) = reply
            && tx.send(reply).await.is_err()
        {
            return "the outbound stream closed".into();
        }
    }
}

/// Waits until the master lists `count` connected `sim-` nodes.
pub(crate) async fn wait_connected(
    control: &mut Control,
    count: usize,
    patience: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + patience;
    loop {
        let nodes = control
            .list_nodes(pb::ListNodesRequest::default())
            .await
            .map_err(|e| format!("ListNodes failed: {e}"))?
            .into_inner()
            .nodes;
        let connected = nodes
            .iter()
            .filter(|n| n.connected && n.name.starts_with("sim-"))
            .count();
        if connected == count {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "only {connected} of {count} nodes listed as connected after {patience:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Marks the sessions' end as expected when dropped. Declared after the
/// master in [`bench`], so it drops first: however the bench returns, the
/// sessions closing with the master are not reported as lost.
pub(crate) struct Closing(pub(crate) Arc<Ended>);

impl Drop for Closing {
    fn drop(&mut self) {
        self.0.closing.store(true, Ordering::Relaxed);
    }
}
