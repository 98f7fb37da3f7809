//! Loading whole files; the other modules here test one concern each
//! through [`SloConfig::from_yaml_str`], with the helpers below.

mod layering;
mod matching;
mod refusals;

use super::*;

const EXAMPLE: &str = r#"
defaults:
  task_success_rate: 0.95
  max_tool_calls_per_task: 10
  max_latency_ms: 30000
  max_error_rate: 0.02
  min_availability: 0.99
  window: 24h
  on_budget_exhausted: throttle      # throttle | degrade | circuit_break
  max_delegation_depth: 5
  breaker:
    failure_threshold: 0.05
    latency_threshold_ms: 30000
    cooldown_seconds: 300
    max_cooldown_seconds: 3600
    min_calls: 20
    window: 5m
    half_open_probes: 5
  alerts:
    min_tasks: 20
    task_success_rate: {warning: 0.95, critical: 0.90}
    avg_tool_calls: {warning: 15, critical: 25}
    error_budget_remaining: {warning: 25, critical: 10}
    circuit_opens_24h: {warning: 3, critical: 10}
    policy_violation_rate: {warning: 0.05, critical: 0.15}
    hallucination_rate: {warning: 0.05, critical: 0.10}
    p99_latency_ms: {warning: 30000, critical: null}
    availability: {warning: 0.99, critical: null}
  burn_rate:
    min_tasks: 20
    rules:
      - {name: fast, severity: critical, factor: 14.4, long: 1h, short: 5m}
  accuracy:
    min_samples: 50
    severity: warning
agents:
  "finance-*":
    on_budget_exhausted: circuit_break
  "research-agent":
    max_tool_calls_per_task: 20
    breaker:
      min_calls: 50
"#;

fn load(yaml: &str) -> SloConfig {
    SloConfig::from_yaml_str(yaml).unwrap_or_else(|e| panic!("{e}"))
}

fn slo_of<'a>(config: &'a SloConfig, agent: &str) -> &'a Slo {
    config.slo(config.resolve(agent))
}

/// The error message, asserting it contains every one of `parts`.
#[track_caller]
fn fails(yaml: &str, parts: &[&str]) -> String {
    let message = match SloConfig::from_yaml_str(yaml) {
        Ok(_) => panic!("accepted:\n{yaml}"),
        Err(e) => e.to_string(),
    };
    for part in parts {
        assert!(message.contains(part), "{message:?} lacks {part:?}");
    }
    message
}

#[test]
fn example_loads_and_resolves() {
    let config = load(EXAMPLE);
    assert_eq!(config.slos().len(), 3);
    assert_eq!(config.slos()[1].source, "finance-*");
    assert_eq!(config.slos()[2].source, "research-agent");

    let finance = slo_of(&config, "finance-payments");
    assert_eq!(finance.on_budget_exhausted, BudgetAction::CircuitBreak);
    assert_eq!(finance.task_success_rate, 0.95);

    let research = slo_of(&config, "research-agent");
    assert_eq!(research.max_tool_calls_per_task, 20.0);
    assert_eq!(research.breaker.min_calls, 50);
    let defaults = Slo::default();
    let expected_breaker = BreakerConfig {
        min_calls: 50,
        ..defaults.breaker.clone()
    };
    assert_eq!(research.breaker, expected_breaker);
    assert_eq!(research.burn_rate.rules.len(), 1);
    assert_eq!(research.burn_rate.rules[0].name, "fast");

    assert_eq!(config.resolve("other"), SloId(0));
    let other = slo_of(&config, "other");
    assert_eq!(other.source, "defaults");
    // The example's defaults are the seed's numbers, except the one rule.
    let seed_rules = Slo {
        burn_rate: other.burn_rate.clone(),
        ..Slo::default()
    };
    assert_eq!(*other, seed_rules);
    let rule = &other.burn_rate.rules[0];
    assert_eq!((rule.severity, rule.factor), (Severity::Critical, 14.4));
    assert_eq!((rule.long_ms, rule.short_ms), (3_600_000, 300_000));
}

#[test]
fn empty_file_is_the_builtin_default() {
    for yaml in ["", "# nothing\n", "defaults:\nagents:\n", "{}"] {
        let config = load(yaml);
        assert_eq!(config.slos(), SloConfig::default().slos());
        assert_eq!(config.slos(), &[Slo::default()]);
    }
    // An entry with nothing under it is the defaults under its own name.
    let config = load("agents:\n  a:\n");
    let expected = Slo {
        source: "a".into(),
        ..Slo::default()
    };
    assert_eq!(config.slos()[1], expected);
}

#[test]
fn kafka_and_http_are_kept_opaque() {
    let config = load("kafka: {brokers: [a, b]}\nhttp: {listen: ':8080'}\n");
    let kafka = config.kafka.expect("kafka");
    assert_eq!(kafka["brokers"][1].as_str(), Some("b"));
    assert_eq!(config.http.expect("http")["listen"].as_str(), Some(":8080"));
    assert!(SloConfig::default().kafka.is_none());
}

#[test]
fn load_names_the_file() {
    let dir = std::env::temp_dir().join(format!("breakwater-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad_key = dir.join("bad_key.yaml");
    std::fs::write(&bad_key, "defaults:\n  breaker:\n    foo: 1\n").unwrap();
    let message = SloConfig::load(&bad_key).unwrap_err().to_string();
    let expected = format!(
        "{}:3:5: defaults.breaker.foo: unknown field `foo`",
        bad_key.display()
    );
    assert!(message.starts_with(&expected), "{message}");

    let bad_value = dir.join("bad_value.yaml");
    std::fs::write(&bad_value, "defaults: {task_success_rate: 1.5}\n").unwrap();
    let message = SloConfig::load(&bad_value).unwrap_err().to_string();
    assert!(message.starts_with(&format!(
        "{}: defaults.task_success_rate: 1.5",
        bad_value.display()
    )));

    let good = dir.join("good.yaml");
    std::fs::write(&good, EXAMPLE).unwrap();
    assert_eq!(SloConfig::load(&good).unwrap().slos().len(), 3);

    let missing = dir.join("missing.yaml");
    let err = SloConfig::load(&missing).unwrap_err();
    assert!(matches!(err, ConfigError::Io { .. }));
    assert!(err.to_string().contains("missing.yaml"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
