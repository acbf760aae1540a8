//! The logical data model: the shapes users see (`export`, `get`, `runs`,
//! `stats`) and that every store only maps to and from its own storage.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// Status of a run record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Still going (or crashed without recording an end).
    Running,
    /// Finished.
    Completed,
    /// Ended early by a stop signal or time limit; a rerun continues.
    Stopped,
    /// Ended by a fatal error.
    Failed,
    /// Found `running` by a later command while its process was gone (or
    /// silent for `RUN_STALE_AFTER`): it was killed, and a rerun
    /// continues from its last durable batch.
    Abandoned,
}

impl RunStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [RunStatus; 5] = [
        RunStatus::Running,
        RunStatus::Completed,
        RunStatus::Stopped,
        RunStatus::Failed,
        RunStatus::Abandoned,
    ];

    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
            RunStatus::Stopped => "stopped",
            RunStatus::Failed => "failed",
            RunStatus::Abandoned => "abandoned",
        }
    }

    /// The status stored as `s` (`running` for anything unknown).
    pub fn from_name(s: &str) -> RunStatus {
        RunStatus::ALL.into_iter().find(|st| st.as_str() == s).unwrap_or(RunStatus::Running)
    }
}

/// One entry of the `runs` collection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRecord {
    /// Unique id, also stamped on every statement the run writes.
    pub run_id: String,
    /// Subcommand (`statements`, `epss`, ...).
    pub command: String,
    /// Command-line arguments, credentials redacted.
    pub arguments: Vec<String>,
    /// Start, RFC 3339.
    pub started_at: String,
    /// End, RFC 3339, once ended.
    pub ended_at: Option<String>,
    /// Current status.
    pub status: RunStatus,
    /// Counters (the command's stats as JSON).
    pub counters: Json,
    /// The fatal error, when it failed (or why it was found abandoned).
    pub error: Option<String>,
    /// The process that runs it, so a later command can tell a killed run
    /// from a live one.
    pub owner: Option<RunOwner>,
    /// When it last wrote (RFC 3339): every durable batch updates it.
    pub heartbeat_at: Option<String>,
}

/// One row of the `epss` collection, as parsed from an export.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EpssRow {
    /// `CVE-YYYY-NNNN…`, the key.
    pub cve: crate::cve::CveId,
    /// Probability of exploitation in the next 30 days, in [0, 1].
    pub epss_score: f64,
    /// Percentile of the score among all CVEs (FIRST CSV only).
    pub percentile: Option<f64>,
    /// Listed in CISA KEV. `None` (FIRST CSV rows) keeps the stored value.
    pub is_known_exploit: Option<bool>,
    /// EPSS model version (`v2026.06.15`), when the export says. Shared:
    /// a file usually gives one for all its rows.
    pub model_version: Option<std::sync::Arc<str>>,
    /// Score date (RFC 3339), when the export says. Shared, like the model.
    pub score_date: Option<std::sync::Arc<str>>,
}

/// Where an input was last durably ingested up to.
///
/// An EPSS checkpoint belongs to one file (`source` is its canonical
/// path) and says what that file looked like when it was read
/// ([`ContentIdentity`]), so that a file replaced at the same path is read
/// again. A `statements` checkpoint over standard input has the
/// identity of the stream read. Two kinds have no identity: a `statements`
/// checkpoint over files (a position in the evaluation order of a set of
/// archives, which names them), and an EPSS
/// checkpoint written before identities existed, which for a bucket is one
/// row for the whole bucket (`source` is its root) meaning "everything up
/// to (`sequence`, `chunk`, `offset`) is done".
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Checkpoint {
    /// `epss`, `cve_enrichment`, `epss_csv` or `statements`.
    pub data_type: String,
    /// The file (or, for a legacy bucket checkpoint, the bucket root) the
    /// checkpoint belongs to.
    pub source: String,
    /// Last sequence (directory) ingested, fully or up to `offset`.
    pub sequence: String,
    /// Last chunk (file) in that sequence.
    pub chunk: String,
    /// Byte offset in the chunk up to which rows are written (in
    /// decompressed bytes for a `.gz` file); its length when it is
    /// finished.
    pub offset: u64,
    /// True when `chunk` was read to its end.
    pub complete: bool,
    /// What the file was when it was read; `None` for the kinds above.
    pub identity: Option<ContentIdentity>,
}

