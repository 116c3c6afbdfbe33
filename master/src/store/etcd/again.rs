//! Requests sent again. etcd's client spreads requests over every
//! endpoint, and the one it picks may be a member that is down or not
//! started yet: the request fails at once, unsent. etcd's own Go client
//! retries such requests on another member (its retry interceptor, for
//! "safe" requests); so does this one, within a bounded patience, for the
//! requests that may be sent twice — reads, and the transactions whose
//! second attempt does no more than the first (a claim).

use super::{EngineError, StoreError};
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// How long a read may go on being tried (a member's election takes
/// about a second; one that lost its leader holds a request for ~7 s).
pub(super) const PATIENCE: Duration = Duration::from_secs(8);
/// One attempt, so one stuck on a dying member does not use it all.
const ATTEMPT: Duration = Duration::from_secs(2);
const FIRST_PAUSE: Duration = Duration::from_millis(10);
const MAX_PAUSE: Duration = Duration::from_millis(200);

/// Whether `e` says the request did not get through, rather than that
/// etcd refused it (a bad argument, a compacted revision, a lost lease).
pub(super) fn transient(e: &etcd_client::Error) -> bool {
    use tonic::Code;
    match e {
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        etcd_client::Error::GRpcStatus(s) => matches!(
            s.code(),
            Code::Unavailable | Code::DeadlineExceeded | Code::Unknown | Code::Cancelled
        ),
        _ => false,
    }
}

/// `attempt()` until it answers, fails for a reason etcd gives, or
/// `patience` is spent; the last failure, as the store's error.
pub(super) async fn again<T, F, Fut>(patience: Duration, mut attempt: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, etcd_client::Error>>,
{
    let deadline = Instant::now() + patience;
    let mut pause = FIRST_PAUSE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let failed: EngineError = match tokio::time::timeout(left.min(ATTEMPT), attempt()).await {
            Ok(Ok(answer)) => return Ok(answer),
            Ok(Err(e)) if !transient(&e) => return Err(StoreError::Unavailable(Box::new(e))),
            Ok(Err(e)) => Box::new(e),
            Err(_) => format!("no answer within {:?}", left.min(ATTEMPT)).into(),
        };
        if Instant::now() + pause >= deadline {
            return Err(StoreError::Unavailable(
                format!("{failed} (tried for {patience:?})").into(),
            ));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn refused() -> etcd_client::Error {
        etcd_client::Error::GRpcStatus(tonic::Status::unavailable("tcp connect error"))
    }

    #[tokio::test]
    async fn a_request_that_did_not_get_through_is_sent_again() {
        let tries = AtomicU32::new(0);
        let answer = again(PATIENCE, || async {
            match tries.fetch_add(1, Ordering::SeqCst) {
                0 | 1 => Err(refused()),
                _ => Ok(7),
            }
        })
        .await;
        assert_eq!(answer.unwrap(), 7);
        assert_eq!(tries.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_refusal_is_not_sent_again() {
        let tries = AtomicU32::new(0);
        let answer: Result<(), _> = again(PATIENCE, || async {
            tries.fetch_add(1, Ordering::SeqCst);
            Err(etcd_client::Error::GRpcStatus(
                tonic::Status::invalid_argument("etcdserver: too many operations in txn request"),
            ))
        })
        .await;
        assert!(
            answer
                .unwrap_err()
                .to_string()
                .contains("too many operations")
        );
        assert_eq!(tries.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn patience_is_bounded_and_the_last_failure_named() {
        let tries = AtomicU32::new(0);
        let answer: Result<(), _> = tokio::time::timeout(
            Duration::from_secs(30),
            again(Duration::from_secs(1), || async {
                tries.fetch_add(1, Ordering::SeqCst);
                Err(refused())
            }),
        )
        .await
        .expect("gives up once its patience is spent");
        let e = answer.unwrap_err().to_string();
        assert!(
            e.contains("tcp connect error") && e.contains("tried for 1s"),
            "{e}"
        );
        assert!(tries.load(Ordering::SeqCst) > 1);
    }
}
