//! A node's alert levels on the wire (`NodeInfo.levels`): what `top`
//! colours by.

use super::WireError;
use crate::alerts::{Levels, Metric, MetricLevels};
use cluster_proto as pb;

pub(super) fn to_wire(l: &Levels) -> Vec<pb::MetricLevels> {
    Metric::ALL
        .into_iter()
        .map(|m| {
            let v = l.get(m);
            pb::MetricLevels {
                metric: m.as_str().to_owned(),
                careful: v.careful,
                warning: v.warning,
                critical: v.critical,
                clear: v.clear,
                for_ms: v.for_ms,
                enabled: v.enabled,
            }
        })
        .collect()
}

/// A node's levels (`None` when the master sent none). A metric it did
/// not send keeps its default.
pub(super) fn of(wire: Vec<pb::MetricLevels>) -> Result<Option<Levels>, WireError> {
    if wire.is_empty() {
        return Ok(None);
    }
    let mut levels = Levels::default();
    for w in wire {
        let metric: Metric = w
            .metric
            .parse()
            .map_err(|e: String| WireError::invalid("node.levels.metric", e))?;
        *levels.get_mut(metric) = MetricLevels {
            careful: w.careful,
            warning: w.warning,
            critical: w.critical,
            clear: w.clear,
            for_ms: w.for_ms,
            enabled: w.enabled,
        };
    }
    Ok(Some(levels))
}