/// The content of a file as a checkpoint saw it: cheap metadata to notice
/// that it may have changed, and a hash to tell whether it did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentIdentity {
    /// Size on disk (compressed, for a `.gz` file), in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// xxh3-64 of the bytes read, `[0, offset)` of the decompressed
    /// stream (all of it for a finished file); 16 lowercase hex digits in
    /// the stores and in JSON.
    #[serde(with = "hex_u64")]
    pub xxh3: u64,
}

impl ContentIdentity {
    /// The hash as stored: 16 lowercase hex digits.
    pub fn xxh3_hex(&self) -> String {
        format!("{:016x}", self.xxh3)
    }

    /// Parses [`ContentIdentity::xxh3_hex`].
    pub fn parse_xxh3(hex: &str) -> Option<u64> {
        (hex.len() == 16).then(|| u64::from_str_radix(hex, 16).ok()).flatten()
    }
}

/// Serde for a u64 as 16 hex digits (JSON numbers above 2^53 lose bits in
/// many readers).
mod hex_u64 {
    pub fn serialize<S: serde::Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{v:016x}"))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
        super::ContentIdentity::parse_xxh3(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("{s:?} is not 16 hex digits")))
    }
}

/// What an EPSS upsert did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpsertCounts {
    /// Rows inserted or whose values changed (`updatedAt` moved).
    pub upserted: u64,
    /// Rows already present with the same values (`updatedAt` kept).
    pub unchanged: u64,
}

impl std::ops::AddAssign for UpsertCounts {
    fn add_assign(&mut self, o: UpsertCounts) {
        self.upserted += o.upserted;
        self.unchanged += o.unchanged;
    }
}

/// Which documents a rollback removes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RollbackScope {
    /// Everything one run wrote.
    Run(String),
    /// Everything written in `[since, until)` (Unix microseconds).
    Inserted {
        /// Inclusive start.
        since: i64,
        /// Exclusive end.
        until: i64,
    },
}

/// What a rollback removed (or, dry, would remove).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RollbackReport {
    /// Statements deleted.
    pub statements: u64,
    /// Digests of the documents whose statements and ledger entries were
    /// deleted: replay these to restore them.
    pub digests: Vec<String>,
}

/// A collection that `Queries::export` can stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Export {
    /// The statements collection.
    Statements,
    /// The `documents` ledger.
    Documents,
    /// The `epss` collection, by `cve`.
    Epss,
}

/// What a batch write found that its caller could not know in advance.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Indexes (into the batch) of documents whose ledger entry another run
    /// wrote first (concurrent runs over one archive): this run did not
    /// write them, so it counts them as skipped. Never set with `force`.
    pub recorded_elsewhere: Vec<usize>,
}

/// The process that runs a run. On the same host (same boot), a later
/// command tells at once whether it is still alive; from another host only
/// the heartbeat tells.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunOwner {
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: u32,
    /// The kernel's boot id, so a pid from before a reboot is not taken
    /// for a live process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
    /// The process's start time (clock ticks since boot), so a reused pid
    /// is not taken for the owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_start: Option<u64>,
}

/// One statement in its logical shape: what `export statements` and `get`
/// print, and the MongoDB document. Field for field the SPEC's statement.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Statement {
    /// CVE or other vulnerability id.
    pub vulnerability_id: String,
    /// Other ids of the vulnerability.
    pub aliases: Vec<String>,
    /// What makes the statement unique within its document.
    pub product_key: String,
    /// The package URL the statement is about, when one is known.
    pub purl: Option<String>,
    /// Publisher of the document.
    pub provider_id: String,
    /// `affected`, `not_affected`, `fixed` or `under_investigation`.
    pub status: String,
    /// One of the five CISA justifications, or none.
    pub justification: Option<String>,
    /// Free text: impact statement, analysis detail, notes.
    pub detail: Option<String>,
    /// Action statement or remediation.
    pub action: Option<String>,
    /// The document it comes from.
    pub document: DocumentRef,
    /// The document's `retrievedAt` (a replay is deterministic).
    pub first_seen: String,
    /// The document's `retrievedAt`.
    pub last_seen: String,
    /// Severity, KEV and EPSS.
    pub signals: Signals,
    /// Source values kept verbatim, by name.
    pub metadata: std::collections::BTreeMap<String, String>,
    /// When it was written.
    pub inserted_at: String,
    /// The run that wrote it.
    pub run_id: String,
}

