#!/usr/bin/env bash
# salt.sh - run a local SaltStack master + N minions on loopback as a
# comparison peer for the clusterctl benchmarks.
#
# Everything (venv, configs, keys, caches, sockets, logs, pid files) lives
# under $SALT_BENCH_DIR (default /tmp/clusterctl-salt-bench). Only 127.0.0.1
# is used. All commands are idempotent.
#
# Usage:
#   bench/salt/salt.sh setup             # venv + pip install salt (3008.x, else 3007.x/3006.x)
#   bench/salt/salt.sh start-master      # write master config, start master, wait until up
#   bench/salt/salt.sh start-minions N   # make exactly minion-1..minion-N run (starts missing ones,
#                                        # stops extra ones), wait until all answer test.ping,
#                                        # print how long that took
#   bench/salt/salt.sh ping              # salt '*' test.ping --out=json --static once;
#                                        # exit 1 unless every expected minion returned True
#   bench/salt/salt.sh minion-pids       # one line per minion: "minion-I PID PID ..." (whole tree)
#   bench/salt/salt.sh master-pids       # same for the master: "master PID PID ..."
#   bench/salt/salt.sh salt ARGS...      # run the salt CLI against this master, e.g.
#                                        #   salt.sh salt '*' cmd.run uptime
#   bench/salt/salt.sh status            # show what is running
#   bench/salt/salt.sh stop              # stop minions and master, kill leftovers
#   bench/salt/salt.sh clean             # stop, then delete everything except the venv
#
# The script can also be sourced; it then defines the function `salt_bench`
# taking the same subcommands (each call runs in a subshell with
# `set -euo pipefail`).
#
# Environment:
#   SALT_BENCH_DIR       work dir                          (/tmp/clusterctl-salt-bench)
#   SALT_PIP_SPEC        pip requirement to try first      (salt==3008.*)
#   SALT_PYTHON          interpreter used to create venv   (python3)
#   SALT_PUBLISH_PORT    master publish port               (14505)
#   SALT_RET_PORT        master request/return port        (14506)
#   SALT_MASTER_TIMEOUT  seconds to wait for the master    (60)
#   SALT_MINION_TIMEOUT  seconds to wait for the minions   (120)
#   SALT_STOP_TIMEOUT    seconds to wait after SIGTERM     (20)
#   SALT_PING_TIMEOUT    salt -t value used by `ping`      (10)
#
# Processes are started in the foreground mode of salt (no -d) in their own
# session (setsid), like a systemd unit would run them; the pid of the
# top-level process is kept in $SALT_BENCH_DIR/<name>/bench.pid.

_salt_bench_main() {
    set -euo pipefail

    local D="${SALT_BENCH_DIR:-/tmp/clusterctl-salt-bench}"
    case "$D" in
        /?*) ;;
        *) echo "SALT_BENCH_DIR must be an absolute path other than /: '$D'" >&2; return 2 ;;
    esac
    D="${D%/}"
    local VENV="$D/venv"
    local MDIR="$D/master"
    local PUB_PORT="${SALT_PUBLISH_PORT:-14505}"
    local RET_PORT="${SALT_RET_PORT:-14506}"

    local cmd="${1:-}"
    [ $# -gt 0 ] && shift
    case "$cmd" in
        setup) _sb_setup ;;
        start-master) _sb_start_master ;;
        start-minions) _sb_start_minions "$@" ;;
        ping) _sb_ping ;;
        minion-pids) _sb_minion_pids ;;
        master-pids) _sb_master_pids ;;
        salt) _sb_need_venv; "$VENV/bin/salt" -c "$MDIR" "$@" ;;
        status) _sb_status ;;
        stop) _sb_stop ;;
        clean) _sb_stop; _sb_clean ;;
        *)
            sed -n '2,/^$/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
            return 2
            ;;
    esac
}

# ---------------------------------------------------------------- helpers

_sb_log() { echo "[salt-bench] $*" >&2; }

