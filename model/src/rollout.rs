//! What a rollout stores: its parameters, each node's phase, and a log of
//! what happened, in order.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How a rollout goes (Nomad's migrate block, with Fabric's loop).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutParams {
    /// "N" or "N%" of the targeted nodes out of rotation at once.
    pub batch: String,
    /// Failed nodes tolerated before the rollout halts (they stay drained).
    pub max_failures: u32,
    /// How long a batch may take to be really out of rotation.
    pub drain_timeout_ms: u64,
    /// How long a node's checks must pass before it goes back in.
    pub healthy_for_ms: u64,
    /// How long a node may take to become healthy, and to be back in
    /// rotation after the undrain.
    pub health_timeout_ms: u64,
    /// The command's timeout per node (0: none).
    pub command_timeout_ms: u64,
    /// Start even when a batch could take every online node of a role out.
    pub allow_last: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutState {
    Running,
    Succeeded,
    /// Halted on failures; failed nodes stay drained with the reason.
    Failed,
    Aborted,
    /// The master restarted mid-way; held until resumed.
    Interrupted,
}

impl RolloutState {
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutState::Running => "running",
            RolloutState::Succeeded => "succeeded",
            RolloutState::Failed => "failed",
            RolloutState::Aborted => "aborted",
            RolloutState::Interrupted => "interrupted",
        }
    }
}

/// Where one node is in the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodePhase {
    Pending,
    Draining,
    Running,
    WaitingHealthy,
    Undraining,
    Done,
    /// Left drained, with the reason in `details`.
    Failed,
    /// Left out before its turn: it no longer matches the target (its
    /// grains changed); the reason in `details`.
    Skipped,
}

impl NodePhase {
    pub fn as_str(self) -> &'static str {
        match self {
            NodePhase::Pending => "pending",
            NodePhase::Draining => "draining",
            NodePhase::Running => "running",
            NodePhase::WaitingHealthy => "waiting healthy",
            NodePhase::Undraining => "undraining",
            NodePhase::Done => "done",
            NodePhase::Failed => "failed",
            NodePhase::Skipped => "skipped",
        }
    }

    /// Whether the rollout has the node out of rotation in this phase.
    pub fn is_out(self) -> bool {
        matches!(
            self,
            NodePhase::Draining
                | NodePhase::Running
                | NodePhase::WaitingHealthy
                | NodePhase::Failed
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    pub time_ms: u64,
    /// Empty for the rollout as a whole.
    pub node: String,
    pub message: String,
}

/// The expression a rollout targets, matched again before each batch:
/// nodes whose grains come to match join the end of the order, pending
/// ones that no longer match are skipped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selector {
    pub kind: crate::targets::Kind,
    pub expression: String,
    pub delimiter: crate::targets::Delimiter,
}

impl Selector {
    pub fn spec(&self) -> crate::TargetSpec {
        crate::TargetSpec::Expr(self.kind, self.expression.clone(), self.delimiter)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutRecord {
    pub id: String,
    /// As typed, for people.
    pub target: String,
    /// The expression matched again before each batch (`None` for names:
    /// they are the nodes meant, whatever their grains).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<Selector>,
    pub argv: Vec<String>,
    pub by: String,
    pub started_ms: u64,
    pub finished_ms: u64,
    pub params: RolloutParams,
    /// Nodes out of rotation at once.
    pub batch_size: usize,
    pub state: RolloutState,
    /// Node name → phase.
    pub nodes: BTreeMap<String, NodePhase>,
    /// The order nodes go in.
    pub order: Vec<String>,
    /// Why a node failed.
    pub details: BTreeMap<String, String>,
    /// The most nodes the rollout had out of rotation at once.
    pub max_out: usize,
    pub log: Vec<LogLine>,
    /// The master driving it (with several masters; empty in records
    /// from before they could be several).
    #[serde(default)]
    pub master: String,
}

/// Log lines kept per rollout (the oldest go first).
const LOG_LIMIT: usize = 2000;

impl RolloutRecord {
    pub fn log(&mut self, now_ms: u64, node: &str, message: &str) {
        if self.log.len() >= LOG_LIMIT {
            self.log.remove(0);
        }
        self.log.push(LogLine {
            time_ms: now_ms,
            node: node.to_owned(),
            message: message.to_owned(),
        });
    }

    pub fn set(&mut self, node: &str, phase: NodePhase) {
        self.nodes.insert(node.to_owned(), phase);
        let out = self.nodes.values().filter(|p| p.is_out()).count();
        self.max_out = self.max_out.max(out);
    }

    pub fn count(&self, phase: NodePhase) -> usize {
        self.nodes.values().filter(|p| **p == phase).count()
    }

    pub fn failed(&self) -> Vec<&str> {
        self.order
            .iter()
            .filter(|n| self.nodes.get(*n) == Some(&NodePhase::Failed))
            .map(String::as_str)
            .collect()
    }
}
