//! Facter-shaped facts: the size format Facter writes, and the live
//! figures laid into a node's facts when they are read.
//!
//! The agent's facts hold only what stays put between two collections
//! (sizes, names, addresses): a figure that moves every second would make
//! every facts interval a change, an event and a write. What moves —
//! `load_averages`, memory and mountpoints' `available`/`used`/`capacity`,
//! `system_uptime` — comes from the node's last usage report, laid into
//! Facter's shapes by [`with_usage`] where facts are shown.

use crate::Grains;
use crate::usage::Usage;
use serde_json::{Map, Value, json};

/// `bytes` as Facter writes a size (`UnitConverter.bytes_to_human_readable`):
/// `"512 bytes"`, `"1.00 KiB"`, `"1.94 GiB"` — two decimals, binary units
/// up to EiB, and a figure that rounds to 1024 written in the next unit.
pub fn human_bytes(bytes: u64) -> String {
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut exp = ((63 - bytes.leading_zeros()) / 10) as usize;
    let mut n = (100.0 * bytes as f64 / 1024f64.powi(exp as i32)).round() / 100.0;
    if (n - 1024.0).abs() < f64::EPSILON && exp < UNITS.len() {
        exp += 1;
        n = 1.0;
    }
    format!("{n:.2} {}", UNITS[exp - 1])
}

/// `part` of `whole` as Facter writes a capacity: `"12.34%"`.
pub fn capacity(part: u64, whole: u64) -> String {
    let pct = if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    };
    format!("{pct:.2}%")
}

/// Lays `usage`'s live figures into `facts` in Facter's shapes:
/// `load_averages {1m, 5m, 15m}`; `memory.system` and `memory.swap`
/// `available`, `used` (and their `_bytes`) and `capacity`; each
/// `mountpoints.PATH` the report has a figure for, the same three;
/// `system_uptime {seconds, hours, days, uptime}` when reported. What the
/// report does not have is left out; sizes stay the collected ones.
pub fn with_usage(facts: &mut Map<String, Value>, usage: &Usage) {
    facts.insert(
        "load_averages".into(),
        json!({ "1m": usage.load[0], "5m": usage.load[1], "15m": usage.load[2] }),
    );
    let memory = object(facts, "memory");
    if usage.mem_total_bytes > 0 {
        // Facter's `used` is total less available (MemAvailable).
        let available = usage
            .mem_available_bytes
            .unwrap_or(usage.mem_total_bytes - usage.mem_used_bytes.min(usage.mem_total_bytes));
        let used = usage.mem_total_bytes.saturating_sub(available);
        live(
            object(memory, "system"),
            usage.mem_total_bytes,
            available,
            used,
        );
    }
    if usage.swap_total_bytes > 0 {
        let used = usage.swap_used_bytes.min(usage.swap_total_bytes);
        let available = usage
            .swap_free_bytes
            .unwrap_or(usage.swap_total_bytes - used);
        live(
            object(memory, "swap"),
            usage.swap_total_bytes,
            available,
            used,
        );
    }
    if memory.is_empty() {
        facts.remove("memory");
    }
    if let Some(Value::Object(mounts)) = facts.get_mut("mountpoints") {
        for d in &usage.disks {
            if let Some(Value::Object(m)) = mounts.get_mut(&d.mount) {
                let used = d.total_bytes.saturating_sub(d.available_bytes);
                live(m, d.total_bytes, d.available_bytes, used);
            }
        }
    }
    if let Some(secs) = usage.uptime_secs {
        facts.insert("system_uptime".into(), uptime(secs));
    }
}

/// Facter's `system_uptime`: `uptime` is `"H:MM hours"` under a day,
/// then `"1 day"`, `"N days"`, as Facter words it.
pub fn uptime(secs: u64) -> Value {
    let (minutes, hours, days) = (secs / 60, secs / 3600, secs / 86400);
    let words = match days {
        0 => format!("{hours}:{:02} hours", minutes % 60),
        1 => "1 day".to_owned(),
        d => format!("{d} days"),
    };
    json!({ "seconds": secs, "hours": hours, "days": days, "uptime": words })
}

