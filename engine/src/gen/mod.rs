//! Deterministic synthetic inputs at any scale, for benchmarks and tests.
//!
//! [`RawArchiveGen`] writes a raw NDJSON archive of documents in all three
//! formats, with some duplicates and some malformed lines: compact ones
//! (1–50 statements, short texts; [`Shape::Compact`]) or shaped like
//! vendors' feeds ([`Shape::Vendor`]). Output is a pure function of the options and seed, and
//! is streamed: memory does not grow with `count`.

use std::io::{self, Write};

use base64::Engine as _;
use serde_json::{json, Value as Json};

use crate::dedupe::Digest;
use crate::normalize::Format;

mod vendor;

/// What generated documents look like.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Shape {
    /// Short texts and few products per document (1–50 statements, about
    /// 220 bytes each): the shape the throughput figures were first
    /// measured on.
    #[default]
    Compact,
    /// Real feeds' shapes and proportions (see [`vendor`]): Red Hat CSAF
    /// VEX and advisories, SUSE and Canonical OpenVEX, scanners'
    /// CycloneDX, with long texts repeated over many products.
    Vendor,
}

/// A small, fast, seedable PRNG (SplitMix64): deterministic across
/// platforms, no dependency.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}

/// Options of [`RawArchiveGen`].
#[derive(Clone, Debug)]
pub struct RawGenOptions {
    /// Lines to write.
    pub count: u64,
    /// Seed; the same seed gives the same bytes.
    pub seed: u64,
    /// Formats to draw documents from.
    pub formats: Vec<Format>,
    /// Share of lines that repeat an earlier document (same bytes).
    pub dup_ratio: f64,
    /// Share of lines that are malformed (bad JSON, bad digest, `{}`).
    pub bad_ratio: f64,
    /// Most statements in one document (at least 1); compact shape only.
    pub max_statements: u32,
    /// What documents look like.
    pub shape: Shape,
}

impl Default for RawGenOptions {
    fn default() -> RawGenOptions {
        RawGenOptions {
            count: 1000,
            seed: 1,
            formats: vec![Format::Csaf, Format::CycloneDx, Format::OpenVex],
            dup_ratio: 0.05,
            bad_ratio: 0.01,
            max_statements: 50,
            shape: Shape::Compact,
        }
    }
}

/// What a generator run wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GenReport {
    /// Lines written.
    pub lines: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Lines that repeat an earlier document.
    pub duplicates: u64,
    /// Malformed lines.
    pub malformed: u64,
}

/// Streams a synthetic raw archive.
pub struct RawArchiveGen {
    opts: RawGenOptions,
    rng: Rng,
    /// A few recent lines to draw duplicates from (bounded memory).
    recent: Vec<(Vec<u8>, String)>,
}

const PROVIDERS: &[&str] = &["redhat", "suse", "cisco", "ubuntu", "oracle", "acme"];
const ECOSYSTEMS: &[&str] =
    &["npm", "pypi", "maven/org.example", "golang/github.com/example", "deb/debian", "rpm/redhat"];
const OPENVEX_STATUS: &[&str] = &["affected", "not_affected", "fixed", "under_investigation"];
const CISA: &[&str] = &[
    "component_not_present",
    "vulnerable_code_not_present",
    "vulnerable_code_not_in_execute_path",
    "vulnerable_code_cannot_be_controlled_by_adversary",
    "inline_mitigations_already_exist",
];
const CDX_STATE: &[&str] =
    &["exploitable", "not_affected", "false_positive", "resolved", "in_triage"];
const CSAF_STATUS: &[&str] =
    &["known_affected", "known_not_affected", "fixed", "under_investigation", "first_fixed"];

/// A malformed line: an envelope cut short inside its `content` string.
/// Escaped rather than a raw string: its unbalanced `{` inside `br#"…"#`
/// would mislead a brace counter that does not know byte raw strings (the
/// architecture test's does not).
const TRUNCATED_ENVELOPE: &[u8] =
    b"{\"digest\":\"sha256:00\",\"providerId\":\"acme\",\"content\":\"e30";

