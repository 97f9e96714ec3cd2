// Included by the build scripts of the crates whose tests need servers (see
// `crates/*/build.rs`). A test that needs a service is gated by a `cfg`: outside CI,
// `FRAMEHOUSE_TEST_SKIP_<NAME>=1` sets `skip_<name>`, and the gated tests carry
// `#[cfg_attr(skip_<name>, ignore = "…")]`, so they show as ignored, never as passed.
// Under `CI=true` no gate is ever set: a missing service fails the run.

/// The services tests can be told to skip.
const GATES: &[&str] = &[
    "postgres", "oidc", "python", "dns", "s3", "nginx", "rabbitmq", "redis",
];

fn emit_test_gates() {
    println!("cargo::rerun-if-env-changed=CI");
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    for gate in GATES {
        let var = format!("FRAMEHOUSE_TEST_SKIP_{}", gate.to_uppercase());
        println!("cargo::rerun-if-env-changed={var}");
        println!("cargo::rustc-check-cfg=cfg(skip_{gate})");
        if !ci && std::env::var(&var).is_ok_and(|v| v == "1") {
            println!("cargo::rustc-cfg=skip_{gate}");
        }
    }
}
