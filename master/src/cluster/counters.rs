//! What this master has done, counted for `/metrics` (`prometheus-client`
//! families, registered into each scrape's registry, which ends each help
//! text with a period): drains and
//! undrains, jobs' results per node, rollouts' changes of state, gRPC
//! calls by method and code with how long each took to answer. With
//! several masters each counts what was done through it; Prometheus sums.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::time::Duration;

type Labelled = Family<[(&'static str, &'static str); 1], Counter>;

/// A gRPC method: `Control/ListNodes`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Method {
    pub method: String,
}

/// A gRPC method and the code it answered (`OK`, `NotFound`, …, as
/// grpc-go's own metrics name them).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodCode {
    pub method: String,
    pub code: String,
}

fn latency_histogram() -> Histogram {
    Histogram::new(crate::cluster::BUCKETS)
}

pub struct Counters {
    /// Nodes taken out: `kind` is `drain` or `maintenance`.
    pub drains: Labelled,
    /// Nodes put back.
    pub undrains: Counter,
    /// Each node's result of a job: `result` is `ok`, `failed`, …
    pub job_results: Labelled,
    /// Rollouts entering a state (`running` when started or resumed).
    pub rollouts: Labelled,
    /// gRPC calls answered, by method and code.
    pub grpc_calls: Family<MethodCode, Counter>,
    /// How long each took to answer (a stream: to its first answer).
    pub grpc_seconds: Family<Method, Histogram, fn() -> Histogram>,
}

impl Default for Counters {
    fn default() -> Counters {
        Counters {
            drains: Labelled::default(),
            undrains: Counter::default(),
            job_results: Labelled::default(),
            rollouts: Labelled::default(),
            grpc_calls: Family::default(),
            grpc_seconds: Family::new_with_constructor(latency_histogram),
        }
    }
}

impl Counters {
    pub fn drained(&self, maintenance: bool) {
        let kind = if maintenance { "maintenance" } else { "drain" };
        self.drains.get_or_create(&[("kind", kind)]).inc();
    }

    pub fn job_result(&self, result: &'static str) {
        self.job_results.get_or_create(&[("result", result)]).inc();
    }

    /// A gRPC call answered: `path` is `/cluster.v1.Control/ListNodes`.
    pub fn grpc_call(&self, path: &str, code: tonic::Code, took: Duration) {
        // Paths are the services' own (an unknown one answers
        // Unimplemented under one label), so the labels stay bounded.
        let method = match path
            .rsplit_once('/')
            .map(|(s, m)| (s.rsplit('.').next(), m))
        {
            Some((Some(service), m)) if code != tonic::Code::Unimplemented => {
                format!("{}/{m}", service.trim_start_matches('/'))
            }
            _ => "unknown".to_owned(),
        };
        self.grpc_seconds
            .get_or_create(&Method {
                method: method.clone(),
            })
            .observe(took.as_secs_f64());
        self.grpc_calls
            .get_or_create(&MethodCode {
                method,
                // As grpc-go names them: OK, NotFound, InvalidArgument, …
                code: match code {
                    tonic::Code::Ok => "OK".to_owned(),
                    other => format!("{other:?}"),
                },
            })
            .inc();
    }

    pub fn rollout(&self, state: &'static str) {
        self.rollouts.get_or_create(&[("state", state)]).inc();
    }

    /// Into a scrape's registry (the families are shared, not copied).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "cluster_drains",
            "Nodes taken out of service through this master, by kind",
            self.drains.clone(),
        );
        registry.register(
            "cluster_undrains",
            "Nodes put back in service through this master",
            self.undrains.clone(),
        );
        registry.register(
            "cluster_job_node_results",
            "Jobs' results, one per node, by result",
            self.job_results.clone(),
        );
        registry.register(
            "cluster_grpc_calls",
            "gRPC calls answered by this master, by method and code",
            self.grpc_calls.clone(),
        );
        registry.register_with_unit(
            "cluster_grpc_call",
            "How long this master took to answer gRPC calls (a stream: its first answer), by method",
            Unit::Seconds,
            self.grpc_seconds.clone(),
        );
        registry.register(
            "cluster_rollout_states",
            "Rollouts entering each state (running: started or resumed)",
            self.rollouts.clone(),
        );
    }
}
