//! The shape of the code, checked like behaviour (issue 15): no engine
//! module imports a module that imports it back, no source file has more
//! than 800 lines outside its tests, and no function more than 80.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_FILE_LINES: usize = 800;
const MAX_FN_LINES: usize = 80;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The lines of `text` before its unit tests (`#[cfg(test)]` at the
/// start of a line, then `mod`).
fn non_test(text: &str) -> Vec<&str> {
    let lines: Vec<&str> = text.lines().collect();
    let end = lines
        .windows(2)
        .position(|w| w[0].starts_with("#[cfg(test)]") && w[1].starts_with("mod "))
        .unwrap_or(lines.len());
    lines[..end].to_vec()
}

/// `text` with comments, string and character literals blanked (same
/// lines), so braces and `crate::` inside them do not count.
fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let blank = |out: &mut Vec<u8>, c: u8| out.push(if c == b'\n' { b'\n' } else { b' ' });
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    blank(&mut out, b[i]);
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut depth = 0;
                loop {
                    if i + 1 < b.len() && b[i] == b'/' && b[i + 1] == b'*' {
                        depth += 1;
                        out.extend_from_slice(b"  ");
                        i += 2;
                    } else if i + 1 < b.len() && b[i] == b'*' && b[i + 1] == b'/' {
                        depth -= 1;
                        out.extend_from_slice(b"  ");
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else if i < b.len() {
                        blank(&mut out, b[i]);
                        i += 1;
                    } else {
                        break;
                    }
                }
            }
            b'r' if matches!(b.get(i + 1), Some(b'"' | b'#'))
                && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')) =>
            {
                // r"…" or r#"…"#
                let mut j = i + 1;
                let mut hashes = 0;
                while b.get(j) == Some(&b'#') {
                    hashes += 1;
                    j += 1;
                }
                if b.get(j) != Some(&b'"') {
                    out.push(b[i]);
                    i += 1;
                    continue;
                }
                let close: Vec<u8> =
                    std::iter::once(b'"').chain(std::iter::repeat_n(b'#', hashes)).collect();
                out.extend(std::iter::repeat_n(b' ', j + 1 - i));
                i = j + 1;
                while i < b.len() && !b[i..].starts_with(&close) {
                    blank(&mut out, b[i]);
                    i += 1;
                }
                out.extend(std::iter::repeat_n(b' ', close.len().min(b.len() - i)));
                i += close.len();
            }
            b'"' => {
                out.push(b' ');
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        blank(&mut out, b[i]);
                        i += 1;
                    }
                    if i < b.len() {
                        blank(&mut out, b[i]);
                        i += 1;
                    }
                }
                out.push(b' ');
                i += 1;
            }
            b'\'' => {
                // A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
                let end = if b.get(i + 1) == Some(&b'\\') {
                    b[i + 2..].iter().position(|&c| c == b'\'').map(|p| i + 2 + p)
                } else if b.get(i + 2) == Some(&b'\'') {
                    Some(i + 2)
                } else {
                    None
                };
                match end {
                    Some(end) => {
                        out.extend(std::iter::repeat_n(b' ', end + 1 - i));
                        i = end + 1;
                    }
                    None => {
                        out.push(b[i]);
                        i += 1;
                    }
                }
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// (name, first line, lines) of every function in `code` longer than
/// [`MAX_FN_LINES`].
fn long_functions(code: &str) -> Vec<(String, usize, usize)> {
    let lines: Vec<&str> = code.lines().collect();
    let mut out = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        let t = line.trim_start();
        let t = t
            .trim_start_matches("pub(crate) ")
            .trim_start_matches("pub(super) ")
            .trim_start_matches("pub ")
            .trim_start_matches("const ")
            .trim_start_matches("unsafe ");
        let Some(rest) = t.strip_prefix("fn ") else { continue };
        let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        // From the line with the body's `{` to the matching `}`.
        let mut depth = 0i64;
        let mut opened = false;
        let mut end = None;
        'scan: for (m, l) in lines.iter().enumerate().skip(n) {
            for c in l.chars() {
                match c {
                    '{' => {
                        depth += 1;
                        opened = true;
                    }
                    '}' => depth -= 1,
                    ';' if !opened && depth == 0 => break 'scan, // a declaration
                    _ => {}
                }
                if opened && depth == 0 {
                    end = Some(m);
                    break 'scan;
                }
            }
        }
        if let Some(end) = end {
            let len = end - n + 1;
            if len > MAX_FN_LINES {
                out.push((name, n + 1, len));
            }
        }
    }
    out
}

/// The top-level engine module a file belongs to.
fn module_of(path: &Path) -> String {
    let rel = path.strip_prefix(root().join("engine/src")).unwrap();
    let first = rel.components().next().unwrap().as_os_str().to_string_lossy().into_owned();
    first.trim_end_matches(".rs").to_owned()
}

#[test]
fn no_engine_module_imports_a_module_that_imports_it_back() {
    let mut files = Vec::new();
    rust_files(&root().join("engine/src"), &mut files);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let m = module_of(f);
        if m == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(f).unwrap();
        let code = code_only(&non_test(&text).join("\n"));
        let deps = edges.entry(m.clone()).or_default();
        for (i, _) in code.match_indices("crate::") {
            let name: String =
                code[i + 7..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if !name.is_empty() && name != m && name.chars().all(|c| !c.is_uppercase()) {
                deps.insert(name);
            }
        }
    }
    // A module that reaches itself through its dependencies is in a cycle.
    let mut cycles = Vec::new();
    for start in edges.keys() {
        let mut stack: Vec<(String, Vec<String>)> = vec![(start.clone(), vec![start.clone()])];
        let mut seen = BTreeSet::new();
        while let Some((m, path)) = stack.pop() {
            for d in edges.get(&m).into_iter().flatten() {
                if d == start {
                    cycles.push(format!("{} -> {start}", path.join(" -> ")));
                } else if seen.insert(d.clone()) {
                    let mut p = path.clone();
                    p.push(d.clone());
                    stack.push((d.clone(), p));
                }
            }
        }
    }
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn no_file_or_function_is_too_long() {
    let mut files = Vec::new();
    for dir in ["engine/src", "cli/src", "benches/src", "benches/benches"] {
        rust_files(&root().join(dir), &mut files);
    }
    let mut problems = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let lines = non_test(&text);
        let name = f.strip_prefix(root()).unwrap().display();
        if lines.len() > MAX_FILE_LINES {
            problems.push(format!("{name}: {} lines outside tests", lines.len()));
        }
        for (func, line, len) in long_functions(&code_only(&lines.join("\n"))) {
            problems.push(format!("{name}:{line}: fn {func} is {len} lines"));
        }
    }
    assert!(problems.is_empty(), "too long:\n{}", problems.join("\n"));
}

#[test]
fn the_checks_find_what_they_look_for() {
    let code =
        code_only("fn a() {\n let s = \"}\"; // }\n let c = '{';\n}\nfn b<'x>(v: &'x str) {}\n");
    assert_eq!(code.matches('{').count(), 2, "{code}");
    let long = format!("fn long() {{\n{}}}\nfn short() {{}}\n", "    x();\n".repeat(90));
    assert_eq!(long_functions(&long), [("long".to_owned(), 1, 92)]);
    assert_eq!(non_test("a\n#[cfg(test)]\nmod tests {}\n"), ["a"]);
    assert_eq!(non_test("a\n#[cfg(test)]\nfn b() {}\n").len(), 3);
}
