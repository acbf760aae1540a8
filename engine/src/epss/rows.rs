//! Rows of the two export formats: GitLab's NDJSON records and FIRST's
//! CSV (with its comment and header lines), parsed a batch at a time on
//! rayon, the last row of a CVE in a batch winning.

use std::sync::Arc;

use rayon::prelude::*;
use serde::Deserialize;

use crate::cve::CveId;
use crate::store::EpssRow;
use crate::time::format_instant;

pub(super) fn check_score(name: &str, v: f64) -> std::result::Result<f64, String> {
    if v.is_finite() && (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{name} {v} is outside [0, 1]"))
    }
}

/// One GitLab `cve_enrichment` record; any other key is an error.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct GitlabRecord<'a> {
    #[serde(borrow)]
    cve_id: std::borrow::Cow<'a, str>,
    epss_score: f64,
    #[serde(default)]
    is_known_exploit: bool,
}

/// Parses one GitLab export line.
pub fn parse_gitlab_line(line: &[u8]) -> std::result::Result<EpssRow, String> {
    let r: GitlabRecord<'_> = serde_json::from_slice(line).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            format!("not valid JSON: {e}")
        } else {
            e.to_string()
        }
    })?;
    let cve =
        CveId::parse(&r.cve_id).ok_or_else(|| format!("cve_id {:?} is not a CVE id", r.cve_id))?;
    Ok(EpssRow {
        cve,
        epss_score: check_score("epss_score", r.epss_score)?,
        percentile: None,
        is_known_exploit: Some(r.is_known_exploit),
        model_version: None,
        score_date: None,
    })
}

/// Column layout of a CSV file, from its comment and header lines.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CsvLayout {
    cve: Option<usize>,
    epss: usize,
    percentile: Option<usize>,
    date: Option<usize>,
    model: Option<usize>,
    columns: usize,
    /// CVE for a per-CVE time series (from the file name).
    file_cve: Option<CveId>,
    /// From `#model_version:…`.
    model_version: Option<Arc<str>>,
    /// From `score_date:…` or the file name, RFC 3339.
    score_date: Option<Arc<str>>,
    /// Bytes taken by the comment and header lines.
    pub data_offset: u64,
    /// Lines taken by them.
    pub data_line: u64,
}

/// The CVE id inside a file name such as `CVE-2021-0001.csv` or
/// `mirror__CVE-2021-0001.epss_excerpt.csv`.
pub(super) fn cve_in_name(name: &str) -> Option<CveId> {
    let start = name.find("CVE-")?;
    let rest = &name[start..];
    let end = rest
        .char_indices()
        .skip(4)
        .find(|&(i, c)| !(c.is_ascii_digit() || (c == '-' && i == 8)))
        .map_or(rest.len(), |(i, _)| i);
    let id = &rest[..end];
    CveId::parse(id)
}

/// `2026-09-29T12:00:22Z`, `2023-03-07T00:00:00+0000` or `2023-03-07` as
/// RFC 3339 UTC.
pub(super) fn normalize_date(s: &str) -> Option<String> {
    let s = s.trim();
    if let Some(t) = crate::time::parse_instant(s) {
        return Some(format_instant(t));
    }
    chrono::DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%z")
        .ok()
        .map(|t| format_instant(t.timestamp_micros()))
}

