#!/usr/bin/env bash
# `phasebench launch slurm` against a real Slurm: a one-node cluster on this
# machine, 4 shards of examples/slurm/calibrate.yaml submitted as an array job,
# then the merge job that waits for it (afterok).
#
#   sudo scripts/slurm-check.sh        # as root, on Debian 12; CI runs it (.ci/run)
#
# 1. installs slurm-wlm and munge (apt-get) if missing; 2. writes a one-node
# slurm.conf under $PHASEBENCH_SLURM_STATE (/tmp/phasebench-slurm) and starts
# munged (unless one already answers), slurmctld and slurmd; 3. waits for the
# node to be idle and runs a trivial array job; 4. builds target/debug/phasebench
# (PHASEBENCH_BIN to use another) and submits the launch; 5. waits for both jobs
# (PHASEBENCH_SLURM_TIMEOUT seconds, 600) and checks the merged run folder;
# 6. stops the daemons it started. Exits non-zero on any failure, printing the
# Slurm logs. Safe to run twice: it stops what a previous run left and starts
# from an empty state folder.
set -euo pipefail
cd "$(dirname "$0")/.."

state=${PHASEBENCH_SLURM_STATE:-/tmp/phasebench-slurm}
timeout_s=${PHASEBENCH_SLURM_TIMEOUT:-600}
scenario=examples/slurm/calibrate.yaml
shards=4
node=$(hostname -s)
started_munge=0
began=$(date +%s)

say() { echo "== slurm-check: $*"; }

