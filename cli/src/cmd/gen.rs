//! `backfill gen`: deterministic synthetic data at any scale, streamed to
//! disk.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use backfill_engine::gen::{
    write_epss_rows, EpssGenOptions, EpssOrder, EpssShape, RawArchiveGen, RawGenOptions, Shape,
};
use backfill_engine::Format;

use crate::args::GlobalArgs;

/// What to generate.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum Kind {
    /// A raw NDJSON archive of CSAF, CycloneDX and OpenVEX envelopes.
    Raw,
    /// EPSS rows: a bucket layout (DIR), a FIRST CSV (*.csv, *.csv.gz) or one GitLab NDJSON
    /// file (*.ndjson).
    Epss,
}

/// Ends `--help`: what people type.
const EXAMPLES: &str = "\
Examples:
  # A million raw documents, 5% repeats, 1% malformed lines
  backfill gen raw --count 1000000 --out /tmp/raw.ndjson

  # Documents shaped like Red Hat, SUSE, Canonical and scanner feeds
  backfill gen raw --shape vendor --count 2000 --out /tmp/vendor.ndjson

  # A bucket mirror of 10 million EPSS rows (a FIRST CSV with --out FILE.csv.gz)
  backfill gen epss --count 10000000 --out /tmp/bucket --chunk-rows 1000000";

/// Arguments of `backfill gen`.
#[derive(clap::Args, Debug)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// What to generate.
    #[arg(value_enum)]
    kind: Kind,
    /// Documents (raw) or rows (epss) to write.
    #[arg(long, value_name = "N", env = "BACKFILL_COUNT")]
    count: u64,
    /// Output file, or directory for an EPSS bucket.
    #[arg(long, value_name = "PATH", env = "BACKFILL_OUT")]
    out: PathBuf,
    /// Seed: the same seed writes the same bytes.
    #[arg(long, default_value_t = 1, env = "BACKFILL_SEED")]
    seed: u64,
    /// Formats of raw documents.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "csaf,cyclonedx,openvex",
        env = "BACKFILL_FORMATS"
    )]
    formats: Vec<String>,
    /// Share of lines repeating an earlier document (raw) or CVE (epss).
    #[arg(long, default_value_t = 0.05, env = "BACKFILL_DUP_RATIO")]
    dup_ratio: f64,
    /// Share of malformed raw lines.
    #[arg(long, default_value_t = 0.01, env = "BACKFILL_BAD_RATIO")]
    bad_ratio: f64,
    /// What raw documents look like: compact (1-50 statements, short texts) or vendor (Red
    /// Hat CSAF VEX and advisories, SUSE and Canonical OpenVEX, scanners' CycloneDX: hundreds
    /// of products, long texts repeated over them).
    #[arg(long, value_enum, default_value_t = ShapeArg::Compact, env = "BACKFILL_SHAPE")]
    shape: ShapeArg,
    /// Rows per chunk file in an EPSS bucket.
    #[arg(long, default_value_t = 100_000, env = "BACKFILL_CHUNK_ROWS")]
    chunk_rows: u64,
    /// Sequences (directories) in an EPSS bucket.
    #[arg(long, default_value_t = 1, env = "BACKFILL_SEQUENCES")]
    sequences: u64,
    /// Order of EPSS rows: by CVE as real exports are, or round-robin over
    /// 27 years (a worst case for the store's B-tree).
    #[arg(long, value_enum, default_value_t = Order::Sorted, env = "BACKFILL_ORDER")]
    order: Order,
}

/// `--shape` of `gen raw`.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum ShapeArg {
    Compact,
    Vendor,
}

/// `--order` of `gen epss`.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum Order {
    Sorted,
    Interleaved,
}

fn create(path: &Path) -> anyhow::Result<BufWriter<File>> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let f = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    Ok(BufWriter::with_capacity(1 << 20, f))
}

