//! The public sample documents (read in place from `../shared/samples`),
//! each truncated at every 64th byte: parsing and normalizing must fail
//! cleanly or succeed, never panic.

use std::path::Path;

use backfill_engine::{parse_document, Scratch};

#[test]
fn every_sample_truncated_at_every_64th_byte_never_panics() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/samples");
    if !root.is_dir() {
        eprintln!("SKIPPED: sample folder {} is absent", root.display());
        return;
    }
    let mut scratch = Scratch::default();
    let (mut files, mut cuts) = (0, 0u64);
    for dir in ["csaf", "cyclonedx", "openvex"] {
        let mut paths: Vec<_> =
            std::fs::read_dir(root.join(dir)).unwrap().map(|e| e.unwrap().path()).collect();
        paths.sort();
        for p in paths {
            let bytes = std::fs::read(&p).unwrap();
            files += 1;
            for len in (0..bytes.len()).step_by(64) {
                let _ = parse_document(&bytes[..len], None, &mut scratch);
                cuts += 1;
            }
            // Whole, as detected and as each format a wrong envelope could
            // claim (a truncated prefix fails in the parser, before any
            // format matters).
            for format in [None, Some("csaf"), Some("cyclonedx"), Some("openvex")] {
                let _ = parse_document(&bytes, format, &mut scratch);
            }
        }
    }
    assert_eq!(files, 54);
    eprintln!("{files} files, {cuts} truncations: no panic");
}
