//! Choosing what is read and what is printed (issue 18): an archive on
//! standard input (`--archive -`) and its checkpoint identity
//! (`--source-name`), `--glob` / `--exclude` over directories, and
//! `export --run / --provider / --since`.

use std::io::Write as _;
use std::process::{Output, Stdio};

use crate::util::{envelope, json_lines, openvex_doc, testdata, StoreKind, Summary, Workdir};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `backfill statements ARGS` with `input` piped to its standard input.
fn piped(wd: &Workdir, args: &[&str], input: &[u8]) -> Output {
    let mut all = vec!["statements"];
    all.extend_from_slice(args);
    let mut child = wd
        .command(&all)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    // Written from another thread: a large input fills the pipe.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// An archive of `n` OpenVEX documents (3 statements each), plus the
/// bundled sample's lines (its failures included).
fn archive(n: usize) -> Vec<u8> {
    let mut out = std::fs::read(testdata("raw/sample.ndjson")).unwrap();
    for i in 0..n {
        let day = format!("2024-02-{:02}T00:00:00Z", 1 + i % 28);
        out.extend_from_slice(envelope(&openvex_doc(i, 3), &day, "p", "u").as_bytes());
        out.push(b'\n');
    }
    out
}

fn statements_checkpoints(wd: &Workdir) -> Vec<serde_json::Value> {
    let all = json_lines(&wd.run(&["checkpoints", "--json"]).stdout);
    all.into_iter().filter(|c| c["dataType"] == "statements").collect()
}

/// Makes the last `statements` run look killed after its last batch.
fn unfinish(wd: &Workdir) {
    let db = rusqlite::Connection::open(&wd.store).unwrap();
    let n = db
        .execute("UPDATE checkpoints SET complete = 0 WHERE data_type = 'statements'", [])
        .unwrap();
    assert_eq!(n, 1);
}

crate::store_tests! {
    fn an_archive_on_stdin_gives_the_same_store_as_the_file(kind) {
        let bytes = archive(200);
        let file_wd = Workdir::with(kind);
        let path = file_wd.write("a.ndjson", &bytes);
        let expected = file_wd.statements(&["--archive", path.to_str().unwrap(), "--batch-size", "7"]);
        assert!(expected.failures > 0 && expected.backfilled > 200, "{expected:?}");
        for input in [bytes.clone(), gzip(&bytes)] {
            let wd = Workdir::with(kind);
            let out = piped(&wd, &["--archive", "-", "--batch-size", "7"], &input);
            assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
            assert_eq!(Summary::parse(&out), expected);
            assert_eq!(wd.export(), file_wd.export());
            // A second time, everything is skipped by the ledger.
            let again = Summary::parse(&piped(&wd, &["--archive", "-"], &input));
            assert_eq!((again.evaluated, again.backfilled), (expected.evaluated, 0));
        }
    }
}

#[test]
fn a_stream_is_resumed_only_by_the_same_bytes_under_its_name() {
    let wd = Workdir::with(StoreKind::Sqlite);
    let bytes = archive(40);
    let first = Summary::parse(&piped(&wd, &["--archive", "-"], &bytes));
    let cps = statements_checkpoints(&wd);
    assert_eq!(cps.len(), 1, "{cps:?}");
    assert_eq!(cps[0]["source"], "stdin");
    assert_eq!(cps[0]["identity"]["size"], bytes.len() as u64, "{cps:?}");

    // Stopped after its last batch: the same bytes resume, nothing left.
    unfinish(&wd);
    assert_eq!(Summary::parse(&piped(&wd, &["--archive", "-"], &bytes)), Summary::ZERO);

    // Other bytes under the same name start over (a position in another
    // stream's order would skip its earlier documents), with a warning.
    unfinish(&wd);
    let mut more = bytes.clone();
    more.extend_from_slice(envelope(&openvex_doc(999, 2), "2023-01-01", "p", "u").as_bytes());
    let out = piped(&wd, &["--archive", "-"], &more);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let s = Summary::parse(&out);
    assert_eq!((s.evaluated, s.backfilled), (first.evaluated + 1, 1), "{}", stderr(&out));
    assert!(stderr(&out).contains("read other content: starting over"), "{}", stderr(&out));

    // A named stream has its own checkpoint.
    piped(&wd, &["--archive", "-", "--source-name", "vendor-a/2024"], &bytes);
    let sources: Vec<_> = statements_checkpoints(&wd).iter().map(|c| c["source"].clone()).collect();
    assert!(sources.contains(&"vendor-a/2024".into()), "{sources:?}");
}

#[test]
fn stdin_with_other_paths_is_a_usage_error() {
    let wd = Workdir::with(StoreKind::Sqlite);
    let other = testdata("raw/sample.ndjson");
    let out = piped(&wd, &["--archive", "-", other.to_str().unwrap()], b"");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("cannot be combined"), "{}", stderr(&out));
    // An empty stream is an empty archive: nothing to do, exit 0.
    let out = piped(&wd, &["--archive", "-"], b"");
    assert_eq!(Summary::parse(&out), Summary::ZERO, "{}", stderr(&out));
}

