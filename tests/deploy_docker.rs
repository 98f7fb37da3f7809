//! deploy/docker/ checked by real tools without a Docker daemon: hadolint
//! lints the Dockerfile, check-jsonschema validates compose.yaml against
//! the compose-spec schema, promtool checks the stack's Prometheus config,
//! and the mounted Breakwater config loads as `breakwater run` loads it.
//! What the schema cannot see (mounted files exist, services point at each
//! other) is checked here by reading the files.

mod support;

use std::path::{Path, PathBuf};

use support::deploy::{assert_demo_slos, load_config, repo, run, venv_tool, yaml};
use support::prometheus::promtool;

fn docker_dir() -> PathBuf {
    repo().join("deploy/docker")
}

fn hadolint(dockerfile: &Path) -> (bool, String) {
    let tool = venv_tool("HADOLINT", "hadolint");
    run(&tool, &repo(), &[Path::new("--no-color"), dockerfile])
}

fn dockerfile() -> String {
    std::fs::read_to_string(docker_dir().join("Dockerfile")).unwrap()
}

/// The Dockerfile's instructions of the last stage (the runtime image),
/// continuation lines joined.
fn runtime_stage() -> Vec<String> {
    let joined = dockerfile().replace("\\\n", " ");
    let lines: Vec<&str> = joined
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let last_from = lines.iter().rposition(|l| l.starts_with("FROM ")).unwrap();
    lines[last_from..].iter().map(|l| l.to_string()).collect()
}

#[test]
fn hadolint_accepts_the_dockerfile() {
    let (ok, out) = hadolint(&docker_dir().join("Dockerfile"));
    assert!(ok, "hadolint: {out}");
}

#[test]
fn hadolint_refuses_a_runtime_that_runs_as_root() {
    // The lint is live: the same file ending as root is refused (DL3002).
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("Dockerfile");
    std::fs::write(&bad, format!("{}USER root\n", dockerfile())).unwrap();
    let (ok, out) = hadolint(&bad);
    assert!(!ok && out.contains("DL3002"), "hadolint: {out}");
}

#[test]
fn the_runtime_image_runs_breakwater_as_a_non_root_user_on_9464() {
    let stage = runtime_stage();
    let has = |prefix: &str| stage.iter().find(|l| l.starts_with(prefix)).cloned();
    let user = has("USER ").expect("the runtime stage sets USER");
    let uid = user["USER ".len()..].split(':').next().unwrap();
    assert!(uid != "root" && uid != "0", "{user}");
    assert_eq!(has("EXPOSE ").as_deref(), Some("EXPOSE 9464"));
    assert_eq!(
        has("ENTRYPOINT ").as_deref(),
        Some(r#"ENTRYPOINT ["breakwater"]"#)
    );
    let copy = has("COPY --from=builder ").expect("the binary comes from the builder");
    assert!(copy.ends_with("/usr/local/bin/breakwater"), "{copy}");
    assert!(dockerfile().contains("cargo build --release --locked --bin breakwater"));
    // The image's user is the one compose runs and Kubernetes requires.
    let compose = yaml("deploy/docker/compose.yaml");
    let compose_user = compose["services"]["breakwater"]["user"].as_str().unwrap();
    assert_eq!(compose_user, &user["USER ".len()..]);
}

#[test]
fn the_builder_uses_the_workspaces_minimum_rust() {
    // The declared rust-version is what the build promises to work with;
    // raising it must move the image too.
    let manifest = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    let declared = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = \""))
        .and_then(|v| v.strip_suffix('"'))
        .expect("the workspace declares rust-version");
    let image = format!("FROM rust:{declared}-slim-bookworm AS builder");
    assert!(
        dockerfile().lines().any(|l| l == image),
        "the builder should be `{image}`"
    );
}

/// Packages the runtime stage installs with apt-get.
fn runtime_packages() -> Vec<String> {
    let stage = runtime_stage();
    let run = stage
        .iter()
        .find(|l| l.contains("apt-get install"))
        .expect("the runtime stage installs packages");
    let after = run.split("--no-install-recommends").nth(1).unwrap();
    after
        .split("&&")
        .next()
        .unwrap()
        .split_whitespace()
        .map(String::from)
        .collect()
}

