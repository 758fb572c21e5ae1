#!/usr/bin/env bash
# The merge of 1,000 shard results of the quickstart: wall time and peak
# resident memory of `phasebench merge`, the figure in docs/performance.md.
#   peers/scale-out/merge_1000.sh [COUNT]      (PHASEBENCH=path to the binary)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
count=${1:-1000}
bin=${PHASEBENCH:-$root/target/release/phasebench}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# One measured quickstart run (its targets may miss on a busy machine: exit 1 is fine).
"$bin" run "$root/scenarios/quickstart.yaml" --out "$work/whole" --quiet >/dev/null || [ $? -eq 1 ]
python3 "$here/make_shards.py" "$work/whole/results.json" "$work/shards" "$count"
size=$(du -sb "$work/shards" | cut -f1)
echo "shards: $count, $(( size / 1024 / 1024 )) MiB of results.json"
for attempt in 1 2 3; do
    rm -rf "$work/merged"
    /usr/bin/time -f "merge $attempt: %e s wall, %M KiB peak resident" \
        "$bin" merge "$work/merged" "$work"/shards/shard-* >/dev/null || [ $? -eq 1 ]
done
echo "merged results.json: $(( $(stat -c %s "$work/merged/results.json") / 1024 )) KiB"
