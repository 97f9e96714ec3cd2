//! The clients no one here wrote, as the tests run them: aws-cli against the test
//! SeaweedFS and pika (`tests/python/amqp_queue.py`) against a RabbitMQ. Shared by the API
//! tests and the cluster test (which includes this file by path).

use std::process::Command;

fn service_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests with `make test` (scripts/with-test-services.sh)")
    })
}

/// Runs aws-cli against the test SeaweedFS; returns stdout, panicking on failure.
pub fn aws(args: &[&str]) -> Vec<u8> {
    let out = Command::new(service_env("FRAMEHOUSE_TEST_AWS"))
        .args([
            "--endpoint-url",
            &service_env("FRAMEHOUSE_TEST_S3_ENDPOINT"),
        ])
        .args(["--region", "us-east-1", "--output", "json"])
        .args(args)
        .env("AWS_ACCESS_KEY_ID", service_env("FRAMEHOUSE_TEST_S3_KEY"))
        .env(
            "AWS_SECRET_ACCESS_KEY",
            service_env("FRAMEHOUSE_TEST_S3_SECRET"),
        )
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .output()
        .expect("aws-cli runs");
    assert!(
        out.status.success(),
        "aws {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Runs `tests/python/amqp_queue.py` (pika) with `args`; its stdout.
pub fn pika(args: &[&str]) -> String {
    let out = Command::new(service_env("FRAMEHOUSE_TEST_PYTHON"))
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/python/amqp_queue.py"
        ))
        .args(args)
        .output()
        .expect("running pika");
    assert!(
        out.status.success(),
        "pika {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