impl RawArchiveGen {
    /// A generator for `opts`.
    pub fn new(opts: RawGenOptions) -> RawArchiveGen {
        let rng = Rng::new(opts.seed);
        RawArchiveGen { opts, rng, recent: Vec::new() }
    }

    /// Writes all lines to `out`.
    pub fn write_to(&mut self, out: &mut dyn Write) -> io::Result<GenReport> {
        let mut report = GenReport::default();
        let mut line = Vec::with_capacity(1 << 16);
        for i in 0..self.opts.count {
            line.clear();
            let kind = self.next_line(i, &mut line);
            match kind {
                LineKind::Duplicate => report.duplicates += 1,
                LineKind::Malformed => report.malformed += 1,
                LineKind::Fresh => {}
            }
            line.push(b'\n');
            out.write_all(&line)?;
            report.lines += 1;
            report.bytes += line.len() as u64;
        }
        Ok(report)
    }

    /// Appends line `i` to `line`: a repeat of a recent document, a
    /// malformed line, or a fresh document (which may be repeated later).
    fn next_line(&mut self, i: u64, line: &mut Vec<u8>) -> LineKind {
        let retrieved_at = 1_600_000_000 + i as i64 * 37 + self.rng.below(3600) as i64;
        let at = crate::time::format_instant(retrieved_at * 1_000_000);
        if !self.recent.is_empty() && self.rng.chance(self.opts.dup_ratio) {
            let k = self.rng.below(self.recent.len() as u64) as usize;
            let (doc, provider) = self.recent[k].clone();
            envelope(line, &doc, &provider, &at, i, None);
            return LineKind::Duplicate;
        }
        if self.rng.chance(self.opts.bad_ratio) {
            self.malformed_line(i, &at, line);
            return LineKind::Malformed;
        }
        let (doc, provider) = self.document(i);
        envelope(line, &doc, &provider, &at, i, None);
        self.remember(doc, provider);
        LineKind::Fresh
    }

    /// Appends one of three malformed lines, drawn at random: an envelope
    /// cut short, a document whose digest does not match, or an envelope
    /// whose document is `{}` (no format).
    fn malformed_line(&mut self, i: u64, at: &str, line: &mut Vec<u8>) {
        match self.rng.below(3) {
            0 => line.extend_from_slice(TRUNCATED_ENVELOPE),
            1 => {
                let (doc, _) = self.document(i);
                envelope(line, &doc, "acme", at, i, Some(Digest::of(b"tampered")));
            }
            _ => envelope(line, b"{}", "acme", at, i, None),
        }
    }

    /// Keeps a fresh document among the 64 that later lines may repeat,
    /// replacing one at random once there are 64 (bounded memory).
    fn remember(&mut self, doc: Vec<u8>, provider: String) {
        if self.recent.len() < 64 {
            self.recent.push((doc, provider));
        } else {
            let k = self.rng.below(64) as usize;
            self.recent[k] = (doc, provider);
        }
    }

    /// Document `i` and its publisher.
    fn document(&mut self, i: u64) -> (Vec<u8>, String) {
        if self.opts.shape == Shape::Vendor {
            let d = vendor::document(&mut self.rng, i);
            return (serde_json::to_vec(&d.doc).unwrap_or_default(), d.provider.to_owned());
        }
        let f = self.opts.formats[self.rng.below(self.opts.formats.len() as u64) as usize];
        let n = 1 + self.rng.below(u64::from(self.opts.max_statements.max(1))) as usize;
        let doc = match f {
            Format::OpenVex => self.openvex(i, n),
            Format::Csaf => self.csaf(i, n),
            Format::CycloneDx => self.cyclonedx(i, n),
        };
        let provider = PROVIDERS[self.rng.below(PROVIDERS.len() as u64) as usize].to_owned();
        (serde_json::to_vec(&doc).unwrap_or_default(), provider)
    }

    fn cve(&mut self) -> String {
        format!("CVE-{}-{}", 2015 + self.rng.below(11), 1000 + self.rng.below(60_000))
    }

    fn purl(&mut self, i: u64, k: usize) -> String {
        let eco = ECOSYSTEMS[self.rng.below(ECOSYSTEMS.len() as u64) as usize];
        format!(
            "pkg:{eco}/component-{}-{k}@{}.{}.{}",
            i % 997,
            self.rng.below(9),
            self.rng.below(30),
            k
        )
    }

