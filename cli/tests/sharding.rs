//! Sharded replays: N workers against one store do exactly what one does.

use std::process::Stdio;

use crate::util::{Summary, Workdir};

crate::store_tests! {
    fn three_concurrent_shards_equal_one_unsharded_run(kind) {
        let reference = Workdir::with(kind);
        let a = reference.path("raw.ndjson");
        reference.run(&["gen", "raw", "--count", "600", "--out", a.to_str().unwrap(), "--seed", "3"]);
        let a = a.to_str().unwrap();
        let expected = reference.statements(&["--archive", a, "--batch-size", "20"]);
        let expected_store = reference.export();
        let expected_ledger = reference.ledger();

        let wd = Workdir::with(kind);
        let b = wd.path("raw.ndjson");
        std::fs::copy(a, &b).unwrap();
        let b = b.to_str().unwrap();
        // Shard 2 comes from JOB_COMPLETION_INDEX, as in a Kubernetes
        // Indexed Job; the others from --shard.
        let children: Vec<_> = (0..3)
            .map(|i| {
                let shard = format!("{i}/3");
                let mut c = if i == 2 {
                    let mut c = wd.command(&["statements", "--archive", b, "--batch-size", "20", "--shards", "3"]);
                    c.env("JOB_COMPLETION_INDEX", "2");
                    c
                } else {
                    wd.command(&["statements", "--archive", b, "--batch-size", "20", "--shard", &shard])
                };
                c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
            })
            .collect();
        let mut total = Summary::ZERO;
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            let s = Summary::parse(&out);
            assert!(s.evaluated > 0, "every shard gets work: {s:?}");
            total += s;
        }
        assert_eq!(total, expected, "counters of the shards add up to one run");
        assert_eq!(wd.export(), expected_store);
        assert_eq!(wd.ledger(), expected_ledger);
    }
}

#[test]
fn shard_arguments_are_checked() {
    let wd = Workdir::new();
    let code = |args: &[&str]| {
        wd.command(args).env_remove("JOB_COMPLETION_INDEX").output().unwrap().status.code()
    };
    assert_eq!(code(&["statements", "--archive", "x", "--shard", "3/3"]), Some(2));
    assert_eq!(code(&["statements", "--archive", "x", "--shard", "1"]), Some(2));
    assert_eq!(code(&["statements", "--archive", "x", "--shard", "0/2", "--shards", "2"]), Some(2));
    // --shards without the index variable: one clear usage error.
    let a = crate::util::testdata("raw/sample.ndjson");
    let out = wd
        .command(&["statements", "--archive", a.to_str().unwrap(), "--shards", "2"])
        .env_remove("JOB_COMPLETION_INDEX")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("JOB_COMPLETION_INDEX"));
    let out = wd
        .command(&["statements", "--archive", a.to_str().unwrap(), "--shards", "2"])
        .env("JOB_COMPLETION_INDEX", "5")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
