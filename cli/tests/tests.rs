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

// `backfill epss` per-file checkpoints: files replaced or rewritten in place,
// --force, empty and damaged files, stores from before content identities.
mod epss_files;

// MongoDB only: server killed mid-run, outages, credentials, write paths,
// EPSS parity with SQLite. Needs the cargo feature `mongodb`.
#[cfg(feature = "mongodb")]
mod mongo;

// PostgreSQL only: server stopped mid-run and restarted, outages, exports
// identical to SQLite's. Needs the cargo feature `postgres`.
#[cfg(feature = "postgres")]
mod postgres;

// Stop signals, kill -9 and resumption.
mod reliability;

// Inputs on the file system: non-UTF-8 names, suffix case, links, loops,
// bad .gz and unreadable files wherever named, 100,000-file directories.
mod inputs;

// Malformed input: the corpus in testdata/malformed and special files.
mod malformed;

// Sharded runs.
mod sharding;

// rollback and stats.
mod rollback;

// `backfill checkpoints`: listing and resetting resume points.
mod checkpoints;

// Store faults: locked file, full disk.
mod faults;

// Field correctness (issue 13): store paths, filtered resumes, abandoned
// and concurrent runs, secrets, failure reporting.
mod field;

// Command-line conventions (issue 18): completions, man page, JSON logs,
// BACKFILL_* environment fallbacks, help.
mod conventions;

// What is read and what is printed (issue 18): stdin archives and their
// checkpoint names, --glob/--exclude, export filters.
mod streams;

// Upgrading SQLite stores of older layouts in place (issue 16).
mod migrate;
