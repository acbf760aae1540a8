#!/usr/bin/env bash
# Reproduces every figure in BENCHMARKS.md in one session on one machine:
# our tool and the alternatives on the same generated files.
#   benches/scale/run.sh [WORKDIR]   (default /tmp/backfill-bench; ~15 GB free disk)
#   ONLY=limits|epss|raw|shape benches/scale/run.sh   runs one section (RUNS=N: runs each)
# Needs: a dist build (fat LTO, built here), hyperfine (apt), python3 venv with duckdb.
set -euo pipefail
cd "$(dirname "$0")/../.."
W=${1:-/tmp/backfill-bench}
mkdir -p "$W"
RUNS=${RUNS:-5}     # our commands; the slow alternatives run 3 times
cargo build --profile dist -p backfill --locked
B=$PWD/target/dist/backfill
command -v hyperfine >/dev/null || { apt-get update -qq && apt-get install -y -qq hyperfine; }
if [ ! -x "$W/venv/bin/python" ]; then
    python3 -m venv "$W/venv"
    "$W/venv/bin/pip" install -q duckdb==1.4.4
fi
PY=$W/venv/bin/python
H() { hyperfine --runs "$RUNS" --export-json "$W/$1.json" --style basic "${@:2}"; }
# Every timed run starts with its input in the page cache: this machine's
# kernel reclaims idle file pages within minutes (DAMON), so a run after a
# pause would otherwise read from disk and time that instead.
warm() { echo "cat $* > /dev/null"; }
# Peak anonymous memory (heap, stacks: not the mapped input's page cache).
RSS() { echo "$1:"; python3 benches/scale/peak_anon.py "${@:2}"; }

# --- inputs -----------------------------------------------------------------
# EPSS rows come in CVE order, as real exports do; the interleaved file is a
# worst case for the store's B-tree (27 insertion points at once).
[ -f "$W/epss10m.ndjson" ] || $B gen epss --count 10000000 --out "$W/epss10m.ndjson" --seed 1
[ -f "$W/epss10m-interleaved.ndjson" ] ||
    $B gen epss --count 10000000 --out "$W/epss10m-interleaved.ndjson" --seed 1 --order interleaved
for b in b10m:epss10m b10m-interleaved:epss10m-interleaved; do
    mkdir -p "$W/${b%%:*}/v2/cve_enrichment/1700000000"
    ln -f "$W/${b#*:}.ndjson" "$W/${b%%:*}/v2/cve_enrichment/1700000000/000000000.ndjson"
done
[ -f "$W/epss_scores-2026-09-29.csv" ] || $B gen epss --count 380000 --out "$W/epss_scores-2026-09-29.csv" --seed 2
for n in 1 10 30; do
    [ -f "$W/raw${n}x.ndjson" ] || $B gen raw --count $((3000 * n)) --out "$W/raw${n}x.ndjson" --seed 3
done

want() { [ -z "${ONLY:-}" ] || [ "$ONLY" = "$1" ]; }

# --- machine limits -----------------------------------------------------------
want limits && H limits_read -p "$(warm $W/epss10m.ndjson)" "cat $W/epss10m.ndjson > /dev/null" "wc -l $W/epss10m.ndjson"

# --- EPSS: 10M rows, 5% duplicate CVEs ----------------------------------------
E=$W/epss10m.ndjson EI=$W/epss10m-interleaved.ndjson D=$W/epss_scores-2026-09-29.csv
if want epss; then
RUNS=3 H epss10m \
    -p "rm -f $W/e.db*; $(warm $E)" "$B epss --bucket $W/b10m --store $W/e.db -q" \
    -p "rm -f $W/d.duckdb*; $(warm $E)" "$PY benches/scale/duckdb_load.py ctas $E $W/d.duckdb" \
    -p "rm -f $W/d.duckdb*; $(warm $E)" "$PY benches/scale/duckdb_load.py distinct $E $W/d.duckdb" \
    -p "rm -f $W/d.duckdb*; $(warm $E)" "$PY benches/scale/duckdb_load.py keyed $E $W/d.duckdb" \
    -p "rm -f $W/n.db*; $(warm $E)" "$PY benches/scale/naive_loader.py $E $W/n.db"
H epss10m_ours -p "rm -f $W/e.db*; $(warm $E)" "$B epss --bucket $W/b10m --store $W/e.db -q"
RUNS=3 H epss10m_interleaved \
    -p "rm -f $W/e.db*; $(warm $EI)" "$B epss --bucket $W/b10m-interleaved --store $W/e.db -q" \
    -p "rm -f $W/d.duckdb*; $(warm $EI)" "$PY benches/scale/duckdb_load.py keyed $EI $W/d.duckdb"
rm -f "$W"/e.db*; RSS "epss 10M" $B epss --bucket "$W/b10m" --store "$W/e.db" -q
H epss_day -p "rm -f $W/c.db*; $(warm $D)" "$B epss --csv $D --store $W/c.db -q"
fi

# --- raw archives: parse + normalize (dry run) and end to end into SQLite -----
if want raw; then
for t in 1 2; do
    H "raw_dry_t$t" -p "$(warm $W/raw10x.ndjson)" \
        "$B statements --archive $W/raw10x.ndjson --dry-run --threads $t -q"
done
for n in 1 10 30; do
    H "raw_e2e_${n}x" -p "rm -f $W/s.db*; $(warm $W/raw${n}x.ndjson)" \
        "$B statements --archive $W/raw${n}x.ndjson --store $W/s.db -q"
done
rm -f "$W"/s.db*; RSS "raw 30x" $B statements --archive "$W/raw30x.ndjson" --store "$W/s.db" -q
fi
# --- real-world shape: vendor-shaped archive and the samples replay ------------
# Statements per document, bytes per statement (exported and stored), dry run
# and end to end on each; see BENCHMARKS.md, "Real-world shape".
if want shape; then
[ -f "$W/vendor1500.ndjson" ] || $B gen raw --shape vendor --count 1500 --seed 11 --out "$W/vendor1500.ndjson"
SAMPLES=${SAMPLES:-../shared/samples}
[ -f "$W/samples300.ndjson" ] || python3 benches/scale/samples_archive.py "$SAMPLES" "$W/samples300.ndjson" 300
for a in vendor1500 samples300; do
    H "shape_dry_$a" -p "$(warm $W/$a.ndjson)" "$B statements --archive $W/$a.ndjson --dry-run -q"
    H "shape_e2e_$a" -p "rm -f $W/s.db*; $(warm $W/$a.ndjson)" \
        "$B statements --archive $W/$a.ndjson --store $W/s.db -q"
    echo "$a:"; $B export --store "$W/s.db" | python3 benches/scale/shape_stats.py "$W/s.db"
    rm -f "$W"/s.db*; RSS "$a" $B statements --archive "$W/$a.ndjson" --store "$W/s.db" -q
done
fi
ls -la "$W"/*.ndjson
