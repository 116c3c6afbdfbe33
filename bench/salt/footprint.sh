#!/usr/bin/env bash
# footprint.sh - memory and CPU footprint of a set of processes over a window.
#
# Usage:
#   DURATION=60 bench/salt/footprint.sh PID [PID...]
#   bench/salt/footprint.sh $(bench/salt/salt.sh minion-pids | grep '^minion-1 ' | cut -d' ' -f2-)
#
# Works for any processes (salt minions, clusterctl agents, ...). Only the
# given pids are measured; pass the whole process tree if that is wanted.
#
# Samples every INTERVAL seconds for DURATION seconds:
#   rss_kb_max   maximum over the samples of sum(VmRSS) of the given pids
#   rss_kb_end   sum(VmRSS) at the end of the window
#   cpu_percent  (utime+stime at end - at start, summed over the pids)
#                / CLK_TCK / wall seconds * 100, i.e. percent of one core
# A pid that exits during the window contributes its last seen CPU time.
# Output is one line:  rss_kb_max=... rss_kb_end=... cpu_percent=...
#
# Environment:
#   DURATION   window length in seconds (60)
#   INTERVAL   sampling period in seconds (1)
#   COUNT_REAPED_CHILDREN=1  also count cutime+cstime (CPU of children that
#              exited and were reaped during the window, e.g. short-lived job
#              processes); off by default
set -euo pipefail

if [ $# -eq 0 ]; then
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
    exit 2
fi

DURATION="${DURATION:-60}"
INTERVAL="${INTERVAL:-1}"
COUNT_REAPED_CHILDREN="${COUNT_REAPED_CHILDREN:-0}"
TCK="$(getconf CLK_TCK)"

pids=()
for p in "$@"; do
    case "$p" in '' | *[!0-9]*) echo "not a pid: $p" >&2; exit 2 ;; esac
    if [ -r "/proc/$p/stat" ]; then
        pids+=("$p")
    else
        echo "warning: pid $p does not exist, ignored" >&2
    fi
done
if [ ${#pids[@]} -eq 0 ]; then
    echo "no live pids given" >&2
    exit 1
fi

# CPU ticks of one pid (utime+stime[+cutime+cstime]); empty if gone.
# The comm field may contain spaces and parentheses, so split after the last ')'.
cpu_ticks() {
    local line rest
    line="$(cat "/proc/$1/stat" 2>/dev/null)" || return 0
    rest="${line##*) }"
    # fields after comm: state(3) ppid(4) ... utime(14) stime(15) cutime(16) cstime(17)
    # shellcheck disable=SC2086
    set -- $rest
    if [ "$COUNT_REAPED_CHILDREN" = 1 ]; then
        echo $((${12} + ${13} + ${14} + ${15}))
    else
        echo $((${12} + ${13}))
    fi
}

# VmRSS in kB of one pid; 0 if gone (kernel threads have no VmRSS either)
rss_kb() {
    local key val _unit
    while read -r key val _unit; do
        if [ "$key" = "VmRSS:" ]; then
            echo "$val"
            return 0
        fi
    done <"/proc/$1/status" 2>/dev/null || true
    echo 0
}

declare -A start_ticks last_ticks
for p in "${pids[@]}"; do
    t="$(cpu_ticks "$p")"
    start_ticks[$p]="${t:-0}"
    last_ticks[$p]="${t:-0}"
done
t_start="$(date +%s.%N)"
t_end_target="$(awk -v s="$t_start" -v d="$DURATION" 'BEGIN { printf "%.6f", s + d }')"

rss_max=0
rss_end=0
while :; do
    sum=0
    for p in "${pids[@]}"; do
        r="$(rss_kb "$p")"
        sum=$((sum + r))
        t="$(cpu_ticks "$p")"
        [ -n "$t" ] && last_ticks[$p]="$t"
    done
    rss_end="$sum"
    [ "$sum" -gt "$rss_max" ] && rss_max="$sum"
    now="$(date +%s.%N)"
    remaining="$(awk -v n="$now" -v e="$t_end_target" 'BEGIN { r = e - n; printf "%.3f", (r > 0 ? r : 0) }')"
    [ "$remaining" = "0.000" ] && break
    # sleep a full interval, or just up to the end of the window
    sleep "$(awk -v r="$remaining" -v i="$INTERVAL" 'BEGIN { printf "%.3f", (r < i ? r : i) }')"
done
t_stop="$(date +%s.%N)"

delta=0
for p in "${pids[@]}"; do
    delta=$((delta + ${last_ticks[$p]} - ${start_ticks[$p]}))
done
cpu="$(awk -v d="$delta" -v hz="$TCK" -v a="$t_start" -v b="$t_stop" \
    'BEGIN { w = b - a; printf "%.2f", (w > 0 ? d / hz / w * 100 : 0) }')"

echo "rss_kb_max=$rss_max rss_kb_end=$rss_end cpu_percent=$cpu"