_sb_now() { date +%s.%N; }

_sb_elapsed() { awk -v a="$1" -v b="$(_sb_now)" 'BEGIN { printf "%.2f", b - a }'; }

_sb_need_venv() {
    if [ ! -x "$VENV/bin/salt-call" ]; then
        _sb_log "no salt venv in $VENV; run: $0 setup"
        return 1
    fi
}

# true if the pid is alive and is one of ours: a top-level salt process
# started here keeps "$VENV/bin/salt-..." in its command line
_sb_alive() {
    local pid="$1" cmdline
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
    cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
    [[ "$cmdline" == *"$VENV/bin/salt"* ]]
}

# pid stored in DIR/bench.pid if that process is alive, else nothing
_sb_pid_of() {
    local f="$1/bench.pid" pid
    [ -f "$f" ] || return 0
    pid="$(cat "$f" 2>/dev/null || true)"
    if _sb_alive "$pid"; then echo "$pid"; fi
}

# pid and all its descendants, one per line
_sb_tree() {
    local pid="$1" child
    [ -d "/proc/$pid" ] || return 0
    echo "$pid"
    for child in $(pgrep -P "$pid" 2>/dev/null || true); do
        _sb_tree "$child"
    done
}

# tree of the pid plus anything else left in its session (setsid makes the
# top-level pid the session id), sorted numerically
_sb_all_pids() {
    local pid="$1"
    [ -n "$pid" ] || return 0
    { _sb_tree "$pid"; pgrep -s "$pid" 2>/dev/null || true; } | sort -n -u
}

# numeric indices of minion dirs that exist, ascending
_sb_minion_indices() {
    local d
    for d in "$D"/minion-*; do
        [ -d "$d" ] || continue
        d="${d##*/minion-}"
        case "$d" in '' | *[!0-9]*) continue ;; esac
        echo "$d"
    done | sort -n
}

_sb_expected_count() {
    if [ -f "$D/minion_count" ]; then
        cat "$D/minion_count"
    else
        local n=0 i
        for i in $(_sb_minion_indices); do
            [ -n "$(_sb_pid_of "$D/minion-$i")" ] && n=$((n + 1))
        done
        echo "$n"
    fi
}

# Read `salt --out=json --static` output on stdin; args are the expected ids.
# Prints "OK_COUNT missing_id,missing_id,..." and exits 0 only if all returned True.
_sb_check_returns() {
    "$VENV/bin/python" -c '
import json, sys
expected = set(sys.argv[1:])
txt = sys.stdin.read()
data = {}
start = txt.find("{")
if start >= 0:
    try:
        data = json.JSONDecoder().raw_decode(txt[start:])[0]
    except ValueError:
        data = {}
ok = {k for k, v in data.items() if v is True}
missing = sorted(expected - ok, key=lambda s: (len(s), s))
print(len(ok & expected), ",".join(missing) or "-")
sys.exit(0 if not missing else 1)
' "$@"
}

# ---------------------------------------------------------------- setup

