//! deploy/kubernetes/ checked offline: kubernetes-validate (strict) for the
//! core kinds; for the Prometheus Operator's kinds, the PrometheusRule's
//! groups must equal deploy/prometheus/rules.yml (and load in promtool),
//! and the ServiceMonitor must select the Service by a port it has. The
//! cross-references (selectors, ports, probes, config mount) and the
//! ConfigMap's config, through `breakwater run`'s loaders, are checked too.

mod support;

use std::path::Path;

use serde_yaml::Value;
use support::deploy::{assert_demo_slos, load_config, repo, run, venv_tool, yaml};
use support::prometheus::promtool;

const CORE: [&str; 4] = [
    "configmap.yaml",
    "deployment.yaml",
    "service.yaml",
    "poddisruptionbudget.yaml",
];

fn k8s(file: &str) -> Value {
    yaml(&format!("deploy/kubernetes/{file}"))
}

fn validate(dir: &Path, files: &[&str]) -> (bool, String) {
    let tool = venv_tool("KUBERNETES_VALIDATE", "kubernetes-validate");
    let mut args = vec!["--strict"];
    args.extend(files);
    run(&tool, dir, &args)
}

#[test]
fn the_core_manifests_are_valid_kubernetes() {
    let (ok, out) = validate(&repo().join("deploy/kubernetes"), &CORE);
    assert!(ok, "kubernetes-validate: {out}");
    for file in CORE {
        assert!(out.contains(&format!("{file} passed")), "{file}: {out}");
    }
}

#[test]
fn strict_validation_refuses_a_misspelled_field() {
    let text = std::fs::read_to_string(repo().join("deploy/kubernetes/deployment.yaml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bad = text.replace("readOnlyRootFilesystem", "readOnlyRootFS");
    std::fs::write(dir.path().join("deployment.yaml"), bad).unwrap();
    let (ok, out) = validate(dir.path(), &["deployment.yaml"]);
    assert!(
        !ok && out.contains("readOnlyRootFS"),
        "kubernetes-validate: {out}"
    );
}

#[test]
fn the_kustomization_lists_every_manifest() {
    let listed: Vec<String> = k8s("kustomization.yaml")["resources"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let mut present: Vec<String> = std::fs::read_dir(repo().join("deploy/kubernetes"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
        .collect();
    present.sort();
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(sorted, present);
}

#[test]
fn the_prometheus_rule_carries_exactly_the_rules_of_deploy_prometheus() {
    let rule = k8s("prometheusrule.yaml");
    assert_eq!(rule["kind"], "PrometheusRule");
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    let rules = yaml("deploy/prometheus/rules.yml");
    assert!(
        rule["spec"]["groups"] == rules["groups"],
        "deploy/kubernetes/prometheusrule.yaml differs from deploy/prometheus/rules.yml: \
         regenerate it with the command in its header"
    );
    // And the groups load in Prometheus' own checker.
    let dir = tempfile::tempdir().unwrap();
    let spec = serde_yaml::to_string(&rule["spec"]).unwrap();
    std::fs::write(dir.path().join("rules.yml"), spec).unwrap();
    let (ok, out) = promtool(dir.path(), &["check", "rules", "rules.yml"], None);
    assert!(ok, "{out}");
}

fn labels(v: &Value) -> &serde_yaml::Mapping {
    v.as_mapping().expect("a label map")
}

/// Whether every `selector` label is among `labels`.
fn selects(selector: &Value, labels_of: &Value) -> bool {
    let have = labels(labels_of);
    labels(selector).iter().all(|(k, v)| have.get(k) == Some(v))
}

#[test]
fn service_monitor_service_and_budget_select_the_pods() {
    let deployment = k8s("deployment.yaml");
    let pod = &deployment["spec"]["template"];
    let pod_labels = &pod["metadata"]["labels"];
    assert!(selects(
        &deployment["spec"]["selector"]["matchLabels"],
        pod_labels
    ));
    let service = k8s("service.yaml");
    assert!(selects(&service["spec"]["selector"], pod_labels));
    let pdb = k8s("poddisruptionbudget.yaml");
    assert!(selects(&pdb["spec"]["selector"]["matchLabels"], pod_labels));

    let monitor = k8s("servicemonitor.yaml");
    assert_eq!(monitor["kind"], "ServiceMonitor");
    assert!(selects(
        &monitor["spec"]["selector"]["matchLabels"],
        &service["metadata"]["labels"]
    ));
    let service_ports: Vec<&Value> = service["spec"]["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| &p["name"])
        .collect();
    for endpoint in monitor["spec"]["endpoints"].as_sequence().unwrap() {
        assert!(service_ports.contains(&&endpoint["port"]), "{endpoint:?}");
        assert_eq!(endpoint["path"], "/metrics");
    }
    // The Service's target port is the container's named port.
    let container = &pod["spec"]["containers"][0];
    let container_ports: Vec<&Value> = container["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| &p["name"])
        .collect();
    for port in service["spec"]["ports"].as_sequence().unwrap() {
        assert!(container_ports.contains(&&port["targetPort"]), "{port:?}");
    }
}

#[test]
fn the_pod_is_probed_confined_and_bounded() {
    let deployment = k8s("deployment.yaml");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    for probe in ["livenessProbe", "readinessProbe"] {
        assert_eq!(container[probe]["httpGet"]["port"], "http");
    }
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert!(pod["securityContext"]["runAsUser"].as_u64().unwrap() > 0);
    let confined = &container["securityContext"];
    assert_eq!(confined["readOnlyRootFilesystem"], true);
    assert_eq!(confined["allowPrivilegeEscalation"], false);
    for kind in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            assert!(
                container["resources"][kind][resource].is_string(),
                "{kind}.{resource} is not set"
            );
        }
    }
}

#[test]
fn breakwater_accepts_the_config_map_it_mounts() {
    let deployment = k8s("deployment.yaml");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let args: Vec<&str> = container["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let config_at = Path::new(args[args.iter().position(|&a| a == "--config").unwrap() + 1]);
    // The --config file is a key of the ConfigMap mounted in its directory.
    let mount = container["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|m| Path::new(m["mountPath"].as_str().unwrap()) == config_at.parent().unwrap())
        .expect("the config directory is mounted");
    let volume = pod["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap();
    let map = k8s("configmap.yaml");
    assert_eq!(volume["configMap"]["name"], map["metadata"]["name"]);
    let key = config_at.file_name().unwrap().to_str().unwrap();
    let text = map["data"][key]
        .as_str()
        .expect("the ConfigMap has the file");

    let (_, _, http) = load_config(text, "the ConfigMap's breakwater.yaml");
    assert_demo_slos(text, "the ConfigMap's breakwater.yaml");
    let listen = http.listen.expect("http.listen is on");
    assert!(
        listen.ip().is_unspecified(),
        "{listen}: the kubelet must reach it"
    );
    assert_eq!(
        container["ports"][0]["containerPort"].as_u64(),
        Some(u64::from(listen.port()))
    );
}
