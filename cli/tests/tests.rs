//! Integration tests: drive the built `backfill` binary on real files in a
//! temporary directory.

// Workdir, envelope builders, summary parsing.
mod util;

// `backfill statements`: counters, rerun, --force, filters, invariance.
mod statements;

// The public sample documents in ../shared/samples, read in place.
mod samples;

// get, runs, export, exit codes.
mod commands;

// `backfill epss` and `backfill enrich`.
mod epss;

// MongoDB only: server killed mid-run, outages, credentials, write paths,
// EPSS parity with SQLite.
mod mongo;

// Stop signals, kill -9 and resumption.
mod reliability;

// Malformed input: the corpus in testdata/malformed and special files.
mod malformed;

// Sharded runs.
mod sharding;

// rollback and stats.
mod rollback;

// Store faults: locked file, full disk.
mod faults;
