//! The failover, on a pretend network: the order masters are tried in,
//! retries with the same request id, when it gives up and what it says.

use super::*;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

/// A pretend network: which masters are down, and every connect.
#[derive(Debug, Default)]
pub struct Net {
    pub down: BTreeSet<String>,
    pub connects: Vec<String>,
}

pub fn connect(net: &Mutex<Net>, master: &str) -> Result<Channel, ConnectError> {
    let mut net = net.lock().unwrap();
    net.connects.push(master.to_owned());
    if net.down.contains(master) {
        return Err(ConnectError::Unreachable("connection refused".into()));
    }
    // Never used: the calls under test are made by the test itself.
    Ok(Endpoint::from_static("http://127.0.0.1:9").connect_lazy())
}

fn masters(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("https://m{i}:7440")).collect()
}

const QUICK: Patience = Patience {
    give_up: Duration::from_millis(400),
    min: Duration::from_millis(1),
    max: Duration::from_millis(4),
};

/// A client over `n` masters tried in the order m1, m2, …, with
/// `down` refusing connections.
async fn client(n: usize, down: &[usize]) -> (Client, Arc<Mutex<Net>>) {
    let net = Arc::new(Mutex::new(Net {
        down: down.iter().map(|i| format!("https://m{i}:7440")).collect(),
        connects: Vec::new(),
    }));
    let rotation = Rotation::new(&masters(n), |n| n - 1);
    let client = Client::connect_with(
        rotation,
        Connector::Fake(net.clone()),
        "--master".into(),
        QUICK,
    )
    .await
    .map_err(|f| f.message)
    .unwrap();
    (client, net)
}

fn connects(net: &Mutex<Net>) -> Vec<String> {
    let mut net = net.lock().unwrap();
    std::mem::take(&mut net.connects)
        .into_iter()
        .map(|m| m["https://".len()..][..2].to_owned())
        .collect()
}

/// What each attempt of a call saw: (master, request id); its answers
/// come from `script` in turn.
#[derive(Clone, Default)]
struct Script {
    answers: Arc<Mutex<Vec<Result<u32, tonic::Status>>>>,
    seen: Arc<Mutex<Vec<Option<String>>>>,
}

impl Script {
    fn new(answers: Vec<Result<u32, tonic::Status>>) -> Script {
        let mut answers = answers;
        answers.reverse();
        Script {
            answers: Arc::new(Mutex::new(answers)),
            seen: Default::default(),
        }
    }

    fn send(
        &self,
    ) -> impl Fn(
        Control,
        tonic::Request<()>,
    ) -> std::future::Ready<Result<tonic::Response<u32>, tonic::Status>>
    + use<> {
        let this = self.clone();
        move |_, request| {
            let id = request
                .metadata()
                .get(REQUEST_ID)
                .map(|v| v.to_str().unwrap().to_owned());
            this.seen.lock().unwrap().push(id);
            let answer = this
                .answers
                .lock()
                .unwrap()
                .pop()
                .expect("a scripted answer");
            std::future::ready(answer.map(tonic::Response::new))
        }
    }

    fn ids(&self) -> Vec<Option<String>> {
        self.seen.lock().unwrap().clone()
    }
}

fn gone() -> tonic::Status {
    tonic::Status::unavailable("the master is stopping")
}

