//! Criterion benchmarks, one module per stage. Inputs come from the
//! engine's synthetic generator (`backfill_benches::archive`).
//!
//! Run: `cargo bench -p backfill-benches` (add a filter, e.g. `-- normalize`).

use criterion::criterion_main;

mod dedupe;
mod json;
mod normalize;
mod pipeline;
mod scan;
mod store;

criterion_main!(
    scan::benches,
    json::benches,
    normalize::benches,
    dedupe::benches,
    store::benches,
    pipeline::benches
);
