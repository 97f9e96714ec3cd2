use super::*;
use crate::transform::{CropRect, Gravity, ResizeFit, Rotation};

fn ok(ops: &str) -> TransformSpec {
    TransformSpec::parse(ops).unwrap_or_else(|e| panic!("`{ops}` should parse: {e}"))
}

fn err(ops: &str) -> SpecError {
    match TransformSpec::parse(ops) {
        Ok(spec) => panic!("`{ops}` should be rejected, got {spec:?}"),
        Err(e) => e,
    }
}

fn canon(ops: &str) -> String {
    ok(ops).canonical()
}

/// Asserts that `ops` is rejected, naming `token`, with a reason containing `why`.
fn rejects(ops: &str, token: &str, why: &str) {
    let e = err(ops);
    assert_eq!(e.token, token, "token named for `{ops}` ({e})");
    assert!(
        e.reason.contains(why),
        "reason for `{ops}` is `{}`, wanted `{why}`",
        e.reason
    );
}

#[test]
fn key_table_is_in_enum_order_and_alphabetical() {
    for (i, (key, _)) in Key::ALL.iter().enumerate() {
        assert_eq!(*key as usize, i);
    }
    let names: Vec<_> = Key::ALL.iter().map(|(_, n)| *n).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted);
}

#[test]
fn every_valid_token_reaches_its_field() {
    let s = ok("w_300,h_200,fit_cover,up_1,dpr_2,crop_1:2:3:4,g_smart,rot_90,flip_h,flip_v");
    assert_eq!(
        (s.width, s.height, s.fit, s.upscale, s.dpr),
        (Some(300), Some(200), ResizeFit::Cover, true, 2)
    );
    assert_eq!(
        s.crop,
        Some(CropRect {
            x: 1,
            y: 2,
            width: 3,
            height: 4
        })
    );
    assert_eq!(
        (s.gravity, s.rotate, s.flip_h, s.flip_v),
        (Gravity::Smart, Rotation::Deg90, true, true)
    );

    let s =
        ok("blur_1.5,sharpen_0.3,gray_1,sepia_1,bright_-100,contrast_100,sat_-5,gamma_2.2,norm_1");
    assert_eq!(
        (s.blur, s.sharpen, s.gamma),
        (Some(1.5), Some(0.3), Some(2.2))
    );
    assert_eq!((s.gray, s.sepia, s.normalize), (true, true, true));
    assert_eq!((s.brightness, s.contrast, s.saturation), (-100, 100, -5));

    let s = ok("bg_FF8000,radius_5000,pad_1,q_1,lossless_1,prog_1,frame_0,p_my-preset_2");
    assert_eq!(
        (s.background, s.radius, s.pad),
        (Some([255, 128, 0]), Some(5000), Some(1))
    );
    assert_eq!(
        (s.quality, s.lossless, s.progressive, s.frame),
        (Some(1), true, true, Some(0))
    );
    assert_eq!(s.preset.as_deref(), Some("my-preset_2"));

    let s = ok("wmtile_1,wmscale_100,wmop_0,wmpos_northwest,wm_logo_dark");
    let wm = s.watermark.expect("watermark");
    assert_eq!(
        (wm.name.as_str(), wm.position, wm.opacity),
        ("logo_dark", Gravity::NorthWest, 0)
    );
    assert_eq!((wm.scale, wm.tile), (Some(100), true));
}

#[test]
fn every_fit_gravity_and_rotation_name_parses_and_round_trips() {
    for (fit, name) in FITS {
        assert_eq!(ok(&format!("fit_{name}")).fit, fit);
    }
    for (g, name) in GRAVITIES {
        assert_eq!(ok(&format!("g_{name}")).gravity, g);
        assert_eq!(
            ok(&format!("wm_a,wmpos_{name}"))
                .watermark
                .unwrap()
                .position,
            g
        );
    }
    assert_eq!(ok("g_0.25:1").gravity, Gravity::Focal(0.25, 1.0));
    assert_eq!(ok("g_0:0").gravity, Gravity::Focal(0.0, 0.0));
    assert_eq!(ok("rot_0").rotate, Rotation::None);
    assert_eq!(ok("rot_180").rotate, Rotation::Deg180);
    assert_eq!(ok("rot_270").rotate, Rotation::Deg270);
}

#[test]
fn range_edges_are_accepted() {
    for ops in [
        "w_1",
        "w_12000",
        "h_1",
        "h_12000",
        "dpr_1",
        "dpr_4",
        "blur_0.3",
        "blur_100",
        "sharpen_10",
        "gamma_0.1",
        "gamma_10",
        "bright_100",
        "sat_-100",
        "radius_1",
        "pad_5000",
        "q_100",
        "frame_10000",
        "wm_a,wmop_100",
        "wm_a,wmscale_1",
        "crop_0:0:1:1",
        "crop_4294967294:0:1:1",
    ] {
        ok(ops);
    }
    let long_name = "a".repeat(64);
    assert_eq!(
        ok(&format!("wm_{long_name}")).watermark.unwrap().name,
        long_name
    );
}

