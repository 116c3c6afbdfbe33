#!/usr/bin/env bash
# Prints the benchmark figures recorded in bench/RESULTS.md.
#
#   bench/run.sh                 # everything
#   bench/run.sh drain idle      # some of: drain idle nodes enroll salt run fanout proxy lbdrain rollout
#                                #          hafailover hadrain hafanout limits plan storm dashboard elb
#                                #          monitor facts
#
# drain  — drain/undrain propagation over 500 cycles with 3 agents (mTLS)
# idle   — one agent's RSS and CPU over 60 s at the default report interval
# nodes  — wall time of a whole `clusterctl nodes` against 3 agents
# enroll — agent start with a join token → listed as connected, 20 fresh agents
# salt   — the peer: a salt-minion's idle footprint, and the time from
#          starting a minion to it answering test.ping (auto_accept on)
# hosts  — render + write of a 10,000-node hosts block; a new agent's line
#          reaching the hosts files of 3 others
# run    — `clusterctl run '*' -- true` with 20 agents against Salt's
#          `salt '*' test.ping` with 20 minions, alternating, same run
# fanout — `run` fanned out to 1,000 and 10,000 simulated agents (one
#          load-generating process, a real mTLS session each)
# proxy  — wrk through the agent's proxy and through nginx (keep-alive
#          upstream) in front of the same nginx backend, alternating rounds
# lbdrain — drain → last request reaching the drained node under load,
#          through the agent's proxy and through HAProxy (agent-check)
# rollout — a rollout over 10 nodes with a no-op command: time per batch
#          beyond the load balancer's waits
# hafailover — 3 masters on a real 3-member etcd cluster (lease 2 s), 10
#          agents: the leader killed 20 times (and 10 more without writes)
#          → a write back, → its agents on a live master; against one
#          master on sled killed and restarted at once
# hadrain — drain propagation (300 cycles) and `clusterctl run '*' -- true`
#          (15 runs) with 20 agents: sled, etcd via the leader, etcd via a
#          standby, in turn
# hafanout — `run` fanned out to 1,000 simulated agents: one master on
#          sled; 3 on etcd with every session on the leader; spread over
#          the 3 (called through the leader, then a standby); twice each
# limits — the master's RSS and drain latency while it is flooded: the
#          largest target expression, 2 MB ones, refused handshakes,
#          token-less joins (those two at 1,000 a second; 10 s each)
# plan   — `clusterctl plan` of a 10,000-upstream cluster file, and of one
#          with 10,000 routes besides
# storm  — 10,000 simulated agents that keep hosts files opening their
#          sessions at once (and, for comparison, 10,000 that keep none)
# dashboard — 1,000 simulated agents: GET / server time and page weight, a
#          drain's row reaching an open SSE stream, the master's memory per
#          open tab, PUT …/drain?wait=out against clusterctl drain --wait
# monitor — the master's usage history at 10,000 nodes for an hour of 5 s
#          reports (its memory); a CPU alert's way from the agent's sample
#          to a real Alertmanager and a webhook, and its resolution's
# facts  — 100 collections of every grain and fact, in process, against
#          `salt-call --local grains.items` and `facter --json` (10 each,
#          alternating); then the agent idle with them (see idle)
# elb    — ELB's own client (elb.py from PyPI, in a venv): set_domain_rules
#          returning → the agent's proxy routing by the new rules, 50 changes
#
# Needs wrk, nginx and HAProxy for proxy and lbdrain (tests/run installs them).
# Needs etcd (Debian's etcd-server, etcd-client) and protoc for the ha modes:
# their build enables the master's etcd store (--features cluster-cli/etcd).
# Needs a release build (done here) and, for `salt`, pip (Salt goes into a venv).
set -euo pipefail
cd "$(dirname "$0")/.."
what=("${@:-drain idle nodes enroll hosts salt run fanout proxy lbdrain rollout hafailover hadrain hafanout limits plan storm dashboard elb monitor facts}")
what=(${what[@]})
has() { [[ " ${what[*]} " == *" $1 "* ]]; }