impl CsvLayout {
    /// Reads the optional `#model_version:…,score_date:…` comment and the
    /// header from the start of `data`. `file_name` supplies the score date
    /// of old files (`epss_scores-YYYY-MM-DD.csv`) and the CVE of a per-CVE
    /// series (`CVE-2021-0001….csv`).
    pub fn read(data: &[u8], file_name: &str) -> std::result::Result<CsvLayout, String> {
        let mut layout = CsvLayout::default();
        let mut pos = 0usize;
        let next_line = |pos: &mut usize| -> Option<String> {
            if *pos >= data.len() {
                return None;
            }
            let end = memchr::memchr(b'\n', &data[*pos..]).map_or(data.len(), |i| *pos + i);
            let line = String::from_utf8_lossy(&data[*pos..end]).trim().to_owned();
            *pos = (end + 1).min(data.len());
            Some(line)
        };
        let mut header = next_line(&mut pos).ok_or("file is empty")?;
        layout.data_line = 1;
        let header_bom = header.trim_start_matches('\u{feff}').to_owned();
        header = header_bom;
        if let Some(comment) = header.strip_prefix('#') {
            for part in comment.split(',') {
                if let Some((k, v)) = part.split_once(':') {
                    match k.trim() {
                        "model_version" => layout.model_version = Some(v.trim().into()),
                        "score_date" => layout.score_date = normalize_date(v).map(Arc::from),
                        _ => {}
                    }
                }
            }
            header = next_line(&mut pos).ok_or("no header line after the comment")?;
            layout.data_line = 2;
        }
        let cols: Vec<&str> = header.split(',').map(str::trim).collect();
        let find = |name: &str| cols.iter().position(|c| c.eq_ignore_ascii_case(name));
        layout.columns = cols.len();
        layout.cve = find("cve");
        layout.epss =
            find("epss").ok_or_else(|| format!("header {header:?} has no epss column"))?;
        layout.percentile = find("percentile");
        layout.date = find("date");
        layout.model = find("model");
        if layout.cve.is_none() {
            layout.file_cve = Some(cve_in_name(file_name).ok_or_else(|| {
                format!("header {header:?} has no cve column and the file name names no CVE")
            })?);
        }
        if layout.score_date.is_none() {
            // epss_scores-2021-04-14.csv: the date is in the name.
            layout.score_date = file_name
                .strip_prefix("epss_scores-")
                .and_then(|r| r.get(..10))
                .and_then(normalize_date)
                .map(Arc::from);
        }
        layout.data_offset = pos as u64;
        Ok(layout)
    }

    /// Parses one data line.
    pub fn parse_line(&self, line: &[u8]) -> std::result::Result<EpssRow, String> {
        let text = std::str::from_utf8(line).map_err(|_| "line is not UTF-8".to_owned())?;
        let fields: Vec<&str> = text.split(',').map(str::trim).collect();
        if fields.len() > self.columns {
            return Err(format!("{} fields, the header has {}", fields.len(), self.columns));
        }
        let get = |i: Option<usize>| i.and_then(|i| fields.get(i)).filter(|s| !s.is_empty());
        let cve = match (&self.file_cve, get(self.cve)) {
            (Some(c), _) => *c,
            (None, Some(c)) => {
                CveId::parse(c).ok_or_else(|| format!("cve {c:?} is not a CVE id"))?
            }
            (None, None) => return Err("no cve".into()),
        };
        let num = |name: &str, i: Option<usize>| -> std::result::Result<Option<f64>, String> {
            match get(i) {
                None => Ok(None),
                Some(v) => v
                    .parse::<f64>()
                    .map_err(|_| format!("{name} {v:?} is not a number"))
                    .and_then(|x| check_score(name, x))
                    .map(Some),
            }
        };
        let epss = num("epss", Some(self.epss))?.ok_or("no epss value")?;
        let percentile = num("percentile", self.percentile)?;
        let score_date = match get(self.date) {
            Some(d) => {
                Some(normalize_date(d).ok_or_else(|| format!("date {d:?} is not a date"))?.into())
            }
            None => self.score_date.clone(),
        };
        let model_version =
            get(self.model).map(|m| Arc::from(*m)).or_else(|| self.model_version.clone());
        Ok(EpssRow {
            cve,
            epss_score: epss,
            percentile,
            is_known_exploit: None,
            model_version,
            score_date,
        })
    }
}

/// How the lines of one file are parsed.
#[derive(Clone, Debug)]
pub(super) enum LineParser {
    Gitlab,
    Csv(CsvLayout),
}

impl LineParser {
    fn parse(&self, line: &[u8]) -> std::result::Result<EpssRow, String> {
        match self {
            LineParser::Gitlab => parse_gitlab_line(line),
            LineParser::Csv(l) => l.parse_line(line),
        }
    }
}

/// One row per CVE, the last one of the batch winning (GitLab fails the
/// whole slice instead), in [`CveId::key`] order: the embedded store writes
/// in that order, and sorting here, in parallel, keeps the single writer
/// thread's memory accesses sequential. Counts the rows replaced.
pub(super) fn last_wins(mut parsed: Vec<(i64, EpssRow)>, superseded: &mut u64) -> Vec<EpssRow> {
    // Stable: rows of one CVE stay in file order, so the last is last.
    parsed.par_sort_by_key(|(key, _)| *key);
    let mut out = Vec::with_capacity(parsed.len());
    let mut rows = parsed.into_iter().peekable();
    while let Some((key, row)) = rows.next() {
        if rows.peek().is_some_and(|(next, _)| *next == key) {
            *superseded += 1;
        } else {
            out.push(row);
        }
    }
    out
}

