//! The malformed-input corpus (testdata/malformed, see testdata/README.md)
//! and the cases that need special files made at run time. Every case has
//! a defined outcome; nothing panics; every failure is counted.

use crate::util::{testdata, Summary, Workdir};

/// Files that must fail, and a fragment of the reason each gives.
const FAILURES: &[(&str, &str)] = &[
    ("bad-base64.ndjson", "not valid base64"),
    ("bad-digest-syntax.ndjson", "does not start with \"sha256:\""),
    ("bad-retrieved-at.ndjson", "not an RFC 3339 instant"),
    ("content-number.ndjson", "neither a base64 string nor a JSON object"),
    ("invalid-utf8-envelope.ndjson", "envelope is not valid JSON"),
    ("missing-content.ndjson", "envelope has no content"),
    ("missing-retrieved-at.ndjson", "envelope has no retrievedAt"),
    ("nul-byte.ndjson", "control character"),
    ("truncated-last-line.ndjson:2", "EOF while parsing"),
    ("digest-mismatch.ndjson", "digest mismatch"),
    ("invalid-utf8-document.ndjson", "invalid UTF-8 (byte 0x"),
    ("format-mismatch.ndjson", "envelope says format csaf but the content is openvex"),
    ("unknown-format-name.ndjson", "unsupported format \"spdx\""),
    ("not-an-object.json", "unknown format"),
    ("unknown-format.json", "unknown format"),
    ("scalar-document.json", "unknown format"),
    ("deep-nesting.json", "nests deeper than 512 levels"),
    ("truncated-document.json", "not valid JSON"),
    ("normalizer-error.json", "statements is not an array"),
];

/// Files (cases) that must be accepted, by the document id each carries.
const ACCEPTED: &[&str] =
    &["bom", "blank-lines", "no-final-newline", "truncated-last-line", "crlf", "gzip"];

#[test]
fn corpus_runs_through_with_the_documented_outcome_for_each_file() {
    let wd = Workdir::new();
    let dir = testdata("malformed");
    let out = wd.run(&["statements", "--archive", dir.to_str().unwrap()]);
    // empty.ndjson holds no document; truncated-last-line.ndjson holds two.
    let failures = FAILURES.len() as u64;
    let ok = ACCEPTED.len() as u64;
    assert_eq!(Summary::parse(&out), Summary::new(ok + failures, ok, ok, 0, failures));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    for (file, reason) in FAILURES {
        let line = stderr
            .lines()
            .find(|l| l.contains(&format!("malformed/{file}")))
            .unwrap_or_else(|| panic!("no failure reported for {file}:\n{stderr}"));
        assert!(line.contains(reason), "{file}: expected {reason:?} in {line}");
    }
    let mut ids: Vec<String> = wd
        .export()
        .iter()
        .map(|s| {
            s["document"]["documentId"].as_str().unwrap().rsplit('/').next().unwrap().to_owned()
        })
        .collect();
    ids.sort();
    let mut expected: Vec<&str> = ACCEPTED.to_vec();
    expected.sort();
    assert_eq!(ids, expected);
}

#[test]
fn fifo_and_dangling_symlink_in_a_directory_are_counted_failures() {
    let wd = Workdir::new();
    let dir = wd.path("in");
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("pipe.ndjson");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    std::os::unix::fs::symlink(wd.path("nowhere.json"), dir.join("gone.json")).unwrap();
    wd.write("in/ok.json", crate::util::openvex_doc(1, 1));
    let out = wd.run(&["statements", "--archive", dir.to_str().unwrap()]);
    assert_eq!(Summary::parse(&out), Summary::new(3, 1, 1, 0, 2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.lines().any(|l| l.contains("pipe.ndjson") && l.contains("not a regular file")),
        "{stderr}"
    );
    assert!(
        stderr.lines().any(|l| l.contains("gone.json") && l.contains("cannot read")),
        "{stderr}"
    );

    // Named on the command line, a FIFO is a fatal, clear error (never a hang).
    let out = wd.command(&["statements", "--archive", fifo.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a regular file"));
}

#[test]
fn gzip_bomb_is_a_counted_failure_and_the_run_goes_on() {
    let wd = Workdir::new();
    // 8 MiB of newlines compress to a few KiB.
    let mut gz = gzip_file(wd.path("in/bomb.ndjson.gz"));
    gz.write_all(&vec![b'\n'; 8 << 20]).unwrap();
    gz.finish().unwrap();
    wd.write("in/ok.json", crate::util::openvex_doc(2, 1));
    let out = wd.run(&[
        "statements",
        "--archive",
        wd.path("in").to_str().unwrap(),
        "--max-decompressed-size",
        "1MiB",
    ]);
    assert_eq!(Summary::parse(&out), Summary::new(2, 1, 1, 0, 1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("decompresses to more than 1048576 bytes")
    );
}

fn gzip_file(path: std::path::PathBuf) -> GzFile {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    GzFile(
        std::process::Command::new("gzip")
            .arg("-c")
            .stdin(std::process::Stdio::piped())
            .stdout(std::fs::File::create(path).unwrap())
            .spawn()
            .unwrap(),
    )
}

/// `gzip -c > file`, written through stdin.
struct GzFile(std::process::Child);

impl GzFile {
    fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        use std::io::Write as _;
        self.0.stdin.as_mut().unwrap().write_all(b)
    }

    fn finish(mut self) -> std::io::Result<()> {
        drop(self.0.stdin.take());
        assert!(self.0.wait()?.success());
        Ok(())
    }
}

#[test]
fn oversized_document_and_line_are_limit_failures() {
    let wd = Workdir::new();
    let big = crate::util::openvex_doc(3, 40); // a few KiB
    let lines = [
        crate::util::envelope(&big, "2024-01-01", "p", "big"),
        crate::util::envelope(&crate::util::openvex_doc(4, 1), "2024-01-02", "p", "small"),
    ];
    let a = wd.write("a.ndjson", lines.join("\n"));
    wd.write("dir/big.json", &big);
    let out = wd.run(&[
        "statements",
        "--archive",
        a.to_str().unwrap(),
        wd.path("dir").to_str().unwrap(),
        "--max-document-size",
        "1KiB",
    ]);
    assert_eq!(Summary::parse(&out), Summary::new(3, 1, 1, 0, 2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches("kind=\"limit\"").count(), 2, "{stderr}");
}

#[test]
fn empty_inputs_evaluate_nothing() {
    let wd = Workdir::new();
    let e = wd.write("empty.ndjson", "");
    std::fs::create_dir_all(wd.path("nothing")).unwrap();
    let s =
        wd.statements(&["--archive", e.to_str().unwrap(), wd.path("nothing").to_str().unwrap()]);
    assert_eq!(s, Summary::ZERO);
}