fn live(m: &mut Map<String, Value>, total: u64, available: u64, used: u64) {
    m.insert("available".into(), human_bytes(available).into());
    m.insert("available_bytes".into(), available.into());
    m.insert("used".into(), human_bytes(used).into());
    m.insert("used_bytes".into(), used.into());
    m.insert("capacity".into(), capacity(used, total).into());
}

/// The object at `key`, made if absent or not an object.
fn object<'m>(m: &'m mut Map<String, Value>, key: &str) -> &'m mut Map<String, Value> {
    let slot = m
        .entry(key.to_owned())
        .or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    match slot {
        Value::Object(o) => o,
        _ => unreachable!("made an object above"),
    }
}

/// The most roles a node's `roles` grain gives it.
pub const MAX_ROLES: usize = 64;

/// The roles a node's `roles` grain names (the agent puts its roles there:
/// its configuration's, a static `roles` grain's, `balancer`): `None`
/// when the grain is absent or not a list; names that are not valid role
/// names are left out, and at most [`MAX_ROLES`] are taken.
pub fn roles_of(grains: &Grains) -> Option<Vec<String>> {
    let list = grains.get("roles")?.as_array()?;
    let mut roles: Vec<String> = Vec::new();
    for r in list.iter().filter_map(Value::as_str) {
        if roles.len() < MAX_ROLES
            && crate::ids::check_name(r).is_ok()
            && !roles.iter().any(|have| have == r)
        {
            roles.push(r.to_owned());
        }
    }
    Some(roles)
}

/// How many changed keys a message names before "(+N more)".
const NAMED_KEYS: usize = 8;

/// The keys that differ between two collections, sorted: top-level grains
/// by name, then top-level facts as `facts.NAME`.
pub fn changed_keys(
    old_grains: &Grains,
    new_grains: &Grains,
    old_facts: &Grains,
    new_facts: &Grains,
) -> Vec<String> {
    let mut out = Vec::new();
    for (old, new, prefix) in [
        (old_grains, new_grains, ""),
        (old_facts, new_facts, "facts."),
    ] {
        let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
        keys.sort();
        keys.dedup();
        for k in keys {
            if old.get(k) != new.get(k) {
                out.push(format!("{prefix}{}", crate::limits::printable_cut(k, 64)));
            }
        }
    }
    out
}

