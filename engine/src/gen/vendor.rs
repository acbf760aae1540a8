//! Vendor-shaped documents (`backfill gen raw --shape vendor`): the shapes
//! and proportions of real feeds, where the cost of a backfill lies in
//! long texts repeated over many products, not in parsing.
//!
//! * Red Hat-style CSAF VEX, one CVE per document: a product tree of
//!   platforms and packages joined by `default_component_of`
//!   relationships (8 to 2,500 products, log-uniform), most of them
//!   `fixed`, and a handful of remediations whose long texts each cover
//!   hundreds of products; threats, flags, scores and notes.
//! * RHSA-style advisories: a few CVEs fixed in 20 to 400 products.
//! * SUSE- and Canonical-style OpenVEX: 20 to 400 statements, each about
//!   one CVE in several products, SUSE's with subcomponents.
//! * CycloneDX VEX from scanners: components with purls, vulnerabilities
//!   with ratings, descriptions, analysis and version ranges.
//!
//! The texts come from small pools, as in real feeds (a corpus of 1,000
//! real documents had about 100 distinct remediation texts): each is long,
//! and the same text recurs across documents.

use serde_json::{json, Value as Json};

use super::Rng;

/// A document and its publisher (`providerId`).
pub(super) struct VendorDoc {
    pub(super) doc: Json,
    pub(super) provider: &'static str,
}

/// Draws document `i`: 45% Red Hat CSAF VEX, 15% RHSA advisories, 25%
/// OpenVEX (SUSE or Canonical), 15% CycloneDX VEX.
pub(super) fn document(rng: &mut Rng, i: u64) -> VendorDoc {
    match rng.below(100) {
        0..45 => VendorDoc { doc: redhat_vex(rng, i), provider: "redhat" },
        45..60 => VendorDoc { doc: rhsa(rng, i), provider: "redhat" },
        60..73 => VendorDoc { doc: openvex(rng, i, &SUSE), provider: "suse" },
        73..85 => VendorDoc { doc: openvex(rng, i, &CANONICAL), provider: "ubuntu" },
        _ => VendorDoc { doc: cyclonedx(rng, i), provider: "scanner" },
    }
}

/// A log-uniform draw in `[lo, hi]`: many small documents, a long tail of
/// large ones.
fn log_uniform(rng: &mut Rng, lo: u64, hi: u64) -> u64 {
    let (l, h) = ((lo as f64).ln(), (hi as f64).ln());
    ((l + rng.unit() * (h - l)).exp() as u64).clamp(lo, hi)
}

fn pick<'a>(rng: &mut Rng, pool: &[&'a str]) -> &'a str {
    pool[rng.below(pool.len() as u64) as usize]
}

fn cve(rng: &mut Rng) -> String {
    format!("CVE-{}-{}", 2016 + rng.below(10), 1000 + rng.below(60_000))
}

const PLATFORMS: &[(&str, &str, &str)] = &[
    ("BaseOS-8.6.0.Z.EUS", "Red Hat Enterprise Linux 8.6 Extended Update Support", "el8"),
    ("AppStream-8.8.0.Z.MAIN", "Red Hat Enterprise Linux AppStream 8", "el8"),
    ("BaseOS-9.2.0.Z.EUS", "Red Hat Enterprise Linux 9.2 Extended Update Support", "el9"),
    ("AppStream-9.4.0.Z.MAIN", "Red Hat Enterprise Linux AppStream 9", "el9"),
    ("CRB-9.4.0.Z.MAIN", "Red Hat CodeReady Linux Builder 9", "el9"),
    ("7Server-ELS", "Red Hat Enterprise Linux 7 Extended Lifecycle Support", "el7"),
    ("8Base-RHOSE-4.14", "Red Hat OpenShift Container Platform 4.14", "el8"),
    ("9Base-RHOSE-4.16", "Red Hat OpenShift Container Platform 4.16", "el9"),
    ("RT-9.2.0.Z.EUS", "Red Hat Enterprise Linux Real Time 9.2 EUS", "el9"),
    ("SAP-8.4.0.Z.E4S", "Red Hat Enterprise Linux for SAP Solutions 8.4 E4S", "el8"),
];