# Ends a daemon this script started, by the id in its pid file.
stop_pidfile() {
    local file=$1 pid
    [ -f "$file" ] || return 0
    pid=$(cat "$file" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$file"
}

stop_daemons() {
    stop_pidfile "$state/slurmd.pid"
    stop_pidfile "$state/slurmctld.pid"
    if [ -f "$state/munged.started" ]; then
        stop_pidfile /run/munge/munged.pid
        rm -f "$state/munged.started"
    fi
}

show_logs() {
    for log in "$state"/log/*.log "$state"/run/logs/*.out "$state"/hostname-*.out; do
        [ -f "$log" ] || continue
        echo "---- $log (last 40 lines)"
        tail -n 40 "$log"
    done
    squeue 2>/dev/null || true
    sinfo -N -l 2>/dev/null || true
}

finish() {
    local status=$?
    if [ "$status" -ne 0 ]; then
        say "FAILED (exit $status); Slurm logs follow"
        show_logs
    fi
    stop_daemons
    say "took $(( $(date +%s) - began )) s"
    exit "$status"
}

fail() { echo "slurm-check: $*" >&2; exit 1; }

# Polls `$@` every second until it succeeds, for at most $1 seconds.
wait_for() {
    local limit=$1 what=$2
    shift 2
    for _ in $(seq "$limit"); do
        if "$@"; then return 0; fi
        sleep 1
    done
    fail "timed out after ${limit}s waiting for $what"
}

[ "$(id -u)" -eq 0 ] || fail "run as root: it installs packages and starts slurmctld, slurmd and munged"

say "packages"
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null \
    || ! command -v munged >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq slurm-wlm munge >/dev/null
fi

# A previous run's daemons (their pid files are in the state folder) go first.
stop_daemons
rm -rf "$state"
mkdir -p "$state"/{etc,log,spool/ctld,spool/d}
trap finish EXIT

say "configuration ($state/etc/slurm.conf)"
memory_mb=$(( $(awk '/^MemTotal:/ { print $2 }' /proc/meminfo) / 1024 * 9 / 10 ))
cat >"$state/etc/slurm.conf" <<EOF
ClusterName=phasebench
SlurmctldHost=$node
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$state/spool/ctld
SlurmdSpoolDir=$state/spool/d
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MinJobAge=600
MaxArraySize=10001
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=$node CPUs=$(nproc) RealMemory=$memory_mb State=UNKNOWN
# Every shard must run at once to start together: the cores are shared.
PartitionName=check Nodes=$node Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:$shards
EOF
export SLURM_CONF=$state/etc/slurm.conf

say "munge"
if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    echo "munged already answers; using it"
else
    [ -s /etc/munge/munge.key ] || mungekey --create --keyfile /etc/munge/munge.key
    chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    touch "$state/munged.started"
    runuser -u munge -- /usr/sbin/munged
    wait_for 20 "munged" sh -c 'munge -n | unmunge >/dev/null 2>&1'
fi

say "slurmctld, slurmd"
slurmctld
wait_for 30 "slurmctld" sh -c 'scontrol ping >/dev/null 2>&1'
slurmd
node_idle() { [ "$(sinfo -h -n "$node" -o %t 2>/dev/null)" = idle ]; }
wait_for 60 "node $node to be idle" node_idle
sinfo

# Waits until none of the jobs $@ is queued or running.
jobs_done() { [ -z "$(squeue -h -j "$(IFS=,; echo "$*")" 2>/dev/null)" ]; }
job_state() { scontrol show job "$1" | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p' | sort -u | tr '\n' ' '; }

say "a trivial array job"
smoke=$(sbatch --parsable --array=0-3 --output="$state/hostname-%a.out" --wrap hostname)
smoke=${smoke%%;*}
wait_for 120 "array job $smoke" jobs_done "$smoke"
for index in 0 1 2 3; do
    grep -qx "$(hostname)" "$state/hostname-$index.out" || fail "array task $index did not print the host name"
done
echo "array job $smoke: 4 tasks ran on $node"

say "phasebench"
if [ -n "${PHASEBENCH_BIN:-}" ]; then
    bin=$PHASEBENCH_BIN
else
    # Reuses what `cargo test` built.
    cargo build --locked --bin phasebench
    bin=${CARGO_TARGET_DIR:-$PWD/target}/debug/phasebench
fi

say "launch slurm: $shards shards of $scenario"
"$bin" launch slurm "$scenario" --shards "$shards" --dir "$state/run" --submit --start-in 20 | tee "$state/launch.out"
array=$(awk '/^array job:/ { print $3 }' "$state/launch.out")
merge=$(awk '/^merge job:/ { print $3 }' "$state/launch.out")
[ -n "$array" ] && [ -n "$merge" ] || fail "launch printed no job ids"
wait_for "$timeout_s" "jobs $array and $merge" jobs_done "$array" "$merge"
echo "array job $array: $(job_state "$array")"
echo "merge job $merge: $(job_state "$merge")"
[ "$(job_state "$merge")" = "COMPLETED " ] || fail "the merge job did not complete"

say "merged run folder"
merged=$state/run/merged
for file in results.json report.md; do
    [ -s "$merged/$file" ] || fail "$merged/$file is missing"
done
python3 - "$merged/results.json" "$shards" <<'EOF'
import json, sys

results = json.load(open(sys.argv[1]))
shards = int(sys.argv[2])
ops = {run["id"]: run["operations"] for run in results["runs"]}
print("merged operations:", ops)
# calibrate.yaml: iterations are dealt out exactly; the open loop runs at its rate.
for run, expected in {"noop": 20000, "spin": 2000}.items():
    assert ops.get(run) == expected, f"{run}: {ops.get(run)} operations, expected {expected}"
assert 700 <= ops.get("open-loop", 0) <= 900, f"open-loop: {ops.get('open-loop')} operations, expected about 800"
merged = results["merged"]
indexes = sorted(shard["index"] for shard in merged["shards"])
print("shards merged:", indexes, "skew between starts:", merged["skew_seconds"], "s")
assert indexes == list(range(shards)), f"expected shards 0..{shards - 1}, got {indexes}"
assert not merged.get("missing"), f"missing shards: {merged.get('missing')}"
assert results["complete"], "the merged run is marked incomplete"
EOF
grep -n -i "shard" "$merged/report.md" | head -5
say "ok"
