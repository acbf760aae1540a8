//! Which files of a walked directory are read: `--glob` and `--exclude`.
//!
//! Patterns are matched against a file's path relative to the directory
//! named on the command line, with `/` as the separator; `*` also crosses
//! `/` (so `*.ndjson` matches at any depth) and `**` spans directories.
//! A file is read when it matches some `--glob` (or none is given) and no
//! `--exclude`. Files named on the command line are always read: naming
//! one says to read it.

use std::path::Path;

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::error::{Error, Result};

/// The `--glob` and `--exclude` patterns, compiled.
#[derive(Clone, Debug, Default)]
pub struct Select {
    include: Option<GlobSet>,
    exclude: Option<GlobSet>,
}

impl Select {
    /// Compiles the patterns; a malformed one is a usage error naming it.
    pub fn new(include: &[String], exclude: &[String]) -> Result<Select> {
        Ok(Select { include: set(include, "--glob")?, exclude: set(exclude, "--exclude")? })
    }

    /// Whether every file is read.
    pub fn is_all(&self) -> bool {
        self.include.is_none() && self.exclude.is_none()
    }

    /// Whether the file at `relative` (to its directory root) is read.
    pub fn keeps(&self, relative: &Path) -> bool {
        self.include.as_ref().is_none_or(|g| g.is_match(relative))
            && !self.exclude.as_ref().is_some_and(|g| g.is_match(relative))
    }
}

fn set(patterns: &[String], option: &str) -> Result<Option<GlobSet>> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        let glob = Glob::new(p).map_err(|e| Error::Usage(format!("{option} {p:?}: {e}")))?;
        b.add(glob);
    }
    b.build().map(Some).map_err(|e| Error::Usage(format!("{option}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(include: &[&str], exclude: &[&str]) -> Select {
        let v = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Select::new(&v(include), &v(exclude)).unwrap()
    }

    #[test]
    fn globs_include_and_excludes_win() {
        let all = sel(&[], &[]);
        assert!(all.is_all() && all.keeps(Path::new("a/b.json")));
        let s = sel(&["*.ndjson", "2024/**"], &["*-draft*", "2024/old/**"]);
        assert!(s.keeps(Path::new("x.ndjson")));
        assert!(s.keeps(Path::new("deep/er/x.ndjson")), "* crosses /");
        assert!(s.keeps(Path::new("2024/a.json")));
        assert!(!s.keeps(Path::new("2023/a.json")));
        assert!(!s.keeps(Path::new("x-draft.ndjson")));
        assert!(!s.keeps(Path::new("2024/old/a.json")));
        let only_exclude = sel(&[], &["*.gz"]);
        assert!(
            only_exclude.keeps(Path::new("a.json")) && !only_exclude.keeps(Path::new("a.json.gz"))
        );
    }

    #[test]
    fn a_malformed_pattern_is_a_usage_error_naming_it() {
        let err = Select::new(&["a[".into()], &[]).unwrap_err();
        assert!(matches!(err, Error::Usage(_)), "{err}");
        assert!(err.to_string().contains("--glob \"a[\""), "{err}");
    }
}
