//! Envelope scan: the ordering pass over a mapped archive.

use backfill_engine::{Archives, Format, Limits};
use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};

fn scan(c: &mut Criterion) {
    let a = backfill_benches::archive(
        &[Format::Csaf, Format::CycloneDx, Format::OpenVex],
        2_000,
        0.0,
        0.0,
    );
    let mut g = c.benchmark_group("engine::source::Archives::scan");
    g.throughput(Throughput::Bytes(a.bytes));
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        let archives = Archives::open(
            std::slice::from_ref(&a.path),
            Default::default(),
            &backfill_engine::Limits::default(),
        )
        .unwrap();
        g.bench_with_input(BenchmarkId::new("threads", threads), &threads, |b, _| {
            b.iter(|| pool.install(|| archives.scan(&Limits::default()).len()))
        });
    }
    g.finish();
}

criterion_group!(benches, scan);
