//! The SQLite store alone, fed what the parse stage produces: statements of
//! 1,000 mixed documents in batches of 100 into a new file (with the
//! lookup index built at the end), and 100,000 EPSS rows in CVE order.

use std::sync::Arc;

use backfill_engine::{
    parse_document, CveId, Digest, DocumentWrite, EpssRow, EpssSink, Scratch, StatementSink,
    WriteContext,
};
use criterion::{criterion_group, BatchSize, BenchmarkId, Criterion, Throughput};

fn statements(c: &mut Criterion) {
    let mut g = c.benchmark_group("engine::store::sqlite::write_documents");
    g.sample_size(10);
    let a = backfill_benches::mixed_archive(1_000);
    let mut scratch = Scratch::default();
    let docs: Vec<DocumentWrite> = backfill_benches::documents(&a)
        .iter()
        .filter_map(|d| {
            let (format, n) = parse_document(d, None, &mut scratch).ok()?;
            Some(DocumentWrite {
                digest: Digest::of(d),
                provider_id: "bench".into(),
                format,
                source_uri: "https://bench.example/doc.json".into(),
                retrieved_at: 1_700_000_000_000_000,
                metadata: None,
                document_id: n.document_id,
                revision: n.revision,
                claims: n.claims,
                dropped: n.dropped,
                notes: n.notes,
            })
        })
        .collect();
    let statements: usize = docs.iter().map(|d| d.claims.len()).sum();
    g.throughput(Throughput::Elements(statements as u64));
    g.bench_function(BenchmarkId::new("mixed", format!("{statements} statements")), |b| {
        b.iter_batched(
            backfill_benches::new_store,
            |(_dir, mut store)| {
                store.begin_load().unwrap();
                let ctx = WriteContext {
                    run_id: "bench",
                    inserted_at: 0,
                    force: false,
                    checkpoint: None,
                    run: None,
                };
                for batch in docs.chunks(100) {
                    store.write_documents(batch, &ctx).unwrap();
                }
                store.end_load().unwrap();
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn epss(c: &mut Criterion) {
    let mut g = c.benchmark_group("engine::store::sqlite::write_epss");
    g.sample_size(10);
    let (model, date): (Arc<str>, Arc<str>) = ("v2026.06.15".into(), "2026-09-29T00:00:00Z".into());
    let rows: Vec<EpssRow> = (0..100_000u32)
        .map(|i| EpssRow {
            cve: CveId::parse(&format!("CVE-{}-{:05}", 1999 + i / 4_000, i % 4_000 + 1)).unwrap(),
            epss_score: f64::from(i % 1000) / 1000.0,
            percentile: Some(f64::from(i % 997) / 997.0),
            is_known_exploit: None,
            model_version: Some(model.clone()),
            score_date: Some(date.clone()),
        })
        .collect();
    g.throughput(Throughput::Elements(rows.len() as u64));
    g.bench_function(BenchmarkId::new("sorted", "100000 rows"), |b| {
        b.iter_batched(
            backfill_benches::new_store,
            |(_dir, mut store)| {
                for batch in rows.chunks(50_000) {
                    store.write_epss(batch, None, 0).unwrap();
                }
                store.flush_wal().unwrap();
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, statements, epss);