#[test]
fn out_of_range_values_are_rejected_with_the_range() {
    rejects("w_0", "w_0", "width must be between 1 and 12000");
    assert_eq!(
        err("w_0").to_string(),
        "invalid option `w_0`: width must be between 1 and 12000"
    );
    rejects("h_12001", "h_12001", "height must be between 1 and 12000");
    rejects("dpr_0", "dpr_0", "between 1 and 4");
    rejects("dpr_5", "dpr_5", "between 1 and 4");
    rejects("blur_0.299", "blur_0.299", "between 0.3 and 100");
    rejects("blur_100.001", "blur_100.001", "between 0.3 and 100");
    rejects("sharpen_10.5", "sharpen_10.5", "between 0.3 and 10");
    rejects("gamma_0", "gamma_0", "between 0.1 and 10");
    rejects("bright_101", "bright_101", "between -100 and 100");
    rejects("contrast_-101", "contrast_-101", "between -100 and 100");
    rejects("sat_-1000", "sat_-1000", "between -100 and 100");
    rejects("radius_0", "radius_0", "between 1 and 5000");
    rejects("pad_5001", "pad_5001", "between 1 and 5000");
    rejects("q_0", "q_0", "between 1 and 100");
    rejects("q_101", "q_101", "between 1 and 100");
    rejects("frame_10001", "frame_10001", "between 0 and 10000");
    rejects("wm_a,wmop_101", "wmop_101", "between 0 and 100");
    rejects("wm_a,wmscale_0", "wmscale_0", "between 1 and 100");
    rejects("g_1.001:0", "g_1.001:0", "between 0 and 1");
    rejects(
        "w_99999999999999999999999",
        "w_99999999999999999999999",
        "between 1 and 12000",
    );
}

#[test]
fn malformed_numbers_are_rejected() {
    rejects("w_+300", "w_+300", "whole number");
    rejects("w_-1", "w_-1", "whole number");
    rejects("w_1.0", "w_1.0", "whole number");
    rejects("w_0x10", "w_0x10", "whole number");
    rejects("bright_+5", "bright_+5", "whole number");
    rejects("bright_--5", "bright_--5", "whole number");
    rejects("bright_-", "bright_-", "whole number");
    for bad in [
        "1e2", "nan", "inf", ".5", "1.", "1..5", "-1", "+1", "1.5.5", "١",
    ] {
        let ops = format!("blur_{bad}");
        let e = err(&ops);
        assert!(e.token.starts_with("blur_"), "{ops}: {e}");
    }
    rejects("blur_1e2", "blur_1e2", "decimal number");
}

#[test]
fn flags_take_only_one_or_zero() {
    for key in ["up", "gray", "sepia", "norm", "lossless", "prog"] {
        ok(&format!("{key}_1"));
        assert_eq!(ok(&format!("{key}_0")), TransformSpec::default());
        rejects(
            &format!("{key}_2"),
            &format!("{key}_2"),
            &format!("expected `{key}_1`"),
        );
        rejects(&format!("{key}_true"), &format!("{key}_true"), "expected");
    }
    rejects(
        "wm_a,wmtile_yes",
        "wmtile_yes",
        "expected `wmtile_1` or `wmtile_0`",
    );
}

#[test]
fn flips_are_exactly_flip_h_and_flip_v() {
    rejects("flip_h_1", "flip_h_1", "`flip_h` or `flip_v`");
    rejects("flip_x", "flip_x", "`flip_h` or `flip_v`");
    rejects("flip", "flip", "`flip_h` or `flip_v`");
    rejects("flip_H", "flip_H", "`flip_h` or `flip_v`");
    rejects(
        "flip_h,flip_h",
        "flip_h",
        "`flip_h` is given more than once",
    );
}

#[test]
fn enumerated_values_must_be_known_and_lowercase() {
    rejects("fit_crop", "fit_crop", "fit must be one of");
    rejects("fit_Cover", "fit_Cover", "fit must be one of");
    rejects("g_up", "g_up", "gravity must be");
    rejects("g_0.5", "g_0.5", "gravity must be");
    rejects("g_0.5:0.5:0.5", "g_0.5:0.5:0.5", "gravity must be");
    rejects("g_-0.1:0", "g_-0.1:0", "gravity must be");
    rejects("rot_45", "rot_45", "rotation must be 0, 90, 180 or 270");
    rejects("rot_360", "rot_360", "rotation");
    rejects("wm_a,wmpos_smart", "wmpos_smart", "compass gravity");
    rejects("wm_a,wmpos_0.5:0.5", "wmpos_0.5:0.5", "compass gravity");
}

