//! Files refused, and the dotted key, value and expectation each error names.

use super::*;

#[test]
fn unknown_keys_are_refused_with_their_path() {
    fails(
        "defautls: {}\n",
        &[
            "line 1 column 1",
            "defautls",
            "unknown field `defautls`",
            "`defaults`",
        ],
    );
    fails(
        "defaults:\n  windw: 5m\n",
        &["defaults.windw: unknown field `windw`", "`window`"],
    );
    fails(
        "defaults:\n  breaker:\n    cooldown: 5\n",
        &[
            "line 3 column 5",
            "defaults.breaker.cooldown: unknown field `cooldown`",
            "`cooldown_seconds`",
        ],
    );
    fails(
        "agents:\n  \"finance-*\":\n    breaker: {windoe: 5m}\n",
        &[
            r#"agents."finance-*".breaker.windoe: unknown field `windoe`"#,
            "`window`",
        ],
    );
    fails(
        "defaults:\n  alerts: {availability: {warn: 1}}\n",
        &[
            "defaults.alerts.availability.warn: unknown field `warn`",
            "`warning`",
        ],
    );
    fails(
        "defaults:\n  burn_rate: {rules: [{factor: 1, long: 1h, short: 5m, sev: warning}]}\n",
        &[
            "defaults.burn_rate.rules[0].sev: unknown field `sev`",
            "`severity`",
        ],
    );
}

