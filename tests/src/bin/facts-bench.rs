//! The time to collect every grain and fact on this machine, against the
//! peers that do the same: `salt-call --local grains.items` (Salt from
//! PyPI, in a venv) and `facter --json` (Debian's facter), as whole
//! commands, alternating, in the same run. Prints figures, never asserts.
//!
//! `facts-bench [--runs N] [--peer-runs N]`: N in-process collections
//! (reading the machine, shaping Salt's grains and Facter's facts, encoding
//! both as JSON — what the agent does at each refresh, external facts
//! aside), default 100; each peer N times, default 10 (they take seconds).

use std::process::Command;
use std::time::{Duration, Instant};

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn summary(name: &str, mut v: Vec<Duration>) -> f64 {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let at = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "{name}: n={} p50={:.2}ms p99={:.2}ms max={:.2}ms",
        v.len(),
        ms(at(0.50)),
        ms(at(0.99)),
        ms(*v.last().unwrap()),
    );
    ms(at(0.50))
}

fn timed(cmd: &mut Command) -> Duration {
    let started = Instant::now();
    let out = cmd.output().expect("the peer runs");
    let took = started.elapsed();
    assert!(!out.stdout.is_empty(), "{cmd:?} printed nothing");
    took
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (runs, peer_runs) = (arg(&args, "--runs", 100), arg(&args, "--peer-runs", 10));
    let mut ours = Vec::with_capacity(runs);
    let mut sizes = (0, 0, 0);
    for _ in 0..runs {
        let started = Instant::now();
        let m = cluster_agent::facts::collect();
        let grains = cluster_agent::facts::grains(&m.host_name, &m, &[], &Default::default());
        let facts = cluster_agent::facts::facts(&m);
        let json = (
            serde_json::to_string(&grains).unwrap(),
            serde_json::to_string(&facts).unwrap(),
        );
        ours.push(started.elapsed());
        sizes = (grains.len(), json.0.len(), json.1.len());
    }
    println!(
        "the agent: {} grains ({} bytes of JSON), facts {} bytes of JSON",
        sizes.0, sizes.1, sizes.2
    );
    let venv = std::env::temp_dir().join("clusterctl-bench-salt-venv");
    let (mut salt_call, _conf) = cluster_tests::python::salt_grains_command(&venv);
    let (mut salt, mut facter) = (Vec::new(), Vec::new());
    for _ in 0..peer_runs {
        salt.push(timed(&mut salt_call));
        facter.push(timed(Command::new("facter").arg("--json")));
    }
    let ours = summary("collect, grains and facts, in process", ours);
    let s = summary("salt-call --local grains.items --out json", salt);
    let f = summary("facter --json", facter);
    println!(
        "p50 ratios: salt-call / agent {:.0}×, facter / agent {:.0}×",
        s / ours,
        f / ours
    );
}