#[test]
fn crop_needs_four_whole_numbers_and_a_non_empty_area() {
    rejects("crop_1:2:3", "crop_1:2:3", "X:Y:W:H");
    rejects("crop_1:2:3:4:5", "crop_1:2:3:4:5", "X:Y:W:H");
    rejects("crop_0:0:0:5", "crop_0:0:0:5", "at least 1");
    rejects("crop_0:0:5:0", "crop_0:0:5:0", "at least 1");
    rejects("crop_1:2::4", "crop_1:2::4", "X:Y:W:H");
    rejects("crop_-1:2:3:4", "crop_-1:2:3:4", "X:Y:W:H");
    rejects("crop_4294967296:0:1:1", "crop_4294967296:0:1:1", "X:Y:W:H");
    rejects(
        "crop_4294967295:0:1:1",
        "crop_4294967295:0:1:1",
        "extends past",
    );
}

#[test]
fn background_is_six_hex_digits_in_either_case() {
    assert_eq!(ok("bg_00aaFF").background, Some([0, 0xaa, 0xff]));
    rejects("bg_fff", "bg_fff", "6 hex digits");
    rejects("bg_#ffffff", "bg_#ffffff", "6 hex digits");
    rejects("bg_fffffff", "bg_fffffff", "6 hex digits");
    rejects("bg_gggggg", "bg_gggggg", "6 hex digits");
    rejects("bg_+fffff", "bg_+fffff", "6 hex digits");
}

#[test]
fn names_are_lowercase_ascii_up_to_64_characters() {
    assert_eq!(ok("p_a-b_c9").preset.as_deref(), Some("a-b_c9"));
    rejects("p_Avatar", "p_Avatar", "preset name must be 1 to 64");
    rejects("wm_logo.png", "wm_logo.png", "watermark name");
    rejects("wm_a/b", "wm_a/b", "watermark name");
    rejects("wm_é", "wm_é", "watermark name");
    let long = format!("wm_{}", "a".repeat(65));
    assert_eq!(
        err(&long).reason,
        "watermark name must be 1 to 64 characters of a-z, 0-9, `_` and `-`"
    );
}

#[test]
fn watermark_modifiers_without_a_watermark_are_rejected() {
    rejects("wmop_50", "wmop_50", "need `wm_NAME`");
    rejects("w_10,wmpos_north,wmtile_1", "wmpos_north", "need `wm_NAME`");
    rejects("wmscale_10", "wmscale_10", "need `wm_NAME`");
    rejects("wmtile_0", "wmtile_0", "need `wm_NAME`");
    // Order does not matter when the watermark is there.
    assert_eq!(ok("wmop_50,wm_a").watermark.unwrap().opacity, 50);
}

#[test]
fn repeated_keys_are_rejected_naming_the_key() {
    rejects("w_100,h_5,w_100", "w_100", "`w` is given more than once");
    rejects("g_north,g_smart", "g_smart", "`g` is given more than once");
    rejects("up_0,up_1", "up_1", "`up` is given more than once");
    rejects("wm_a,wm_b", "wm_b", "`wm` is given more than once");
    // Different keys sharing a prefix are not repeats.
    ok("wm_a,wmop_5,w_1,p_x,pad_2");
}

#[test]
fn structure_errors_name_the_token() {
    rejects("", "", "no options given");
    rejects("w_1,", "", "stray comma");
    rejects(",w_1", "", "stray comma");
    rejects("w_1,,h_1", "", "stray comma");
    rejects("w_1, h_1", " h_1", "whitespace");
    rejects("w_1\t", "w_1\t", "whitespace");
    rejects("w_1\n", "w_1\n", "whitespace");
    rejects("width_300", "width_300", "unknown option `width`");
    rejects("W_300", "W_300", "unknown option `W`");
    rejects("_300", "_300", "missing option name");
    rejects("w", "w", "`w` needs a value");
    rejects("w_", "w_", "`w` needs a value");
    rejects("p_", "p_", "`p` needs a value");
    rejects("orig", "orig", "unknown option `orig`");
}

#[test]
fn overlong_input_is_rejected_and_the_quoted_token_is_cut() {
    assert!(err(&"x".repeat(1024)).reason.starts_with("unknown option"));
    assert!(err(&"x".repeat(1025))
        .reason
        .contains("longer than 1024 bytes"));
    let long = "w_1,".repeat(300);
    let e = err(&long);
    assert!(e.reason.contains("longer than 1024 bytes"));
    assert!(e.token.chars().count() <= MAX_QUOTED_LEN + 1 && e.token.ends_with('…'));
    let e = err(&format!("x{}", "é".repeat(200)));
    assert!(e.token.ends_with('…') && e.token.chars().count() == MAX_QUOTED_LEN + 1);
}