#[test]
fn glob_and_exclude_choose_files_in_directories() {
    let wd = Workdir::with(StoreKind::Sqlite);
    let dir = wd.path("mirror");
    let doc = |salt: usize| envelope(&openvex_doc(salt, 2), "2024-01-01", "p", "u");
    for (i, name) in
        ["a.ndjson", "sub/b.ndjson", "old/c.ndjson", "d-draft.ndjson", "e.jsonl"].iter().enumerate()
    {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, doc(i)).unwrap();
    }
    let d = dir.to_str().unwrap();
    let chosen =
        wd.statements(&["--archive", d, "--glob", "*.ndjson", "--exclude", "old/**,*-draft*"]);
    // a.ndjson and sub/b.ndjson: `*` crosses `/`; e.jsonl is not globbed.
    assert_eq!((chosen.evaluated, chosen.backfilled), (2, 2));
    // A file named on the command line is read whatever the patterns.
    let named = dir.join("old/c.ndjson");
    let s = wd.statements(&["--archive", named.to_str().unwrap(), "--exclude", "*"]);
    assert_eq!(s.backfilled, 1);
    // The patterns are part of the checkpoint's scope: the unfiltered run
    // does not resume the filtered one; it reads everything.
    let all = wd.statements(&["--archive", d]);
    assert_eq!((all.evaluated, all.backfilled, all.skipped), (5, 2, 3));
    let sources: Vec<String> = statements_checkpoints(&wd)
        .iter()
        .map(|c| c["source"].as_str().unwrap().to_owned())
        .collect();
    assert!(sources.iter().any(|s| s.contains("\nglob *.ndjson")), "{sources:?}");
    // A malformed pattern is a usage error naming it.
    let out = wd.command(&["statements", "--archive", d, "--glob", "a[b"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--glob \"a[b\""), "{}", stderr(&out));
}

crate::store_tests! {
    fn export_narrows_to_a_run_a_provider_or_a_time(kind) {
        let wd = Workdir::with(kind);
        let lines = |provider: &str, salt: usize| {
            (0..3)
                .map(|i| envelope(&openvex_doc(salt + i, 2), "2024-01-01", provider, "u") + "\n")
                .collect::<String>()
        };
        let a = wd.write("a.ndjson", lines("redhat", 0) + &lines("suse", 10));
        let b = wd.write("b.ndjson", lines("suse", 20));
        wd.statements(&["--archive", a.to_str().unwrap()]);
        let between = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        std::thread::sleep(std::time::Duration::from_millis(20));
        wd.statements(&["--archive", b.to_str().unwrap()]);
        let runs = wd.runs();
        let second = runs.last().unwrap()["runId"].as_str().unwrap().to_owned();
        let export = |args: &[&str]| {
            let mut all = vec!["export"];
            all.extend_from_slice(args);
            json_lines(&wd.run(&all).stdout)
        };
        let everything = export(&[]);
        assert_eq!(everything.len(), 18);
        let by_run = export(&["--run", &second]);
        assert_eq!(by_run.len(), 6);
        assert!(by_run.iter().all(|s| s["runId"] == second.as_str()));
        assert_eq!(export(&["documents", "--run", &second]).len(), 3);
        let suse = export(&["--provider", "suse"]);
        assert_eq!(suse.len(), 12);
        assert!(suse.iter().all(|s| s["providerId"] == "suse"));
        // Filtered records are the unfiltered ones, in the same order.
        let kept: Vec<_> = everything.iter().filter(|s| s["providerId"] == "suse").cloned().collect();
        assert_eq!(suse, kept);
        assert_eq!(export(&["--since", &between]), by_run);
        assert_eq!(export(&["--provider", "redhat", "--since", &between]).len(), 0);
        assert_eq!(export(&["--run", "no-such-run"]).len(), 0);
        let out = wd.command(&["export", "epss", "--run", &second]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    }
}
