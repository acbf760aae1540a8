//! `backfill rollback` and `backfill stats`.

use std::collections::BTreeSet;

use crate::util::{json_lines, Workdir};

crate::store_tests! {
    fn rolling_back_a_forced_run_then_replaying_restores_the_first_run(kind) {
        let wd = Workdir::with(kind);
        let a = wd.path("raw.ndjson");
        wd.run(&["gen", "raw", "--count", "200", "--out", a.to_str().unwrap(), "--seed", "21"]);
        wd.statements(&["--archive", a.to_str().unwrap()]);
        let after_first = wd.export();

        // A subset of the archive, forced.
        let text = std::fs::read_to_string(&a).unwrap();
        let subset: Vec<&str> = text.lines().take(40).collect();
        let s = wd.write("subset.ndjson", subset.join("\n") + "\n");
        let forced = wd.run(&["statements", "--archive", s.to_str().unwrap(), "--force", "--json"]);
        let forced: serde_json::Value = serde_json::from_slice(&forced.stdout).unwrap();
        let run_id = forced["runId"].as_str().unwrap().to_owned();
        let forced_docs = forced["backfilled"].as_u64().unwrap();
        assert!(forced_docs > 20, "{forced}");

        // Dry run: lists, deletes nothing, is not recorded.
        let dry = wd.run(&["rollback", "--run", &run_id, "--dry-run"]);
        let dry_out = String::from_utf8(dry.stdout).unwrap();
        assert!(dry_out.trim_end().ends_with(&format!("documents {forced_docs}.")), "{dry_out}");
        assert_eq!(wd.export().len(), after_first.len());

        let out = String::from_utf8(wd.run(&["rollback", "--run", &run_id]).stdout).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        let digests: BTreeSet<String> =
            lines[..lines.len() - 1].iter().map(|l| (*l).to_owned()).collect();
        assert_eq!(digests.len() as u64, forced_docs);
        assert!(lines.last().unwrap().starts_with("Rollback completed: deleted statements "));
        // The subset's statements are gone, and only those.
        let now = wd.export();
        let gone: Vec<_> = after_first
            .iter()
            .filter(|st| digests.contains(st["document"]["digest"].as_str().unwrap()))
            .collect();
        assert!(!gone.is_empty());
        assert_eq!(now.len(), after_first.len() - gone.len());
        assert!(now.iter().all(|st| !digests.contains(st["document"]["digest"].as_str().unwrap())));

        // Replaying them without --force restores the store exactly.
        let replay = wd.statements(&["--archive", s.to_str().unwrap()]);
        assert_eq!(replay.backfilled, forced_docs);
        assert_eq!(wd.export(), after_first);

        // The rollback is itself a recorded run.
        let runs = json_lines(&wd.run(&["runs", "--json"]).stdout);
        let rb = runs.iter().find(|r| r["command"] == "rollback").unwrap();
        assert_eq!(rb["status"], "completed");
        assert_eq!(rb["counters"]["documents"], forced_docs);
    }

    fn rollback_by_insertion_window(kind) {
        let wd = Workdir::with(kind);
        let a = crate::util::testdata("raw/sample.ndjson");
        wd.statements(&["--archive", a.to_str().unwrap()]);
        // A window in the past holds nothing; one around now holds all.
        let none = wd.run(&["rollback", "--inserted-since", "2000-01-01", "--inserted-until", "2000-01-02", "--json"]);
        let none: serde_json::Value = serde_json::from_slice(&none.stdout).unwrap();
        assert_eq!(none["statements"], 0);
        let all = wd.run(&["rollback", "--inserted-since", "2000-01-01", "--inserted-until", "2100-01-01", "--json"]);
        let all: serde_json::Value = serde_json::from_slice(&all.stdout).unwrap();
        assert_eq!(all["statements"], 8);
        assert_eq!(all["digests"].as_array().unwrap().len(), 4);
        assert!(wd.export().is_empty());
        assert!(wd.ledger().is_empty());
    }

    fn stats_count_statements_by_provider_status_and_format(kind) {
        let wd = Workdir::with(kind);
        let a = crate::util::testdata("raw/sample.ndjson");
        wd.statements(&["--archive", a.to_str().unwrap()]);
        let v: serde_json::Value = serde_json::from_slice(&wd.run(&["stats", "--json"]).stdout).unwrap();
        assert_eq!(v["statements"], 8);
        assert_eq!(v["documents"], 4);
        assert_eq!(v["byProvider"], serde_json::json!({"acme": 6, "wolfi": 2}));
        assert_eq!(v["byStatus"], serde_json::json!({"affected": 2, "fixed": 3, "not_affected": 3}));
        assert_eq!(v["byFormat"], serde_json::json!({"csaf": 2, "cyclonedx": 1, "openvex": 5}));
        assert_eq!(v["epss"]["rows"], 0);
        assert_eq!(v["checkpoints"][0]["dataType"], "statements");
        assert_eq!(v["checkpoints"][0]["complete"], true);
        assert_eq!(v["runs"]["completed"], 1);
    }
}

#[test]
fn rollback_needs_a_scope() {
    let wd = Workdir::new();
    let code = |args: &[&str]| wd.command(args).output().unwrap().status.code();
    assert_eq!(code(&["rollback"]), Some(2));
    assert_eq!(code(&["rollback", "--inserted-since", "2024-01-01"]), Some(2));
}
