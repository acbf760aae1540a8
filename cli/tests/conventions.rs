//! The command-line conventions of issue 18: shell completions, the
//! manual page, JSON logs, `BACKFILL_*` environment fallbacks and help.

use std::process::{Command, Output};

use crate::util::Workdir;

/// `backfill ARGS` with no store and no inherited `RUST_LOG` or
/// `BACKFILL_*` settings, so the developer's environment cannot change
/// what is tested.
fn backfill(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_backfill"));
    c.args(args).env_remove("RUST_LOG");
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("BACKFILL_") {
            c.env_remove(k);
        }
    }
    c
}

/// Runs and asserts exit 0; returns stdout.
fn stdout_of(args: &[&str]) -> String {
    let out = backfill(args).output().unwrap();
    assert!(out.status.success(), "backfill {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Whether `program` can be started; prints SKIPPED when it cannot.
fn installed(program: &str, why: &str) -> bool {
    match Command::new(program).arg("--version").output() {
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("SKIPPED: {program} is not installed ({why})");
            false
        }
        Err(e) => panic!("cannot start {program}: {e}"),
    }
}

fn check(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({:?}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The script for `shell` parses with `shell -n` (when installed) and
/// names every subcommand and a subcommand's flag.
fn completion_parses(shell: &str, file: &str) {
    let script = stdout_of(&["completions", shell]);
    for word in ["statements", "epss", "rollback", "completions", "batch-size"] {
        assert!(script.contains(word), "{shell} completions lack {word}");
    }
    if !installed(shell, "its completion script is not parsed") {
        return;
    }
    let wd = Workdir::new();
    let path = wd.write(file, &script);
    let out = Command::new(shell).arg("-n").arg(&path).output().unwrap();
    check(&out, &format!("{shell} -n {file}"));
}

#[test]
fn completions_bash_parse_and_complete() {
    completion_parses("bash", "backfill.bash");
    // Not only valid syntax: sourced, it completes a subcommand's flag.
    let wd = Workdir::new();
    let path = wd.write("backfill.bash", stdout_of(&["completions", "bash"]));
    let out = Command::new("bash")
        .arg("-c")
        .arg(
            r#"source "$1"; COMP_WORDS=(backfill statements --batch); COMP_CWORD=2;
               _backfill backfill --batch statements; printf '%s\n' "${COMPREPLY[@]}""#,
        )
        .arg("bash")
        .arg(&path)
        .output()
        .unwrap();
    check(&out, "bash completion");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "--batch-size");
}

#[test]
fn completions_zsh_parse() {
    completion_parses("zsh", "_backfill");
}

#[test]
fn completions_fish_parse() {
    completion_parses("fish", "backfill.fish");
}

#[test]
fn completions_for_other_shells_and_a_bad_one() {
    for shell in ["powershell", "elvish"] {
        assert!(stdout_of(&["completions", shell]).contains("statements"), "{shell}");
    }
    let out = backfill(&["completions", "tcsh"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// `man -l -` over `roff`, 80 columns wide, as plain text.
fn render_man(roff: &str) -> Option<String> {
    if !installed("man", "the page is not rendered") {
        return None;
    }
    use std::io::Write;
    let mut child = Command::new("man")
        .args(["-l", "-"])
        .env("MANWIDTH", "80")
        .env("MANPAGER", "cat")
        .env("PAGER", "cat")
        .env("MAN_KEEP_FORMATTING", "")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(roff.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    check(&out, "man -l -");
    // Bold and underline as overstrikes when not a terminal: strip them.
    let text = String::from_utf8_lossy(&out.stdout);
    let mut plain = String::new();
    for c in text.chars() {
        if c == '\u{8}' {
            plain.pop();
        } else {
            plain.push(c);
        }
    }
    Some(plain)
}

#[test]
fn man_page_renders_with_the_subcommands() {
    let roff = stdout_of(&["man"]);
    assert!(roff.contains("\n.TH backfill 1 "), "{roff}");
    let Some(text) = render_man(&roff) else { return };
    assert!(text.contains("NAME") && text.contains("backfill - "), "{text}");
    for sub in ["statements", "get", "runs", "epss", "enrich", "gen", "rollback", "stats", "export"]
    {
        assert!(text.contains(&format!("backfill-{sub}(1)")), "no {sub} in:\n{text}");
    }
    assert!(text.contains("BACKFILL_STORE"), "{text}");
    assert!(text.lines().all(|l| l.chars().count() <= 80), "wider than MANWIDTH:\n{text}");
}

#[test]
fn man_page_of_a_subcommand_and_every_page_into_a_directory() {
    let roff = stdout_of(&["man", "statements"]);
    if let Some(text) = render_man(&roff) {
        assert!(text.contains("backfill-statements"), "{text}");
        assert!(text.contains("--batch-size"), "{text}");
    }
    let out = backfill(&["man", "nonsense"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));

    let wd = Workdir::new();
    let dir = wd.path("man1");
    stdout_of(&["man", "--out-dir", dir.to_str().unwrap()]);
    let mut pages: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    pages.sort();
    assert!(pages.contains(&"backfill.1".to_owned()), "{pages:?}");
    assert!(pages.contains(&"backfill-statements.1".to_owned()), "{pages:?}");
    assert!(!pages.iter().any(|p| p.contains("help")), "no page for `help`: {pages:?}");
}

/// Each stderr line as a JSON object, failing on any other line.
fn json_objects(stderr: &[u8]) -> Vec<serde_json::Map<String, serde_json::Value>> {
    String::from_utf8_lossy(stderr)
        .lines()
        .map(|l| match serde_json::from_str(l) {
            Ok(serde_json::Value::Object(o)) => o,
            other => panic!("not a JSON object ({other:?}): {l}"),
        })
        .collect()
}

#[test]
fn log_format_json_writes_one_object_per_stderr_line() {
    let a = crate::util::testdata("raw/sample.ndjson");
    let a = a.to_str().unwrap();
    let text = Workdir::new();
    let text_out = text.run(&["statements", "--archive", a]);
    let wd = Workdir::new();
    let out = wd.run(&["statements", "--archive", a, "--log-format", "json", "-v"]);
    // stdout is the same summary either way.
    assert_eq!(String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&text_out.stdout));
    crate::util::Summary::parse(&out);
    let events = json_objects(&out.stderr);
    for e in &events {
        assert!(e["level"].is_string() && e["timestamp"].is_string(), "{e:?}");
        assert!(e["fields"]["message"].is_string(), "{e:?}");
    }
    // The three deliberate failures, with their fields as JSON values.
    let failed: Vec<_> =
        events.iter().filter(|e| e["fields"]["message"] == "Document failed.").collect();
    assert_eq!(failed.len(), 3, "{events:?}");
    for e in &failed {
        assert_eq!(e["level"], "WARN");
        assert!(e["fields"]["kind"].is_string() && e["fields"]["input"].is_string(), "{e:?}");
    }
    // -v: info events too, so not only the failures are JSON.
    assert!(events.iter().any(|e| e["level"] == "INFO"), "{events:?}");
    // The text log is text, as before.
    let text_err = String::from_utf8_lossy(&text_out.stderr);
    assert!(text_err.contains("WARN Document failed. input="), "{text_err}");
    assert!(text_err.lines().all(|l| serde_json::from_str::<serde_json::Value>(l).is_err()));
}

#[test]
fn log_format_json_reports_fatal_errors_and_notes_as_objects() {
    let wd = Workdir::new();
    let missing = wd.path("missing.ndjson");
    let out = wd
        .command(&["statements", "--archive", missing.to_str().unwrap(), "--log-format", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let events = json_objects(&out.stderr);
    let last = events.last().expect("an error event");
    assert_eq!(last["level"], "ERROR");
    assert!(last["fields"]["message"].as_str().unwrap().contains("missing.ndjson"), "{last:?}");

    let out = wd.command(&["get", "CVE-0000-0000", "nothing", "--log-format", "json"]).output();
    let out = out.unwrap();
    assert_eq!(out.status.code(), Some(1));
    let events = json_objects(&out.stderr);
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(events[0]["fields"]["message"].as_str().unwrap().starts_with("no statement about"));
}

#[test]
fn failures_file_is_json_lines_in_either_log_format() {
    let a = crate::util::testdata("raw/sample.ndjson");
    for format in ["text", "json"] {
        let wd = Workdir::new();
        let f = wd.path("failures.ndjson");
        wd.run(&[
            "statements",
            "--archive",
            a.to_str().unwrap(),
            "--failures",
            f.to_str().unwrap(),
            "--log-format",
            format,
        ]);
        let lines = crate::util::json_lines(&std::fs::read(&f).unwrap());
        assert_eq!(lines.len(), 3, "{format}");
        assert!(lines.iter().all(|l| l["kind"].is_string() && l["reason"].is_string()));
    }
}

/// `backfill ARGS` on a pseudo-terminal (util-linux `script`), stdout and
/// stderr together as the terminal shows them; None when `script` is
/// absent.
fn on_a_terminal(wd: &Workdir, args: &[&str]) -> Option<String> {
    if !installed("script", "no pseudo-terminal test") {
        return None;
    }
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let mut line = quote(env!("CARGO_BIN_EXE_backfill"));
    for a in args.iter().chain(&["--store", &wd.store]) {
        line.push(' ');
        line.push_str(&quote(a));
    }
    let out = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env_remove("RUST_LOG")
        .env("TERM", "xterm")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    check(&out, &line);
    Some(String::from_utf8_lossy(&out.stdout).replace('\r', ""))
}

#[test]
fn progress_bar_on_a_terminal_in_text_mode_only() {
    let a = crate::util::testdata("raw/sample.ndjson");
    let a = a.to_str().unwrap();
    let summary = crate::util::Summary::new(8, 4, 8, 1, 3).line();
    let wd = Workdir::new();
    let Some(text) = on_a_terminal(&wd, &["statements", "--archive", a]) else { return };
    // The bar's last draw, then the summary.
    assert!(text.contains("] 8/8 documents ("), "{text:?}");
    assert!(text.trim_end().ends_with(&summary), "{text:?}");

    let wd = Workdir::new();
    let json = on_a_terminal(&wd, &["statements", "--archive", a, "--log-format", "json"]).unwrap();
    assert!(!json.contains("documents ("), "no bar with JSON logs: {json:?}");
    let (last, events) = json.trim_end().rsplit_once('\n').map(|(e, l)| (l, e)).unwrap();
    assert_eq!(last, summary);
    assert_eq!(json_objects(events.as_bytes()).len(), 3);
}

/// Every subcommand, as `backfill help` lists them.
const SUBCOMMANDS: &[&str] = &[
    "statements",
    "get",
    "runs",
    "epss",
    "enrich",
    "gen",
    "rollback",
    "stats",
    "checkpoints",
    "export",
    "migrate",
    "completions",
    "man",
];

/// The long flags of a `--help` text: the first word of each option line.
fn long_flags(help: &str) -> Vec<String> {
    help.lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with('-'))
        .filter_map(|l| l.split([' ', ',', '.']).find(|w| w.starts_with("--")))
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_option_has_a_backfill_env_fallback_shown_in_help() {
    for sub in SUBCOMMANDS {
        let help = stdout_of(&[sub, "--help"]);
        let flags = long_flags(&help);
        assert!(flags.iter().any(|f| f == "--store"), "{sub}: {flags:?}");
        for flag in flags.iter().filter(|f| !matches!(f.as_str(), "--help" | "--version")) {
            let env = format!("BACKFILL_{}", flag[2..].replace('-', "_").to_uppercase());
            assert!(help.contains(&format!("[env: {env}")), "{sub} {flag}: no {env} in\n{help}");
        }
    }
    // The value set shows, except for URIs (they may hold a password).
    let help = backfill(&["statements", "--help"])
        .env("BACKFILL_BATCH_SIZE", "7")
        .env("BACKFILL_STORE", "mongodb://user:secret@db.example/vex")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("[env: BACKFILL_BATCH_SIZE=7]"), "{help}");
    assert!(help.contains("[env: BACKFILL_STORE]") && !help.contains("secret"), "{help}");
}

#[test]
fn env_fallbacks_take_effect_and_the_command_line_wins() {
    let a = crate::util::testdata("raw/sample.ndjson");
    let a = a.to_str().unwrap();
    let wd = Workdir::new();
    let run = |envs: &[(&str, &str)], args: &[&str]| {
        let mut all = vec!["statements", "--archive", a];
        all.extend_from_slice(args);
        let mut c = wd.command(&all);
        c.envs(envs.iter().copied());
        let out = c.output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        crate::util::Summary::parse(&out)
    };
    assert_eq!(run(&[("BACKFILL_MAX_DOCUMENTS", "2")], &[]).evaluated, 2);
    assert_eq!(run(&[("BACKFILL_MAX_DOCUMENTS", "2")], &["--max-documents", "3"]).evaluated, 3);
    // Everything done, so that:
    run(&[], &[]);
    // BACKFILL_FORCE=false (0, no, off) is not force: done documents are
    // skipped; true (1, yes, on) is.
    for no in ["false", "0", "no", "off", "FALSE"] {
        let s = run(&[("BACKFILL_FORCE", no)], &[]);
        assert_eq!((s.backfilled, s.skipped), (0, 5), "BACKFILL_FORCE={no}");
    }
    for yes in ["true", "1", "yes", "on"] {
        let s = run(&[("BACKFILL_FORCE", yes)], &[]);
        assert_eq!((s.backfilled, s.skipped), (4, 1), "BACKFILL_FORCE={yes}");
    }
    // A counted flag takes a count; a value enum its name; a boolean flag
    // of another subcommand the same names.
    let out = wd.command(&["runs"]).env("BACKFILL_JSON", "true").output().unwrap();
    assert!(!crate::util::json_lines(&out.stdout).is_empty());
    let out = wd.command(&["runs"]).env("BACKFILL_JSON", "false").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("RUN "));
    let out = wd
        .command(&["statements", "--archive", a])
        .env("BACKFILL_VERBOSE", "1")
        .env("BACKFILL_LOG_FORMAT", "json")
        .output()
        .unwrap();
    assert!(json_objects(&out.stderr).iter().any(|e| e["level"] == "INFO"));
}

#[test]
fn a_bad_env_value_is_a_usage_error_naming_the_variable() {
    let a = crate::util::testdata("raw/sample.ndjson");
    let a = a.to_str().unwrap();
    let wd = Workdir::new();
    for (var, value, flag) in [
        ("BACKFILL_BATCH_SIZE", "0", "--batch-size"),
        ("BACKFILL_BATCH_SIZE", "lots", "--batch-size"),
        ("BACKFILL_FORCE", "maybe", "--force"),
        ("BACKFILL_VERBOSE", "very", "--verbose"),
        ("BACKFILL_LOG_FORMAT", "xml", "--log-format"),
        ("BACKFILL_SHARD", "1/2", "--shard"), // conflicts with --shards below
    ] {
        let out = wd
            .command(&["statements", "--archive", a, "--shards", "2"])
            .env(var, value)
            .env("JOB_COMPLETION_INDEX", "0")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{var}={value}: {stderr}");
        assert!(
            stderr.contains(&format!("{flag} is set by the environment variable {var}")),
            "{var}={value}: {stderr}"
        );
    }
    // Typed on the command line, the flag's error does not blame the
    // environment.
    let out = wd
        .command(&["statements", "--archive", a, "--batch-size", "0"])
        .env("BACKFILL_BATCH_SIZE", "0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("environment variable"));
    assert!(wd.runs().is_empty(), "no run was recorded");
}

#[test]
fn help_has_global_options_under_their_heading_and_ends_with_examples() {
    let global = ["--store", "--statements-collection", "--raw-collection", "--busy-timeout"];
    let global = global.iter().chain(&["--verbose", "--quiet", "--log-format"]);
    for sub in SUBCOMMANDS {
        for h in ["-h", "--help"] {
            let help = stdout_of(&[sub, h]);
            let (own, rest) = help.split_once("\nGlobal options:\n").unwrap_or_else(|| {
                panic!("backfill {sub} {h}: no Global options heading:\n{help}")
            });
            let (globals, examples) = rest
                .split_once("\nExamples:\n")
                .unwrap_or_else(|| panic!("backfill {sub} {h}: no examples after them:\n{help}"));
            for g in global.clone() {
                assert!(globals.contains(g), "{sub} {h}: {g} not under Global options");
                assert!(!own.contains(&format!(" {g} ")), "{sub} {h}: {g} also above");
            }
            // Two or three examples, the last thing in the help (after the
            // options), each a command line using this subcommand.
            let commands: Vec<&str> = examples
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .collect();
            assert!((2..=3).contains(&commands.len()), "{sub} {h}: {examples}");
            for c in commands {
                assert!(c.contains(&format!("backfill {sub}")), "{sub} {h}: {c}");
            }
        }
    }
    // The top level too.
    let help = stdout_of(&["--help"]);
    assert!(help.contains("\nGlobal options:\n") && help.contains("\nExamples:\n"), "{help}");
}

#[test]
fn threads_default_is_said_in_words_not_as_zero() {
    for sub in ["statements", "epss"] {
        for h in ["-h", "--help"] {
            let help = stdout_of(&[sub, h]);
            let at = help.find("--threads <N>").unwrap();
            let block: String = help[at..].lines().take(4).collect::<Vec<_>>().join("\n");
            assert!(block.contains("(default: one per core)"), "{sub} {h}: {block}");
            assert!(!block.contains("[default: 0]"), "{sub} {h}: {block}");
        }
    }
}
