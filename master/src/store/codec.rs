//! How records read as stored values, the same for every backend: each
//! record as JSON under a key naming its kind and id (`node/<id>`,
//! `route/<domain>`, …). Backends add what is theirs: sled its revision
//! envelope and big-endian event numbers, etcd its prefix and native
//! revisions.

use super::{Key, Record, StoreError};
use serde::Serialize;

pub(super) fn to_json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("records always serialise")
}

pub(super) fn record_json(r: &Record) -> Vec<u8> {
    match r {
        Record::Node(n) => to_json(n),
        Record::Token(t) => to_json(t),
        Record::NodeKey(k) => to_json(k),
        Record::Revoked(_) => b"null".to_vec(),
        Record::User(u) => to_json(u),
        Record::Group { expr, .. } => to_json(expr),
        Record::Upstream { source, .. } => to_json(source),
        Record::Route { chain, .. } => to_json(chain),
        Record::Settings(s) => to_json(s),
        Record::Job(j) => to_json(j),
        Record::Rollout(r) => to_json(r),
        Record::Request(r) => to_json(r),
        Record::Alert(a) => to_json(a),
    }
}

/// Whether a record of this key is part of the state (compared, loaded),
/// rather than appended or rewritten history.
pub(super) fn is_state(k: &Key) -> bool {
    !matches!(k, Key::Job(_) | Key::Rollout(_) | Key::Event(_))
}

pub(super) fn decode<T: serde::de::DeserializeOwned>(key: &str, v: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(v).map_err(|e| StoreError::Corrupt {
        key: key.to_owned(),
        reason: e.to_string(),
    })
}

/// The state record stored under `key` (`kind/rest`) with value `json`;
/// `None` for a key that is not a state record.
pub(super) fn record_of(key: &str, json: &[u8]) -> Result<Option<Record>, StoreError> {
    let (kind, rest) = key.split_once('/').unwrap_or((key, ""));
    let rest = rest.to_owned();
    Ok(Some(match kind {
        "node" => Record::Node(decode(key, json)?),
        "token" => Record::Token(decode(key, json)?),
        "key" => Record::NodeKey(decode(key, json)?),
        "revoked" => Record::Revoked(rest),
        "user" => Record::User(decode(key, json)?),
        "group" => Record::Group {
            name: rest,
            expr: decode(key, json)?,
        },
        "upstream" => Record::Upstream {
            name: rest,
            source: decode(key, json)?,
        },
        "route" => Record::Route {
            domain: rest,
            chain: decode(key, json)?,
        },
        "meta" if rest == "settings" => Record::Settings(decode(key, json)?),
        "alert" => Record::Alert(decode(key, json)?),
        "request" => {
            let mut r: super::RequestRecord = decode(key, json)?;
            r.id = rest;
            Record::Request(r)
        }
        _ => return Ok(None),
    }))
}

/// An alert's key from its text's part after `alert/`:
/// `node/metric/severity/device` (the device, a mount point, may hold `/`).
#[cfg_attr(not(feature = "etcd"), allow(dead_code))]
pub(super) fn alert_key(rest: &str) -> Option<cluster_model::alerts::AlertKey> {
    let mut parts = rest.splitn(4, '/');
    let node = parts.next()?.to_owned().try_into().ok()?;
    let metric = parts.next()?.parse().ok()?;
    let severity = match parts.next()? {
        "warning" => cluster_model::alerts::Severity::Warning,
        "critical" => cluster_model::alerts::Severity::Critical,
        _ => return None,
    };
    Some(cluster_model::alerts::AlertKey {
        node,
        metric,
        device: parts.next()?.to_owned(),
        severity,
    })
}

/// The key of a record, as text: events as 20 zero-padded digits, so
/// keys sort in their order.
#[cfg_attr(not(feature = "etcd"), allow(dead_code))]
pub(super) fn key_text(k: &Key) -> String {
    match k {
        Key::Event(seq) => format!("event/{seq:020}"),
        other => other.to_string(),
    }
}
