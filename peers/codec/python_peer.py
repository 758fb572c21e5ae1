#!/usr/bin/env python3
"""A second peer on the same library version as phasebench: python-zstandard
(which bundles its own libzstd) compressing and decompressing each 64 KiB
block of a folder with one reused context, single-threaded, as phasebench's
codec engine and `zstd -b` do. Prints one line per level:
`level=L ratio=R compress=MB/s decompress=MB/s zstd=VERSION`.

Usage: python_peer.py FOLDER SECONDS LEVEL...
"""

import os
import sys
import time

import zstandard

BLOCK = 64 * 1024


def blocks(folder):
    out = []
    for name in sorted(os.listdir(folder)):
        data = open(os.path.join(folder, name), "rb").read()
        out.extend(data[i:i + BLOCK] for i in range(0, len(data), BLOCK))
    return out


def timed_passes(work, seconds):
    """Whole passes of `work` until `seconds` have gone by; mean seconds per pass."""
    passes, spent = 0, 0.0
    while spent < seconds or passes == 0:
        start = time.perf_counter()
        work()
        spent += time.perf_counter() - start
        passes += 1
    return spent / passes


def main(folder, seconds, levels):
    data = blocks(folder)
    plain = sum(len(block) for block in data)
    version = ".".join(map(str, zstandard.ZSTD_VERSION))
    for level in levels:
        compressor = zstandard.ZstdCompressor(level=level)
        frames = [compressor.compress(block) for block in data]
        packed = sum(len(frame) for frame in frames)
        compress = timed_passes(lambda: [compressor.compress(block) for block in data], seconds)
        decompressor = zstandard.ZstdDecompressor()
        assert all(decompressor.decompress(f) == b for f, b in zip(frames, data))
        decompress = timed_passes(lambda: [decompressor.decompress(frame) for frame in frames], seconds)
        print(f"level={level} ratio={plain / packed:.4f} compress={plain / compress / 1e6:.1f} "
              f"decompress={plain / decompress / 1e6:.1f} zstd={version}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]), [int(level) for level in sys.argv[3:]])