# Every binary: the benches start the real ones. With an ha mode, the
# master has its etcd store; the sled figures of the same run come from
# that same build.
features=()
if has hafailover || has hadrain || has hafanout; then features=(--features cluster-cli/etcd); fi
cargo build --release --workspace --bins --quiet "${features[@]}"
bin=${CARGO_TARGET_DIR:-target}/release

echo "# $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), kernel $(uname -r)"

if has drain; then
  "$bin/cluster-bench" drain --cycles 500 --agents 3
fi

if has idle; then
  "$bin/cluster-bench" idle --seconds "${IDLE_SECONDS:-60}"
fi

if has nodes; then
  # A cluster kept up while clusterctl is timed as a whole process.
  coproc CLUSTER { "$bin/cluster-bench" cluster --agents 3; }
  read -r master <&"${CLUSTER[0]}"
  read -r CLUSTERCTL_CA <&"${CLUSTER[0]}"
  read -r CLUSTERCTL_CERT <&"${CLUSTER[0]}"
  read -r CLUSTERCTL_KEY <&"${CLUSTER[0]}"
  export CLUSTERCTL_CA CLUSTERCTL_CERT CLUSTERCTL_KEY
  runs=${NODES_RUNS:-50}
  start=$(date +%s%N)
  for _ in $(seq "$runs"); do "$bin/clusterctl" --master "$master" nodes >/dev/null; done
  end=$(date +%s%N)
  echo "clusterctl nodes (3 agents): mean wall $(( (end - start) / runs / 1000 ))us over $runs runs"
  exec {CLUSTER[1]}>&-
  wait "$CLUSTER_PID" || true
fi

if has enroll; then
  "$bin/cluster-bench" enroll --runs 20
fi

if has hosts; then
  "$bin/cluster-bench" hosts --runs 20
fi

if has salt; then
  export DURATION=${IDLE_SECONDS:-60}
  bench/salt/salt.sh setup >/dev/null
  bench/salt/salt.sh start-master >/dev/null
  start=$(date +%s%N)
  bench/salt/salt.sh start-minions 1 >/dev/null
  end=$(date +%s%N)
  echo "salt-minion start → accepted and answering test.ping: $(( (end - start) / 1000000 ))ms"
  sleep 6
  pids=$(bench/salt/salt.sh minion-pids | head -1 | cut -d' ' -f2-)
  echo "salt-minion idle (${DURATION}s, process tree): $(bench/salt/footprint.sh $pids)"
  bench/salt/salt.sh stop >/dev/null
fi

if has run; then
  runs=${RUN_RUNS:-10}
  coproc CLUSTER20 { "$bin/cluster-bench" cluster --agents 20; }
  read -r master <&"${CLUSTER20[0]}"
  read -r CLUSTERCTL_CA <&"${CLUSTER20[0]}"
  read -r CLUSTERCTL_CERT <&"${CLUSTER20[0]}"
  read -r CLUSTERCTL_KEY <&"${CLUSTER20[0]}"
  export CLUSTERCTL_CA CLUSTERCTL_CERT CLUSTERCTL_KEY
  bench/salt/salt.sh setup >/dev/null
  bench/salt/salt.sh start-master >/dev/null
  bench/salt/salt.sh start-minions 20 >/dev/null
  salt_dir=${SALT_BENCH_DIR:-/tmp/clusterctl-salt-bench}
  ours=() theirs=()
  for _ in $(seq "$runs"); do
    t0=$(date +%s%N); "$bin/clusterctl" --master "$master" run '*' -- true >/dev/null; t1=$(date +%s%N)
    "$salt_dir/venv/bin/salt" -c "$salt_dir/master" '*' test.ping --out=quiet; t2=$(date +%s%N)
    ours+=($(( (t1 - t0) / 1000000 ))); theirs+=($(( (t2 - t1) / 1000000 )))
  done
  median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
  m_ours=$(median "${ours[@]}"); m_theirs=$(median "${theirs[@]}")
  echo "clusterctl run '*' -- true, 20 agents: median ${m_ours}ms; salt '*' test.ping, 20 minions: median ${m_theirs}ms (${runs} alternating runs each); ratio $(awk "BEGIN {printf \"%.0f\", ${m_theirs} / (${m_ours} > 0 ? ${m_ours} : 1)}")x"
  bench/salt/salt.sh stop >/dev/null
  exec {CLUSTER20[1]}>&-
  wait "$CLUSTER20_PID" || true