/// A statement's document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DocumentRef {
    /// `sha256:…` of the document as fetched.
    pub digest: String,
    /// `csaf`, `cyclonedx` or `openvex`.
    pub format: String,
    /// Where it was fetched from.
    pub source_uri: String,
    /// When it was fetched.
    pub retrieved_at: String,
    /// The document's own id.
    pub document_id: Option<String>,
    /// The document's revision.
    pub revision: Option<String>,
}

/// A statement's signals: the document's severity, and KEV and EPSS from
/// the `epss` collection (see [`signals_of`]).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Signals {
    /// Severity from the document.
    pub severity: Option<String>,
    /// Listed in CISA KEV; `None` when the vulnerability has no EPSS row.
    pub kev: Option<bool>,
    /// The vulnerability's EPSS score, when it has one.
    pub epss: Option<EpssSignal>,
}

/// `signals.epss`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpssSignal {
    /// Probability of exploitation in the next 30 days.
    pub score: f64,
    /// Percentile among all CVEs (FIRST CSV only).
    pub percentile: Option<f64>,
    /// Score date.
    pub date: Option<String>,
}

/// The enrichment rule, the same in every store: a statement's KEV and
/// EPSS signals from its vulnerability's `epss` row, or none without one
/// (a row with no KEV flag yet reads as not listed).
pub fn signals_of(row: Option<&EpssRecord>) -> (Option<bool>, Option<EpssSignal>) {
    match row {
        None => (None, None),
        Some(r) => (
            Some(r.is_known_exploit),
            Some(EpssSignal {
                score: r.epss_score,
                percentile: r.percentile,
                date: r.score_date.clone(),
            }),
        ),
    }
}

/// One entry of the `documents` ledger.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LedgerEntry {
    /// `sha256:…` of the document as fetched: the key.
    pub digest: String,
    /// `csaf`, `cyclonedx` or `openvex`.
    pub format: String,
    /// Publisher.
    pub provider_id: String,
    /// Where it was fetched from.
    pub source_uri: String,
    /// When it was fetched.
    pub retrieved_at: String,
    /// Statements written (may be 0).
    pub statements: i64,
    /// Entries not written, by reason (non-zero counts only).
    pub dropped: crate::normalize::Dropped,
    /// The envelope's metadata, verbatim.
    pub metadata: Json,
    /// The run that wrote it.
    pub run_id: String,
    /// When.
    pub processed_at: String,
}

/// One row of the `epss` collection as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EpssRecord {
    /// `CVE-…`: the key.
    pub cve: String,
    /// Probability of exploitation in the next 30 days.
    pub epss_score: f64,
    /// Percentile (FIRST CSV only).
    pub percentile: Option<f64>,
    /// Listed in CISA KEV (false until a source says).
    pub is_known_exploit: bool,
    /// EPSS model version.
    pub model_version: Option<String>,
    /// Score date.
    pub score_date: Option<String>,
    /// First written.
    pub created_at: String,
    /// Last changed (see [`epss_changed`]).
    pub updated_at: String,
}

/// The EPSS upsert rule, the same in every store: a row changes (and
/// `updatedAt` moves) only when its score differs, or a percentile, KEV
/// flag or model version it carries differs from the stored one. A value
/// the row does not carry (`None`: a FIRST CSV row has no KEV flag, a
/// GitLab row no percentile) keeps the stored one and is no change; nor is
/// a new score date alone.
pub fn epss_changed(stored: &EpssRecord, row: &EpssRow) -> bool {
    stored.epss_score != row.epss_score
        || row.percentile.is_some_and(|p| stored.percentile != Some(p))
        || row.is_known_exploit.is_some_and(|k| stored.is_known_exploit != k)
        || row.model_version.as_deref().is_some_and(|m| stored.model_version.as_deref() != Some(m))
}

