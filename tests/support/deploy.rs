//! The deploy/ tests' tools and shared checks. Tools come from environment
//! variables that .ci/install-test-tools exports; without them, the Python
//! ones are installed on first use by tests/deploy/tools-env.sh (pinned,
//! hash-checked wheels) and amtool is looked up on PATH. A missing tool
//! fails the test saying what to install: these checks must not pass
//! without running.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use breakwater::config::{HttpSettings, KafkaSettings, SloConfig};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

/// The venv bin directory of tests/deploy/tools-env.sh, created once.
fn venv_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let out = Command::new("bash")
            .arg(repo().join("tests/deploy/tools-env.sh"))
            .output()
            .expect("running tests/deploy/tools-env.sh");
        assert!(
            out.status.success(),
            "could not install the deploy test tools (needs python3 with venv, e.g. Debian's \
             python3-venv, and PyPI; or run `eval \"$(bash .ci/install-test-tools)\"`): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    })
}

/// `$var`, else the tool from the deploy venv (hadolint, check-jsonschema,
/// kubernetes-validate).
pub fn venv_tool(var: &str, name: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(var).filter(|v| !v.is_empty()) {
        return PathBuf::from(p);
    }
    let p = venv_bin().join(name);
    assert!(
        p.is_file(),
        "{} is missing from the deploy venv",
        p.display()
    );
    p
}

/// `$AMTOOL`, else `amtool` on PATH (Debian package prometheus-alertmanager).
pub fn amtool() -> PathBuf {
    on_path("AMTOOL", &["amtool"])
}

/// `$ALERTMANAGER`, else the server of the same package (Debian names it
/// prometheus-alertmanager).
pub fn alertmanager() -> PathBuf {
    on_path("ALERTMANAGER", &["prometheus-alertmanager", "alertmanager"])
}

fn on_path(var: &str, names: &[&str]) -> PathBuf {
    if let Some(p) = std::env::var_os(var).filter(|v| !v.is_empty()) {
        return PathBuf::from(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{} not found: install the Debian package `prometheus-alertmanager` \
                 (bash .ci/install-test-tools does) or set ${var}",
                names[0]
            )
        })
}

/// Runs `tool args…` in `dir`; returns success and stdout + stderr.
pub fn run<S: AsRef<OsStr>>(tool: &Path, dir: &Path, args: &[S]) -> (bool, String) {
    let out = Command::new(tool)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "running {}: {e} (`bash .ci/install-test-tools` installs the deploy tools \
                 and prints their variables)",
                tool.display()
            )
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Parses a YAML file of this repository (relative to its root).
pub fn yaml(path: &str) -> serde_yaml::Value {
    let text = std::fs::read_to_string(repo().join(path)).unwrap();
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A config file's text through the same loaders `breakwater run` uses
/// (SloConfig, then its `kafka:` and `http:` sections), with no
/// environment overrides; panics with the loader's message.
pub fn load_config(text: &str, what: &str) -> (SloConfig, KafkaSettings, HttpSettings) {
    let config = SloConfig::from_yaml_str(text).unwrap_or_else(|e| panic!("{what}: {e}"));
    let kafka = KafkaSettings::from_section(config.kafka.as_ref(), std::iter::empty())
        .unwrap_or_else(|e| panic!("{what}, kafka section: {e}"));
    let http = HttpSettings::from_section(config.http.as_ref())
        .unwrap_or_else(|e| panic!("{what}, http section: {e}"));
    (config, kafka, http)
}

/// The shipped configs start from the demo's SLOs (their comments say so):
/// their `defaults` and `agents` must equal deploy/demo/slo.yaml's.
pub fn assert_demo_slos(text: &str, what: &str) {
    let shipped: serde_yaml::Value = serde_yaml::from_str(text).unwrap();
    let demo = yaml("deploy/demo/slo.yaml");
    for section in ["defaults", "agents"] {
        assert!(
            shipped[section] == demo[section],
            "{what}: `{section}` differs from deploy/demo/slo.yaml's"
        );
    }
}