const PACKAGES: &[&str] = &[
    "kernel",
    "kernel-rt",
    "glibc",
    "openssl",
    "curl",
    "systemd",
    "python3",
    "nss",
    "httpd",
    "postgresql",
    "git",
    "vim",
    "sudo",
    "openssh",
    "libxml2",
    "bind",
    "samba",
    "qemu-kvm",
    "podman",
    "runc",
    "golang",
    "nodejs",
    "java-17-openjdk",
    "firefox",
    "thunderbird",
    "grub2",
];

const ARCHES: &[&str] = &["x86_64", "aarch64", "ppc64le", "s390x", "noarch", "src"];

/// Long texts, as vendors repeat them over every product a remediation
/// covers.
const FIX_TEXTS: &[&str] = &[
    "Before applying this update, make sure all previously released errata relevant to your \
     system have been applied. For details on how to apply this update, which includes the \
     changes described in this advisory, refer to the knowledge base article on applying \
     package updates. For the update to take effect, all services linked to the affected \
     library must be restarted, or the system rebooted. Systems running a kernel live patch \
     must still be rebooted into the fixed kernel before the next maintenance window ends.",
    "For OpenShift Container Platform see the following documentation, which will be updated \
     shortly for this release, for important instructions on how to upgrade your cluster and \
     fully apply this asynchronous errata update. Details on how to access this content are \
     available in the cluster update documentation. You may download the oc tool and use it \
     to inspect release image metadata for x86_64, s390x, ppc64le, and aarch64 architectures. \
     The image digests may be found in the release notes of this asynchronous update.",
    "Update the affected packages to the versions listed in this advisory. The update is \
     delivered through the standard content delivery network; hosts registered to a \
     satellite server receive it after the next content view publication. After the update, \
     verify the installed version with the package manager and restart every process that \
     loaded the previous library, as listed by the needs-restarting utility.",
    "Customers are advised to upgrade to the fixed release. Container images that embed the \
     vulnerable component must be rebuilt from the updated base image; running pods continue \
     to use the old layers until they are redeployed. The updated images are signed and \
     available from the registry; verify signatures before deployment as described in the \
     container security guide.",
];

const WORKAROUND_TEXTS: &[&str] = &[
    "Mitigation for this issue is either not available or the currently available options do \
     not meet the Red Hat Product Security criteria comprising ease of use and deployment, \
     applicability to widespread installation base or stability.",
    "To mitigate this issue, disable the affected module by adding it to the module blacklist \
     and rebuilding the initial ramdisk, then reboot. This prevents the vulnerable code from \
     being loaded but also disables the functionality it provides.",
];

const DESCRIPTIONS: &[&str] = &[
    "A flaw was found in the memory management of the affected component. A local attacker \
     with the ability to run code on the system could use this flaw to trigger a \
     use-after-free condition, possibly escalating their privileges or crashing the system.",
    "A vulnerability was found where processing specially crafted input could lead to an \
     out-of-bounds read. A remote attacker could exploit this to disclose sensitive memory \
     contents or cause a denial of service of the service parsing the input.",
    "An input validation flaw allows an unauthenticated attacker to inject arbitrary \
     headers into responses, which can be used for cache poisoning or cross-site scripting \
     attacks against users of applications built on the library.",
];

const STATEMENTS: &[&str] = &[
    "This issue affects the versions of the package shipped with the listed products. The \
     vulnerable code path is only reachable when the non-default configuration option is \
     enabled, which reduces the impact of this flaw to Moderate.",
    "The affected code is not compiled into the packages shipped with the listed products; \
     they are not affected by this flaw.",
];

/// A Red Hat-style CSAF VEX document about one CVE.
fn redhat_vex(rng: &mut Rng, i: u64) -> Json {
    let id = cve(rng);
    let target = log_uniform(rng, 8, 2500) as usize;
    let (tree, products) = product_tree(rng, i, target);
    let vuln = redhat_vulnerability(rng, &id, &products);
    let title = format!("{id} {}", pick(rng, PACKAGES));
    json!({
        "document": redhat_document(rng, "csaf_vex", &id, &title),
        "product_tree": tree,
        "vulnerabilities": [vuln],
    })
}