/// `keys` for a message: the first few, and how many more.
pub fn named(keys: &[String]) -> String {
    let mut s = keys
        .iter()
        .take(NAMED_KEYS)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if keys.len() > NAMED_KEYS {
        s.push_str(&format!(" (+{} more)", keys.len() - NAMED_KEYS));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::DiskUsage;

    #[test]
    fn sizes_as_facter_writes_them() {
        let cases: &[(u64, &str)] = &[
            (0, "0 bytes"),
            (1023, "1023 bytes"),
            (1024, "1.00 KiB"),
            (1536, "1.50 KiB"),
            (1024 * 1024 - 1, "1.00 MiB"),
            (2_083_059_712, "1.94 GiB"),
            (4 << 30, "4.00 GiB"),
            (1 << 40, "1.00 TiB"),
            (5 << 50, "5.00 PiB"),
            (1 << 60, "1.00 EiB"),
            (u64::MAX, "16.00 EiB"),
        ];
        for (bytes, want) in cases {
            assert_eq!(human_bytes(*bytes), *want, "{bytes}");
        }
    }

    #[test]
    fn uptimes_as_facter_words_them() {
        let cases: &[(u64, &str, u64, u64)] = &[
            (59, "0:00 hours", 0, 0),
            (60, "0:01 hours", 0, 0),
            (3599, "0:59 hours", 0, 0),
            (3600, "1:00 hours", 1, 0),
            (86399, "23:59 hours", 23, 0),
            (86400, "1 day", 24, 1),
            (3 * 86400 + 5, "3 days", 72, 3),
        ];
        for (secs, words, hours, days) in cases {
            assert_eq!(
                uptime(*secs),
                json!({"seconds": secs, "hours": hours, "days": days, "uptime": words}),
                "{secs}"
            );
        }
    }

    fn usage() -> Usage {
        Usage {
            load: [0.5, 0.25, 0.125],
            mem_total_bytes: 4 << 30,
            mem_used_bytes: 1 << 30,
            mem_available_bytes: Some(3 << 30),
            swap_total_bytes: 1 << 30,
            swap_used_bytes: 256 << 20,
            disks: vec![
                DiskUsage {
                    mount: "/".into(),
                    total_bytes: 100 << 30,
                    available_bytes: 75 << 30,
                },
                DiskUsage {
                    mount: "/not-in-facts".into(),
                    total_bytes: 1,
                    available_bytes: 1,
                },
            ],
            uptime_secs: Some(90061),
            ..Usage::default()
        }
    }

    /// (what the facts were, the usage, the facts after).
    fn check(facts: Value, usage: &Usage, want: Value) {
        let mut got = facts.as_object().cloned().unwrap_or_default();
        with_usage(&mut got, usage);
        assert_eq!(Value::Object(got), want);
    }

    #[test]
    fn live_figures_laid_into_facters_shapes() {
        let system = json!({"total": "4.00 GiB", "total_bytes": 4u64 << 30});
        check(
            json!({
                "memory": {"system": system},
                "mountpoints": {"/": {"size_bytes": 100u64 << 30}, "/boot": {"size_bytes": 1}},
                "kernel": "Linux",
            }),
            &usage(),
            json!({
                "kernel": "Linux",
                "load_averages": {"1m": 0.5, "5m": 0.25, "15m": 0.125},
                "memory": {
                    "system": {"total": "4.00 GiB", "total_bytes": 4u64 << 30,
                               "available": "3.00 GiB", "available_bytes": 3u64 << 30,
                               "used": "1.00 GiB", "used_bytes": 1u64 << 30, "capacity": "25.00%"},
                    "swap": {"available": "768.00 MiB", "available_bytes": 768u64 << 20,
                             "used": "256.00 MiB", "used_bytes": 256u64 << 20, "capacity": "25.00%"},
                },
                "mountpoints": {
                    "/": {"size_bytes": 100u64 << 30, "available": "75.00 GiB",
                          "available_bytes": 75u64 << 30, "used": "25.00 GiB",
                          "used_bytes": 25u64 << 30, "capacity": "25.00%"},
                    "/boot": {"size_bytes": 1},
                },
                "system_uptime": {"seconds": 90061, "hours": 25, "days": 1, "uptime": "1 day"},
            }),
        );
    }

    #[test]
    fn what_the_report_lacks_stays_out() {
        let bare = Usage {
            load: [1.0, 2.0, 3.0],
            ..Usage::default()
        };
        check(
            json!({"os": {"family": "Debian"}}),
            &bare,
            json!({"os": {"family": "Debian"},
                   "load_averages": {"1m": 1.0, "5m": 2.0, "15m": 3.0}}),
        );
        // An older report: no MemAvailable, used from the used figure.
        let old = Usage {
            mem_total_bytes: 1000,
            mem_used_bytes: 250,
            ..Usage::default()
        };
        check(
            json!({}),
            &old,
            json!({"load_averages": {"1m": 0.0, "5m": 0.0, "15m": 0.0},
                   "memory": {"system": {"available": "750 bytes", "available_bytes": 750,
                       "used": "250 bytes", "used_bytes": 250, "capacity": "25.00%"}}}),
        );
    }
}
