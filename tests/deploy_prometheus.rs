//! deploy/prometheus/ checked by Prometheus' own tool: the rules load, their
//! unit tests pass (alerts fire when and with what they should), and the
//! scrape config is valid. The exposition itself is checked against a
//! running job in tests/kafka_cli.rs.

mod support;

use std::path::Path;

use support::prometheus::promtool;

fn deploy() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/prometheus"))
}

#[test]
fn the_rules_load() {
    let (ok, out) = promtool(deploy(), &["check", "rules", "rules.yml"], None);
    assert!(ok, "{out}");
}

#[test]
fn the_rules_unit_tests_pass() {
    let (ok, out) = promtool(deploy(), &["test", "rules", "tests/rules.test.yml"], None);
    assert!(ok && out.contains("SUCCESS"), "{out}");
}

#[test]
fn the_scrape_config_is_valid() {
    let (ok, out) = promtool(deploy(), &["check", "config", "prometheus.yml"], None);
    assert!(ok, "{out}");
}
