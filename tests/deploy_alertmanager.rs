//! deploy/alertmanager/alertmanager.yml checked by Alertmanager's own tool:
//! the config loads (`amtool check-config`), and every alert of
//! deploy/prometheus/rules.yml routes by its severity — critical to the
//! pager, warning to tickets (`amtool config routes test`).

mod support;

use support::deploy::{amtool, repo, run, yaml};

const CONFIG: &str = "deploy/alertmanager/alertmanager.yml";

/// The receiver amtool resolves for an alert with `labels`, checked against
/// `expected` (`--verify.receivers` makes amtool exit non-zero otherwise).
fn routes_to(expected: &str, labels: &[String]) -> (bool, String) {
    let mut args = vec![
        "config".to_string(),
        "routes".into(),
        "test".into(),
        format!("--config.file={CONFIG}"),
        format!("--verify.receivers={expected}"),
    ];
    args.extend_from_slice(labels);
    run(&amtool(), &repo(), &args)
}

#[test]
fn the_config_loads() {
    let (ok, out) = run(&amtool(), &repo(), &["check-config", CONFIG]);
    assert!(ok && out.contains("SUCCESS"), "{out}");
    assert!(out.contains("2 inhibit rules"), "{out}");
}

#[test]
fn every_alert_of_the_rules_routes_by_severity() {
    let rules = yaml("deploy/prometheus/rules.yml");
    let mut routed = 0;
    for group in rules["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            let Some(alert) = rule["alert"].as_str() else {
                continue;
            };
            let severity = rule["labels"]["severity"].as_str().unwrap_or("none");
            let receiver = match severity {
                "critical" => "pager",
                "warning" => "tickets",
                other => panic!("{alert}: severity {other} has no route in {CONFIG}"),
            };
            let labels = [
                format!("alertname={alert}"),
                format!("severity={severity}"),
                "agent=research-agent-1".into(),
                "instance=breakwater-0:9464".into(),
            ];
            let (ok, out) = routes_to(receiver, &labels);
            assert!(ok, "{alert} ({severity}) should reach {receiver}: {out}");
            routed += 1;
        }
    }
    assert!(routed >= 8, "only {routed} alerts in rules.yml");
}

#[test]
fn a_critical_alert_does_not_reach_tickets() {
    // The check is live: asking for the wrong receiver fails.
    let labels = [
        "alertname=AgentErrorBudgetExhausted".into(),
        "severity=critical".into(),
    ];
    let (ok, out) = routes_to("tickets", &labels);
    assert!(!ok && out.contains("pager"), "{out}");
}