#[test]
fn wrong_types_and_enum_values_are_refused() {
    fails(
        "defaults: {on_budget_exhausted: panic}\n",
        &[
            "defaults.on_budget_exhausted",
            "unknown variant `panic`",
            "`throttle`",
            "`circuit_break`",
        ],
    );
    fails(
        "agents:\n  a: {accuracy: {severity: CRITICAL}}\n",
        &[r#"agents."a".accuracy.severity"#, "`CRITICAL`", "`warning`"],
    );
    fails(
        "defaults: {max_latency_ms: fast}\n",
        &["defaults.max_latency_ms", "\"fast\"", "u64"],
    );
    fails(
        "defaults: {breaker: {min_calls: -1}}\n",
        &["defaults.breaker.min_calls", "-1", "u32"],
    );
    fails(
        "defaults: {window: 1.5}\n",
        &["defaults.window", "1.5", "a positive duration"],
    );
    fails(
        "agents: [a, b]\n",
        &["agents", "sequence", "mapping from agent id"],
    );
    fails(
        "agents:\n  a: {}\n  a: {}\n",
        &["agents", "duplicate agent key \"a\""],
    );
    fails("defaults: [1\n", &["line"]);
}

#[test]
fn rates_are_range_checked() {
    fails(
        "defaults:\n  task_success_rate: 1.5\n",
        &["defaults.task_success_rate: 1.5 is not allowed: expected a rate in [0, 1)"],
    );
    fails(
        "defaults: {task_success_rate: 1}\n",
        &["defaults.task_success_rate: 1 is not allowed", "[0, 1)"],
    );
    fails(
        "defaults: {max_error_rate: -0.1}\n",
        &["defaults.max_error_rate: -0.1", "[0, 1]"],
    );
    fails(
        "defaults: {min_availability: .nan}\n",
        &["defaults.min_availability: NaN", "[0, 1]"],
    );
    fails(
        "agents:\n  'finance-*': {breaker: {failure_threshold: 1.5}}\n",
        &[
            r#"agents."finance-*".breaker.failure_threshold: 1.5"#,
            "[0, 1]",
        ],
    );
    fails(
        "defaults: {alerts: {hallucination_rate: {critical: 2}}}\n",
        &["defaults.alerts.hallucination_rate.critical: 2", "[0, 1]"],
    );
    fails(
        "defaults: {alerts: {error_budget_remaining: {warning: 101}}}\n",
        &[
            "defaults.alerts.error_budget_remaining.warning: 101",
            "<= 100",
        ],
    );
    load("defaults: {alerts: {error_budget_remaining: {critical: -50}}, task_success_rate: 0}\n");
    fails(
        "defaults: {max_tool_calls_per_task: 0}\n",
        &["defaults.max_tool_calls_per_task: 0", "> 0"],
    );
    fails(
        "defaults: {breaker: {half_open_probes: 0}}\n",
        &["defaults.breaker.half_open_probes: 0", ">= 1"],
    );
    fails(
        "agents: {a: {breaker: {min_calls: 0}}}\n",
        &[r#"agents."a".breaker.min_calls: 0"#, ">= 1"],
    );
}

#[test]
fn durations_are_checked() {
    let cases = [
        ("\"5x\"", "\"5x\""),
        ("-5m", "\"-5m\""),
        ("-300", "-300"),
        ("0", "0"),
        ("0s", "\"0s\""),
        ("10us", "\"10us\""),
    ];
    for (written, shown) in cases {
        fails(
            &format!("agents:\n  \"finance-*\":\n    breaker: {{window: {written}}}\n"),
            &[
                &format!(r#"agents."finance-*".breaker.window: {shown} is not allowed"#),
                "a positive duration",
            ],
        );
    }
    let config =
        load("defaults: {window: 1d, breaker: {window: 90s}}\nagents: {a: {window: '3600'}}\n");
    assert_eq!(config.slos()[0].window_ms, 86_400_000);
    assert_eq!(config.slos()[0].breaker.window_ms, 90_000);
    assert_eq!(config.slos()[1].window_ms, 3_600_000);
    fails(
        "defaults: {window: 5x}\n",
        &["defaults.window: \"5x\" is not allowed", "\"24h\""],
    );
}

#[test]
fn burn_rules_are_checked() {
    let rules = |r: &str| format!("defaults:\n  burn_rate:\n    rules: [{r}]\n");
    fails(
        &rules("{severity: critical, factor: 2, long: 5m, short: 1h}"),
        &["defaults.burn_rate.rules[0].long: \"5m\" is not allowed: expected a duration >= short (\"1h\")"],
    );
    fails(
        &rules("{severity: critical, factor: 0, long: 1h, short: 5m}"),
        &["defaults.burn_rate.rules[0].factor: 0", "> 0"],
    );
    fails(
        &rules("{severity: critical, long: 1h, short: 5m}"),
        &["defaults.burn_rate.rules[0]: missing field `factor`"],
    );
    fails(
        &rules("{severity: critical, factor: 1, long: 1h, short: 5m}, {severity: warning, factor: 2, long: 1h, short: 5m}"),
        &["rules[1].name: \"burn_rate_1h_5m\"", "unique"],
    );
    let config = load(&rules(
        "{severity: warning, factor: 1, long: 3d, short: 6h}",
    ));
    assert_eq!(config.slos()[0].burn_rate.rules[0].name, "burn_rate_3d_6h");
    let config = load(&rules(""));
    assert!(config.slos()[0].burn_rate.rules.is_empty());
}

#[test]
fn cooldowns_are_checked() {
    fails(
        "defaults:\n  breaker: {cooldown_seconds: 600, max_cooldown_seconds: 300}\n",
        &[
            "defaults.breaker.max_cooldown_seconds: 300 is not allowed",
            ">= cooldown_seconds (600)",
        ],
    );
    // A cooldown above the inherited max is refused too.
    fails(
        "agents:\n  a: {breaker: {cooldown_seconds: 7200}}\n",
        &[r#"agents."a".breaker.max_cooldown_seconds: 3600"#, "(7200)"],
    );
    fails(
        "defaults: {breaker: {cooldown_seconds: 0}}\n",
        &["defaults.breaker.cooldown_seconds: 0", ">= 1"],
    );
    fails(
        "defaults: {breaker: {cooldown_seconds: -5}}\n",
        &["defaults.breaker.cooldown_seconds", "-5"],
    );
    let config = load("defaults: {breaker: {cooldown_seconds: 10, max_cooldown_seconds: 10}}\n");
    assert_eq!(
        (
            config.slos()[0].breaker.cooldown_ms,
            config.slos()[0].breaker.max_cooldown_ms
        ),
        (10_000, 10_000)
    );
}

#[test]
fn the_engine_section_is_checked_at_load() {
    fails(
        "engine: {dormant_after: -5m}\n",
        &["engine.dormant_after", "-5m", "off"],
    );
    fails(
        "engine: {min_awake_agents: -1}\n",
        &["engine.min_awake_agents", "-1", "0 to 100000000"],
    );
    fails(
        "engine: {dormant: 5m}\n",
        &["engine.dormant: unknown field `dormant`", "`dormant_after`"],
    );
    let c = SloConfig::from_yaml_str("engine: {dormant_after: 300, min_awake_agents: 5}\n")
        .expect("whole seconds are a duration");
    assert_eq!(c.engine.dormant_after_ms, Some(300_000));
    assert_eq!(c.engine.min_awake_agents, 5);
    let d = SloConfig::from_yaml_str("defaults: {}\n").unwrap();
    assert_eq!(d.engine, crate::config::EngineSettings::default());
    assert_eq!(d.engine.dormant_after_ms, Some(300_000), "5 min by default");
}
