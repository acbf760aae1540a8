#!/usr/bin/env bash
# PostgreSQL rows of BENCHMARKS.md: release build, a default-settings
# cluster (fsync on), a fresh database per timed run, medians of 3.
# Needs the PostgreSQL 15 server binaries; run as root (the cluster runs as nobody).
set -euo pipefail
B=$(cd "$(dirname "$0")/../.." && pwd)/target/release/backfill
W=${1:-/tmp/pgbench}
mkdir -p "$W"
PGB=/usr/lib/postgresql/15/bin
cd $W
[ -f raw1x.ndjson ] || $B gen raw --count 3000 --out raw1x.ndjson --seed 3 -q
[ -f epss_scores-2026-09-29.csv ] || $B gen epss --count 380000 --out epss_scores-2026-09-29.csv --seed 2 -q
if [ ! -d b1m ]; then mkdir -p b1m/v2/cve_enrichment/1 && $B gen epss --count 1000000 --out b1m/v2/cve_enrichment/1/000000000.ndjson --seed 1 -q; fi
if [ ! -d cluster ]; then
  mkdir cluster && chown nobody cluster
  runuser -u nobody -- $PGB/initdb -D $W/cluster/data -U postgres -A trust -E UTF8 --locale=C >/dev/null
fi
runuser -u nobody -- $PGB/pg_ctl -D $W/cluster/data -l $W/cluster/log -w -o "-p 55440 -k $W/cluster -c listen_addresses=127.0.0.1 -c shared_buffers=256MB -c max_wal_size=4GB" start >/dev/null
trap 'runuser -u nobody -- $PGB/pg_ctl -D $W/cluster/data -m fast stop >/dev/null' EXIT
U=postgres://postgres@127.0.0.1:55440
fresh() { psql -qX "$U/postgres" -c "drop database if exists bench" -c "create database bench" >/dev/null; }
t() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N); echo "$e - $s" | bc; }
for case in csv bucket raw; do
  for store in sqlite pg; do
    times=()
    for i in 1 2 3; do
      rm -f $W/s.db*; fresh
      S=$W/s.db; [ $store = pg ] && S=$U/bench
      cat raw1x.ndjson epss_scores-2026-09-29.csv b1m/v2/cve_enrichment/1/000000000.ndjson >/dev/null
      case $case in
        csv) times+=($(t $B epss --csv epss_scores-2026-09-29.csv --store $S -q));;
        bucket) times+=($(t $B epss --bucket b1m --store $S -q));;
        raw) times+=($(t $B statements --archive raw1x.ndjson --store $S -q));;
      esac
    done
    med=$(printf '%s\n' "${times[@]}" | sort -n | sed -n 2p)
    echo "$case $store median=$med runs=${times[*]}"
  done
done
# A second sync of the same day: every row unchanged (the WHERE of the upsert).
rm -f $W/s.db*; fresh
$B epss --csv epss_scores-2026-09-29.csv --store $U/bench -q >/dev/null
cp epss_scores-2026-09-29.csv epss_scores-2026-09-30.csv
times=(); for i in 1 2 3; do $B checkpoints reset $W/epss_scores-2026-09-30.csv --store $U/bench >/dev/null 2>&1 || true; times+=($(t $B epss --csv epss_scores-2026-09-30.csv --store $U/bench -q)); done
echo "csv-unchanged pg median=$(printf '%s\n' "${times[@]}" | sort -n | sed -n 2p) runs=${times[*]}"
