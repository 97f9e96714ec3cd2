//! Property tests: the parser never panics, valid specs round-trip through the canonical
//! form, and token order does not matter. Valid ops strings are generated in deliberately
//! non-canonical spellings (leading zeros, trailing decimal zeros, upper-case hex).

use proptest::prelude::*;

use super::*;
use std::fmt;

/// The round-trip law the cache key relies on; also what the fuzz target asserts.
pub(super) fn assert_round_trip(spec: &TransformSpec) {
    let canonical = spec.canonical();
    if canonical.is_empty() {
        assert_eq!(
            *spec,
            TransformSpec::default(),
            "only the identity is empty"
        );
        return;
    }
    let again = TransformSpec::parse(&canonical)
        .unwrap_or_else(|e| panic!("canonical `{canonical}` does not parse: {e}"));
    assert_eq!(again, *spec, "`{canonical}` parses to something else");
    assert_eq!(
        again.canonical(),
        canonical,
        "canonical form is not idempotent"
    );
}

fn padded(n: impl fmt::Display) -> impl Strategy<Value = String> {
    (0..3usize).prop_map(move |zeros| format!("{}{n}", "0".repeat(zeros)))
}

fn uint(lo: u32, hi: u32) -> BoxedStrategy<String> {
    (lo..=hi).prop_flat_map(padded).boxed()
}

/// A decimal of `lo..=hi` thousandths, spelt with 0–3 decimals plus noise that rounds away.
fn decimal(lo: u64, hi: u64) -> BoxedStrategy<String> {
    let noise = prop::sample::select(vec!["", "0", "00", "4", "0001"]);
    (lo..=hi, noise, any::<bool>())
        .prop_map(|(m, noise, trim)| {
            let full = format!("{}.{:03}{noise}", m / 1000, m % 1000);
            if trim && noise.is_empty() {
                full.trim_end_matches('0').trim_end_matches('.').to_string()
            } else {
                full
            }
        })
        .boxed()
}

fn one_of(values: &[&'static str]) -> BoxedStrategy<String> {
    prop::sample::select(values.to_vec())
        .prop_map(str::to_string)
        .boxed()
}

fn gravity(crops: bool) -> BoxedStrategy<String> {
    let mut names: Vec<&str> = GRAVITIES.iter().map(|(_, n)| *n).collect();
    if !crops {
        return one_of(&names);
    }
    names.push("smart");
    let focal = (decimal(0, 1000), decimal(0, 1000)).prop_map(|(x, y)| format!("{x}:{y}"));
    prop_oneof![one_of(&names), focal].boxed()
}

/// A valid token for `key`, with its `key_` prefix.
fn token(key: Key) -> BoxedStrategy<String> {
    let value = match key {
        Key::W | Key::H => uint(1, 12_000),
        Key::Fit => one_of(&["cover", "contain", "fill", "inside", "outside"]),
        Key::Dpr => uint(1, 4),
        Key::Crop => (
            0..u32::MAX / 2,
            0..u32::MAX / 2,
            1..u32::MAX / 2,
            1..u32::MAX / 2,
        )
            .prop_map(|(x, y, w, h)| format!("{x}:{y}:{w}:{h}"))
            .boxed(),
        Key::G => gravity(true),
        Key::WmPos => gravity(false),
        Key::Rot => one_of(&["0", "90", "180", "270"]),
        Key::FlipH | Key::FlipV => return Just(key.name().to_string()).boxed(),
        Key::Blur => decimal(300, 100_000),
        Key::Sharpen => decimal(300, 10_000),
        Key::Gamma => decimal(100, 10_000),
        Key::Bright | Key::Contrast | Key::Sat => (-100i32..=100, 0..2usize)
            .prop_map(|(n, z)| {
                let sign = if n < 0 { "-" } else { "" };
                format!("{sign}{}{}", "0".repeat(z), n.abs())
            })
            .boxed(),
        Key::Bg => "[0-9a-fA-F]{6}".boxed(),
        Key::Radius | Key::Pad => uint(1, 5_000),
        Key::Wm | Key::P => "[a-z0-9_-]{1,64}".boxed(),
        Key::WmOp | Key::Q => uint(u32::from(key == Key::Q), 100),
        Key::WmScale => uint(1, 100),
        Key::Frame => uint(0, 10_000),
        Key::Up | Key::Gray | Key::Sepia | Key::Norm | Key::Lossless | Key::Prog | Key::WmTile => {
            one_of(&["0", "1"])
        }
    };
    value
        .prop_map(move |v| format!("{}_{v}", key.name()))
        .boxed()
}

/// The tokens of a valid ops string, in canonical key order (shuffle them to taste).
fn valid_tokens() -> impl Strategy<Value = Vec<String>> {
    let keys: Vec<Key> = Key::ALL.iter().map(|(k, _)| *k).collect();
    prop::sample::subsequence(keys, 1..=Key::ALL.len()).prop_flat_map(|mut keys| {
        // Watermark modifiers are only valid with a watermark.
        if keys.iter().any(|k| k.is_watermark_modifier()) && !keys.contains(&Key::Wm) {
            keys.push(Key::Wm);
        }
        keys.into_iter().map(token).collect::<Vec<_>>()
    })
}

/// Strings that look like ops: known and unknown keys with value-ish junk.
fn token_like() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        prop::sample::select(Key::ALL.iter().map(|(_, n)| *n).collect::<Vec<_>>())
            .prop_map(str::to_string),
        "[a-z_]{0,8}",
    ];
    let token = (key, "[-+0-9a-fA-Z.:_ ]{0,10}", any::<bool>()).prop_map(|(k, v, sep)| {
        if sep {
            format!("{k}_{v}")
        } else {
            format!("{k}{v}")
        }
    });
    prop::collection::vec(token, 0..12).prop_map(|t| t.join(","))
}

proptest! {
    #[test]
    fn parse_never_panics_on_arbitrary_strings(s in any::<String>()) {
        if let Ok(spec) = TransformSpec::parse(&s) {
            assert_round_trip(&spec);
        }
    }

    #[test]
    fn parse_never_panics_on_token_like_strings(s in token_like()) {
        if let Ok(spec) = TransformSpec::parse(&s) {
            assert_round_trip(&spec);
        }
    }

    #[test]
    fn generated_valid_specs_round_trip_and_canonical_is_idempotent(tokens in valid_tokens()) {
        let ops = tokens.join(",");
        let spec = TransformSpec::parse(&ops)
            .unwrap_or_else(|e| panic!("generated `{ops}` was rejected: {e}"));
        assert_round_trip(&spec);
    }

    #[test]
    fn shuffling_tokens_does_not_change_the_canonical_form(
        (tokens, shuffled) in valid_tokens().prop_flat_map(|t| (Just(t.clone()), Just(t).prop_shuffle()))
    ) {
        let a = TransformSpec::parse(&tokens.join(",")).expect("valid");
        let b = TransformSpec::parse(&shuffled.join(",")).expect("valid");
        prop_assert_eq!(a.canonical(), b.canonical());
        prop_assert_eq!(a, b);
    }
}