    fn openvex(&mut self, i: u64, n: usize) -> Json {
        let statements: Vec<Json> = (0..n)
            .map(|k| {
                let status = OPENVEX_STATUS[self.rng.below(4) as usize];
                let mut st = json!({
                    "vulnerability": {"name": self.cve(), "aliases": [format!("GHSA-{i:04x}-{k:04x}-synt")]},
                    "products": [{"@id": self.purl(i, k)}],
                    "status": status,
                });
                match status {
                    "not_affected" => {
                        st["justification"] = CISA[self.rng.below(5) as usize].into();
                        st["impact_statement"] = "The vulnerable function is never called.".into();
                    }
                    "affected" => st["action_statement"] = "Upgrade to the next release.".into(),
                    _ => {}
                }
                st
            })
            .collect();
        json!({
            "@context": "https://openvex.dev/ns/v0.2.0",
            "@id": format!("https://vex.example/openvex/{i}"),
            "author": "Synthetic PSIRT",
            "timestamp": "2024-05-01T00:00:00Z",
            "version": 1 + i % 3,
            "statements": statements,
        })
    }

    fn csaf(&mut self, i: u64, n: usize) -> Json {
        // n products under one vendor branch, one vulnerability each with
        // a status list; a few relationships to exercise that path.
        let products: Vec<Json> = (0..n)
            .map(|k| {
                json!({
                    "category": "product_version",
                    "name": format!("1.{k}"),
                    "product": {
                        "name": format!("component {k}"),
                        "product_id": format!("CSAFPID-{i}-{k}"),
                        "product_identification_helper": {"purl": self.purl(i, k)},
                    }
                })
            })
            .collect();
        let vulns: Vec<Json> = (0..n)
            .map(|k| {
                let list = CSAF_STATUS[self.rng.below(CSAF_STATUS.len() as u64) as usize];
                let pid = format!("CSAFPID-{i}-{k}");
                let mut status = serde_json::Map::new();
                status.insert(list.to_owned(), json!([pid.clone()]));
                let mut v = json!({
                    "cve": self.cve(),
                    "product_status": status,
                    "scores": [{"products": [pid.clone()], "cvss_v3": {"version": "3.1", "baseScore": 7.5, "baseSeverity": "HIGH", "vectorString": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"}}],
                });
                if list == "known_not_affected" {
                    v["flags"] = json!([{"label": CISA[self.rng.below(5) as usize], "product_ids": [pid.clone()]}]);
                    v["threats"] = json!([{"category": "impact", "details": "Not reachable.", "product_ids": [pid]}]);
                } else if list == "known_affected" {
                    v["remediations"] = json!([{"category": "vendor_fix", "details": "Update the package.", "product_ids": [pid]}]);
                }
                v
            })
            .collect();
        json!({
            "document": {
                "category": "csaf_vex",
                "csaf_version": "2.0",
                "publisher": {"category": "vendor", "name": "Synthetic", "namespace": "https://vex.example"},
                "title": format!("Synthetic advisory {i}"),
                "tracking": {
                    "id": format!("SYN-{i}"),
                    "version": format!("{}", 1 + i % 4),
                    "status": "final",
                    "initial_release_date": "2024-01-01T00:00:00Z",
                    "current_release_date": "2024-02-01T00:00:00Z",
                    "revision_history": [{"date": "2024-01-01T00:00:00Z", "number": "1", "summary": "Initial"}],
                },
            },
            "product_tree": {"branches": [{"category": "vendor", "name": "Synthetic", "branches": products}]},
            "vulnerabilities": vulns,
        })
    }

    fn cyclonedx(&mut self, i: u64, n: usize) -> Json {
        let components: Vec<Json> = (0..n)
            .map(|k| {
                json!({"type": "library", "bom-ref": format!("ref-{k}"), "name": format!("component-{k}"),
                       "version": format!("1.{k}"), "purl": self.purl(i, k)})
            })
            .collect();
        let vulns: Vec<Json> = (0..n)
            .map(|k| {
                let state = CDX_STATE[self.rng.below(CDX_STATE.len() as u64) as usize];
                let mut analysis = json!({"state": state});
                if state == "not_affected" {
                    analysis["justification"] = "code_not_reachable".into();
                    analysis["detail"] = "Not reachable from the public API.".into();
                }
                let severity = ["low", "medium", "high", "critical"][self.rng.below(4) as usize];
                json!({
                    "id": self.cve(),
                    "ratings": [{"severity": severity}],
                    "analysis": analysis,
                    "affects": [{"ref": format!("ref-{k}")}],
                })
            })
            .collect();
        json!({
            "bomFormat": "CycloneDX",
            "specVersion": "1.5",
            "serialNumber": format!("urn:uuid:00000000-0000-4000-8000-{i:012}"),
            "version": 1,
            "components": components,
            "vulnerabilities": vulns,
        })
    }
}

/// Options of [`write_epss_rows`].
#[derive(Clone, Debug)]
pub struct EpssGenOptions {
    /// Rows to write.
    pub count: u64,
    /// Seed; the same seed gives the same bytes.
    pub seed: u64,
    /// Share of rows that repeat a recent CVE with a new score.
    pub dup_ratio: f64,
    /// The order CVEs are issued in.
    pub order: EpssOrder,
}

impl Default for EpssGenOptions {
    fn default() -> EpssGenOptions {
        EpssGenOptions { count: 1000, seed: 1, dup_ratio: 0.05, order: EpssOrder::Sorted }
    }
}

/// The order of CVEs in generated EPSS rows (repeats aside).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EpssOrder {
    /// By year, then number, as FIRST's and GitLab's exports are.
    #[default]
    Sorted,
    /// Round-robin over 27 years (1999–2025): 27 insertion points at once,
    /// a worst case for a B-tree store.
    Interleaved,
}

/// The shape of EPSS rows written by [`write_epss_rows`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EpssShape {
    /// GitLab `cve_enrichment` NDJSON records.
    Gitlab,
    /// FIRST CSV rows (`cve,epss,percentile`), without the header.
    FirstCsv,
}

/// Streams `opts.count` EPSS rows to `next_out(i)`, which returns the
/// writer for row `i` (so callers can split rows over chunk files).
pub fn write_epss_rows(
    opts: &EpssGenOptions,
    shape: EpssShape,
    next_out: &mut dyn FnMut(u64) -> io::Result<Option<Box<dyn Write>>>,
) -> io::Result<GenReport> {
    let mut rng = Rng::new(opts.seed);
    let mut report = GenReport::default();
    let mut out: Option<Box<dyn Write>> = None;
    let mut issued = 0u64;
    let mut line = Vec::with_capacity(128);
    // Sorted ids spread over 27 years; in both orders ids of one year run
    // 00001, 00002, … (six digits past 99999).
    let per_year = opts.count.div_ceil(27).max(1);
    for i in 0..opts.count {
        if let Some(w) = next_out(i)? {
            if let Some(mut old) = out.replace(w) {
                old.flush()?;
            }
        }
        let Some(w) = out.as_mut() else { break };
        // A repeat draws one of the last 1000 CVEs issued.
        let n = if issued > 0 && rng.chance(opts.dup_ratio) {
            report.duplicates += 1;
            issued - 1 - rng.below(issued.min(1000))
        } else {
            issued += 1;
            issued - 1
        };
        let (year, number) = match opts.order {
            EpssOrder::Sorted => (1999 + n / per_year, n % per_year + 1),
            EpssOrder::Interleaved => (1999 + n % 27, n / 27 + 1),
        };
        let cve = format!("CVE-{year}-{number:05}");
        let score = rng.below(100_000) as f64 / 100_000.0;
        line.clear();
        match shape {
            EpssShape::Gitlab => {
                let kev = rng.chance(0.01);
                let _ = writeln!(
                    line,
                    r#"{{"cve_id":"{cve}","epss_score":{score},"is_known_exploit":{kev}}}"#
                );
            }
            EpssShape::FirstCsv => {
                let pct = rng.below(100_000) as f64 / 100_000.0;
                let _ = writeln!(line, "{cve},{score},{pct}");
            }
        }
        w.write_all(&line)?;
        report.lines += 1;
        report.bytes += line.len() as u64;
    }
    if let Some(mut w) = out {
        w.flush()?;
    }
    Ok(report)
}

/// A gzip writer (re-exported so the CLI needs no compression crate).
pub type GzWriter<W> = flate2::write::GzEncoder<W>;

/// Wraps `w` in a gzip encoder at the default level.
pub fn gzip<W: Write>(w: W) -> GzWriter<W> {
    flate2::write::GzEncoder::new(w, flate2::Compression::default())
}

enum LineKind {
    Fresh,
    Duplicate,
    Malformed,
}

/// Appends one envelope line (base64 content) to `line`; `digest` overrides
/// the true digest (to make a mismatch).
fn envelope(
    line: &mut Vec<u8>,
    doc: &[u8],
    provider: &str,
    at: &str,
    i: u64,
    digest: Option<Digest>,
) {
    let digest = digest.unwrap_or_else(|| Digest::of(doc));
    let content = base64::engine::general_purpose::STANDARD.encode(doc);
    // Written by hand: serde_json would copy the large content string.
    let _ = write!(
        line,
        r#"{{"digest":"{digest}","providerId":"{provider}","sourceUri":"https://vex.example/{provider}/{i}.json","retrievedAt":"{at}","metadata":{{"seq":{i}}},"content":"{content}"}}"#
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let run = |seed| {
            let mut out = Vec::new();
            RawArchiveGen::new(RawGenOptions { count: 50, seed, ..Default::default() })
                .write_to(&mut out)
                .unwrap();
            out
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn report_counts_lines_duplicates_and_malformed() {
        let mut out = Vec::new();
        let opts =
            RawGenOptions { count: 400, dup_ratio: 0.1, bad_ratio: 0.05, ..Default::default() };
        let r = RawArchiveGen::new(opts).write_to(&mut out).unwrap();
        assert_eq!(r.lines, 400);
        assert_eq!(r.bytes as usize, out.len());
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 400);
        assert!(r.duplicates > 10 && r.malformed > 5, "{r:?}");
    }

    fn epss_cves(order: EpssOrder, dup_ratio: f64) -> Vec<crate::cve::CveId> {
        let opts = EpssGenOptions { count: 3000, seed: 4, dup_ratio, order };
        let file = tempfile::NamedTempFile::new().unwrap();
        let mut first = Some(file.reopen().unwrap());
        write_epss_rows(&opts, EpssShape::FirstCsv, &mut |_| {
            Ok(first.take().map(|f| Box::new(f) as Box<dyn Write>))
        })
        .unwrap();
        let text = std::fs::read_to_string(file.path()).unwrap();
        text.lines()
            .map(|l| crate::cve::CveId::parse(l.split(',').next().unwrap()).unwrap())
            .collect()
    }

    #[test]
    fn epss_rows_come_in_cve_order_or_round_robin_over_27_years() {
        // Without repeats, sorted means strictly increasing keys, over all
        // 27 years.
        let sorted = epss_cves(EpssOrder::Sorted, 0.0);
        assert!(sorted.windows(2).all(|w| w[0].key() < w[1].key()));
        assert!(sorted[0].starts_with("CVE-1999-") && sorted[2999].starts_with("CVE-2025-"));
        // Repeats are of recent ids, so the order stays nearly sorted.
        let with_repeats = epss_cves(EpssOrder::Sorted, 0.05);
        let out_of_order = with_repeats.windows(2).filter(|w| w[0].key() >= w[1].key()).count();
        assert!(out_of_order > 50 && out_of_order < 300, "{out_of_order}");
        let interleaved = epss_cves(EpssOrder::Interleaved, 0.0);
        let years: std::collections::BTreeSet<&str> =
            interleaved[..27].iter().map(|c| &c.as_str()[4..8]).collect();
        assert_eq!(years.len(), 27);
        let mut a: Vec<i64> = sorted.iter().map(|c| c.key()).collect();
        let mut b: Vec<i64> = interleaved.iter().map(|c| c.key()).collect();
        a.sort_unstable();
        b.sort_unstable();
        assert_ne!(a, b, "the orders issue different ids, both 3000 distinct");
        b.dedup();
        assert_eq!(b.len(), 3000);
    }
}
