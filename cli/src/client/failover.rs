//! Reaching the cluster's masters, and staying with them while they come
//! and go. The masters are tried in an order of this process's own
//! (shuffled, so many clusterctls spread over them), each with a short
//! connect timeout. A call that fails because its master went away — an
//! `Unavailable` answer, or a connection that broke under it — moves on
//! to the next master and is sent again; once every master failed in a
//! row, the client waits (full jitter) before the next pass, and gives up
//! [`Patience::give_up`] after the outage began (for a unary call, after
//! the call began), naming what each master said.
//!
//! A call that changes the cluster carries an `x-request-id`
//! ([`RequestId`]), made once for it and sent again on each of its
//! retries: the masters apply it once, whichever of them it reaches.
//!
//! Which calls are sent again:
//! - every unary call — reads because they change nothing, writes because
//!   their request id makes a second delivery a no-op;
//! - `Drain` (drain and undrain, with or without `--wait`), opened again
//!   with its id and what is left of its wait: a drain is level-triggered
//!   (it makes nodes *be* out, and following them only reads), and the id
//!   makes the store see it once;
//! - `WatchRollout`: it only reads, and every record it sends is whole.
//!
//! `Run` is not: its command runs on the nodes, outside anything a master
//! could take back or apply once, so when the stream breaks clusterctl
//! says so and leaves the job's outcome to `clusterctl job ID`.

use super::Client;
use crate::Failure;
use crate::context::Target;
use cluster_proto as pb;
use std::future::Future;
use std::time::{Duration, Instant};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// How long reaching one master may take — TCP, TLS and HTTP/2 — before
/// the next one is tried.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// HTTP/2 pings while a call is open: a master whose host vanished is
/// noticed (as `Unavailable`) rather than waited on forever.
const KEEPALIVE: Duration = Duration::from_secs(10);

/// The metadata entry the masters deduplicate writes by.
pub const REQUEST_ID: &str = "x-request-id";

pub(crate) type Control = pb::control_client::ControlClient<Channel>;

/// How long a client keeps trying while its masters are away.
#[derive(Debug, Clone, Copy)]
pub struct Patience {
    /// After this long without a master, give up.
    pub give_up: Duration,
    /// The backoff between passes: full jitter from `min`, the window
    /// doubling up to `max`.
    pub min: Duration,
    pub max: Duration,
}

pub const PATIENCE: Patience = Patience {
    give_up: Duration::from_secs(15),
    min: Duration::from_millis(100),
    max: Duration::from_secs(5),
};

/// Whether a call changes the cluster (and so carries a request id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    Read,
    Write,
}

/// The `x-request-id` of one operation that changes the cluster: 128
/// random bits in hex, made once and sent again with each of its retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(String);

impl RequestId {
    pub fn random() -> RequestId {
        RequestId::from_bytes(random_bytes())
    }

    pub fn from_bytes(bytes: [u8; 16]) -> RequestId {
        RequestId(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn attach<T>(&self, request: &mut tonic::Request<T>) {
        let value = self.0.parse().expect("hex digits are valid metadata");
        request.metadata_mut().insert(REQUEST_ID, value);
    }
}

fn random_bytes<const N: usize>() -> [u8; N] {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; N];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system's random number generator");
    bytes
}

/// A random number in `0..n`.
fn random_below(n: usize) -> usize {
    (u64::from_le_bytes(random_bytes()) % n.max(1) as u64) as usize
}

/// A random number in [0, 1).
fn random_unit() -> f64 {
    (u64::from_le_bytes(random_bytes()) >> 11) as f64 / (1u64 << 53) as f64
}

/// Whether a call failed because its master went away (or cannot serve
/// now) — worth sending to another — rather than because a master
/// answered no. A master's own answer carries no source error: one that
/// does was made here, from a connection that broke.
pub fn went_away(status: &tonic::Status) -> bool {
    use tonic::Code::*;
    match status.code() {
        Unavailable => true,
        Unknown | Internal | Cancelled => std::error::Error::source(status).is_some(),
        _ => false,
    }
}

/// What a failed call says, for the message naming every master.
fn said(status: &tonic::Status) -> String {
    let mut s = format!("the call failed: {}", status.message());
    if let Some(source) = std::error::Error::source(status) {
        let chain = super::source_chain(source);
        if !s.contains(&chain) {
            s.push_str(&format!(" ({chain})"));
        }
    }
    s
}

pub use cluster_model::retry::backoff;

/// The masters in the order this client tries them, and which is current.
#[derive(Debug, Clone)]
pub struct Rotation {
    order: Vec<String>,
    at: usize,
}

impl Rotation {
    /// `masters` (never none) shuffled with `below(n)`, a random number
    /// in `0..n`.
    pub fn new(masters: &[String], below: impl FnMut(usize) -> usize) -> Rotation {
        assert!(!masters.is_empty(), "at least one master");
        Rotation {
            order: cluster_model::retry::shuffled(masters, below),
            at: 0,
        }
    }