/// The `document` section Red Hat writes.
fn redhat_document(rng: &mut Rng, category: &str, id: &str, title: &str) -> Json {
    let severity = pick(rng, &["Low", "Moderate", "Important", "Critical"]);
    json!({
        "aggregate_severity": {"namespace": "https://access.redhat.com/security/updates/classification/", "text": severity},
        "category": category,
        "csaf_version": "2.0",
        "distribution": {"text": "Copyright © Red Hat, Inc. All rights reserved.", "tlp": {"label": "WHITE", "url": "https://www.first.org/tlp/"}},
        "lang": "en",
        "notes": [{"category": "legal_disclaimer", "title": "Terms of Use", "text": "This content is licensed under the Creative Commons Attribution 4.0 International License. If you distribute this content, or a modified version of it, you must provide attribution to Red Hat Inc. and provide a link to the original."}],
        "publisher": {"category": "vendor", "contact_details": "https://access.redhat.com/security/team/contact/", "issuing_authority": "Red Hat Product Security is responsible for vulnerability handling across all Red Hat offerings.", "name": "Red Hat Product Security", "namespace": "https://www.redhat.com"},
        "references": [{"category": "self", "summary": format!("Canonical URL for {id}"), "url": format!("https://security.access.redhat.com/data/csaf/v2/vex/{id}.json")}],
        "title": title,
        "tracking": {
            "current_release_date": "2025-06-03T09:12:44+00:00",
            "generator": {"date": "2025-06-03T09:12:44+00:00", "engine": {"name": "Red Hat SDEngine", "version": "4.5.1"}},
            "id": id,
            "initial_release_date": "2024-03-12T00:00:00+00:00",
            "revision_history": [
                {"date": "2024-03-12T00:00:00+00:00", "number": "1", "summary": "Initial version"},
                {"date": "2025-06-03T09:12:44+00:00", "number": format!("{}", 2 + rng.below(9)), "summary": "Current version"}
            ],
            "status": "final",
            "version": format!("{}", 2 + rng.below(9)),
        },
    })
}

/// A product tree of about `target` products: platforms and package
/// versions under the vendor, joined by relationships. Returns the tree
/// and the full product ids (the statements' products).
fn product_tree(rng: &mut Rng, i: u64, target: usize) -> (Json, Vec<String>) {
    let platforms: Vec<_> =
        (0..2 + rng.below(7)).map(|_| PLATFORMS[rng.below(10) as usize]).collect();
    let mut platforms = platforms;
    platforms.sort();
    platforms.dedup();
    let per_package = platforms.len();
    let packages = target.div_ceil(per_package).max(1);
    let families: Vec<Json> = platforms
        .iter()
        .map(|(pid, name, _)| json!({"category": "product_family", "name": name, "branches": [{"category": "product_name", "name": name, "product": {"name": name, "product_id": pid, "product_identification_helper": {"cpe": format!("cpe:/o:redhat:enterprise_linux:{}", &pid[..pid.find('-').unwrap_or(1).min(4)])}}}]}))
        .collect();
    let mut versions = Vec::with_capacity(packages);
    let mut relationships = Vec::with_capacity(packages * per_package);
    let mut products = Vec::with_capacity(packages * per_package);
    for k in 0..packages {
        let name = PACKAGES[(i as usize + k) % PACKAGES.len()];
        let arch = ARCHES[k % ARCHES.len()];
        let dist = platforms[k % per_package].2;
        let nevra =
            format!("{name}-0:{}.{}.{}-{}.{dist}.{arch}", 1 + k % 7, i % 50, k, 100 + k % 400);
        let purl = format!(
            "pkg:rpm/redhat/{name}@{}.{}.{}-{}.{dist}?arch={arch}",
            1 + k % 7,
            i % 50,
            k,
            100 + k % 400
        );
        versions.push(json!({"category": "product_version", "name": nevra, "product": {"name": nevra, "product_id": nevra, "product_identification_helper": {"purl": purl}}}));
        for (pid, pname, _) in &platforms {
            let full = format!("{pid}:{nevra}");
            relationships.push(json!({"category": "default_component_of", "full_product_name": {"name": format!("{nevra} as a component of {pname}"), "product_id": full}, "product_reference": nevra, "relates_to_product_reference": pid}));
            products.push(full);
        }
    }
    let mut branches = families;
    branches.push(json!({"category": "architecture", "name": "x86_64", "branches": versions}));
    let tree = json!({"branches": [{"category": "vendor", "name": "Red Hat", "branches": branches}], "relationships": relationships});
    (tree, products)
}