#[test]
fn the_runtime_image_has_every_shared_library_the_binary_needs() {
    // debian:bookworm-slim has these (dpkg and apt depend on them).
    let base = ["libc6", "libgcc-s1", "zlib1g"];
    let installed = runtime_packages();
    let bin = env!("CARGO_BIN_EXE_breakwater");
    let (ok, dynamic) = run(Path::new("readelf"), &repo(), &["-d", bin]);
    assert!(ok, "readelf (binutils): {dynamic}");
    let needed: Vec<&str> = dynamic
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| l.split('[').nth(1)?.strip_suffix(']'))
        .collect();
    assert!(needed.contains(&"libssl.so.3"), "{needed:?}");
    for lib in needed {
        // Which Debian package ships it here (a Debian 12 machine too).
        let (ok, owner) = run(Path::new("dpkg"), &repo(), &["-S", &format!("*/{lib}")]);
        assert!(ok, "no Debian package ships {lib}: {owner}");
        let package = owner.split(':').next().unwrap();
        assert!(
            base.contains(&package) || installed.iter().any(|p| p == package),
            "{bin} needs {lib} from {package}, which the runtime stage neither has nor installs \
             ({installed:?})"
        );
    }
}

/// The builder's `COPY` sources (repository paths).
fn builder_copies() -> Vec<String> {
    let text = dockerfile();
    let builder = &text[..text.rfind("\nFROM ").unwrap()];
    builder
        .lines()
        .filter_map(|l| l.strip_prefix("COPY "))
        .flat_map(|args| {
            let words: Vec<&str> = args.split_whitespace().collect();
            words[..words.len() - 1]
                .iter()
                .map(|w| w.to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn the_builder_copies_everything_the_build_reads() {
    let copied = builder_copies();
    // Files the sources embed from outside processor/ (include_str!).
    let mut embedded = Vec::new();
    let mut dirs = vec![repo().join("processor/src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            for piece in text.split("include_str!(\"").skip(1) {
                let rel = &piece[..piece.find('"').unwrap()];
                let target = path.parent().unwrap().join(rel).canonicalize().unwrap();
                let inside = target.strip_prefix(repo()).unwrap();
                embedded.push(inside.components().next().unwrap().as_os_str().to_owned());
            }
        }
    }
    // And the manifest's test and bench targets, which cargo reads.
    let manifest = std::fs::read_to_string(repo().join("processor/Cargo.toml")).unwrap();
    for line in manifest.lines().filter(|l| l.starts_with("path = \"../")) {
        let rel = line.trim_start_matches("path = \"../");
        embedded.push(rel.split('/').next().unwrap().into());
    }
    for needed in ["Cargo.toml", "Cargo.lock", "processor"]
        .into_iter()
        .map(Into::into)
        .chain(embedded)
    {
        let needed = needed.to_string_lossy().into_owned();
        assert!(
            copied.contains(&needed),
            "the Dockerfile's builder does not copy {needed} (copies {copied:?})"
        );
    }
    let ignore = std::fs::read_to_string(repo().join(".dockerignore")).unwrap();
    assert!(ignore.lines().any(|l| l == "target/"), "{ignore}");
    for path in &copied {
        assert!(
            !ignore.lines().any(|l| l.trim_end_matches('/') == path),
            ".dockerignore excludes {path}, which the builder copies"
        );
    }
}

fn check_compose(file: &Path) -> (bool, String) {
    let tool = venv_tool("CHECK_JSONSCHEMA", "check-jsonschema");
    run(
        &tool,
        &repo(),
        &[
            Path::new("--builtin-schema"),
            Path::new("vendor.compose-spec"),
            file,
        ],
    )
}

#[test]
fn the_compose_file_follows_the_compose_spec() {
    let (ok, out) = check_compose(&docker_dir().join("compose.yaml"));
    assert!(ok, "check-jsonschema: {out}");
}

#[test]
fn the_compose_spec_check_refuses_a_misspelled_key() {
    let text = std::fs::read_to_string(docker_dir().join("compose.yaml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("compose.yaml");
    std::fs::write(&bad, text.replace("restart:", "restrat:")).unwrap();
    let (ok, out) = check_compose(&bad);
    assert!(!ok && out.contains("restrat"), "check-jsonschema: {out}");
}

/// A service's bind mounts: (source relative to deploy/docker, target).
fn mounts(service: &str) -> Vec<(String, String)> {
    let compose = yaml("deploy/docker/compose.yaml");
    let volumes = compose["services"][service]["volumes"].as_sequence();
    volumes
        .into_iter()
        .flatten()
        .filter_map(|v| {
            let parts: Vec<&str> = v.as_str().unwrap().split(':').collect();
            parts[0]
                .starts_with('.')
                .then(|| (parts[0].to_string(), parts[1].to_string()))
        })
        .collect()
}

#[test]
fn every_mounted_file_exists_and_the_build_points_at_the_dockerfile() {
    let compose = yaml("deploy/docker/compose.yaml");
    for service in compose["services"].as_mapping().unwrap().keys() {
        for (source, _) in mounts(service.as_str().unwrap()) {
            assert!(
                docker_dir().join(&source).exists(),
                "{service:?} mounts {source}"
            );
        }
    }
    let build = &compose["services"]["breakwater"]["build"];
    let context = docker_dir().join(build["context"].as_str().unwrap());
    assert_eq!(context.canonicalize().unwrap(), repo());
    assert!(context
        .join(build["dockerfile"].as_str().unwrap())
        .is_file());
}

#[test]
fn breakwater_accepts_the_mounted_config_and_serves_prometheus() {
    let compose = yaml("deploy/docker/compose.yaml");
    let command: Vec<&str> = compose["services"]["breakwater"]["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let config_at = command[command.iter().position(|&a| a == "--config").unwrap() + 1];
    let (source, _) = mounts("breakwater")
        .into_iter()
        .find(|(_, target)| target == config_at)
        .expect("the --config file is mounted");
    let text = std::fs::read_to_string(docker_dir().join(&source)).unwrap();
    let (_, kafka, http) = load_config(&text, &source);
    assert_demo_slos(&text, &source);
    assert_eq!(kafka.brokers, "kafka:9092");
    let listen = http.listen.expect("http.listen is on");
    assert!(
        listen.ip().is_unspecified(),
        "{listen}: other containers must reach it"
    );
    // Prometheus scrapes that port on the breakwater service.
    let scrape = yaml("deploy/docker/prometheus.yml");
    let target = scrape["scrape_configs"][0]["static_configs"][0]["targets"][0]
        .as_str()
        .unwrap();
    assert_eq!(target, format!("breakwater:{}", listen.port()));
}

#[test]
fn the_stacks_prometheus_config_and_rules_load() {
    // Laid out as the prometheus service's mounts put them.
    let dir = tempfile::tempdir().unwrap();
    for (source, target) in mounts("prometheus") {
        let name = Path::new(&target).file_name().unwrap();
        std::fs::copy(docker_dir().join(&source), dir.path().join(name)).unwrap();
    }
    let (ok, out) = promtool(dir.path(), &["check", "config", "prometheus.yml"], None);
    assert!(ok && out.contains("SUCCESS: 1 rule files found"), "{out}");
}

#[test]
fn grafana_gets_the_prometheus_datasource_and_the_dashboard() {
    let source = yaml("deploy/docker/grafana/provisioning/datasources/prometheus.yml");
    let url = source["datasources"][0]["url"].as_str().unwrap();
    assert_eq!(url, "http://prometheus:9090");
    let provider = yaml("deploy/docker/grafana/provisioning/dashboards/breakwater.yml");
    let path = provider["providers"][0]["options"]["path"]
        .as_str()
        .unwrap();
    let dashboard = mounts("grafana")
        .into_iter()
        .find(|(source, _)| source.ends_with("grafana/breakwater.json"))
        .expect("the dashboard is mounted");
    assert_eq!(Path::new(&dashboard.1).parent().unwrap(), Path::new(path));
    let provisioning = mounts("grafana")
        .into_iter()
        .find(|(_, target)| target == "/etc/grafana/provisioning")
        .expect("provisioning is mounted");
    assert_eq!(provisioning.0, "./grafana/provisioning");
}