    pub fn current(&self) -> &str {
        &self.order[self.at]
    }

    pub fn order(&self) -> &[String] {
        &self.order
    }

    pub fn advance(&mut self) {
        self.at = (self.at + 1) % self.order.len();
    }
}

/// Masters failing one after another: since when, what each said last,
/// and how far through a pass it is.
#[derive(Debug)]
pub(crate) struct Outage {
    since: Instant,
    call: Call,
    said: Vec<(String, String)>,
    failed_in_pass: usize,
    passes: u32,
}

impl Outage {
    pub fn new(call: Call) -> Outage {
        Outage::since(call, Instant::now())
    }

    /// An outage counted from `since`: a unary call's own start, so the
    /// time its first attempt spent waiting (a master that held it until
    /// its store gave up) comes out of the same patience.
    pub fn since(call: Call, since: Instant) -> Outage {
        Outage {
            since,
            call,
            said: Vec::new(),
            failed_in_pass: 0,
            passes: 0,
        }
    }

    /// `master` failed, saying `why`; `Some(pass)` when that ended a whole
    /// pass of failures over `masters`.
    fn failed(&mut self, master: &str, why: String, masters: usize) -> Option<u32> {
        match self.said.iter_mut().find(|(m, _)| m == master) {
            Some(entry) => entry.1 = why,
            None => self.said.push((master.to_owned(), why)),
        }
        self.failed_in_pass += 1;
        if self.failed_in_pass < masters {
            return None;
        }
        self.failed_in_pass = 0;
        let pass = self.passes;
        self.passes = self.passes.saturating_add(1);
        Some(pass)
    }

    fn give_up(&self, origin: &str) -> Failure {
        let mut text = format!(
            "no master answered for {:.0}s (from {origin}):",
            self.since.elapsed().as_secs_f64()
        );
        for (master, why) in &self.said {
            text.push_str(&format!("\n  {master}: {why}"));
        }
        if self.call == Call::Write {
            text.push_str(
                "\nthe change may or may not have been made before its master went away: `clusterctl events` shows what was (and `nodes` where each node is) before you run the command again",
            );
        }
        Failure::unreachable(text)
    }
}

/// How to reach a master: over mTLS as this user (or, in tests, a
/// pretend network).
pub(crate) enum Connector {
    Tls {
        ca: String,
        cert: String,
        key: String,
        /// Where they came from, for errors.
        files: TlsFiles,
    },
    #[cfg(test)]
    Fake(std::sync::Arc<std::sync::Mutex<tests::Net>>),
}

impl Connector {
    /// The CA, certificate and key the target names, read now.
    fn tls(target: &Target) -> Result<Connector, Failure> {
        let read = |what: &str, path: &Option<std::path::PathBuf>| -> Result<String, Failure> {
            let path = path.as_ref().ok_or_else(|| {
                Failure::bad_input(format!(
                    "no {what} configured for {} (from {})\n\
                     hint: use the admin.toml `cluster-master` wrote in its data directory \
                     (clusterctl --config-file PATH, or CLUSTERCTL_CONFIG), or `cluster-master init`",
                    target.masters.join(","),
                    target.origin
                ))
            })?;
            std::fs::read_to_string(path).map_err(|e| {
                Failure::bad_input(format!("cannot read the {what} {}: {e}", path.display()))
            })
        };
        let shown = |p: &Option<std::path::PathBuf>| {
            p.as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        };
        Ok(Connector::Tls {
            ca: read("CA certificate (ca)", &target.ca)?,
            cert: read("client certificate (cert)", &target.cert)?,
            key: read("client key (key)", &target.key)?,
            files: TlsFiles {
                ca: shown(&target.ca),
                cert: shown(&target.cert),
            },
        })
    }

