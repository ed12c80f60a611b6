//! The rules of `docs/contract.md`, embedded, and which cases check them.
//!
//! A failing case's message starts with the ids of the rules it guards, so
//! a backend author can look the rule up in [`CONTRACT`].

use std::collections::BTreeMap;
use std::sync::OnceLock;

/// The whole contract, as `docs/contract.md` has it.
pub const CONTRACT: &str = include_str!("../../docs/contract.md");

/// One rule of the contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Stable id, e.g. `EVT-3`.
    pub id: &'static str,
    /// Its title.
    pub title: &'static str,
    /// The cases that check it, as `domain::name`.
    pub cases: Vec<&'static str>,
}

/// Every rule, in document order.
pub fn rules() -> &'static [Rule] {
    static RULES: OnceLock<Vec<Rule>> = OnceLock::new();
    RULES.get_or_init(|| parse(CONTRACT))
}

/// The ids of the rules case `domain::name` checks.
pub fn rules_of(domain: &str, name: &str) -> Vec<&'static str> {
    static BY_CASE: OnceLock<BTreeMap<String, Vec<&'static str>>> = OnceLock::new();
    let map = BY_CASE.get_or_init(|| {
        let mut m: BTreeMap<String, Vec<&'static str>> = BTreeMap::new();
        for r in rules() {
            for c in &r.cases {
                m.entry((*c).to_string()).or_default().push(r.id);
            }
        }
        m
    });
    map.get(&format!("{domain}::{name}"))
        .cloned()
        .unwrap_or_default()
}

fn parse(doc: &'static str) -> Vec<Rule> {
    let mut out: Vec<Rule> = Vec::new();
    for line in doc.lines() {
        if let Some(head) = line.strip_prefix("### ") {
            let (id, title) = head.split_once(' ').unwrap_or((head, ""));
            out.push(Rule {
                id,
                title,
                cases: Vec::new(),
            });
        } else if let Some(list) = line.strip_prefix("Checked by: ") {
            if let Some(rule) = out.last_mut() {
                rule.cases.extend(
                    list.split(',')
                        .map(|c| c.trim().trim_matches('`'))
                        .filter(|c| !c.is_empty()),
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::all_cases;
    use std::collections::BTreeSet;

    #[test]
    fn every_rule_has_a_case_and_every_case_a_rule() {
        let cases: BTreeSet<String> = all_cases()
            .iter()
            .map(|c| format!("{}::{}", c.domain, c.name))
            .collect();
        let mut ids = BTreeSet::new();
        let mut named = BTreeSet::new();
        assert!(rules().len() >= 30, "the contract has its rules");
        for r in rules() {
            assert!(ids.insert(r.id), "rule id {} appears twice", r.id);
            assert!(
                r.id.contains('-')
                    && r.id
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-'),
                "rule id {:?} is not of the form ABC-1",
                r.id
            );
            assert!(!r.cases.is_empty(), "rule {} {} has no case", r.id, r.title);
            for c in &r.cases {
                assert!(
                    cases.contains(*c),
                    "rule {} names {c}, which is not a case",
                    r.id
                );
                named.insert(c.to_string());
            }
        }
        let orphans: Vec<&String> = cases.difference(&named).collect();
        assert!(
            orphans.is_empty(),
            "cases that name no rule in docs/contract.md: {orphans:?}"
        );
    }

    #[test]
    fn cases_know_their_rules() {
        assert_eq!(
            rules_of("events", "gap_free_log_under_concurrent_appends"),
            ["EVT-3"]
        );
        assert!(rules_of("nosuch", "case").is_empty());
    }
}