pub(super) struct ParsedBatch {
    /// ([`CveId::key`], row), in file order.
    pub(super) rows: Vec<(i64, EpssRow)>,
    /// (line number, reason), in file order.
    pub(super) rejected: Vec<(u64, String)>,
    /// Non-blank data lines.
    pub(super) lines: u64,
    /// Newlines crossed (for line numbering).
    pub(super) lines_spanned: u64,
}

/// Parses a batch in parallel: split at newlines into pieces, parse the
/// pieces on rayon, concatenate in order.
pub(super) fn parse_batch(parser: &LineParser, data: &[u8], first_line: u64) -> ParsedBatch {
    let pieces = crate::source::split_at_newlines(data, (data.len() / 16).max(64 << 10));
    let parts: Vec<ParsedBatch> = pieces
        .par_iter()
        .map(|&(s, e)| {
            // Sized for the shortest plausible rows (a FIRST CSV line is
            // about 30 bytes) so that it never grows: every regrowth of a
            // large vector copies it into freshly faulted pages.
            let mut part = ParsedBatch {
                rows: Vec::with_capacity((e - s) / 24 + 1),
                rejected: Vec::new(),
                lines: 0,
                lines_spanned: 0,
            };
            let mut pos = s;
            while pos < e {
                let nl = memchr::memchr(b'\n', &data[pos..e]).map_or(e, |i| pos + i);
                part.lines_spanned += 1;
                let line = data[pos..nl].trim_ascii();
                pos = nl + 1;
                if line.is_empty() {
                    continue;
                }
                part.lines += 1;
                match parser.parse(line) {
                    Ok(r) => part.rows.push((r.cve.key(), r)),
                    Err(reason) => part.rejected.push((part.lines_spanned, reason)),
                }
            }
            part
        })
        .collect();
    let rows = parts.iter().map(|p| p.rows.len()).sum();
    let mut out = ParsedBatch {
        rows: Vec::with_capacity(rows),
        rejected: Vec::new(),
        lines: 0,
        lines_spanned: 0,
    };
    for p in parts {
        let base = first_line + out.lines_spanned;
        out.rows.extend(p.rows);
        out.rejected.extend(p.rejected.into_iter().map(|(l, r)| (base + l, r)));
        out.lines += p.lines;
        out.lines_spanned += p.lines_spanned;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gitlab_lines_accepted_and_rejected() {
        let ok = parse_gitlab_line(
            br#"{"cve_id":"CVE-2021-44228","epss_score":0.9427,"is_known_exploit":true}"#,
        )
        .unwrap();
        assert_eq!(ok.is_known_exploit, Some(true));
        let default_kev =
            parse_gitlab_line(br#"{ "cve_id": "CVE-1999-0003", "epss_score": 0.2 }"#).unwrap();
        assert_eq!(default_kev.is_known_exploit, Some(false));
        for bad in [
            &br#"{"epss_score":0.2}"#[..],
            br#"{"cve_id":"invalid","epss_score":0.5}"#,
            br#"{"cve_id":"CVE-1999-0004","epss_score":0.1,"unexpected_field":1}"#,
            br#"{"cve_id":"CVE-1999-0004","epss_score":1.5}"#,
            br#"{"cve_id":"CVE-1999-0004","epss_score":-0.1}"#,
            b"not json at all",
        ] {
            assert!(parse_gitlab_line(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn first_csv_with_comment_line_and_both_date_formats() {
        let data = b"#model_version:v2026.06.15,score_date:2026-09-29T12:00:22Z\ncve,epss,percentile\nCVE-1999-0001,0.03351,0.88255\n";
        let l = CsvLayout::read(data, "epss_scores-2026-09-29.csv").unwrap();
        assert_eq!(l.data_line, 2);
        let r = l.parse_line(b"CVE-1999-0001,0.03351,0.88255").unwrap();
        assert_eq!(r.model_version.as_deref(), Some("v2026.06.15"));
        assert_eq!(r.score_date.as_deref(), Some("2026-09-29T12:00:22Z"));
        assert_eq!(r.percentile, Some(0.88255));
        assert_eq!(r.is_known_exploit, None);
        let old = b"#model_version:v2023.03.01,score_date:2023-03-07T00:00:00+0000\ncve,epss,percentile\n";
        let l = CsvLayout::read(old, "x.csv").unwrap();
        assert_eq!(l.score_date.as_deref(), Some("2023-03-07T00:00:00Z"));
        // Pre-2022 files: no comment line, date from the file name.
        let l = CsvLayout::read(b"cve,epss,percentile\n", "epss_scores-2021-04-14.csv").unwrap();
        assert_eq!(l.data_line, 1);
        assert_eq!(l.score_date.as_deref(), Some("2021-04-14T00:00:00Z"));
        assert!(l.parse_line(b"CVE-1,0.1,0.2").is_err());
        assert!(l.parse_line(b"CVE-2021-0001,abc,0.2").is_err());
        assert!(l.parse_line(b"CVE-2021-0001,0.1,0.2,extra").is_err());
    }

    #[test]
    fn per_cve_time_series_takes_the_cve_from_the_file_name() {
        let l = CsvLayout::read(b"date,model,epss,percentile\n", "CVE-2021-0001.epss_excerpt.csv")
            .unwrap();
        let r = l.parse_line(b"2021-06-10,v1,0.00416").unwrap();
        assert_eq!(r.cve, "CVE-2021-0001");
        assert_eq!(r.percentile, None);
        assert_eq!(r.model_version.as_deref(), Some("v1"));
        assert_eq!(r.score_date.as_deref(), Some("2021-06-10T00:00:00Z"));
        assert!(CsvLayout::read(b"date,model,epss\n", "scores.csv").is_err());
        assert_eq!(
            cve_in_name("giterlizzi__CVE-2021-0001.epss_excerpt.csv").as_deref(),
            Some("CVE-2021-0001")
        );
        assert_eq!(cve_in_name("CVE-2021-44228.csv").as_deref(), Some("CVE-2021-44228"));
        assert_eq!(cve_in_name("CVE-21-1.csv"), None);
    }

    #[test]
    fn parse_batch_numbers_lines_across_pieces() {
        let mut data = Vec::new();
        for i in 0..5000 {
            if i % 1000 == 7 {
                data.extend_from_slice(b"garbage\n");
            } else {
                data.extend_from_slice(
                    format!("{{\"cve_id\":\"CVE-2020-{:05}\",\"epss_score\":0.5}}\n", i).as_bytes(),
                );
            }
        }
        let b = parse_batch(&LineParser::Gitlab, &data, 100);
        assert_eq!(b.lines, 5000);
        assert_eq!(b.rows.len(), 4995);
        let lines: Vec<u64> = b.rejected.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, [108, 1108, 2108, 3108, 4108]);
        // In file order, each with its key.
        assert_eq!(b.rows[0].0, crate::cve::cve_key("CVE-2020-00000").unwrap());
        assert_eq!(b.rows[4994].1.cve, "CVE-2020-04999");
    }

    #[test]
    fn last_wins_keeps_the_last_row_of_each_cve_in_key_order() {
        let row = |cve: &str, score: f64| {
            let cve = CveId::parse(cve).unwrap();
            (cve.key(), EpssRow { cve, epss_score: score, ..row_template() })
        };
        let parsed = vec![
            row("CVE-2021-10000", 0.1),
            row("CVE-2021-1000", 0.2),
            row("CVE-2021-10000", 0.3),
            row("CVE-2020-9999", 0.4),
            row("CVE-2021-10000", 0.5),
        ];
        let mut superseded = 0;
        let out = last_wins(parsed, &mut superseded);
        assert_eq!(superseded, 2);
        let got: Vec<(&str, f64)> = out.iter().map(|r| (r.cve.as_str(), r.epss_score)).collect();
        assert_eq!(got, [("CVE-2020-9999", 0.4), ("CVE-2021-1000", 0.2), ("CVE-2021-10000", 0.5)]);
    }

    fn row_template() -> EpssRow {
        EpssRow {
            cve: CveId::parse("CVE-2000-0000").unwrap(),
            epss_score: 0.0,
            percentile: None,
            is_known_exploit: None,
            model_version: None,
            score_date: None,
        }
    }
}