    async fn connect(&self, master: &str) -> Result<Channel, ConnectError> {
        let (ca, cert, key, files) = match self {
            Connector::Tls {
                ca,
                cert,
                key,
                files,
            } => (ca, cert, key, files),
            #[cfg(test)]
            Connector::Fake(net) => return tests::connect(net, master),
        };
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(ca))
            .identity(Identity::from_pem(cert, key))
            .domain_name(host(master));
        let settings = |e: tonic::transport::Error| {
            ConnectError::Settings(format!(
                "cannot use the TLS settings for {master}: {}",
                super::source_chain(&e)
            ))
        };
        let endpoint = Endpoint::from_shared(master.to_owned())
            .map_err(settings)?
            .tls_config(tls)
            .map_err(settings)?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(KEEPALIVE)
            .keep_alive_timeout(KEEPALIVE);
        match tokio::time::timeout(CONNECT_TIMEOUT, endpoint.connect()).await {
            Ok(Ok(channel)) => Ok(channel),
            Ok(Err(e)) => {
                let chain = super::source_chain(&e);
                match tls_refusal(&chain, master, files) {
                    Some(refused) => Err(ConnectError::Refused(refused)),
                    None => Err(ConnectError::Unreachable(chain)),
                }
            }
            Err(_) => Err(ConnectError::Unreachable(format!(
                "no connection within {}",
                humantime::format_duration(CONNECT_TIMEOUT)
            ))),
        }
    }
}

/// Why a master could not be reached: this client's own settings (bad
/// input, the same for every master), or the master itself.
#[derive(Debug)]
pub(crate) enum ConnectError {
    Settings(String),
    Unreachable(String),
    /// TLS failed for a reason another try will not change: exit 4.
    Refused(Failure),
}

/// The files a TLS connection was made with, as the user named them.
#[derive(Debug, Clone, Default)]
pub(crate) struct TlsFiles {
    pub ca: String,
    pub cert: String,
}

/// What a TLS failure (the text of its error chain) means, when no other
/// master or later try would fare better: the master refused this
/// client's certificate, or its own could not be verified. `None` for
/// anything else (a master down, a connection lost).
pub(crate) fn tls_refusal(chain: &str, master: &str, files: &TlsFiles) -> Option<Failure> {
    // The master's alert: it refused our certificate.
    let alerts = [
        ("UnknownCA", "it is not signed by the cluster's CA"),
        ("BadCertificate", "the master cannot use it"),
        ("CertificateExpired", "it has expired"),
        ("CertificateRevoked", "it has been revoked"),
        ("CertificateUnknown", "the master does not accept it"),
        ("AccessDenied", "the master denied access"),
        ("DecryptError", "it does not match its key"),
    ];
    if let Some((_, why)) = alerts
        .iter()
        .find(|(alert, _)| chain.contains(&format!("received fatal alert: {alert}")))
    {
        return Some(Failure {
            code: Failure::REFUSED,
            message: format!(
                "refused: the master at {master} refused this client's certificate ({why}); the certificate used: {}\n\
                 hint: ask an admin for one (`clusterctl user add NAME --role operator`), or point --config-file at the admin.toml in the master's data directory",
                files.cert
            ),
        });
    }
    // Our verification of the master's certificate.
    let checks = [
        (
            "UnknownIssuer",
            format!(
                "the master's certificate is not signed by the CA in {}",
                files.ca
            ),
        ),
        (
            "BadSignature",
            format!(
                "the master's certificate is not signed by the CA in {}",
                files.ca
            ),
        ),
        (
            "NotValidForName",
            format!(
                "the master's certificate does not cover {:?} (its server_names do not include it)",
                host(master)
            ),
        ),
        ("Expired", "the master's certificate has expired".to_owned()),
        (
            "NotValidYet",
            "the master's certificate is not valid yet (is this machine's clock right?)".to_owned(),
        ),
        (
            "Revoked",
            "the master's certificate has been revoked".to_owned(),
        ),
    ];
    checks
        .into_iter()
        .find(|(check, _)| chain.contains(&format!("invalid peer certificate: {check}")))
        .map(|(_, what)| Failure {
            code: Failure::REFUSED,
            message: format!("refused: cannot trust the master at {master}: {what}"),
        })
}

/// The host of `https://host:port` (an IPv6 address without brackets).
fn host(master: &str) -> &str {
    let rest = master.split_once("://").map_or(master, |(_, r)| r);
    let hostport = rest.split('/').next().unwrap_or_default();
    match hostport.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => hostport.rsplit_once(':').map_or(hostport, |(h, _)| h),
    }
}

fn control(channel: Channel) -> Control {
    Control::new(channel).max_decoding_message_size(64 * 1024 * 1024)
}

impl Client {
    /// Connects to the first of the target's masters (in this client's
    /// order) that answers; fails naming every master and why.
    pub async fn connect(target: &Target) -> Result<Client, Failure> {
        let connector = Connector::tls(target)?;
        let rotation = Rotation::new(&target.masters, random_below);
        Client::connect_with(rotation, connector, target.origin.clone(), PATIENCE).await
    }

