//! JSON parse alone: simd-json's tape over each decoded document, per
//! format, so the normalizers' share of `parse_document` can be read off.

use backfill_engine::Format;
use criterion::{criterion_group, BatchSize, BenchmarkId, Criterion, Throughput};

fn json(c: &mut Criterion) {
    let mut g = c.benchmark_group("simd_json::to_tape");
    for format in [Format::OpenVex, Format::Csaf, Format::CycloneDx] {
        let (docs, bytes) = backfill_benches::format_documents(format, 300);
        g.throughput(Throughput::Bytes(bytes));
        g.bench_with_input(BenchmarkId::new("format", format), &docs, |b, docs| {
            // simd-json parses in place: each iteration gets fresh copies.
            b.iter_batched_ref(
                || docs.clone(),
                |docs| {
                    docs.iter_mut()
                        .map(|d| simd_json::to_tape(d).map_or(0, |t| t.0.len()))
                        .sum::<usize>()
                },
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, json);
