//! Which entry an agent id resolves to, and which agent keys are refused.

use super::*;
use crate::config::matcher::literal_chars;

#[test]
fn exact_beats_glob() {
    let config = load(
        "agents:\n  'research-*': {max_latency_ms: 1}\n  '*': {max_latency_ms: 2}\n  research-agent: {max_latency_ms: 3}\n",
    );
    assert_eq!(slo_of(&config, "research-agent").source, "research-agent");
    assert_eq!(slo_of(&config, "research-agent").max_latency_ms, 3);
    assert_eq!(slo_of(&config, "research-other").source, "research-*");
    assert_eq!(slo_of(&config, "x").source, "*");
}

#[test]
fn more_specific_glob_wins_in_any_order() {
    let orders = [
        ["*", "fin*", "finance-*"],
        ["finance-*", "fin*", "*"],
        ["fin*", "*", "finance-*"],
    ];
    for order in orders {
        let yaml: String = order.iter().map(|k| format!("  {k:?}: {{}}\n")).collect();
        let config = load(&format!("agents:\n{yaml}"));
        assert_eq!(slo_of(&config, "finance-payments").source, "finance-*");
        assert_eq!(slo_of(&config, "fintech").source, "fin*");
        assert_eq!(slo_of(&config, "search").source, "*");
    }
}

#[test]
fn glob_ties_go_to_longer_then_smaller_pattern() {
    // Two literals each: `ab**` is longer than `ab*`; `a*b` < `ab*`.
    let config = load("agents:\n  'ab*': {}\n  'a*b': {}\n");
    assert_eq!(slo_of(&config, "abb").source, "a*b");
    let config = load("agents:\n  'ab*': {}\n  'ab**': {}\n");
    assert_eq!(slo_of(&config, "abc").source, "ab**");
    // Classes and `?` are wildcards: `a[bc]d?` has 2 literals, `a*d` too.
    assert_eq!(literal_chars("a[bc]d?"), 2);
    assert_eq!(literal_chars("[]x]y\\*{p,q}"), 4);
    let config = load("agents:\n  'a[bc]d?': {}\n  'ab*': {}\n  'abd*': {}\n");
    assert_eq!(slo_of(&config, "abdx").source, "abd*");
    assert_eq!(slo_of(&config, "acdx").source, "a[bc]d?");
}

#[test]
fn bad_agent_keys_are_refused() {
    fails(
        "agents:\n  'fin[': {}\n",
        &[r#"agents."fin[": "fin[" is not allowed: expected a valid glob"#],
    );
    fails(
        "agents:\n  '': {}\n",
        &[r#"agents."": "" is not allowed"#, "non-empty"],
    );
}
