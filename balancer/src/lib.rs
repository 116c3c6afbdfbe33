//! The load-balancing model, shared by the master (which stores and
//! validates it), the agent (whose proxy evaluates it) and clusterctl
//! (`route test`, `route import`). Pure: no I/O, no clocks.
//!
//! - [`routes`] — per-domain rule chains in ELB's model: `ua`, `path`,
//!   `header` and `backend` rules linked by `succ`/`fail`; validation with
//!   the exact place of every problem; compilation and evaluation.
//! - [`upstream`] — upstreams: listed servers or a role's online nodes,
//!   and the checks of their names, addresses and parameters.
//! - [`elb`] — ELB's JSON formats for domains and upstreams.

pub mod elb;
pub mod routes;
pub mod upstream;

pub use routes::{
    Decision, Domain, Headers, Outcome, Pick, Request, RouteError, RouteTable, Rule, Step,
};
pub use upstream::{Server, ServerError, UpstreamSource};
