#!/usr/bin/env bash
# Interleaved A/B timing of two commands: A and B alternate, so the drift of
# a shared machine hits both alike. Prints each one's median and all runs.
#   benches/scale/ab.sh ROUNDS PREPARE -- CMD_A... -- CMD_B...
# PREPARE runs (through the shell) before every timed run, e.g.
#   benches/scale/ab.sh 9 'rm -f s.db*' -- old/backfill statements --archive raw1x.ndjson \
#       --store s.db -q -- new/backfill statements --archive raw1x.ndjson --store s.db -q
set -euo pipefail
n=$1 prep=$2
shift 2
[ "$1" = "--" ] || { echo "usage: $0 ROUNDS PREPARE -- CMD_A... -- CMD_B..." >&2; exit 2; }
shift
a=()
while [ "$1" != "--" ]; do a+=("$1"); shift; done
shift
b=("$@")
ta=() tb=()
now() { date +%s.%N; }
for _ in $(seq "$n"); do
    for w in a b; do
        bash -c "$prep"
        s=$(now)
        if [ $w = a ]; then "${a[@]}" >/dev/null; else "${b[@]}" >/dev/null; fi
        t=$(echo "$(now) - $s" | bc)
        if [ $w = a ]; then ta+=("$t"); else tb+=("$t"); fi
    done
done
med() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
echo "A median $(med "${ta[@]}") s, runs: ${ta[*]}"
echo "B median $(med "${tb[@]}") s, runs: ${tb[*]}"
