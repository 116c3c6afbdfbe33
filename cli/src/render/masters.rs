//! `clusterctl masters`: the masters (the leader starred), the store's
//! lines — kind, epoch, lease, revision, who answered — and the store's
//! endpoints when it has any.

use super::{table, trim_lines};
use crate::client::MastersView;
use crate::render::AddPrintable;

/// A row per master, the store's lines, then its endpoints if any.
pub fn masters_text(v: &MastersView) -> String {
    let dash = |n: u64, known: bool| {
        if known && n > 0 {
            n.to_string()
        } else {
            "-".into()
        }
    };
    let mut t = table(&["NAME", "ADDRESS", "LEADER", "REVISION", "AGENTS", "ERROR"]);
    for m in &v.masters {
        let asked = m.error.is_empty();
        t.add_printable(vec![
            m.name.clone(),
            m.address.clone(),
            if m.leader { "*".into() } else { String::new() },
            dash(m.revision, asked),
            if asked {
                m.agents.to_string()
            } else {
                "-".into()
            },
            m.error.clone(),
        ]);
    }
    let mut out = trim_lines(&t.to_string());
    let lease = if v.epoch == 0 {
        "-".to_owned()
    } else {
        seconds(v.lease_remaining_ms)
    };
    let answering = v
        .masters
        .iter()
        .find(|m| m.answering)
        .map_or("-", |m| m.name.as_str());
    out.push_str(&format!(
        "\nstore:            {}\nepoch:            {}\nlease remaining:  {lease}\nrevision:         {}\nanswered by:      {answering}\n",
        v.store, v.epoch, v.revision
    ));
    if v.endpoints.is_empty() {
        return out;
    }
    let mut t = table(&[
        "ENDPOINT", "HEALTH", "LEADER", "REVISION", "VERSION", "DB SIZE", "LATENCY",
    ]);
    for e in &v.endpoints {
        let health = match (e.healthy, e.error.as_str()) {
            (true, _) => "healthy".to_owned(),
            (false, "") => "unhealthy".to_owned(),
            (false, why) => format!("unhealthy: {why}"),
        };
        let known = |s: String| if e.healthy { s } else { "-".into() };
        t.add_printable(vec![
            e.endpoint.clone(),
            health,
            if e.leader { "*".into() } else { String::new() },
            dash(e.revision, e.healthy),
            known(if e.version.is_empty() {
                "-".into()
            } else {
                e.version.clone()
            }),
            known(bytes(e.db_size_bytes)),
            known(format!("{:.1}ms", e.latency_ms)),
        ]);
    }
    out.push('\n');
    out.push_str(&trim_lines(&t.to_string()));
    out
}

/// "4.2s": a lease's remaining time.
fn seconds(ms: u64) -> String {
    format!("{:.1}s", ms as f64 / 1000.0)
}

/// "512B", "20.0K", "1.5M", "2.0G" (powers of 1024).
fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["K", "M", "G", "T"];
    if n < 1024 {
        return format!("{n}B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1}{}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{EndpointView, MasterView};

    fn view(store: &str) -> MastersView {
        let master = |name: &str, leader, revision, error: &str| MasterView {
            name: name.into(),
            address: format!("https://{name}:7440"),
            leader,
            answering: name == "m2",
            revision,
            agents: if error.is_empty() { 12 } else { 0 },
            error: error.into(),
        };
        let endpoint = |n: u8, healthy, leader| EndpointView {
            endpoint: format!("https://10.0.0.{n}:2379"),
            healthy,
            error: if healthy {
                String::new()
            } else {
                "context deadline exceeded".into()
            },
            revision: if healthy { 1234 } else { 0 },
            leader,
            version: if healthy {
                "3.5.9".into()
            } else {
                String::new()
            },
            db_size_bytes: 3 * 1024 * 1024 / 2,
            latency_ms: 1.25,
        };
        MastersView {
            store: store.into(),
            epoch: 1187,
            lease_remaining_ms: 4_230,
            revision: 1234,
            masters: vec![
                master("m1", true, 1234, ""),
                master("m2", false, 1230, ""),
                master("m3", false, 0, "connection refused"),
            ],
            endpoints: vec![
                endpoint(1, true, true),
                endpoint(2, true, false),
                endpoint(3, false, false),
            ],
        }
    }

    #[test]
    fn the_masters_the_store_and_its_endpoints() {
        assert_eq!(
            masters_text(&view("etcd")),
            "\
NAME  ADDRESS          LEADER  REVISION  AGENTS  ERROR
m1    https://m1:7440  *       1234      12
m2    https://m2:7440          1230      12
m3    https://m3:7440          -         -       connection refused

store:            etcd
epoch:            1187
lease remaining:  4.2s
revision:         1234
answered by:      m2

ENDPOINT               HEALTH                                LEADER  REVISION  VERSION  DB SIZE  LATENCY
https://10.0.0.1:2379  healthy                               *       1234      3.5.9    1.5M     1.2ms
https://10.0.0.2:2379  healthy                                       1234      3.5.9    1.5M     1.2ms
https://10.0.0.3:2379  unhealthy: context deadline exceeded          -         -        -        -
"
        );
    }

    #[test]
    fn one_master_on_sled_has_no_lease_and_no_endpoints() {
        let mut v = view("sled");
        v.epoch = 0;
        v.lease_remaining_ms = 0;
        v.masters.truncate(1);
        v.masters[0].answering = true;
        v.endpoints.clear();
        assert_eq!(
            masters_text(&v),
            "\
NAME  ADDRESS          LEADER  REVISION  AGENTS  ERROR
m1    https://m1:7440  *       1234      12

store:            sled
epoch:            0
lease remaining:  -
revision:         1234
answered by:      m1
"
        );
    }

    #[test]
    fn sizes_and_seconds_read_short() {
        assert_eq!(bytes(512), "512B");
        assert_eq!(bytes(20 * 1024), "20.0K");
        assert_eq!(bytes(3 * 1024 * 1024 / 2), "1.5M");
        assert_eq!(bytes(2 * 1024 * 1024 * 1024), "2.0G");
        assert_eq!(seconds(4_230), "4.2s");
        assert_eq!(seconds(0), "0.0s");
    }
}
