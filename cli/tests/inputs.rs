//! What `statements` reads from the file system: names that are not UTF-8,
//! suffixes in any case, links and symlink loops, bad `.gz` files and
//! unreadable files wherever they are named, and directories of 100,000
//! files. Every file is read once or counted as a failure, never skipped
//! silently.

use std::ffi::OsStr;
use std::io::Write as _;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{envelope, openvex_doc, Summary, Workdir};

/// `name` (bytes, not necessarily UTF-8) in `dir`.
fn join(dir: &Path, name: &[u8]) -> PathBuf {
    dir.join(OsStr::from_bytes(name))
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn source_uris(wd: &Workdir) -> Vec<String> {
    let mut uris: Vec<String> =
        wd.ledger().iter().map(|d| d["sourceUri"].as_str().unwrap().to_owned()).collect();
    uris.sort();
    uris
}

/// `backfill ARGS --store STORE`, with arguments that need not be UTF-8.
fn run_os(wd: &Workdir, args: &[&OsStr]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_backfill"))
        .args(args)
        .arg("--store")
        .arg(&wd.store)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

/// `statements --archive PATHS --retrieved-at 2024-01-01T00:00:00Z`.
fn args<'a>(paths: &[&'a Path]) -> Vec<&'a OsStr> {
    let mut v: Vec<&OsStr> = vec![OsStr::new("statements"), OsStr::new("--archive")];
    v.extend(paths.iter().map(|p| p.as_os_str()));
    v.extend(["--retrieved-at", "2024-01-01T00:00:00Z"].map(OsStr::new));
    v
}