/// Runs the subcommand.
pub fn run(args: Args, _global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let report = match args.kind {
        Kind::Raw => {
            let formats = args
                .formats
                .iter()
                .map(|f| {
                    Format::from_name(f).ok_or_else(|| anyhow::anyhow!("unknown format {f:?}"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let opts = RawGenOptions {
                count: args.count,
                seed: args.seed,
                formats,
                dup_ratio: args.dup_ratio,
                bad_ratio: args.bad_ratio,
                shape: match args.shape {
                    ShapeArg::Compact => Shape::Compact,
                    ShapeArg::Vendor => Shape::Vendor,
                },
                ..RawGenOptions::default()
            };
            let mut out = create(&args.out)?;
            let r = RawArchiveGen::new(opts).write_to(&mut out)?;
            out.flush()?;
            r
        }
        Kind::Epss => gen_epss(&args)?,
    };
    crate::logger::note(
        format_args!(
            "Wrote {} lines ({} bytes, {} duplicates, {} malformed) to {}.",
            report.lines,
            report.bytes,
            report.duplicates,
            report.malformed,
            args.out.display()
        ),
        true,
    );
    Ok(ExitCode::SUCCESS)
}

fn gen_epss(args: &Args) -> anyhow::Result<backfill_engine::gen::GenReport> {
    let order = match args.order {
        Order::Sorted => EpssOrder::Sorted,
        Order::Interleaved => EpssOrder::Interleaved,
    };
    let opts =
        EpssGenOptions { count: args.count, seed: args.seed, dup_ratio: args.dup_ratio, order };
    let name = args.out.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
    if name.ends_with(".csv") || name.ends_with(".csv.gz") {
        let gz = name.ends_with(".gz");
        let mut first = Some(create(&args.out)?);
        let header =
            "#model_version:v2026.06.15,score_date:2026-09-29T12:00:22Z\ncve,epss,percentile\n";
        return Ok(write_epss_rows(&opts, EpssShape::FirstCsv, &mut |_| {
            let Some(mut f) = first.take() else { return Ok(None) };
            if gz {
                let mut w = flate2_writer(f);
                w.write_all(header.as_bytes())?;
                Ok(Some(w))
            } else {
                f.write_all(header.as_bytes())?;
                Ok(Some(Box::new(f) as Box<dyn Write>))
            }
        })?);
    }
    if name.ends_with(".ndjson") {
        let mut first = Some(create(&args.out)?);
        return Ok(write_epss_rows(&opts, EpssShape::Gitlab, &mut |_| {
            Ok(first.take().map(|f| Box::new(f) as Box<dyn Write>))
        })?);
    }
    // Bucket: rows spread evenly over sequences, chunks of chunk_rows.
    let per_seq = args.count.div_ceil(args.sequences.max(1)).max(1);
    let chunk_rows = args.chunk_rows.max(1);
    let root = args.out.join("v2").join("cve_enrichment");
    Ok(write_epss_rows(&opts, EpssShape::Gitlab, &mut |i| {
        let seq = i / per_seq;
        let in_seq = i % per_seq;
        if !in_seq.is_multiple_of(chunk_rows) {
            return Ok(None);
        }
        let path = root
            .join(format!("{}", 1_700_000_000 + seq * 3600))
            .join(format!("{:09}.ndjson", in_seq / chunk_rows));
        let f = create(&path).map_err(|e| std::io::Error::other(format!("{e:#}")))?;
        Ok(Some(Box::new(f) as Box<dyn Write>))
    })?)
}

fn flate2_writer(f: BufWriter<File>) -> Box<dyn Write> {
    Box::new(GzFinish(Some(backfill_engine::gen::gzip(f))))
}

/// Finishes the gzip stream on flush (the generator flushes at the end).
struct GzFinish(Option<backfill_engine::gen::GzWriter<BufWriter<File>>>);

impl Write for GzFinish {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &mut self.0 {
            Some(w) => w.write(buf),
            None => Err(std::io::Error::other("gzip stream already finished")),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self.0.take() {
            Some(w) => w.finish()?.flush(),
            None => Ok(()),
        }
    }
}
