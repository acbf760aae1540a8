//! A mutation fuzzer over every parser that sees untrusted bytes: the
//! envelope scan and decode, document parsing with each normalizer, and the
//! EPSS line parsers. Seeds are the public samples (read in place from
//! `../shared/samples`) and this repository's `testdata/`.
//!
//! Deterministic for a seed; bounded by `BACKFILL_FUZZ_SECS` (default 10)
//! and `BACKFILL_FUZZ_ITERS`. Run longer with, e.g.
//! `BACKFILL_FUZZ_SECS=600 cargo test --release -p backfill-engine --test fuzz -- --nocapture`.
//! A panicking input is saved under `target/fuzz-crashes/` and fails the
//! test.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use backfill_engine::gen::Rng;
use backfill_engine::{
    content_bytes, parse_document, parse_gitlab_line, read_envelope, CsvLayout, Limits, Scratch,
};

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, out);
        } else if p.extension().is_some_and(|x| x == "json" || x == "ndjson" || x == "csv") {
            out.push(p);
        }
    }
}

fn seeds() -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut paths = Vec::new();
    let samples = root.join("../../shared/samples");
    if samples.is_dir() {
        for d in ["csaf", "cyclonedx", "openvex", "epss"] {
            files_under(&samples.join(d), &mut paths);
        }
    } else {
        eprintln!("note: {} is absent; fuzzing from testdata/ only", samples.display());
    }
    files_under(&root.join("../testdata"), &mut paths);
    paths.sort();
    let mut out: Vec<Vec<u8>> = Vec::new();
    for p in paths {
        let bytes = std::fs::read(&p).unwrap();
        // Archives contribute each line too, so envelopes get mutated.
        if p.extension().is_some_and(|x| x == "ndjson") {
            out.extend(bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec));
        }
        out.push(bytes);
    }
    out
}

const TOKENS: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b",",
    b":",
    b"\\",
    b"null",
    b"true",
    b"-1",
    b"1e999",
    b"0.5",
    b"\"\\u0000\"",
    b"\xff",
    b"\xef\xbb\xbf",
    b"\"statements\"",
    b"\"vulnerabilities\"",
    b"\"product_tree\"",
    b"\"branches\"",
    b"\"affects\"",
    b"\"subcomponents\"",
    b"\"@context\"",
    b"\"bomFormat\"",
    b"\"content\"",
    b"\"digest\"",
    b"\"retrievedAt\"",
    b"[[[[[[[[",
];

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>], input: &mut Vec<u8>) {
    let pick = |rng: &mut Rng, n: usize| if n == 0 { 0 } else { rng.below(n as u64) as usize };
    for _ in 0..1 + rng.below(4) {
        let len = input.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = pick(rng, len);
                input[i] ^= 1 << rng.below(8);
            }
            1 => {
                let i = pick(rng, len + 1);
                let t = TOKENS[pick(rng, TOKENS.len())];
                input.splice(i..i, t.iter().copied());
            }
            2 if len > 0 => {
                let a = pick(rng, len);
                let b = (a + 1 + pick(rng, 64)).min(len);
                input.drain(a..b);
            }
            3 if len > 0 => {
                let a = pick(rng, len);
                let b = (a + 1 + pick(rng, 256)).min(len);
                let chunk = input[a..b].to_vec();
                let at = pick(rng, len + 1);
                input.splice(at..at, chunk);
            }
            4 => input.truncate(pick(rng, len + 1)),
            5 => {
                let other = &seeds[pick(rng, seeds.len())];
                let at = pick(rng, len + 1);
                let from = pick(rng, other.len() + 1);
                input.truncate(at);
                input.extend_from_slice(&other[from..]);
            }
            6 if len > 0 => {
                let i = pick(rng, len);
                input[i] = b"0123456789\"{}[],:-.eE "[pick(rng, 22)];
            }
            _ => {}
        }
    }
}

/// Every parser on one input. Results are ignored: only panics matter.
fn exercise(input: &[u8], scratch: &mut Scratch) {
    let limits = Limits::default();
    let _ = parse_document(input, None, scratch);
    for f in ["csaf", "cyclonedx", "openvex"] {
        let _ = parse_document(input, Some(f), scratch);
    }
    if let Ok(env) = read_envelope(input) {
        if let Ok(bytes) = content_bytes(env.content, &limits) {
            let _ = parse_document(&bytes, env.format.as_deref(), scratch);
        }
    }
    let _ = backfill_engine::parse_instant(&String::from_utf8_lossy(input));
    for line in input.split(|&b| b == b'\n').take(50) {
        let _ = parse_gitlab_line(line);
    }
    for name in ["epss_scores-2024-01-01.csv", "CVE-2021-0001.csv"] {
        if let Ok(layout) = CsvLayout::read(input, name) {
            for line in input.split(|&b| b == b'\n').take(50) {
                let _ = layout.parse_line(line);
            }
        }
    }
}

#[test]
fn no_parser_panics_on_mutated_inputs() {
    let secs: u64 =
        std::env::var("BACKFILL_FUZZ_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    let max_iters: u64 =
        std::env::var("BACKFILL_FUZZ_ITERS").ok().and_then(|s| s.parse().ok()).unwrap_or(u64::MAX);
    let seed: u64 =
        std::env::var("BACKFILL_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    let seeds = seeds();
    assert!(!seeds.is_empty());
    let mut rng = Rng::new(seed);
    let mut scratch = Scratch::default();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut execs = 0u64;
    // Every seed once, unmutated, then mutations until the budget ends.
    for s in &seeds {
        exercise(s, &mut scratch);
        execs += 1;
    }
    let mut input = Vec::new();
    while execs < max_iters && Instant::now() < deadline {
        input.clear();
        input.extend_from_slice(&seeds[rng.below(seeds.len() as u64) as usize]);
        mutate(&mut rng, &seeds, &mut input);
        let result = catch_unwind(AssertUnwindSafe(|| exercise(&input, &mut scratch)));
        if result.is_err() {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/fuzz-crashes");
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join(format!("crash-{seed}-{execs}.bin"));
            std::fs::write(&path, &input).unwrap();
            panic!(
                "parser panicked on the input saved at {} (after {execs} executions)",
                path.display()
            );
        }
        execs += 1;
    }
    eprintln!("fuzz: {execs} executions over {} seeds (seed {seed}), no panic", seeds.len());
}
