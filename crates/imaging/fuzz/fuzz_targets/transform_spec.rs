//! Fuzzes the transform-option parser: it must never panic, and whatever it accepts must
//! round-trip through the canonical form (the result-cache key).
#![no_main]

use imaging::transform::TransformSpec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Ops come from a URL path the server has already decoded to a `&str`.
    let Ok(ops) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(spec) = TransformSpec::parse(ops) else {
        return;
    };
    let canonical = spec.canonical();
    if canonical.is_empty() {
        assert_eq!(spec, TransformSpec::default(), "only the identity is empty");
        return;
    }
    let again = TransformSpec::parse(&canonical).expect("the canonical form parses");
    assert_eq!(again, spec, "`{canonical}` parses to something else");
    assert_eq!(
        again.canonical(),
        canonical,
        "the canonical form is not idempotent"
    );
});
