#!/usr/bin/env python3
"""Heap a call costs, from a heaptrack recording of the daemon.

Usage:
    GENKI_BIN_DIR=/var/tmp/genki-target/release \
      WRAP_GENKI="heaptrack -o /tmp/ht/genki" scripts/loadtest 1000 --all-answer
    pkill -TERM -f "release/genki serve"        # heaptrack writes on exit
    heaptrack_print -f /tmp/ht/genki.zst -F /tmp/ht/stacks.txt \
      --flamegraph-cost-type peak > /dev/null
    scripts/heap-per-call.py /tmp/ht/stacks.txt 1000

The stacks file holds the heap at its peak (1,000 calls up), one line per
allocation stack ("frame;frame;… bytes"). Each allocation is put where its
innermost genki or RocksDB frame says: RocksDB (memtables and caches grow
with writes, not with calls), what genki builds once at start-up (I/O
rings, prompts, metrics' histograms), the API's and console's requests
(the load driver's polling), and the rest — the calls. That last part,
divided by the calls up at the peak, is the figure of issue 17's target 2
(docs/capacity.md). The biggest call-path sites follow.
"""

import collections
import sys

# Innermost genki frames of what is allocated once, whatever the calls.
FIXED = (
    "UringIo::new",
    "Prompt::from_pcm",
    "Console::new",
    "Latency::up_to_us",
    "Metrics as core..default..Default",
    "cli::serve::run",
    "PacketBatch::new",
    "Calendar::of",
    "passwords::",
    "MediaRuntime::new",
    "endpoint::run::",
    "worker::run",
)


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    path, calls = sys.argv[1], int(sys.argv[2])
    cats: collections.Counter = collections.Counter()
    sites: collections.Counter = collections.Counter()
    total = 0
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            stack, _, n = line.rpartition(" ")
            n = int(n)
            total += n
            frames = stack.split(";")
            inner = next(
                (x for x in reversed(frames) if "genki" in x or "rocksdb::" in x), None
            )
            if inner is None:
                cats["other (libc, tokio internals)"] += n
                continue
            if "rocksdb::" in inner:
                cats["RocksDB (memtables, caches)"] += n
                continue
            name = inner.split(" (")[0].rsplit("::h", 1)[0].replace("$u20$", " ")
            if any("genki_engine::api::" in x or "console::" in x for x in frames):
                cats["API and console requests"] += n
            elif any(k in name for k in FIXED):
                cats["fixed at start-up (I/O rings, prompts, metrics)"] += n
            else:
                cats["the calls"] += n
                sites[name[:110]] += n
    print(f"peak heap {total / 1e6:.2f} MB")
    for k, v in cats.most_common():
        extra = f"  = {v / calls:.0f} B a call" if k == "the calls" else ""
        print(f"  {v / 1e6:6.2f} MB  {k}{extra}")
    print("the biggest call-path sites:")
    for k, v in sites.most_common(20):
        print(f"  {v / calls:7.0f} B a call  {k}")


if __name__ == "__main__":
    try:
        main()
    except BrokenPipeError:
        pass