fi

if has fanout; then
  "$bin/fanout-bench" --agents 1000 --runs 5
  "$bin/fanout-bench" --agents 10000 --runs 3
fi

if has proxy; then
  "$bin/lb-bench" proxy --rounds "${PROXY_ROUNDS:-5}" --seconds "${PROXY_SECONDS:-10}"
fi

if has lbdrain; then
  "$bin/lb-bench" drain --cycles "${LBDRAIN_CYCLES:-30}"
fi

if has rollout; then
  "$bin/lb-bench" rollout --nodes 10
fi

if has hafailover; then
  "$bin/ha-bench" failover --kills "${HA_KILLS:-20}" --quiet-kills "${HA_QUIET_KILLS:-10}" --agents 10
fi

if has hadrain; then
  "$bin/ha-bench" drain --agents 20 --cycles "${HA_DRAIN_CYCLES:-300}" --runs "${HA_RUN_RUNS:-15}"
fi

if has hafanout; then
  # name|flags; the ratios are of each way's p50 (mean over the repeats) to sled's.
  ways=("sled|" "etcd, all sessions on the leader|--store etcd --masters 3 --sessions one"
        "etcd, spread over 3, via the leader|--store etcd --masters 3 --sessions spread"
        "etcd, spread over 3, via a standby|--store etcd --masters 3 --sessions spread --via standby")
  declare -A p50s=()
  for _ in $(seq "${HA_FANOUT_REPEATS:-2}"); do
    for way in "${ways[@]}"; do
      name=${way%%|*}; flags=${way#*|}
      echo "## fanout-bench --agents 1000 --runs 5 $flags"
      out=$("$bin/fanout-bench" --agents 1000 --runs 5 $flags)
      echo "$out"
      p50s[$name]+="$(sed -n 's/^fan-out.* p50=\([0-9.]*\)ms.*/\1/p' <<<"$out") "
    done
  done
  mean() { awk '{s=0; for (i=1;i<=NF;i++) s+=$i; printf "%.1f", s/NF}' <<<"$1"; }
  sled=$(mean "${p50s[sled]}")
  for way in "${ways[@]}"; do
    name=${way%%|*}; m=$(mean "${p50s[$name]}")
    echo "fan-out to 1000, $name: p50 per repeat ${p50s[$name]}(mean ${m}ms); etcd/sled $(awk "BEGIN {printf \"%.2f\", $m / $sled}")x"
  done
fi

if has limits; then
  "$bin/cluster-bench" limits --seconds 10
fi

if has plan; then
  "$bin/cluster-bench" plan --upstreams 10000 --runs 5
  "$bin/cluster-bench" plan --upstreams 10000 --routes 10000 --runs 5
fi

if has storm; then
  "$bin/fanout-bench" --agents 10000 --runs 1 --hosts yes
  "$bin/fanout-bench" --agents 10000 --runs 1 --hosts no
fi

if has dashboard; then
  "$bin/fanout-bench" --agents 1000 --runs 1 --dashboard yes
fi

if has elb; then
  "$bin/lb-bench" elb --changes "${ELB_CHANGES:-50}"
fi

if has facts; then
  "$bin/facts-bench" --runs 100 --peer-runs "${PEER_RUNS:-10}"
fi

if has monitor; then
  "$bin/monitor-bench" history --nodes 10000 --minutes 60 --every 5s
  "$bin/monitor-bench" alert --runs "${ALERT_RUNS:-10}"
fi