/// One vulnerability over `products`: about 80% fixed, the rest affected
/// (no fix planned or none available), not affected or under
/// investigation, with remediations, threats, flags and scores.
fn redhat_vulnerability(rng: &mut Rng, id: &str, products: &[String]) -> Json {
    let n = products.len();
    let fixed_end = n * (70 + rng.below(21) as usize) / 100;
    let affected_end = fixed_end + (n - fixed_end) / 2;
    let not_affected_end = affected_end + (n - affected_end) * 3 / 4;
    let (fixed, rest) = products.split_at(fixed_end);
    let (affected, rest) = rest.split_at(affected_end - fixed_end);
    let (not_affected, investigating) = rest.split_at(not_affected_end - affected_end);
    let mut remediations = Vec::new();
    // Fixed products in a few chunks, each with its own advisory and text.
    let chunks = 1 + rng.below(4) as usize;
    for (c, chunk) in fixed.chunks(fixed.len().div_ceil(chunks).max(1)).enumerate() {
        let text = pick(rng, FIX_TEXTS);
        remediations.push(json!({"category": "vendor_fix", "date": "2025-06-03T00:00:00+00:00", "details": text, "product_ids": chunk, "url": format!("https://access.redhat.com/errata/RHSA-2025:{}", 1000 + c as u64 + rng.below(9000))}));
    }
    if !affected.is_empty() {
        let (wont, none) = affected.split_at(affected.len() / 2);
        remediations.push(
            json!({"category": "no_fix_planned", "details": "Will not fix", "product_ids": wont}),
        );
        remediations.push(
            json!({"category": "none_available", "details": "Affected", "product_ids": none}),
        );
        remediations.push(json!({"category": "workaround", "details": pick(rng, WORKAROUND_TEXTS), "product_ids": affected}));
    }
    let impact = pick(rng, &["Low", "Moderate", "Important"]);
    let mut v = json!({
        "cve": id,
        "cwe": {"id": "CWE-416", "name": "Use After Free"},
        "discovery_date": "2024-02-27T00:00:00+00:00",
        "ids": [{"system_name": "Red Hat Bugzilla ID", "text": format!("{}", 2_200_000 + rng.below(100_000))}],
        "notes": [
            {"category": "description", "text": pick(rng, DESCRIPTIONS), "title": "Vulnerability description"},
            {"category": "summary", "text": format!("{}: flaw in {}", pick(rng, PACKAGES), id), "title": "Vulnerability summary"},
            {"category": "other", "text": pick(rng, STATEMENTS), "title": "Statement"},
            {"category": "general", "text": "The CVSS score(s) listed for this vulnerability do not reflect the associated product's status, and are included for informational purposes to better understand the severity of this vulnerability.", "title": "CVSS score applicability"}
        ],
        "product_status": {"fixed": fixed, "known_affected": affected, "known_not_affected": not_affected, "under_investigation": investigating},
        "references": [{"category": "self", "summary": format!("Canonical URL for {id}"), "url": format!("https://access.redhat.com/security/cve/{id}")}, {"category": "external", "summary": "RHBZ", "url": "https://bugzilla.redhat.com/"}],
        "release_date": "2024-03-12T00:00:00+00:00",
        "remediations": remediations,
        "scores": [{"cvss_v3": {"attackComplexity": "LOW", "attackVector": "LOCAL", "availabilityImpact": "HIGH", "baseScore": 7.8, "baseSeverity": "HIGH", "confidentialityImpact": "HIGH", "integrityImpact": "HIGH", "privilegesRequired": "LOW", "scope": "UNCHANGED", "userInteraction": "NONE", "vectorString": "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H", "version": "3.1"}, "products": products}],
        "threats": [{"category": "impact", "details": impact, "product_ids": products}],
        "title": format!("{}: memory corruption flaw", pick(rng, PACKAGES)),
    });
    if !not_affected.is_empty() {
        v["flags"] = json!([{"label": "vulnerable_code_not_present", "product_ids": not_affected}]);
    }
    v
}