_sb_setup() {
    local t0 py="${SALT_PYTHON:-python3}"
    t0="$(_sb_now)"
    mkdir -p "$D"
    if [ -x "$VENV/bin/salt-call" ] && "$VENV/bin/salt-call" --version >/dev/null 2>&1; then
        _sb_log "salt already installed in $VENV, skipping install"
        "$VENV/bin/salt-call" --version
        return 0
    fi
    if [ ! -x "$VENV/bin/python" ]; then
        _sb_log "creating venv $VENV with $py ($("$py" --version 2>&1))"
        "$py" -m venv "$VENV"
    fi
    local pip=("$VENV/bin/pip" install --disable-pip-version-check)
    local spec installed=""
    for spec in "${SALT_PIP_SPEC:-salt==3008.*}" 'salt==3007.*' 'salt==3006.*'; do
        _sb_log "pip install '$spec' (this can take a few minutes)"
        if "${pip[@]}" "$spec"; then
            installed="$spec"
            break
        fi
        _sb_log "pip install '$spec' failed, trying an older series"
    done
    if [ -z "$installed" ]; then
        _sb_log "could not install any salt 3008/3007/3006"
        return 1
    fi
    # Salt on Python 3.11 normally pulls all it needs; if an import is still
    # missing, add the usual runtime dependencies explicitly.
    if ! "$VENV/bin/python" -c 'import salt.version, salt.transport.zeromq, zmq, tornado, msgpack, jinja2, yaml, psutil, distro, looseversion, packaging' 2>/dev/null; then
        _sb_log "adding extra runtime deps"
        "${pip[@]}" looseversion packaging pyzmq tornado msgpack jinja2 pyyaml psutil distro contextvars
    fi
    "$VENV/bin/salt-call" --version
    _sb_log "installed salt $("$VENV/bin/python" -c 'import salt.version; print(salt.version.__version__)') in $(_sb_elapsed "$t0") s"
}

# ---------------------------------------------------------------- master

_sb_write_master_config() {
    mkdir -p "$MDIR"
    cat >"$MDIR/master.tmp" <<EOF
# generated by bench/salt/salt.sh
interface: 127.0.0.1
publish_port: $PUB_PORT
ret_port: $RET_PORT
auto_accept: True
user: root
worker_threads: 2
root_dir: $MDIR
pki_dir: $MDIR/pki
cachedir: $MDIR/cache
sock_dir: $MDIR/sock
log_file: $MDIR/master.log
pidfile: $MDIR/salt-master.pid
EOF
    mv -f "$MDIR/master.tmp" "$MDIR/master"
}

_sb_port_listening() {
    [ -n "$(ss -ltnH "( sport = :$1 )" 2>/dev/null || true)" ]
}

_sb_start_master() {
    _sb_need_venv
    local pid t0 timeout="${SALT_MASTER_TIMEOUT:-60}"
    pid="$(_sb_pid_of "$MDIR")"
    if [ -n "$pid" ]; then
        _sb_log "master already running (pid $pid)"
        return 0
    fi
    for port in "$PUB_PORT" "$RET_PORT"; do
        if _sb_port_listening "$port"; then
            _sb_log "port $port is already in use; set SALT_PUBLISH_PORT/SALT_RET_PORT"
            return 1
        fi
    done
    _sb_write_master_config
    t0="$(_sb_now)"
    setsid "$VENV/bin/salt-master" -c "$MDIR" -l warning \
        </dev/null >"$MDIR/stdout.log" 2>&1 &
    pid=$!
    echo "$pid" >"$MDIR/bench.pid"
    echo "$pid" >>"$D/sessions"
    _sb_log "started salt-master pid $pid, waiting up to ${timeout}s"
    while :; do
        if ! kill -0 "$pid" 2>/dev/null; then
            _sb_log "salt-master exited; last log lines:"
            tail -n 20 "$MDIR/stdout.log" "$MDIR/master.log" >&2 2>/dev/null || true
            return 1
        fi
        if _sb_port_listening "$RET_PORT" && _sb_port_listening "$PUB_PORT" \
            && [ -S "$MDIR/sock/master_event_pub.ipc" ]; then
            break
        fi
        if awk -v e="$(_sb_elapsed "$t0")" -v t="$timeout" 'BEGIN { exit !(e > t) }'; then
            _sb_log "master not up after ${timeout}s"
            return 1
        fi
        sleep 0.2
    done
    _sb_log "master up after $(_sb_elapsed "$t0") s (127.0.0.1:$PUB_PORT/$RET_PORT)"
}

# ---------------------------------------------------------------- minions

