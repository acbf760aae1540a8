#!/usr/bin/env python3
"""Runs a command and reports its peak anonymous memory (RssAnon: heap,
stacks; not the page cache of memory-mapped input files) and peak total RSS,
sampled every 10 ms from /proc. Usage: peak_anon.py CMD ARGS..."""
import subprocess
import sys
import time

p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
peak_anon = peak_rss = 0
while p.poll() is None:
    try:
        with open(f"/proc/{p.pid}/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    peak_anon = max(peak_anon, int(line.split()[1]))
                elif line.startswith("VmRSS:"):
                    peak_rss = max(peak_rss, int(line.split()[1]))
    except FileNotFoundError:
        pass
    time.sleep(0.01)
print(f"peak RssAnon {peak_anon // 1024} MiB, peak VmRSS {peak_rss // 1024} MiB, exit {p.returncode}")