/// An RHSA-style security advisory: a few CVEs, all fixed in the same
/// products.
fn rhsa(rng: &mut Rng, i: u64) -> Json {
    let target = log_uniform(rng, 20, 400) as usize;
    let (tree, products) = product_tree(rng, i, target);
    let id = format!("RHSA-2025:{}", 1000 + i % 90_000);
    let vulns: Vec<Json> = (0..1 + rng.below(5))
        .map(|_| {
            let id = cve(rng);
            json!({
                "cve": id,
                "notes": [{"category": "description", "text": pick(rng, DESCRIPTIONS), "title": "Vulnerability description"}],
                "product_status": {"fixed": products},
                "remediations": [{"category": "vendor_fix", "details": pick(rng, FIX_TEXTS), "product_ids": products, "url": format!("https://access.redhat.com/errata/{}", id)}],
                "threats": [{"category": "impact", "details": pick(rng, &["Moderate", "Important"]), "product_ids": products}],
                "title": format!("{}: security update", pick(rng, PACKAGES)),
            })
        })
        .collect();
    let title = format!("Red Hat Security Advisory: {} security update", pick(rng, PACKAGES));
    json!({"document": redhat_document(rng, "csaf_security_advisory", &id, &title), "product_tree": tree, "vulnerabilities": vulns})
}

/// How an OpenVEX publisher writes.
struct OpenVexStyle {
    author: &'static str,
    id_base: &'static str,
    /// Package URL of product `k` (of document `i`).
    product: fn(u64, usize) -> String,
    subcomponents: bool,
}

const SUSE: OpenVexStyle = OpenVexStyle {
    author: "SUSE Security Team <security@suse.de>",
    id_base: "https://www.suse.com/support/security/openvex/",
    product: |i, k| {
        let distro = ["sles-15-sp5", "sles-15-sp6", "sle-micro-5.5", "opensuse-leap-15.6"][k % 4];
        format!(
            "pkg:rpm/suse/{}@{}.{}.{}-150500.{}?arch=x86_64&distro={distro}",
            PACKAGES[(i as usize + k) % PACKAGES.len()],
            1 + k % 6,
            i % 40,
            k % 30,
            3 + k % 90
        )
    },
    subcomponents: true,
};

const CANONICAL: OpenVexStyle = OpenVexStyle {
    author: "Canonical Ltd.",
    id_base: "https://ubuntu.com/security/vex/",
    product: |i, k| {
        let distro = ["trusty", "xenial", "bionic", "focal", "jammy", "noble", "oracular"][k % 7];
        format!(
            "pkg:deb/ubuntu/{}@{}.{}-{}ubuntu{}?arch=source&distro={distro}",
            PACKAGES[(i as usize + k) % PACKAGES.len()],
            1 + k % 9,
            i % 30,
            k % 12,
            1 + k % 5
        )
    },
    subcomponents: false,
};

const IMPACTS: &[&str] = &[
    "The vulnerable code is present in the source but is not built into the binary packages \
     shipped for this release, so installations are not affected.",
    "The affected feature is disabled at build time in this distribution's packages and \
     cannot be enabled by configuration.",
];

/// A SUSE- or Canonical-style OpenVEX document.
fn openvex(rng: &mut Rng, i: u64, style: &OpenVexStyle) -> Json {
    let n = log_uniform(rng, 20, 400) as usize;
    let mut k = 0usize;
    let statements: Vec<Json> = (0..n.div_ceil(4))
        .map(|_| {
            let id = cve(rng);
            let status = pick(rng, &["fixed", "fixed", "not_affected", "affected", "under_investigation"]);
            let products: Vec<Json> = (0..1 + rng.below(6))
                .map(|_| {
                    k += 1;
                    let mut p = json!({"@id": (style.product)(i, k)});
                    if style.subcomponents {
                        let subs: Vec<Json> = (0..rng.below(3)).map(|s| json!({"@id": (style.product)(i + 7, k * 3 + s as usize)})).collect();
                        if !subs.is_empty() {
                            p["subcomponents"] = subs.into();
                        }
                    }
                    p
                })
                .collect();
            let mut st = json!({"vulnerability": {"@id": format!("{}{id}", style.id_base), "name": id, "description": pick(rng, DESCRIPTIONS)}, "timestamp": "2025-05-20T14:02:11Z", "products": products, "status": status});
            match status {
                "not_affected" => {
                    st["justification"] = pick(rng, &["vulnerable_code_not_present", "vulnerable_code_not_in_execute_path", "component_not_present"]).into();
                    st["impact_statement"] = pick(rng, IMPACTS).into();
                }
                "affected" => st["action_statement"] = pick(rng, FIX_TEXTS).into(),
                _ => {}
            }
            st
        })
        .collect();
    json!({"@context": "https://openvex.dev/ns/v0.2.0", "@id": format!("{}document-{i}", style.id_base), "author": style.author, "timestamp": "2025-05-20T14:02:11Z", "version": 1 + i % 5, "tooling": "vex-generator 2.3", "statements": statements})
}

