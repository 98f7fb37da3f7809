//! deploy/alertmanager/alertmanager.yml checked by Alertmanager's own tool:
//! the config loads (`amtool check-config`), and every alert of
//! deploy/prometheus/rules.yml routes by its severity — critical to the
//! pager, warning to tickets (`amtool config routes test`); and a real
//! Alertmanager inhibits an agent's warnings while a critical alert fires
//! for that agent, and only then.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::deploy::{alertmanager, amtool, repo, run, yaml};

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

/// A real Alertmanager on a free loopback port with `config`; killed on drop.
struct Alertmanager {
    child: std::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Alertmanager {
    fn start(config: &str) -> Alertmanager {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("alertmanager.yml"), config).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::fs::File::create(dir.path().join("alertmanager.log")).unwrap();
        let child = Command::new(alertmanager())
            .arg(format!(
                "--config.file={}",
                dir.path().join("alertmanager.yml").display()
            ))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            // A single instance: no gossip port.
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start alertmanager");
        Alertmanager {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        }
    }

    /// Polls `GET /api/v2/alerts` until `accept` holds, or panics at the
    /// deadline with the last answer.
    fn alerts_until(&self, accept: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = String::new();
        loop {
            if let Ok(mut r) = agent().get(&format!("{}/api/v2/alerts", self.url)).call() {
                last = r.body_mut().read_to_string().unwrap_or_default();
                if let Ok(Value::Array(alerts)) = serde_json::from_str(&last) {
                    if accept(&alerts) {
                        return alerts;
                    }
                }
            }
            assert!(Instant::now() < deadline, "Alertmanager alerts: {last}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(5)))
            .build(),
    )
}

fn inhibited(alerts: &[Value], name: &str, label: &str, value: &str) -> Option<bool> {
    alerts
        .iter()
        .find(|a| a["labels"]["alertname"] == name && a["labels"][label] == value)
        .map(|a| a["status"]["state"] == "suppressed" && a["status"]["inhibitedBy"] != json!([]))
}

#[test]
fn a_critical_alert_inhibits_the_warnings_of_its_agent_only() {
    // Receivers point at a closed loopback port: nothing leaves the machine.
    let config = std::fs::read_to_string(repo().join(CONFIG))
        .unwrap()
        .replace("http://pager-bridge.example:8080", "http://127.0.0.1:9")
        .replace("https://hooks.slack.example", "http://127.0.0.1:9");
    let am = Alertmanager::start(&config);
    let alert = |name: &str, severity: &str, extra: (&str, &str)| json!({"labels": {"alertname": name, "severity": severity, extra.0: extra.1}});
    let alerts = json!([
        alert("AgentErrorBudgetExhausted", "critical", ("agent", "a")),
        alert("AgentBreakerOpen", "warning", ("agent", "a")),
        alert("AgentBreakerOpen", "warning", ("agent", "b")),
        alert("BreakwaterNotReady", "critical", ("instance", "i2")),
        alert("BreakwaterDeadLetters", "warning", ("instance", "i2")),
        alert("BreakwaterDeadLetters", "warning", ("instance", "i3")),
    ]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // Refused until the server listens.
        let posted = agent()
            .post(&format!("{}/api/v2/alerts", am.url))
            .header("content-type", "application/json")
            .send(alerts.to_string());
        if matches!(&posted, Ok(r) if r.status() == 200) {
            break;
        }
        assert!(Instant::now() < deadline, "posting alerts: {posted:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The inhibitor learns of the critical alerts asynchronously.
    let got = am.alerts_until(|a| {
        a.len() == 6
            && inhibited(a, "AgentBreakerOpen", "agent", "a") == Some(true)
            && inhibited(a, "BreakwaterDeadLetters", "instance", "i2") == Some(true)
    });
    // Another agent's warning is not hidden, nor, although neither has an
    // `agent` label, a processor warning by the processor's critical alert
    // about another instance.
    assert_eq!(
        inhibited(&got, "AgentBreakerOpen", "agent", "b"),
        Some(false)
    );
    assert_eq!(
        inhibited(&got, "BreakwaterDeadLetters", "instance", "i3"),
        Some(false)
    );
    assert_eq!(
        inhibited(&got, "AgentErrorBudgetExhausted", "agent", "a"),
        Some(false)
    );
}