    pub(crate) async fn connect_with(
        mut rotation: Rotation,
        connector: Connector,
        origin: String,
        patience: Patience,
    ) -> Result<Client, Failure> {
        let mut said = Vec::new();
        for _ in 0..rotation.order().len() {
            let master = rotation.current().to_owned();
            match connector.connect(&master).await {
                Ok(channel) => {
                    return Ok(Client {
                        control: control(channel),
                        rotation,
                        connector,
                        origin,
                        patience,
                    });
                }
                Err(ConnectError::Settings(e)) => return Err(Failure::bad_input(e)),
                Err(ConnectError::Refused(f)) => return Err(f),
                Err(ConnectError::Unreachable(e)) => said.push((master, e)),
            }
            rotation.advance();
        }
        let hint =
            "hint: is it running? `clusterctl dev` starts one locally; --master picks another";
        Err(Failure::unreachable(match said.as_slice() {
            [(master, e)] => {
                format!("cannot reach the master at {master} (from {origin}): {e}\n{hint}")
            }
            all => {
                let mut text = format!(
                    "cannot reach any of the {} masters (from {origin}):",
                    all.len()
                );
                for (master, e) in all {
                    text.push_str(&format!("\n  {master}: {e}"));
                }
                format!("{text}\n{hint}")
            }
        }))
    }

    /// The master this client talks to now.
    pub fn master(&self) -> &str {
        self.rotation.current()
    }

    /// The current master went away (the call failed with `status`): on
    /// to the next masters until one connects — after each whole pass of
    /// failures a backoff first — or, once the outage is as old as the
    /// client's patience, a failure naming what every master said.
    pub(crate) async fn failover(
        &mut self,
        outage: &mut Outage,
        status: &tonic::Status,
    ) -> Result<(), Failure> {
        let mut master = self.rotation.current().to_owned();
        let mut why = said(status);
        let masters = self.rotation.order().len();
        loop {
            let pass = outage.failed(&master, why, masters);
            let elapsed = outage.since.elapsed();
            if elapsed >= self.patience.give_up {
                return Err(outage.give_up(&self.origin));
            }
            if let Some(pass) = pass {
                let p = self.patience;
                let delay = backoff(pass, p.min, p.max, random_unit());
                if elapsed + delay >= p.give_up {
                    return Err(outage.give_up(&self.origin));
                }
                tokio::time::sleep(delay).await;
            }
            self.rotation.advance();
            master = self.rotation.current().to_owned();
            match self.connector.connect(&master).await {
                Ok(channel) => {
                    self.control = control(channel);
                    return Ok(());
                }
                Err(ConnectError::Settings(e)) => return Err(Failure::bad_input(e)),
                Err(ConnectError::Refused(f)) => return Err(f),
                Err(ConnectError::Unreachable(e)) => why = format!("cannot connect: {e}"),
            }
        }
    }

    /// One unary call, sent again to the next master while its master
    /// went away (see the module's opening). A write carries a request id,
    /// the same on every retry.
    pub(crate) async fn unary<Req, Resp, Fut>(
        &mut self,
        call: Call,
        message: Req,
        send: impl Fn(Control, tonic::Request<Req>) -> Fut,
    ) -> Result<Resp, Failure>
    where
        Req: Clone,
        Fut: Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
    {
        self.unary_status(call, message, send)
            .await?
            .map_err(Failure::from_status)
    }

    /// As [`Client::unary`], with the master's refusal left as a status
    /// for the caller to read (`Err` only when no master answered).
    pub(crate) async fn unary_status<Req, Resp, Fut>(
        &mut self,
        call: Call,
        message: Req,
        send: impl Fn(Control, tonic::Request<Req>) -> Fut,
    ) -> Result<Result<Resp, tonic::Status>, Failure>
    where
        Req: Clone,
        Fut: Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
    {
        let id = (call == Call::Write).then(RequestId::random);
        let began = Instant::now();
        let mut outage: Option<Outage> = None;
        loop {
            let mut request = tonic::Request::new(message.clone());
            if let Some(id) = &id {
                id.attach(&mut request);
            }
            match send(self.control.clone(), request).await {
                Ok(response) => return Ok(Ok(response.into_inner())),
                Err(status) if went_away(&status) => {
                    // TLS 1.3: a refused client certificate is heard at
                    // the first call; no other try will fare better.
                    if let Connector::Tls { files, .. } = &self.connector
                        && let Some(refused) =
                            tls_refusal(&said(&status), self.rotation.current(), files)
                    {
                        return Err(refused);
                    }
                    let outage = outage.get_or_insert_with(|| Outage::since(call, began));
                    self.failover(outage, &status).await?;
                }
                Err(status) => return Ok(Err(status)),
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