#[tokio::test]
async fn connect_tries_each_master_in_order_and_names_them_all() {
    let (c, net) = client(3, &[1, 2]).await;
    assert_eq!(c.master(), "https://m3:7440");
    assert_eq!(connects(&net), ["m1", "m2", "m3"]);

    let net = Arc::new(Mutex::new(Net {
        down: masters(2).into_iter().collect(),
        ..Net::default()
    }));
    let rotation = Rotation::new(&masters(2), |n| n - 1);
    let err = Client::connect_with(rotation, Connector::Fake(net), "--master".into(), QUICK)
        .await
        .err()
        .unwrap();
    assert_eq!(err.code, Failure::UNREACHABLE);
    assert!(
        err.message.starts_with(
            "cannot reach any of the 2 masters (from --master):\n  \
             https://m1:7440: connection refused\n  https://m2:7440: connection refused\nhint:"
        ),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn a_write_that_lost_its_master_goes_to_the_next_with_the_same_id() {
    let (mut c, net) = client(3, &[2]).await;
    connects(&net);
    let script = Script::new(vec![Err(gone()), Ok(7)]);
    let answer = c.unary(Call::Write, (), script.send()).await.unwrap();
    assert_eq!(answer, 7);
    // m2 is down too: m3 answers.
    assert_eq!(connects(&net), ["m2", "m3"]);
    assert_eq!(c.master(), "https://m3:7440");
    let ids = script.ids();
    assert_eq!(ids.len(), 2);
    let id = ids[0].clone().expect("a write carries a request id");
    assert_eq!(id.len(), 32);
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    assert_eq!(ids[1].as_ref(), Some(&id), "the retry carries the same id");

    // The next write is another operation: another id.
    let script2 = Script::new(vec![Ok(8)]);
    c.unary(Call::Write, (), script2.send()).await.unwrap();
    assert_ne!(script2.ids()[0].as_ref(), Some(&id));
    // A read carries none.
    let read = Script::new(vec![Err(gone()), Ok(9)]);
    assert_eq!(c.unary(Call::Read, (), read.send()).await.unwrap(), 9);
    assert_eq!(read.ids(), [None, None]);
}

#[tokio::test]
async fn a_master_that_answers_no_is_not_asked_again() {
    let (mut c, net) = client(2, &[]).await;
    connects(&net);
    let script = Script::new(vec![Err(tonic::Status::not_found("no node web-9"))]);
    let err = c.unary(Call::Write, (), script.send()).await.unwrap_err();
    assert_eq!(err.code, Failure::BAD_INPUT);
    assert_eq!(script.ids().len(), 1);
    assert!(connects(&net).is_empty());
}

#[tokio::test]
async fn it_gives_up_naming_every_master_and_what_it_said() {
    let (mut c, net) = client(2, &[]).await;
    net.lock().unwrap().down = masters(2).into_iter().collect();
    let script = Script::new(vec![Err(gone())]);
    let started = Instant::now();
    let err = c.unary(Call::Write, (), script.send()).await.unwrap_err();
    let took = started.elapsed();
    assert!(
        took < QUICK.give_up + Duration::from_millis(200),
        "{took:?}"
    );
    assert_eq!(err.code, Failure::UNREACHABLE);
    let m = &err.message;
    assert!(m.starts_with("no master answered for "), "{m}");
    assert!(m.contains("(from --master):\n  https://m1:7440: cannot connect: connection refused\n  https://m2:7440: cannot connect: connection refused"), "{m}");
    assert!(
        m.contains("the change may or may not have been made"),
        "{m}"
    );
    // m1 first (the call's), then the masters in turn, pass after pass.
    let tried = connects(&net);
    assert!(tried.len() >= 4, "{tried:?}");
    assert_eq!(tried[0], "m1", "{tried:?}");
    assert!(tried.windows(2).all(|w| w[0] != w[1]), "{tried:?}");
}

#[tokio::test]
async fn a_unary_call_gives_up_its_patience_after_it_began_not_after_its_first_failure() {
    let (mut c, net) = client(2, &[]).await;
    net.lock().unwrap().down = masters(2).into_iter().collect();
    let started = Instant::now();
    // The first attempt is held for the whole patience (a master waiting
    // on its store), then its master goes away; no other answers.
    let err = c
        .unary(Call::Write, (), |_, _| async {
            tokio::time::sleep(QUICK.give_up).await;
            Err::<tonic::Response<u32>, _>(gone())
        })
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert_eq!(err.code, Failure::UNREACHABLE);
    assert!(
        took < QUICK.give_up + QUICK.give_up / 2,
        "gave up {took:?} after the call began: the patience is {:?}",
        QUICK.give_up
    );
}

#[test]
fn only_a_master_gone_is_worth_another_master() {
    use tonic::{Code, Status};
    assert!(went_away(&Status::unavailable("leader lost")));
    assert!(!went_away(&Status::new(
        Code::Unknown,
        "a master's own answer"
    )));
    assert!(!went_away(&Status::internal("a master's own answer")));
    assert!(!went_away(&Status::deadline_exceeded("slow")));
    assert!(!went_away(&Status::failed_precondition("no")));
    let broken = Status::from_error(Box::new(std::io::Error::other("connection reset")));
    assert_eq!(broken.code(), Code::Unknown);
    assert!(went_away(&broken), "a broken connection, made here");
}

#[test]
fn request_ids_are_128_bits_in_hex_and_fit_the_contract() {
    let id = RequestId::from_bytes([0xab; 16]);
    assert_eq!(id.as_str(), "abababababababababababababababab");
    let a = RequestId::random();
    let b = RequestId::random();
    assert_ne!(a, b);
    for id in [&a, &b] {
        let s = id.as_str();
        assert!(s.len() <= 64 && s.len() == 32, "{s}");
        assert!(
            s.bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"._-".contains(&c)),
            "{s}"
        );
    }
    let mut request = tonic::Request::new(());
    a.attach(&mut request);
    assert_eq!(
        request
            .metadata()
            .get(REQUEST_ID)
            .unwrap()
            .to_str()
            .unwrap(),
        a.as_str()
    );
}

#[test]
fn the_order_is_a_shuffle_and_each_master_comes_first_sometimes() {
    let all = masters(4);
    let mut first = BTreeSet::new();
    for _ in 0..200 {
        let r = Rotation::new(&all, random_below);
        let mut sorted = r.order().to_vec();
        sorted.sort();
        assert_eq!(sorted, all);
        first.insert(r.current().to_owned());
    }
    assert_eq!(first.len(), 4);
    let mut r = Rotation::new(&all, |n| n - 1);
    let mut seen = Vec::new();
    for _ in 0..5 {
        seen.push(r.current()["https://".len()..][..2].to_owned());
        r.advance();
    }
    assert_eq!(seen, ["m1", "m2", "m3", "m4", "m1"]);
}

#[test]
fn backoff_is_full_jitter_within_its_bounds() {
    let ms = Duration::from_millis;
    let (min, max) = (PATIENCE.min, PATIENCE.max);
    assert_eq!((min, max), (ms(100), ms(5000)));
    assert_eq!(backoff(0, min, max, 0.0), ms(100));
    assert_eq!(backoff(0, min, max, 1.0), ms(200));
    assert_eq!(backoff(3, min, max, 0.5), ms(850));
    assert_eq!(backoff(9, min, max, 1.0), ms(5000));
    for pass in 0..30 {
        for _ in 0..20 {
            let d = backoff(pass, min, max, random_unit());
            assert!(d >= min && d <= max, "{pass}: {d:?}");
        }
    }
    for _ in 0..1000 {
        let u = random_unit();
        assert!((0.0..1.0).contains(&u));
    }
}

#[test]
fn the_tls_name_is_the_masters_host() {
    assert_eq!(host("https://10.0.0.1:7440"), "10.0.0.1");
    assert_eq!(host("https://m.example.com:1/x"), "m.example.com");
    assert_eq!(host("https://[::1]:7440"), "::1");
}

#[test]
fn tls_failures_that_no_retry_mends_are_refusals_naming_the_file() {
    let files = TlsFiles {
        ca: "/etc/clusterctl/ca.crt".into(),
        cert: "/home/olga/olga.crt".into(),
    };
    let m = "https://master.example.com:7440";
    let refused = |chain: &str| tls_refusal(chain, m, &files).map(|f| (f.code, f.message));
    let (code, text) =
        refused("transport error: received fatal alert: CertificateExpired").unwrap();
    assert_eq!(code, Failure::REFUSED);
    assert!(
        text.contains("(it has expired); the certificate used: /home/olga/olga.crt"),
        "{text}"
    );
    let (_, text) = refused("invalid peer certificate: UnknownIssuer").unwrap();
    assert!(
        text.contains("not signed by the CA in /etc/clusterctl/ca.crt"),
        "{text}"
    );
    let (_, text) = refused("invalid peer certificate: NotValidForNameContext { .. }").unwrap();
    assert!(
        text.contains("does not cover \"master.example.com\""),
        "{text}"
    );
    assert!(refused("tcp connect error: Connection refused (os error 111)").is_none());
    assert!(refused("connection reset by peer").is_none());
}
