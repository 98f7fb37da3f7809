//! Values inherited field by field through the layers, and derived defaults.

use super::*;

#[test]
fn window_override_recomputes_default_burn_rules() {
    let config = load("agents:\n  short: {window: 2h}\n  secs: {window: 7200}\n");
    let slo = slo_of(&config, "short");
    assert_eq!(slo.window_ms, 7_200_000);
    assert_eq!(slo.burn_rate.rules, default_burn_rules(7_200_000));
    assert_eq!(slo.burn_rate.rules[2].long_ms, 7_200_000);
    assert_eq!(slo_of(&config, "secs").burn_rate.rules, slo.burn_rate.rules);
    assert_eq!(
        slo_of(&config, "other").burn_rate.rules,
        default_burn_rules(86_400_000)
    );

    // Rules given in `defaults` are inherited as they are.
    let config = load(
        "defaults:\n  burn_rate:\n    rules: [{severity: warning, factor: 2, long: 6h, short: 30m}]\nagents:\n  a: {window: 2h}\n",
    );
    let rules = &slo_of(&config, "a").burn_rate.rules;
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].name, "burn_rate_6h_30m");
    assert_eq!(rules[0].severity, Severity::Warning);
}

#[test]
fn derived_alert_defaults_follow_the_agent() {
    let config =
        load("defaults: {min_availability: 0.9}\nagents:\n  slow: {max_latency_ms: 60000}\n");
    let slow = slo_of(&config, "slow");
    assert_eq!(
        slow.alerts.p99_latency_ms,
        Thresholds {
            warning: Some(60_000.0),
            critical: None
        }
    );
    assert_eq!(
        slow.alerts.availability,
        Thresholds {
            warning: Some(0.9),
            critical: None
        }
    );
    assert_eq!(
        slo_of(&config, "x").alerts.p99_latency_ms.warning,
        Some(30_000.0)
    );

    // Given explicitly in `defaults`, it no longer follows max_latency_ms.
    let config =
        load("defaults:\n  alerts: {p99_latency_ms: {warning: 5000}}\nagents:\n  slow: {max_latency_ms: 60000}\n");
    assert_eq!(
        slo_of(&config, "slow").alerts.p99_latency_ms.warning,
        Some(5000.0)
    );
}

#[test]
fn alert_sides_layer_separately_and_null_switches_off() {
    let config = load(
        "defaults:\n  alerts: {avg_tool_calls: {warning: 12}}\nagents:\n  a:\n    alerts: {avg_tool_calls: {critical: null}, availability: {critical: 0.5}}\n",
    );
    let a = slo_of(&config, "a");
    assert_eq!(
        a.alerts.avg_tool_calls,
        Thresholds {
            warning: Some(12.0),
            critical: None
        }
    );
    assert_eq!(
        a.alerts.availability,
        Thresholds {
            warning: Some(0.99),
            critical: Some(0.5)
        }
    );
    let d = slo_of(&config, "b");
    assert_eq!(
        d.alerts.avg_tool_calls,
        Thresholds {
            warning: Some(12.0),
            critical: Some(25.0)
        }
    );
}