/// What `export` streams, one collection at a time.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Record {
    /// From the statements collection.
    Statement(Box<Statement>),
    /// From the `documents` ledger.
    Ledger(LedgerEntry),
    /// From the `epss` collection.
    Epss(EpssRecord),
}

/// Which records `export` prints (`--run`, `--provider`, `--since`):
/// every record by default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExportFilter {
    /// Only what this run wrote (statements and ledger entries).
    pub run_id: Option<String>,
    /// Only this provider's (statements and ledger entries).
    pub provider_id: Option<String>,
    /// Only what was written at or after this instant (Unix µs): a
    /// statement's `insertedAt`, a ledger entry's `processedAt`, an EPSS
    /// row's `updatedAt` (so the rows that changed).
    pub since: Option<i64>,
}

impl ExportFilter {
    /// Whether `record` passes. A record without the field a filter reads
    /// (an EPSS row has no run or provider) does not.
    pub fn keeps(&self, record: &Record) -> bool {
        let (run, provider, at) = match record {
            Record::Statement(s) => (Some(&s.run_id), Some(&s.provider_id), &s.inserted_at),
            Record::Ledger(l) => (Some(&l.run_id), Some(&l.provider_id), &l.processed_at),
            Record::Epss(e) => (None, None, &e.updated_at),
        };
        let is = |want: &Option<String>, have: Option<&String>| {
            want.as_ref().is_none_or(|w| have.is_some_and(|h| h == w))
        };
        // A time that does not parse is kept: never dropped unseen.
        let recent = || {
            self.since.is_none_or(|since| crate::time::parse_instant(at).is_none_or(|t| t >= since))
        };
        is(&self.run_id, run) && is(&self.provider_id, provider) && recent()
    }
}

/// Post-run verification figures (`backfill stats`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// Statements in all.
    pub statements: i64,
    /// Statements by `providerId`.
    pub by_provider: std::collections::BTreeMap<String, i64>,
    /// Statements by `status`.
    pub by_status: std::collections::BTreeMap<String, i64>,
    /// Statements by `document.format`.
    pub by_format: std::collections::BTreeMap<String, i64>,
    /// Ledger entries.
    pub documents: i64,
    /// Entries dropped, by reason, summed over the ledger.
    pub dropped: std::collections::BTreeMap<String, i64>,
    /// The `epss` collection.
    pub epss: EpssStats,
    /// Every checkpoint, by (`dataType`, `source`).
    pub checkpoints: Vec<CheckpointState>,
    /// Runs by status.
    pub runs: std::collections::BTreeMap<String, i64>,
}

/// `stats.epss`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EpssStats {
    /// Rows.
    pub rows: i64,
    /// Rows listed in KEV.
    pub known_exploited: i64,
}

/// A checkpoint with when it was last saved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckpointState {
    /// The checkpoint.
    #[serde(flatten)]
    pub checkpoint: Checkpoint,
    /// When it was saved.
    pub updated_at: String,
}

/// Whether a statement's package URL `candidate` is the product that the
/// query `purl` names, by OpenVEX's matching rules: the same type,
/// namespace and name; a query without a version matches every version;
/// each qualifier (and the subpath) the query gives must be in the
/// candidate with the same value, while the candidate may have more. A
/// candidate that is not a package URL matches nothing.
pub fn purl_matches(purl: &packageurl::PackageUrl<'_>, candidate: &str) -> bool {
    use std::str::FromStr;
    let Ok(c) = packageurl::PackageUrl::from_str(candidate) else { return false };
    purl.ty() == c.ty()
        && purl.namespace() == c.namespace()
        && purl.name() == c.name()
        && purl.version().is_none_or(|v| c.version() == Some(v))
        && purl.subpath().is_none_or(|p| c.subpath() == Some(p))
        && purl.qualifiers().iter().all(|(k, v)| c.qualifiers().get(k) == Some(v))
}

/// Sort orders every store keeps: `export statements` by (digest,
/// vulnerability, product key), the ledger by digest, `epss` by CVE; `get`
/// by (`retrievedAt`, digest, product key). Byte order of the strings.
pub mod order {
    use super::Statement;