#[test]
fn non_utf8_file_names_are_read_and_kept_apart() {
    let wd = Workdir::new();
    let dir = wd.path("in");
    std::fs::create_dir_all(&dir).unwrap();
    // Two names that a lossy conversion makes equal ("caf\u{FFFD}.json"),
    // holding the same document: one is backfilled, the other skipped,
    // and which one must not depend on the order they are met in.
    let same = openvex_doc(1, 2);
    std::fs::write(join(&dir, b"caf\xE9.json"), &same).unwrap();
    std::fs::write(join(&dir, b"caf\xE8.json"), &same).unwrap();
    std::fs::write(join(&dir, b"caf\xFF.JSON"), openvex_doc(2, 1)).unwrap();
    let line = envelope(&openvex_doc(3, 1), "2024-01-01T00:00:00Z", "p", "u");
    std::fs::write(join(&dir, b"\xFE\xFF.ndjson"), line + "\n").unwrap();
    let expected = Summary::new(4, 3, 4, 1, 0);
    let out = run_os(&wd, &args(&[&dir]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(Summary::parse(&out), expected, "{}", stderr(&out));
    let uris = source_uris(&wd);
    let in_dir = dir.display().to_string();
    assert_eq!(
        uris,
        vec![format!("{in_dir}/caf\\xE8.json"), format!("{in_dir}/caf\\xFF.JSON"), "u".into()]
    );

    // Two directories, given in either order: the same copy is kept. (A
    // non-UTF-8 name given on the command line itself is not tested here:
    // the command line must be readable as text for the `runs` record.)
    std::fs::create_dir_all(wd.path("x")).unwrap();
    std::fs::create_dir_all(wd.path("y")).unwrap();
    std::fs::write(join(&wd.path("x"), b"\xE9.json"), &same).unwrap();
    std::fs::write(join(&wd.path("y"), b"\xE8.json"), &same).unwrap();
    let (x, y) = (wd.path("x"), wd.path("y"));
    for paths in [[&y, &x], [&x, &y]] {
        let wd = Workdir::new();
        let out = run_os(&wd, &args(&[paths[0], paths[1]]));
        assert_eq!(Summary::parse(&out), Summary::new(2, 1, 2, 1, 0), "{}", stderr(&out));
        assert_eq!(source_uris(&wd), vec![format!("{}/\\xE9.json", x.display())]);
    }
}

#[test]
fn suffixes_are_recognized_in_any_case() {
    let wd = Workdir::new();
    let line = |salt| envelope(&openvex_doc(salt, 1), "2024-01-01", "p", "u") + "\n";
    wd.write("in/a.NDJSON", line(1));
    wd.write("in/b.JsonL", line(2));
    wd.write("in/c.JSON", openvex_doc(3, 1));
    wd.write("in/d.Json.Gz", gzip(&openvex_doc(4, 1)));
    wd.write("in/e.NDJSON.GZ", gzip(line(5).as_bytes()));
    wd.write("in/f.jsonl.gz", gzip(line(6).as_bytes()));
    wd.write("in/g.JSON.txt", "not an input");
    let s = wd.statements(&["--archive", wd.path("in").to_str().unwrap()]);
    assert_eq!(s, Summary::new(6, 6, 6, 0, 0));
}

#[test]
fn links_are_read_once_and_a_symlink_loop_is_reported_once() {
    let wd = Workdir::new();
    let dir = wd.path("in");
    wd.write("in/a.json", openvex_doc(1, 1));
    std::fs::hard_link(dir.join("a.json"), dir.join("b.json")).unwrap();
    std::os::unix::fs::symlink("a.json", dir.join("c.json")).unwrap();
    wd.write("in/sub/x.json", openvex_doc(2, 1));
    // A loop (back to the walked root), and a second way into sub/.
    std::os::unix::fs::symlink("..", dir.join("sub/up")).unwrap();
    std::os::unix::fs::symlink("sub", dir.join("alias")).unwrap();
    let d = dir.to_str().unwrap();
    let a = dir.join("a.json");
    let runs: [&[&str]; 3] = [&[d], &[d, d, a.to_str().unwrap()], &[a.to_str().unwrap(), d]];
    let mut ledgers = Vec::new();
    for paths in runs {
        let wd = Workdir::new();
        let mut args = vec!["statements", "--archive"];
        args.extend_from_slice(paths);
        let out = wd.run(&args);
        assert_eq!(Summary::parse(&out), Summary::new(2, 2, 2, 0, 0), "{}", stderr(&out));
        let err = stderr(&out);
        assert_eq!(err.matches("Symlink loop").count(), 1, "{err}");
        assert!(err.lines().any(|l| l.contains("Symlink loop") && l.contains("up")), "{err}");
        ledgers.push(source_uris(&wd));
    }
    // Whatever the order the paths are given in, the same paths are kept.
    assert_eq!(ledgers[0], vec![format!("{d}/a.json"), format!("{d}/alias/x.json")]);
    assert!(ledgers.iter().all(|l| *l == ledgers[0]), "{ledgers:?}");
}

#[test]
fn corrupt_and_truncated_gz_are_counted_failures_wherever_they_are_named() {
    let wd = Workdir::new();
    let line = |salt| envelope(&openvex_doc(salt, 1), "2024-01-01", "p", "u") + "\n";
    let lines = format!("{}{}", line(1), line(2));
    let gz = gzip(lines.as_bytes());
    wd.write("in/truncated.ndjson.gz", &gz[..gz.len() / 2]);
    let doc_gz = gzip(&openvex_doc(3, 1));
    wd.write("in/truncated.json.gz", &doc_gz[..doc_gz.len() - 6]);
    wd.write("in/corrupt.ndjson.gz", b"\x1f\x8b\x08\x00garbage, not deflate");
    wd.write("in/not-gzip.json.gz", "plain text");
    wd.write("in/ok.ndjson", line(4));
    wd.write("in/ok.json.gz", gzip(&openvex_doc(5, 1)));
    let names = [
        "truncated.ndjson.gz",
        "truncated.json.gz",
        "corrupt.ndjson.gz",
        "not-gzip.json.gz",
        "ok.ndjson",
        "ok.json.gz",
    ];
    let paths: Vec<String> =
        names.iter().map(|n| wd.path("in").join(n).display().to_string()).collect();
    let dir = wd.path("in").display().to_string();
    for given in [paths.iter().map(String::as_str).collect::<Vec<_>>(), vec![dir.as_str()]] {
        let wd = Workdir::new();
        let mut args = vec!["statements", "--archive"];
        args.extend_from_slice(&given);
        let out = wd.command(&args).output().unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(0), "{err}");
        assert_eq!(Summary::parse(&out), Summary::new(6, 2, 2, 0, 4), "{err}");
        for name in &names[..4] {
            assert!(
                err.lines().any(|l| l.contains(name) && l.contains("cannot decompress")),
                "{name}: {err}"
            );
        }
        assert_eq!(wd.ledger().len(), 2);
    }
}

/// `backfill ARGS`, as an unprivileged user when the tests run as root (so
/// that file permissions apply); `None` when that cannot be done.
fn unprivileged(wd: &Workdir, args: &[&OsStr]) -> Option<Command> {
    use std::os::unix::fs::MetadataExt as _;
    let bin = env!("CARGO_BIN_EXE_backfill");
    // A file this process creates is owned by its effective user.
    let root = std::fs::metadata(wd.write("whoami", "")).unwrap().uid() == 0;
    let mut c = Command::new(if root { "setpriv" } else { bin });
    if root {
        if Command::new("setpriv").arg("--version").output().is_err() {
            eprintln!("SKIPPED: running as root without setpriv, permissions cannot be tested");
            return None;
        }
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", bin]);
    }
    c.args(args).env_remove("RUST_LOG");
    Some(c)
}

#[test]
fn an_unreadable_file_or_directory_is_a_counted_failure_wherever_it_is_named() {
    use std::os::unix::fs::PermissionsExt as _;
    let wd = Workdir::new();
    let dir = wd.path("in");
    wd.write("in/ok.json", openvex_doc(1, 1));
    wd.write("in/secret.json", openvex_doc(2, 1));
    wd.write("in/locked/hidden.json", openvex_doc(3, 1));
    let mode =
        |p: &Path, m| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    // The user the binary runs as can reach the files, not read these two.
    mode(wd.path("").as_path(), 0o755);
    mode(&dir.join("secret.json"), 0o000);
    mode(&dir.join("locked"), 0o000);
    let ok = dir.join("ok.json");
    let secret = dir.join("secret.json");
    let locked = dir.join("locked");
    // The unprivileged user must reach the binary and the test's files
    // (not so when either sits under a private home directory).
    let probe = [OsStr::new("statements"), OsStr::new("--dry-run"), OsStr::new("--archive")];
    let Some(mut c) = unprivileged(&wd, &probe) else { return };
    let out = c.arg(&ok).output().unwrap();
    if !out.status.success() || Summary::parse(&out) != Summary::new(1, 1, 1, 0, 0) {
        eprintln!("SKIPPED: the unprivileged user cannot run the binary on the test's files");
        return;
    }
    let cases: [(&[&Path], Summary); 3] = [
        (&[&dir], Summary::new(3, 1, 1, 0, 2)),
        (&[&secret, &ok], Summary::new(2, 1, 1, 0, 1)),
        (&[&locked], Summary::new(1, 0, 0, 0, 1)),
    ];
    for (paths, expected) in cases {
        let mut args: Vec<&OsStr> = vec![OsStr::new("statements"), OsStr::new("--dry-run")];
        args.push(OsStr::new("--archive"));
        args.extend(paths.iter().map(|p| p.as_os_str()));
        let Some(mut c) = unprivileged(&wd, &args) else { return };
        let out = c.output().unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(0), "{paths:?}: {err}");
        assert_eq!(Summary::parse(&out), expected, "{paths:?}: {err}");
        assert!(err.contains("Permission denied"), "{err}");
    }
    mode(&dir.join("locked"), 0o755);
}

