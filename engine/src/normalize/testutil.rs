//! Test helpers shared by the normalizers' unit tests.

use std::path::PathBuf;

use super::{DropReason, Dropped, Value};

/// `../shared/samples/<format>`, read in place; `None`, saying so, when
/// it is absent.
pub fn samples_dir(format: &str) -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/samples").join(format);
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("SKIPPED: sample folder {} is absent", dir.display());
        None
    }
}

/// The rows of `testdata/sample_claims.tsv` for `format`: file name,
/// statements and entries dropped (each number justified there).
fn rows(format: &str) -> Vec<Vec<String>> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/sample_claims.tsv");
    let text = std::fs::read_to_string(&path).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split('\t').map(str::to_owned).collect::<Vec<_>>())
        .filter(|f| f[0] == format)
        .collect()
}

/// The statements expected from each sample of `format`.
pub fn sample_claims(format: &str) -> Vec<(String, usize)> {
    rows(format).into_iter().map(|f| (f[1].clone(), f[2].parse().unwrap())).collect()
}

/// The entries each sample of `format` is expected to drop.
pub fn sample_dropped(format: &str) -> Vec<(String, Dropped)> {
    rows(format).into_iter().map(|f| (f[1].clone(), parse_dropped(&f[3]))).collect()
}

/// `unknownStatus=2,superseded=1` (or `-`) as counts.
fn parse_dropped(s: &str) -> Dropped {
    let mut d = Dropped::default();
    for part in s.split(',').filter(|p| *p != "-" && !p.is_empty()) {
        let (name, n) = part.split_once('=').unwrap();
        let r = DropReason::ALL.into_iter().find(|r| r.as_str() == name).unwrap();
        d.add(r, n.parse().unwrap());
    }
    d
}

/// `f` of the parsed `json`.
pub fn with_doc<T>(json: &str, f: impl FnOnce(Value<'_>) -> T) -> T {
    let mut bytes = json.as_bytes().to_vec();
    f(simd_json::to_tape(&mut bytes).unwrap().as_value())
}
