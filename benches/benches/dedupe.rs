//! The concurrent digest set that drops repeated documents: inserts of
//! 200,000 digests (5% repeats) on 1 and 2 threads.

use backfill_engine::{Digest, DigestSet};
use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use rayon::prelude::*;

fn dedupe(c: &mut Criterion) {
    let mut g = c.benchmark_group("engine::dedupe::DigestSet::insert");
    let n = 200_000u64;
    // Every twentieth digest repeats an earlier one, as in a replay.
    let digests: Vec<Digest> = (0..n)
        .map(|i| if i % 20 == 19 { i - 10 } else { i })
        .map(|i| Digest::of(&i.to_le_bytes()))
        .collect();
    g.throughput(Throughput::Elements(n));
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        g.bench_with_input(BenchmarkId::new("threads", threads), &threads, |b, _| {
            b.iter(|| {
                let set = DigestSet::new();
                let new = pool.install(|| digests.par_iter().filter(|d| set.insert(**d)).count());
                assert_eq!(new as u64, n - n / 20);
                new
            })
        });
    }
    g.finish();
}

criterion_group!(benches, dedupe);