_sb_write_minion_config() {
    local i="$1" dir="$D/minion-$1"
    mkdir -p "$dir"
    cat >"$dir/minion.tmp" <<EOF
# generated by bench/salt/salt.sh
id: minion-$i
master: 127.0.0.1
master_port: $RET_PORT
publish_port: $PUB_PORT
user: root
root_dir: $dir
pki_dir: $dir/pki
cachedir: $dir/cache
sock_dir: $dir/sock
log_file: $dir/minion.log
pidfile: $dir/salt-minion.pid
EOF
    mv -f "$dir/minion.tmp" "$dir/minion"
}

# forget a minion's key on the master (plain file removal: no python start-up)
_sb_forget_key() {
    local id="$1" sub
    for sub in minions minions_pre minions_rejected minions_denied minions_autosign; do
        rm -f "$MDIR/pki/$sub/$id"
    done
    rm -rf "$MDIR/cache/minions/$id"
}

# SIGTERM the given pids' sessions, wait, then SIGKILL what is left
_sb_kill_sessions() {
    local timeout="${SALT_STOP_TIMEOUT:-20}" t0 pid left p
    local -a all=()
    for pid in "$@"; do
        mapfile -t -O "${#all[@]}" all < <(_sb_all_pids "$pid")
        kill -TERM "$pid" 2>/dev/null || true
    done
    [ ${#all[@]} -gt 0 ] || return 0
    t0="$(_sb_now)"
    while :; do
        left=""
        for p in "${all[@]}"; do
            if [ -d "/proc/$p" ] && [ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" != Z ]; then
                left="$left $p"
            fi
        done
        [ -z "$left" ] && return 0
        if awk -v e="$(_sb_elapsed "$t0")" -v t="$timeout" 'BEGIN { exit !(e > t) }'; then
            _sb_log "still alive after ${timeout}s, SIGKILL:$left"
            # shellcheck disable=SC2086
            kill -KILL $left 2>/dev/null || true
            return 0
        fi
        sleep 0.2
    done
}

_sb_start_minion() {
    local i="$1" dir="$D/minion-$1" pid
    # A fresh minion (no key yet) must not collide with a stale key on the master.
    [ -f "$dir/pki/minion.pub" ] || _sb_forget_key "minion-$i"
    _sb_write_minion_config "$i"
    setsid "$VENV/bin/salt-minion" -c "$dir" -l warning \
        </dev/null >"$dir/stdout.log" 2>&1 &
    pid=$!
    echo "$pid" >"$dir/bench.pid"
    echo "$pid" >>"$D/sessions"
}

_sb_start_minions() {
    _sb_need_venv
    local n="${1:-}" i f pid t0 timeout="${SALT_MINION_TIMEOUT:-120}"
    case "$n" in '' | *[!0-9]*) _sb_log "usage: start-minions N"; return 2 ;; esac
    if [ -z "$(_sb_pid_of "$MDIR")" ]; then
        _sb_log "master is not running; run: $0 start-master"
        return 1
    fi

    # stop minions beyond N and drop their keys so '*' only targets 1..N
    local -a extra=()
    for i in $(_sb_minion_indices); do
        if [ "$i" -gt "$n" ]; then
            pid="$(_sb_pid_of "$D/minion-$i")"
            [ -n "$pid" ] && extra+=("$pid")
            _sb_forget_key "minion-$i"
            rm -f "$D/minion-$i/bench.pid"
        fi
    done
    if [ ${#extra[@]} -gt 0 ]; then
        _sb_log "stopping ${#extra[@]} minion(s) above minion-$n"
        _sb_kill_sessions "${extra[@]}"
    fi
    for f in "$MDIR"/pki/minions/minion-*; do
        [ -e "$f" ] || continue
        i="${f##*/minion-}"
        case "$i" in '' | *[!0-9]*) continue ;; esac
        [ "$i" -gt "$n" ] && _sb_forget_key "minion-$i"
    done
    echo "$n" >"$D/minion_count"
    [ "$n" -gt 0 ] || return 0

    t0="$(_sb_now)"
    local started=0
    for i in $(seq 1 "$n"); do
        if [ -z "$(_sb_pid_of "$D/minion-$i")" ]; then
            _sb_start_minion "$i"
            started=$((started + 1))
        fi
    done
    _sb_log "started $started new minion(s), $n wanted; waiting up to ${timeout}s for test.ping"

    local -a ids=()
    for i in $(seq 1 "$n"); do ids+=("minion-$i"); done
    local out res
    while :; do
        # cheap checks before paying for a ping (a ping that misses a minion
        # waits for its timeout plus gather_job_timeout): every key accepted
        # on the master and every minion connected to the publish port
        local accepted=0 connected=0 conns
        for i in $(seq 1 "$n"); do
            [ -f "$MDIR/pki/minions/minion-$i" ] && accepted=$((accepted + 1))
        done
        conns=" $({ ss -tnpH state established "( dport = :$PUB_PORT )" 2>/dev/null || true; } \
            | { grep -o 'pid=[0-9]*' || true; } | cut -d= -f2 | tr '\n' ' ')"
        for i in $(seq 1 "$n"); do
            # (kill -0 rather than _sb_pid_of: a just-forked pid may not have
            # exec'd salt-minion yet)
            pid="$(cat "$D/minion-$i/bench.pid" 2>/dev/null || true)"
            if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
                _sb_log "minion-$i is not running; last log lines:"
                tail -n 20 "$D/minion-$i/stdout.log" >&2 2>/dev/null || true
                return 1
            fi
            for pid in $(_sb_all_pids "$pid"); do
                if [[ "$conns" == *" $pid "* ]]; then
                    connected=$((connected + 1))
                    break
                fi
            done
        done
        if [ "$accepted" -eq "$n" ] && [ "$connected" -eq "$n" ]; then
            out="$("$VENV/bin/salt" -c "$MDIR" '*' test.ping --out=json --static -t 5 2>&1 || true)"
            if res="$(_sb_check_returns "${ids[@]}" <<<"$out")"; then
                break
            fi
        else
            res="keys accepted: $accepted/$n, connected: $connected/$n"
        fi
        if awk -v e="$(_sb_elapsed "$t0")" -v t="$timeout" 'BEGIN { exit !(e > t) }'; then
            _sb_log "not all minions answered after ${timeout}s ($res)"
            return 1
        fi
        sleep 0.5
    done
    local took
    took="$(_sb_elapsed "$t0")"
    echo "all $n minions answered test.ping ${took}s after start ($started started now)"
}

# ---------------------------------------------------------------- ping / pids / status

_sb_ping() {
    _sb_need_venv
    local n i out rc
    n="$(_sb_expected_count)"
    local -a ids=()
    for i in $(seq 1 "$n"); do ids+=("minion-$i"); done
    rc=0
    out="$("$VENV/bin/salt" -c "$MDIR" '*' test.ping --out=json --static -t "${SALT_PING_TIMEOUT:-10}" 2>&1)" || rc=$?
    printf '%s\n' "$out"
    local res
    if res="$(_sb_check_returns "${ids[@]}" <<<"$out")"; then
        _sb_log "ok: ${res%% *}/$n minions returned True"
        return 0
    fi
    _sb_log "FAILED: ${res%% *}/$n returned True, missing: ${res#* } (salt exit $rc)"
    return 1
}

_sb_minion_pids() {
    local i pid
    for i in $(_sb_minion_indices); do
        pid="$(_sb_pid_of "$D/minion-$i")"
        [ -n "$pid" ] || continue
        echo "minion-$i $(_sb_all_pids "$pid" | tr '\n' ' ' | sed 's/ $//')"
    done
}

_sb_master_pids() {
    local pid
    pid="$(_sb_pid_of "$MDIR")"
    [ -n "$pid" ] || return 0
    echo "master $(_sb_all_pids "$pid" | tr '\n' ' ' | sed 's/ $//')"
}

_sb_status() {
    local pid i up=0 down=0
    pid="$(_sb_pid_of "$MDIR")"
    if [ -n "$pid" ]; then echo "master: running (pid $pid)"; else echo "master: stopped"; fi
    for i in $(_sb_minion_indices); do
        if [ -n "$(_sb_pid_of "$D/minion-$i")" ]; then up=$((up + 1)); else down=$((down + 1)); fi
    done
    echo "minions: $up running, $down stopped, expected $(_sb_expected_count 2>/dev/null || echo 0)"
    if [ -x "$VENV/bin/python" ]; then
        echo "salt: $("$VENV/bin/python" -c 'import salt.version; print(salt.version.__version__)' 2>/dev/null || echo 'not installed')"
    fi
}

# ---------------------------------------------------------------- stop / clean

# Pids of processes started by this script that are still around. Child
# processes of salt rewrite their command line (setproctitle), so besides
# the command line we also match by session: every daemon is started with
# setsid and its session id is recorded in $D/sessions; a process in such a
# session running the venv's python interpreter is ours.
_sb_leftovers() {
    local p cmdline sid exe py=""
    local -A sids=()
    if [ -f "$D/sessions" ]; then
        while read -r sid; do
            [ -n "$sid" ] && sids[$sid]=1
        done <"$D/sessions"
    fi
    [ -e "$VENV/bin/python" ] && py="$(readlink -f "$VENV/bin/python")"
    for p in /proc/[0-9]*; do
        p="${p#/proc/}"
        { [ "$p" = "$$" ] || [ "$p" = "${BASHPID:-}" ]; } && continue
        cmdline="$(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)" || continue
        case "$cmdline" in
            *"$VENV/bin/"*) echo "$p"; continue ;;
        esac
        [ ${#sids[@]} -gt 0 ] && [ -n "$py" ] || continue
        sid="$(awk '{ sub(/.*\) /, ""); print $4 }' "/proc/$p/stat" 2>/dev/null)" || continue
        [ -n "$sid" ] && [ -n "${sids[$sid]:-}" ] || continue
        exe="$(readlink "/proc/$p/exe" 2>/dev/null)" || continue
        [ "$exe" = "$py" ] && echo "$p"
    done
}

_sb_stop() {
    local i pid
    local -a pids=()
    for i in $(_sb_minion_indices); do
        pid="$(_sb_pid_of "$D/minion-$i")"
        [ -n "$pid" ] && pids+=("$pid")
        rm -f "$D/minion-$i/bench.pid"
    done
    if [ ${#pids[@]} -gt 0 ]; then
        _sb_log "stopping ${#pids[@]} minion(s)"
        _sb_kill_sessions "${pids[@]}"
    fi
    pid="$(_sb_pid_of "$MDIR")"
    if [ -n "$pid" ]; then
        _sb_log "stopping master (pid $pid)"
        _sb_kill_sessions "$pid"
    fi
    rm -f "$MDIR/bench.pid"
    local left
    left="$(_sb_leftovers | tr '\n' ' ')"
    if [ -n "${left// /}" ]; then
        _sb_log "killing leftovers: $left"
        # shellcheck disable=SC2086
        kill -TERM $left 2>/dev/null || true
        sleep 2
        left="$(_sb_leftovers | tr '\n' ' ')"
        if [ -n "${left// /}" ]; then
            # shellcheck disable=SC2086
            kill -KILL $left 2>/dev/null || true
            sleep 0.5
        fi
    fi
    left="$(_sb_leftovers | tr '\n' ' ')"
    if [ -n "${left// /}" ]; then
        _sb_log "WARNING: still running: $left"
        return 1
    fi
    rm -f "$D/sessions"
    _sb_log "stopped"
}

_sb_clean() {
    local i
    for i in $(_sb_minion_indices); do rm -rf "${D:?}/minion-$i"; done
    rm -rf "${MDIR:?}" "$D/minion_count"
    _sb_log "removed master and minion state under $D (venv kept)"
}

salt_bench() { (_salt_bench_main "$@"); }

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    _salt_bench_main "$@"
fi
