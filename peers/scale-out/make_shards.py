#!/usr/bin/env python3
"""Writes COUNT shard results files from one measured results.json.

Each copy is the measured run, labelled as shard i of COUNT (the file's
`shard` and every run's share), so `phasebench merge` has COUNT real,
full-size pieces to add: what merging COUNT shards of that scenario costs.
The figures of the merged run are COUNT times the original's counts, which
is not what a real split would give; the benchmark measures the merge, not
the scenario.
"""
import json
import pathlib
import sys

source, out, count = sys.argv[1], pathlib.Path(sys.argv[2]), int(sys.argv[3])
results = json.loads(pathlib.Path(source).read_text())
out.mkdir(parents=True, exist_ok=False)
for index in range(count):
    results["shard"] = {"index": index, "count": count, "host": f"host-{index:04d}"}
    for run in results["runs"]:
        run["shard"] = {"index": index, "count": count}
    folder = out / f"shard-{index:04d}"
    folder.mkdir()
    (folder / "results.json").write_text(json.dumps(results))
