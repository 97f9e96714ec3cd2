//! The deployment files are checked, not just kept: every Kubernetes manifest validates
//! against the Kubernetes 1.37 schemas (the pinned `kubernetes-validate`, strict: unknown
//! fields fail), the kustomization names only files that exist, and the validator is
//! shown to catch a broken manifest.

use std::path::{Path, PathBuf};
use std::process::Command;

fn k8s_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/k8s")
}

fn validator() -> PathBuf {
    let python = std::env::var("FRAMEHOUSE_TEST_PYTHON")
        .expect("FRAMEHOUSE_TEST_PYTHON is not set: run the tests with `make test`");
    Path::new(&python).with_file_name("kubernetes-validate")
}

fn manifests() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for sub in ["base", "keda"] {
        for e in std::fs::read_dir(k8s_dir().join(sub)).unwrap().flatten() {
            if e.path().extension().is_some_and(|x| x == "yaml") {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

fn validate(files: &[PathBuf]) -> std::process::Output {
    Command::new(validator())
        .args(["--strict", "--kubernetes-version", "1.37.0"])
        .args(files)
        .output()
        .expect("running kubernetes-validate")
}

#[test]
#[cfg_attr(skip_python, ignore = "FRAMEHOUSE_TEST_SKIP_PYTHON=1")]
fn every_kubernetes_manifest_validates_against_the_schemas() {
    let files = manifests();
    assert!(files.len() >= 8, "{files:?}");
    let out = validate(&files);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "kubernetes-validate failed:\n{text}");
    // Only kinds that are not part of Kubernetes itself may go unchecked: kustomize's own
    // file and KEDA's custom resources.
    for line in text.lines().filter(|l| l.contains("Couldn't find schema")) {
        assert!(
            ["Kustomization", "ScaledObject", "TriggerAuthentication"]
                .iter()
                .any(|kind| line.contains(&format!("kind {kind} "))),
            "an unchecked resource: {line}"
        );
    }
    for kind in [
        "deployment/framehouse-api",
        "deployment/framehouse-worker",
        "deployment/framehouse-scheduler",
        "service/framehouse-api",
        "poddisruptionbudget/framehouse-api",
        "horizontalpodautoscaler/framehouse-worker",
        "configmap/framehouse",
        "secret/framehouse",
    ] {
        assert!(
            text.contains(&format!("passed for resource {kind} ")),
            "{kind} not validated:\n{text}"
        );
    }
}

#[test]
#[cfg_attr(skip_python, ignore = "FRAMEHOUSE_TEST_SKIP_PYTHON=1")]
fn the_validator_refuses_a_broken_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let api = std::fs::read_to_string(k8s_dir().join("base/api.yaml")).unwrap();
    for (name, broken) in [
        (
            "replicas.yaml",
            api.replace("replicas: 2", "replicas: \"two\""),
        ),
        (
            "unknown-field.yaml",
            api.replace(
                "terminationGracePeriodSeconds: 45",
                "terminationGracePeriodSecs: 45",
            ),
        ),
    ] {
        assert_ne!(broken, api, "{name}: the mutation applied");
        let path = dir.path().join(name);
        std::fs::write(&path, broken).unwrap();
        assert!(
            !validate(&[path]).status.success(),
            "{name} should fail validation"
        );
    }
}

#[test]
fn the_kustomization_names_existing_files_and_the_probes_match_the_drain() {
    let base = k8s_dir().join("base");
    let kustomization = std::fs::read_to_string(base.join("kustomization.yaml")).unwrap();
    let mut listed = 0;
    let mut in_resources = false;
    for line in kustomization.lines() {
        if line.starts_with("resources:") {
            in_resources = true;
            continue;
        }
        if in_resources {
            match line.trim().strip_prefix("- ") {
                Some(file) => {
                    assert!(base.join(file).exists(), "{file} is listed but missing");
                    listed += 1;
                }
                None if !line.starts_with(' ') => in_resources = false,
                None => {}
            }
        }
    }
    assert!(listed >= 7, "{kustomization}");
    // Each role's grace period covers preStop plus the app's own shutdown grace.
    let api = std::fs::read_to_string(base.join("api.yaml")).unwrap();
    assert!(api.contains("path: /readyz") && api.contains("path: /healthz"));
    assert!(api.contains("terminationGracePeriodSeconds: 45"));
    let config = std::fs::read_to_string(base.join("configmap.yaml")).unwrap();
    assert!(config.contains("FRAMEHOUSE_SHUTDOWN_GRACE_SECS: \"30\""));
    let worker = std::fs::read_to_string(base.join("worker.yaml")).unwrap();
    assert!(
        worker.contains("terminationGracePeriodSeconds: 135") && worker.contains("value: \"120\"")
    );
}

/// `KEY: value` pairs of a ConfigMap's `data` or a Secret's `stringData`.
fn env_pairs(yaml: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in yaml.lines() {
        if line == "data:" || line == "stringData:" {
            inside = true;
            continue;
        }
        if !line.starts_with(' ') {
            inside = false;
        }
        let entry = line.trim();
        if !inside || entry.starts_with('#') || entry.is_empty() {
            continue;
        }
        let (key, value) = entry.split_once(": ").expect("KEY: value");
        let value = value.trim();
        let value = value
            .strip_prefix('\'')
            .and_then(|v| v.strip_suffix('\''))
            .or_else(|| value.strip_prefix('"').and_then(|v| v.strip_suffix('"')))
            .unwrap_or(value);
        out.push((key.to_string(), value.to_string()));
    }
    out
}

/// The settings the manifests give are ones Framehouse knows (its configuration refuses
/// unknown keys): `framehouse config` accepts the ConfigMap and Secret as environment.
#[test]
fn the_manifests_settings_are_accepted_by_the_binary() {
    let base = k8s_dir().join("base");
    let mut env = env_pairs(&std::fs::read_to_string(base.join("configmap.yaml")).unwrap());
    env.extend(env_pairs(
        &std::fs::read_to_string(base.join("secret.yaml")).unwrap(),
    ));
    assert!(env.len() >= 10, "{env:?}");
    env.push((
        "FRAMEHOUSE_CLUSTER__NODE_ID".into(),
        "framehouse-api-7d9f".into(),
    ));
    env.push((
        "FRAMEHOUSE_CLUSTER__ADVERTISE_URL".into(),
        "http://10.1.2.3:8080".into(),
    ));
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_framehouse"))
        .arg("config")
        .envs(env)
        .env("FRAMEHOUSE_DATA_DIR", dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("backend = \"s3\""), "{text}");
    assert!(text.contains("node_id = \"framehouse-api-7d9f\""), "{text}");
    assert!(
        text.contains("trusted_proxies = [\"10.244.0.0/16\"]"),
        "{text}"
    );
}
