//! What this master has done, counted for `/metrics` (`prometheus-client`
//! families, registered into each scrape's registry, which ends each help
//! text with a period): drains and
//! undrains, jobs' results per node, rollouts' changes of state. With
//! several masters each counts what was done through it; Prometheus sums.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

type Labelled = Family<[(&'static str, &'static str); 1], Counter>;

#[derive(Default)]
pub struct Counters {
    /// Nodes taken out: `kind` is `drain` or `maintenance`.
    pub drains: Labelled,
    /// Nodes put back.
    pub undrains: Counter,
    /// Each node's result of a job: `result` is `ok`, `failed`, …
    pub job_results: Labelled,
    /// Rollouts entering a state (`running` when started or resumed).
    pub rollouts: Labelled,
}

impl Counters {
    pub fn drained(&self, maintenance: bool) {
        let kind = if maintenance { "maintenance" } else { "drain" };
        self.drains.get_or_create(&[("kind", kind)]).inc();
    }

    pub fn job_result(&self, result: &'static str) {
        self.job_results.get_or_create(&[("result", result)]).inc();
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
            "cluster_rollout_states",
            "Rollouts entering each state (running: started or resumed)",
            self.rollouts.clone(),
        );
    }
}
