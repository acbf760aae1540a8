//! JSON parse + normalize of one document, per format.

use backfill_engine::{parse_document, Format, Scratch};
use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};

fn normalize(c: &mut Criterion) {
    let mut g = c.benchmark_group("engine::parse::parse_document");
    for format in [Format::OpenVex, Format::Csaf, Format::CycloneDx] {
        let (docs, bytes) = backfill_benches::format_documents(format, 300);
        g.throughput(Throughput::Bytes(bytes));
        g.bench_with_input(BenchmarkId::new("format", format), &docs, |b, docs| {
            let mut scratch = Scratch::default();
            b.iter(|| {
                docs.iter()
                    .map(|d| {
                        parse_document(d, None, &mut scratch).map_or(0, |(_, n)| n.claims.len())
                    })
                    .sum::<usize>()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, normalize);
