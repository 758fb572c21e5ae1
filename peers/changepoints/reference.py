#!/usr/bin/env python3
"""Change points of a corpus of seeded series by MongoDB's
signal-processing-algorithms (PyPI), for tests/changepoints.rs.

    python3 -m venv /tmp/spa && /tmp/spa/bin/pip install signal-processing-algorithms==2.1.6
    /tmp/spa/bin/python peers/changepoints/reference.py > peers/changepoints/reference.json

1,000 shuffles per permutation test rather than the package's default 100:
with 100, a p-value near 0.05 (and the ties a five-point series has) decides
differently from one random generator to the next, so the decisions compared
would be coin flips.

Each case is a series (rows of one or more values), the settings, the
change points e_divisive found (in the order it found them) and the energy
statistic of every split of the whole series, so that the deterministic part
is compared exactly and the permutation tests by their decisions.
"""

import json
import sys

import numpy as np
from signal_processing_algorithms.energy_statistics import energy_statistics as es

P_VALUE = 0.05
PERMUTATIONS = 1000


def cases():
    rng = np.random.default_rng(20261201)
    noise = lambda n, sd=1.0: rng.normal(0.0, sd, n)
    yield "step up", 100 + noise(40) + np.r_[np.zeros(25), np.full(15, 8.0)]
    yield "step down", 50 + noise(30, 0.5) - np.r_[np.zeros(12), np.full(18, 3.0)]
    yield "two steps", 20 + noise(60, 0.4) + np.r_[np.zeros(20), np.full(20, 2.5), np.full(20, -1.5)]
    yield "three steps", 10 + noise(80, 0.3) + np.r_[np.zeros(20), np.full(20, 1.5), np.full(20, 3.0), np.full(20, 1.0)]
    yield "variance grows", 10 + np.r_[noise(30, 0.2), noise(30, 3.0)]
    yield "small step", 100 + noise(50) + np.r_[np.zeros(30), np.full(20, 1.5)]
    for seed in range(4):
        yield f"no change {seed}", 5 + noise(40)
    spikes = 30 + noise(50, 0.5)
    spikes[[7, 23, 41]] += [15.0, -12.0, 20.0]
    yield "outliers, no change", spikes
    spiked_step = 30 + noise(50, 0.5) + np.r_[np.zeros(28), np.full(22, 3.0)]
    spiked_step[[5, 40]] += [12.0, -10.0]
    yield "outliers and a step", spiked_step
    yield "slow drift", 10 + noise(40, 0.5) + np.linspace(0, 6, 40)
    body = np.column_stack([noise(40, 0.02), noise(40, 0.02), 0.05 * noise(40)])
    body[:, 2] += np.r_[np.zeros(24), np.full(16, np.log(2.0))]
    yield "profile: tail only", np.log([1.0, 2.0, 3.0]) + body
    yield "short", np.array([1.0, 1.1, 5.0, 5.2, 5.1])
    yield "short step", 3 + noise(12, 0.1) + np.r_[np.zeros(6), np.full(6, 1.0)]


def main():
    out = []
    for name, series in cases():
        series = np.asarray(series, dtype=float)
        rows = series.reshape(len(series), -1)
        np.random.seed(1)
        points = es.e_divisive(rows, pvalue=P_VALUE, permutations=PERMUTATIONS)
        distances = es._get_distance_matrix(rows)
        stats = es._calculate_t_stats(distances)
        out.append({
            "name": name,
            "series": rows.tolist(),
            "p_value": P_VALUE,
            "permutations": PERMUTATIONS,
            "change_points": [int(p) for p in points],
            "statistics": [float(s) for s in stats],
        })
    json.dump({"tool": "signal-processing-algorithms 2.1.6", "cases": out}, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
