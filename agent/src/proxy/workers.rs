//! The threads client connections run on, nginx-style: one
//! single-threaded tokio runtime per worker, started with the first
//! `serve`, stopped when the proxy is dropped. The accept loop hands each
//! new connection to the worker with the fewest open, and the connection,
//! its requests and the backend connections they use stay on that thread:
//! no work stealing, no cross-thread wake-ups, and each worker keeps its
//! own keep-alive pool per backend ([`current`] says which).

use std::cell::Cell;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

thread_local! {
    /// 1-based index of the worker this thread is; 0 elsewhere.
    static INDEX: Cell<usize> = const { Cell::new(0) };
}

/// Which keep-alive pool this thread uses: 0 outside the workers, `1..=n`
/// on worker `n`.
pub(super) fn current() -> usize {
    INDEX.with(Cell::get)
}

pub(super) struct Worker {
    pub handle: tokio::runtime::Handle,
    /// Client connections open on this worker.
    pub connections: Arc<AtomicUsize>,
    /// Dropped with the proxy: the worker's runtime then stops.
    _stop: tokio::sync::oneshot::Sender<()>,
}

pub(super) struct Workers {
    workers: Vec<Worker>,
}

impl Workers {
    pub fn start(n: usize) -> io::Result<Workers> {
        let mut workers = Vec::with_capacity(n);
        for i in 0..n {
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let (tx, rx) = std::sync::mpsc::sync_channel(1);
            std::thread::Builder::new()
                .name(format!("proxy-worker-{}", i + 1))
                .spawn(move || {
                    let rt = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt,
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    };
                    INDEX.with(|c| c.set(i + 1));
                    let _ = tx.send(Ok(rt.handle().clone()));
                    rt.block_on(async {
                        let _ = stopped.await;
                    });
                })?;
            let handle = rx
                .recv()
                .map_err(|_| io::Error::other("a proxy worker thread died while starting"))??;
            workers.push(Worker {
                handle,
                connections: Arc::new(AtomicUsize::new(0)),
                _stop: stop,
            });
        }
        Ok(Workers { workers })
    }

    /// The worker with the fewest open connections.
    pub fn least_busy(&self) -> &Worker {
        self.workers
            .iter()
            .min_by_key(|w| w.connections.load(Ordering::Relaxed))
            .expect("at least one worker")
    }
}

/// Counts a connection on its worker for as long as it lives.
pub(super) struct Open(pub Arc<AtomicUsize>);

impl Open {
    pub fn new(counter: &Arc<AtomicUsize>) -> Open {
        counter.fetch_add(1, Ordering::Relaxed);
        Open(counter.clone())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
