//! Runs the transform-option parser over the fuzz seed corpus so that `cargo test` exercises
//! it without nightly or libFuzzer. Seeds named `valid-*` must parse, `invalid-*` must not;
//! any other file (e.g. one a fuzzing run added) must only not panic. Whatever parses must
//! round-trip through the canonical form, as the fuzz target asserts.

use std::path::Path;

use imaging::transform::TransformSpec;

fn assert_round_trip(name: &str, spec: &TransformSpec) {
    let canonical = spec.canonical();
    if canonical.is_empty() {
        assert_eq!(
            *spec,
            TransformSpec::default(),
            "{name}: only the identity is empty"
        );
        return;
    }
    let again = TransformSpec::parse(&canonical)
        .unwrap_or_else(|e| panic!("{name}: canonical `{canonical}` does not parse: {e}"));
    assert_eq!(
        again, *spec,
        "{name}: `{canonical}` parses to something else"
    );
    assert_eq!(
        again.canonical(),
        canonical,
        "{name}: canonical form is not idempotent"
    );
}

#[test]
fn every_seed_in_the_fuzz_corpus_parses_as_its_name_says_and_round_trips() {
    // The run-time variable first: a test binary reused from a checkout elsewhere (a
    // shared target dir) still reads this checkout's corpus.
    let root = std::env::var("CARGO_MANIFEST_DIR").unwrap_or(env!("CARGO_MANIFEST_DIR").into());
    let dir = Path::new(&root).join("fuzz/corpus/transform_spec");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus directory") {
        let path = entry.expect("corpus entry").path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&path).expect("corpus file");
        seen += 1;
        // The fuzz target skips non-UTF-8 input too: the server only ever has a `&str`.
        let Ok(ops) = std::str::from_utf8(&bytes) else {
            assert!(!name.starts_with("valid-"), "{name}: not UTF-8");
            continue;
        };
        match TransformSpec::parse(ops) {
            Ok(spec) => {
                assert!(
                    !name.starts_with("invalid-"),
                    "{name}: `{ops}` was accepted"
                );
                assert_round_trip(&name, &spec);
            }
            Err(e) => {
                assert!(
                    !name.starts_with("valid-"),
                    "{name}: `{ops}` was rejected: {e}"
                );
                assert!(!e.reason.is_empty(), "{name}: error without a reason");
            }
        }
    }
    assert!(seen >= 30, "only {seen} corpus files in {}", dir.display());
}
