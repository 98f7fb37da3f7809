//! The benches' knobs from the environment. Included with
//! `#[path = "support/env.rs"] mod env;`.

/// `name` as a number (`_` separators allowed, e.g. `1_000_000`), or
/// `default` when unset or not a number.
pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}
