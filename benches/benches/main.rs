//! Criterion benchmarks, one module per stage. Inputs come from the
//! engine's synthetic generator (`backfill_benches::archive`).
//!
//! Run: `cargo bench -p backfill-benches` (add a filter, e.g. `-- normalize`).

use criterion::criterion_main;

mod normalize;
mod pipeline;
mod scan;

criterion_main!(scan::benches, normalize::benches, pipeline::benches);