#[test]
fn a_path_that_does_not_exist_is_a_fatal_error() {
    let wd = Workdir::new();
    wd.write("ok.json", openvex_doc(1, 1));
    std::os::unix::fs::symlink("nowhere.json", wd.path("dangling.json")).unwrap();
    for missing in ["nowhere.json", "dangling.json"] {
        let p = wd.path(missing);
        let ok = wd.path("ok.json");
        let given =
            [OsStr::new("statements"), OsStr::new("--archive"), ok.as_os_str(), p.as_os_str()];
        let out = run_os(&wd, &given);
        assert_eq!(out.status.code(), Some(1));
        let err = stderr(&out);
        assert!(err.contains(missing) && err.contains("No such file"), "{err}");
    }
}

/// Mirrors of vendor feeds hold one file per CVE: 100,000 files must not
/// cost 100,000 memory maps (the old limit, through `vm.max_map_count`,
/// was about 65,000). 1,000 distinct documents, each under 100 names:
/// every file is opened and its digest checked, 1,000 are normalized and
/// written.
#[test]
fn a_directory_of_100_000_files_is_read() {
    let wd = Workdir::new();
    let dir = wd.path("feed");
    std::fs::create_dir_all(&dir).unwrap();
    let docs: Vec<Vec<u8>> = (0..1000).map(|i| openvex_doc(i, 1)).collect();
    for i in 0..100_000usize {
        let sub = dir.join(format!("{:03}", i % 100));
        if i < 100 {
            std::fs::create_dir_all(&sub).unwrap();
        }
        std::fs::write(sub.join(format!("cve-{i:06}.json")), &docs[i % 1000]).unwrap();
    }
    let s = wd.statements(&["--archive", dir.to_str().unwrap()]);
    assert_eq!(s, Summary::new(100_000, 1000, 1000, 99_000, 0));
}
