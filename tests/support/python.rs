//! Pythons with pinned tool stacks from PyPI: the standard Kafka/Avro
//! client stack (confluent-kafka, fastavro) for interoperability tests, and
//! openapi-spec-validator for the HTTP API's OpenAPI document.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// `$BREAKWATER_PYTHON`, else the venv of tests/interop/python-env.sh,
/// created on first use (pinned, hash-checked wheels from PyPI). Panics with
/// what to install when that is impossible: an interop test must not pass
/// without running.
pub fn python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON
        .get_or_init(|| venv("BREAKWATER_PYTHON", "tests/interop/requirements.txt"))
        .clone()
}

/// `$BREAKWATER_OPENAPI_PYTHON`, else a venv with
/// tests/openapi/requirements.txt (openapi-spec-validator), made the same way.
pub fn openapi_python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            venv(
                "BREAKWATER_OPENAPI_PYTHON",
                "tests/openapi/requirements.txt",
            )
        })
        .clone()
}

fn venv(env_var: &str, requirements: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env_var) {
        return PathBuf::from(p);
    }
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/interop/python-env.sh"
    );
    let out = Command::new("bash")
        .arg(script)
        .arg(requirements)
        .output()
        .expect("running tests/interop/python-env.sh");
    assert!(
        out.status.success(),
        "could not set up the Python environment of {requirements} (needs python3 with venv, \
         e.g. Debian's python3-venv, and PyPI): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}
