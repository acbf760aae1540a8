//! Parse + normalize of a whole OpenVEX archive (decode, digest check,
//! simd-json, normalizer) on 1 and 2 threads, no store; and end to end into
//! a SQLite store.

use std::sync::atomic::AtomicBool;

use backfill_engine::{
    evaluate, order_entries, run_statements, Archives, Format, NoProgress, RunInfo, Scratch,
    StatementsConfig,
};
use criterion::{criterion_group, BatchSize, BenchmarkId, Criterion, Throughput};
use rayon::prelude::*;

fn parse_normalize(c: &mut Criterion) {
    let mut g = c.benchmark_group("engine::pipeline::parse_normalize");
    for (name, formats) in [
        ("openvex", vec![Format::OpenVex]),
        ("mixed", vec![Format::Csaf, Format::CycloneDx, Format::OpenVex]),
    ] {
        let a = backfill_benches::archive(&formats, 1_000, 0.0, 0.0);
        let cfg = StatementsConfig { archives: vec![a.path.clone()], ..Default::default() };
        let archives = Archives::open(&cfg.archives, Default::default(), &cfg.limits).unwrap();
        let entries = order_entries(&archives, &cfg);
        g.throughput(Throughput::Bytes(a.bytes));
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            g.bench_with_input(
                BenchmarkId::new(name, format!("threads={threads}")),
                &threads,
                |b, _| {
                    b.iter(|| {
                        pool.install(|| {
                            entries
                                .par_iter()
                                .map_init(Scratch::default, |s, e| {
                                    evaluate(&archives, e, false, &cfg.limits, s);
                                })
                                .count()
                        })
                    })
                },
            );
        }
    }
    g.finish();
}

fn end_to_end(c: &mut Criterion) {
    let mut g = c.benchmark_group("engine::pipeline::run_statements");
    g.sample_size(10);
    let a = backfill_benches::mixed_archive(1_000);
    g.throughput(Throughput::Bytes(a.bytes));
    g.bench_function(BenchmarkId::new("sqlite", "mixed"), |b| {
        b.iter_batched(
            backfill_benches::new_store,
            |(_dir, mut store)| {
                let cfg = StatementsConfig { archives: vec![a.path.clone()], ..Default::default() };
                let run =
                    RunInfo { run_id: "bench".into(), command: "bench".into(), arguments: vec![] };
                run_statements(&cfg, &mut store, &run, &NoProgress, &AtomicBool::new(false))
                    .unwrap()
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, parse_normalize, end_to_end);