/// CycloneDX VEX as scanners write it.
fn cyclonedx(rng: &mut Rng, i: u64) -> Json {
    let n = log_uniform(rng, 5, 150) as usize;
    let components: Vec<Json> = (0..n)
        .map(|k| {
            let name = format!("lib-{}-{k}", PACKAGES[(i as usize + k) % PACKAGES.len()]);
            json!({"type": "library", "bom-ref": format!("pkg:npm/{name}@{}.{}.0", 1 + k % 4, k % 20), "name": name, "version": format!("{}.{}.0", 1 + k % 4, k % 20), "purl": format!("pkg:npm/{name}@{}.{}.0", 1 + k % 4, k % 20)})
        })
        .collect();
    let vulns: Vec<Json> = (0..n)
        .map(|k| {
            let state = pick(rng, &["not_affected", "exploitable", "resolved", "in_triage", "not_affected"]);
            let mut analysis = json!({"state": state, "detail": pick(rng, IMPACTS)});
            if state == "not_affected" {
                analysis["justification"] = "code_not_reachable".into();
            } else if state == "exploitable" {
                analysis["response"] = json!(["update", "workaround_available"]);
            }
            let reference = components[k]["bom-ref"].clone();
            let versions = json!([{"version": components[k]["version"].clone(), "status": "affected"}, {"range": format!("vers:npm/>={}.0.0|<{}.9.0", 1 + k % 4, 1 + k % 4), "status": "affected"}, {"version": "9.9.9", "status": "unaffected"}]);
            json!({
                "id": cve(rng),
                "source": {"name": "NVD", "url": "https://nvd.nist.gov/"},
                "ratings": [{"source": {"name": "NVD"}, "score": 7.5, "severity": pick(rng, &["low", "medium", "high", "critical"]), "method": "CVSSv31", "vector": "AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"}],
                "cwes": [79, 400],
                "description": pick(rng, DESCRIPTIONS),
                "recommendation": pick(rng, FIX_TEXTS),
                "published": "2024-04-01T00:00:00Z",
                "updated": "2025-01-15T00:00:00Z",
                "analysis": analysis,
                "affects": [{"ref": reference, "versions": versions}],
            })
        })
        .collect();
    json!({"bomFormat": "CycloneDX", "specVersion": "1.6", "serialNumber": format!("urn:uuid:00000000-0000-4000-9000-{i:012}"), "version": 1, "metadata": {"timestamp": "2025-05-01T00:00:00Z", "tools": {"components": [{"type": "application", "name": "scanner", "version": "0.52.0"}]}}, "components": components, "vulnerabilities": vulns})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shape_normalizes_and_red_hat_texts_repeat_over_products() {
        let mut rng = Rng::new(7);
        let mut seen = std::collections::HashSet::new();
        for i in 0..60 {
            let d = document(&mut rng, i);
            let bytes = serde_json::to_vec(&d.doc).unwrap();
            let mut scratch = crate::parse::Scratch::default();
            let (_, doc) = crate::parse::parse_document(&bytes, None, &mut scratch)
                .unwrap_or_else(|e| panic!("document {i} ({}): {}", d.provider, e.reason));
            assert!(!doc.claims.is_empty(), "document {i} has statements");
            assert!(doc.dropped.is_empty(), "document {i} drops nothing: {:?}", doc.dropped);
            seen.insert(d.provider);
        }
        assert_eq!(seen.len(), 4, "{seen:?}");
        let big = redhat_vex(&mut Rng::new(1), 1);
        let fixes = big["vulnerabilities"][0]["remediations"].as_array().unwrap();
        assert!(fixes.iter().any(|r| r["details"].as_str().unwrap().len() > 300));
    }

    #[test]
    fn log_uniform_stays_in_its_range() {
        let mut rng = Rng::new(3);
        let draws: Vec<u64> = (0..1000).map(|_| log_uniform(&mut rng, 8, 2500)).collect();
        assert!(draws.iter().all(|&d| (8..=2500).contains(&d)));
        let small = draws.iter().filter(|&&d| d < 100).count();
        assert!(small > 300 && small < 700, "log-uniform: about 44% below 100 ({small})");
    }
}