    /// `get`'s order.
    pub fn lookup(s: &Statement) -> (&str, &str, &str) {
        (&s.document.retrieved_at, &s.document.digest, &s.product_key)
    }

    /// `export statements`' order.
    pub fn export(s: &Statement) -> (&str, &str, &str) {
        (&s.document.digest, &s.vulnerability_id, &s.product_key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_filters_read_run_provider_and_write_time() {
        let epss = |updated: &str| {
            Record::Epss(EpssRecord {
                cve: "CVE-2024-1".into(),
                epss_score: 0.5,
                percentile: None,
                is_known_exploit: false,
                model_version: None,
                score_date: None,
                created_at: "2024-01-01T00:00:00Z".into(),
                updated_at: updated.into(),
            })
        };
        let ledger = |run: &str, provider: &str, at: &str| {
            Record::Ledger(LedgerEntry {
                digest: "sha256:00".into(),
                format: "openvex".into(),
                provider_id: provider.into(),
                source_uri: "u".into(),
                retrieved_at: at.into(),
                statements: 1,
                dropped: Default::default(),
                metadata: Json::Null,
                run_id: run.into(),
                processed_at: at.into(),
            })
        };
        let t = |s: &str| crate::time::parse_instant(s);
        let all = ExportFilter::default();
        assert!(all.keeps(&epss("x")) && all.keeps(&ledger("r", "p", "x")));
        let since = ExportFilter { since: t("2024-06-01"), ..Default::default() };
        assert!(since.keeps(&epss("2024-06-01T00:00:00Z")));
        assert!(!since.keeps(&epss("2024-05-31T23:59:59.999999Z")));
        assert!(since.keeps(&epss("not a time")), "kept, not dropped unseen");
        let run = ExportFilter { run_id: Some("r1".into()), ..Default::default() };
        assert!(run.keeps(&ledger("r1", "p", "2024-01-01T00:00:00Z")));
        assert!(!run.keeps(&ledger("r2", "p", "2024-01-01T00:00:00Z")));
        assert!(!run.keeps(&epss("2024-01-01T00:00:00Z")), "EPSS rows have no run");
        let both = ExportFilter {
            provider_id: Some("suse".into()),
            since: t("2024-01-02"),
            ..Default::default()
        };
        assert!(both.keeps(&ledger("r", "suse", "2024-01-02T00:00:00Z")));
        assert!(!both.keeps(&ledger("r", "suse", "2024-01-01T00:00:00Z")));
        assert!(!both.keeps(&ledger("r", "redhat", "2024-01-03T00:00:00Z")));
    }

    #[test]
    fn purls_match_by_openvex_rules() {
        use std::str::FromStr;
        let q = |s: &str| packageurl::PackageUrl::from_str(s).unwrap();
        let c = "pkg:apk/wolfi/curl@8.0.1-r0?arch=x86_64&distro=wolfi";
        // No version in the query: every version.
        assert!(purl_matches(&q("pkg:apk/wolfi/curl"), c));
        assert!(purl_matches(&q("pkg:apk/wolfi/curl@8.0.1-r0"), c));
        assert!(!purl_matches(&q("pkg:apk/wolfi/curl@8.0.2"), c));
        // Qualifiers in the query must match; the candidate may have more.
        assert!(purl_matches(&q("pkg:apk/wolfi/curl?arch=x86_64"), c));
        assert!(!purl_matches(&q("pkg:apk/wolfi/curl?arch=aarch64"), c));
        assert!(!purl_matches(&q("pkg:apk/wolfi/curl?arch=x86_64"), "pkg:apk/wolfi/curl@1"));
        // Type, namespace and name all count; percent-encoding is decoded.
        assert!(!purl_matches(&q("pkg:apk/alpine/curl"), c));
        assert!(!purl_matches(&q("pkg:deb/wolfi/curl"), c));
        assert!(!purl_matches(&q("pkg:apk/wolfi/curl-dev"), c));
        assert!(purl_matches(&q("pkg:npm/%40angular/core"), "pkg:npm/@angular/core@17.0.0"));
        // Not a package URL: no match, no error.
        assert!(!purl_matches(&q("pkg:apk/wolfi/curl"), "curl 8.0.1"));
    }
}