#[test]
fn canonical_sorts_keys_drops_defaults_and_normalises_numbers() {
    assert_eq!(canon("w_0300"), "w_300");
    assert_eq!(
        canon("h_200,w_300,fit_cover,g_smart"),
        "fit_cover,g_smart,h_200,w_300"
    );
    assert_eq!(canon("blur_1.50"), "blur_1.5");
    assert_eq!(canon("blur_01.000"), "blur_1");
    assert_eq!(canon("g_0.5:0.50"), "g_0.5:0.5");
    assert_eq!(canon("g_1:0.0"), "g_1:0");
    assert_eq!(canon("bg_ABCDEF"), "bg_abcdef");
    assert_eq!(canon("bright_-007,sat_0,contrast_-0"), "bright_-7");
    assert_eq!(
        canon("w_5,fit_inside,g_center,dpr_1,rot_0,up_0,gray_0"),
        "w_5"
    );
    assert_eq!(
        canon("w_5,wm_a,wmpos_southeast,wmop_100,wmtile_0"),
        "w_5,wm_a"
    );
    assert_eq!(
        canon("wmtile_1,wmscale_10,wmpos_north,wmop_5,wm_a"),
        "wm_a,wmop_5,wmpos_north,wmscale_10,wmtile_1"
    );
    assert_eq!(canon("flip_v,flip_h,rot_270"), "flip_h,flip_v,rot_270");
    assert_eq!(canon("p_avatar,w_64"), "p_avatar,w_64");
    assert_eq!(canon("frame_0,q_080"), "frame_0,q_80");
}

#[test]
fn floats_keep_three_decimals_rounding_half_up() {
    assert_eq!(canon("blur_1.23449"), "blur_1.234");
    assert_eq!(canon("blur_1.2345"), "blur_1.235");
    assert_eq!(canon("gamma_0.0995"), "gamma_0.1");
    assert_eq!(canon("g_0.9999:0.0004"), "g_1:0");
    assert_eq!(ok("blur_1.2345"), ok("blur_1.235"));
    // Rounding happens before the range check, on the stored value.
    assert_eq!(canon("blur_0.2995"), "blur_0.3");
    rejects("blur_0.2994", "blur_0.2994", "between 0.3 and 100");
}

#[test]
fn the_identity_canonicalises_to_the_empty_string() {
    assert_eq!(TransformSpec::default().canonical(), "");
    assert_eq!(canon("fit_inside"), "");
    assert_eq!(canon("up_0,rot_0,dpr_1"), "");
}

#[test]
fn a_full_spec_round_trips_through_its_canonical_form() {
    let ops = "bg_010203,blur_0.333,bright_-1,contrast_2,crop_0:1:2:3,dpr_3,fit_outside,flip_h,\
        flip_v,frame_7,g_0.125:0.875,gamma_9.999,gray_1,h_12000,lossless_1,norm_1,p_x,pad_9,\
        prog_1,q_55,radius_4,rot_90,sat_-3,sepia_1,sharpen_9.9,up_1,w_1,wm_w-1,wmop_0,\
        wmpos_center,wmscale_3,wmtile_1";
    let spec = ok(ops);
    assert_eq!(spec.canonical(), ops);
    assert_eq!(ok(&spec.canonical()), spec);
}

#[test]
fn merged_onto_lets_set_options_win_and_drops_the_preset() {
    let base = ok("w_128,h_128,fit_cover,g_smart,q_70,gray_1,wm_brand,wmop_50");
    let merged = ok("p_avatar,w_64,g_north,sharpen_1").merged_onto(&base);
    assert_eq!(
        merged.canonical(),
        "fit_cover,g_north,gray_1,h_128,q_70,sharpen_1,w_64,wm_brand,wmop_50"
    );
    assert_eq!(merged.preset, None);

    // The watermark is replaced whole, not field by field.
    let merged = ok("wm_other").merged_onto(&base);
    assert_eq!(merged.watermark, Some(WatermarkSpec::named("other")));

    // Defaults in the overlay leave the base alone; the identity overlay keeps the base.
    assert_eq!(ok("gray_0,fit_inside").merged_onto(&base), base);
    assert_eq!(TransformSpec::default().merged_onto(&base), base);
    let with_preset = ok("p_inner,w_1");
    assert_eq!(
        TransformSpec::default().merged_onto(&with_preset).preset,
        None
    );
}
