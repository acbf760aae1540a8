//! One claim per (vulnerability, product key): [`resolve_claims`], which
//! every normalizer calls last, and the [`Rule`] it chooses by.

use super::{Claim, DropReason, Dropped, FastMap, Status, Xxh3Build};

/// How [`resolve_claims`] picks the one claim that stands for a
/// (vulnerability, product key) the document states more than once.
#[derive(Clone, Copy, Debug)]
pub enum Rule<'t> {
    /// CSAF and CycloneDX, whose statements carry no time of their own:
    /// the status of highest [`Status::precedence`] wins (SPEC), then the
    /// later position. A loser with another status is a contradiction; one
    /// with the winner's status is superseded (a repeat).
    Precedence,
    /// OpenVEX: the later statement wins, by time (`times[i]` is claim
    /// `i`'s; `None` is earliest), then position (SPEC). A loser with the
    /// winner's time and another status is a contradiction; every other
    /// loser is superseded.
    Latest(&'t [Option<i64>]),
}

/// Keeps one claim per (vulnerability, product key), chosen by `rule`, at
/// the position of the key's first claim, so no claim is ever lost to the
/// store's unique key. Every other claim of the key is counted in
/// `dropped` as superseded or contradiction; the statuses of
/// contradicting losers are listed on the winner in metadata
/// `conflictingStatuses` (by precedence, comma-separated). Normalizers
/// call this last.
pub fn resolve_claims(mut claims: Vec<Claim>, rule: Rule<'_>, dropped: &mut Dropped) -> Vec<Claim> {
    let n = claims.len();
    // For each claim, the index of the first claim with its key. Keys are
    // borrowed, not cloned (this runs for every document).
    let first: Vec<usize> = {
        let mut index: FastMap<(&str, &str), usize> =
            FastMap::with_capacity_and_hasher(n, Xxh3Build::default());
        let first = claims
            .iter()
            .enumerate()
            .map(|(i, c)| {
                *index.entry((c.vulnerability_id.as_str(), c.product_key.as_str())).or_insert(i)
            })
            .collect();
        if index.len() == n {
            return claims; // the common case: nothing repeated
        }
        first
    };
    let rank = |i: usize, c: &Claim| match rule {
        Rule::Precedence => (None, c.status.precedence()),
        Rule::Latest(times) => (times.get(i).copied().flatten(), 0),
    };
    // winner[f]: the claim standing for the key first seen at f. Claims are
    // visited in position order, so on equal rank the later one wins.
    let mut winner: Vec<usize> = (0..n).collect();
    for i in 0..n {
        let f = first[i];
        if f != i && rank(i, &claims[i]) >= rank(winner[f], &claims[winner[f]]) {
            winner[f] = i;
        }
    }
    let mut conflicts: Vec<(usize, Status)> = Vec::new();
    for i in 0..n {
        let w = winner[first[i]];
        if i == w {
            continue;
        }
        let (loser, win) = (&claims[i], &claims[w]);
        let simultaneous = rank(i, loser).0 == rank(w, win).0;
        if loser.status != win.status && simultaneous {
            dropped.add(DropReason::Contradiction, 1);
            conflicts.push((w, loser.status));
        } else {
            dropped.add(DropReason::Superseded, 1);
        }
    }
    conflicts.sort_by_key(|&(w, s)| (w, std::cmp::Reverse(s.precedence())));
    conflicts.dedup();
    for group in conflicts.chunk_by(|a, b| a.0 == b.0) {
        let list: Vec<&str> = group.iter().map(|(_, s)| s.as_str()).collect();
        claims[group[0].0].metadata.insert("conflictingStatuses", list.join(","));
    }
    let mut slots: Vec<Option<Claim>> = claims.into_iter().map(Some).collect();
    (0..n).filter(|&i| first[i] == i).filter_map(|i| slots[winner[i]].take()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyed(v: &str, k: &str, s: Status) -> Claim {
        Claim::new(v, k, s)
    }

    #[test]
    fn precedence_resolves_contradictions_and_counts_every_loser() {
        let mut dropped = Dropped::default();
        let claims = vec![
            keyed("CVE-1", "p", Status::NotAffected),
            keyed("CVE-2", "p", Status::Affected),
            keyed("CVE-1", "p", Status::Fixed),
            keyed("CVE-1", "p", Status::UnderInvestigation),
            keyed("CVE-1", "p", Status::Fixed),
            keyed("CVE-2", "q", Status::Fixed),
        ];
        let out = resolve_claims(claims, Rule::Precedence, &mut dropped);
        let got: Vec<_> = out.iter().map(|c| (c.vulnerability_id.as_str(), c.status)).collect();
        // At the first one's position; fixed > under_investigation >
        // not_affected; of the two fixed, the later.
        assert_eq!(
            got,
            [("CVE-1", Status::Fixed), ("CVE-2", Status::Affected), ("CVE-2", Status::Fixed)]
        );
        assert_eq!(out[0].metadata["conflictingStatuses"], "under_investigation,not_affected");
        assert!(!out[1].metadata.contains_key("conflictingStatuses"));
        assert_eq!((dropped.contradiction, dropped.superseded, dropped.total()), (2, 1, 3));
    }

    #[test]
    fn latest_wins_and_only_simultaneous_disagreement_is_a_contradiction() {
        let mut dropped = Dropped::default();
        let claims = vec![
            keyed("CVE-1", "p", Status::Affected),           // t1
            keyed("CVE-1", "p", Status::UnderInvestigation), // t2
            keyed("CVE-1", "p", Status::NotAffected),        // t2, later position: wins
            keyed("CVE-1", "p", Status::NotAffected),        // t0: superseded
        ];
        let times = [Some(1), Some(2), Some(2), Some(0)];
        let out = resolve_claims(claims, Rule::Latest(&times), &mut dropped);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].status, Status::NotAffected);
        assert_eq!(out[0].metadata["conflictingStatuses"], "under_investigation");
        assert_eq!((dropped.contradiction, dropped.superseded), (1, 2));
        // No repeats: untouched, nothing counted.
        let mut dropped = Dropped::default();
        let claims = vec![keyed("CVE-1", "p", Status::Fixed), keyed("CVE-1", "q", Status::Fixed)];
        assert_eq!(
            resolve_claims(claims.clone(), Rule::Latest(&[None, None]), &mut dropped),
            claims
        );
        assert!(dropped.is_empty());
    }
}
