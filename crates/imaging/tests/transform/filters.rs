//! Filters and enhancements: each moves the statistic it is about, in the right direction.

use imaging::transform::{TransformFormat, TransformSpec};

use crate::helpers::*;

const PNG: TransformFormat = TransformFormat::Png;

fn filtered(src: &std::path::Path, spec: TransformSpec) -> Pixels {
    let out = transform(src, &spec, PNG);
    let px = Pixels::decode(&out.bytes);
    assert_eq!((px.w, px.h), (240, 160), "filters keep the size");
    px
}

fn picture(fx: &Fixtures) -> std::path::PathBuf {
    fx.picture("land.png", 240, 160, landscape)
}

#[test]
fn blur_lowers_and_sharpen_raises_high_frequency_energy() {
    let fx = Fixtures::new();
    // Fine texture: a 3 px checker (total variation of a lone step edge survives a blur).
    let busy = make(&fx, "fine.png", 240, 160, 3, |x, y| {
        vec![if (x / 3 + y / 3) % 2 == 0 { 40 } else { 220 }; 3]
    });
    let before = filtered(&busy, TransformSpec::default()).energy();
    let blurred = filtered(
        &busy,
        TransformSpec {
            blur: Some(3.0),
            ..Default::default()
        },
    );
    assert!(
        blurred.energy() < before / 2.0,
        "{} vs {before}",
        blurred.energy()
    );

    let soft = picture(&fx);
    let before = filtered(&soft, TransformSpec::default()).energy();
    let sharpened = filtered(
        &soft,
        TransformSpec {
            sharpen: Some(1.5),
            ..Default::default()
        },
    );
    assert!(
        sharpened.energy() > before * 1.05,
        "{} vs {before}",
        sharpened.energy()
    );
}

#[test]
fn blur_of_a_transparent_image_does_not_darken_its_edges() {
    let fx = Fixtures::new();
    // Opaque white disc-ish square on fully transparent black.
    let src = make(&fx, "alpha.png", 240, 160, 4, |x, y| {
        let inside = (80..160).contains(&x) && (40..120).contains(&y);
        if inside {
            vec![255, 255, 255, 255]
        } else {
            vec![0, 0, 0, 0]
        }
    });
    let px = filtered(
        &src,
        TransformSpec {
            blur: Some(4.0),
            ..Default::default()
        },
    );
    // At the soft edge the colour stays white; only alpha fades (premultiplied blur).
    let edge = (80, 80);
    assert!(px.alpha(edge.0, edge.1) < 250 && px.alpha(edge.0, edge.1) > 30);
    assert_near(px.rgb(edge.0, edge.1), [255, 255, 255], 3, "edge colour");
}

#[test]
fn gray_makes_every_pixel_neutral() {
    let fx = Fixtures::new();
    let px = filtered(
        &picture(&fx),
        TransformSpec {
            gray: true,
            ..Default::default()
        },
    );
    assert_eq!(px.bands, 3);
    for y in (0..160).step_by(7) {
        for x in (0..240).step_by(7) {
            let [r, g, b] = px.rgb(x, y);
            assert!(r == g && g == b, "({x},{y}) = {r},{g},{b}");
        }
    }
    assert!(px.stddev(0) > 10.0, "still a picture");
}

#[test]
fn sepia_turns_grey_into_warm_brown() {
    let fx = Fixtures::new();
    let grey = solid(&fx, "grey.png", 240, 160, GREY);
    let px = filtered(
        &grey,
        TransformSpec {
            sepia: true,
            ..Default::default()
        },
    );
    let [r, g, b] = px.rgb(120, 80);
    assert!(r > g && g > b, "{r},{g},{b}");
    assert_near([r, g, b], [173, 154, 120], 2, "CSS sepia(1) of 128");
}

#[test]
fn brightness_contrast_and_saturation_move_mean_and_spread() {
    let fx = Fixtures::new();
    let src = picture(&fx);
    let plain = filtered(&src, TransformSpec::default());
    let with = |spec: TransformSpec| filtered(&src, spec);

    let brighter = with(TransformSpec {
        brightness: 40,
        ..Default::default()
    });
    let darker = with(TransformSpec {
        brightness: -40,
        ..Default::default()
    });
    assert!(brighter.mean(1) > plain.mean(1) + 30.0);
    assert!(darker.mean(1) < plain.mean(1) - 30.0);

    let more = with(TransformSpec {
        contrast: 50,
        ..Default::default()
    });
    let less = with(TransformSpec {
        contrast: -50,
        ..Default::default()
    });
    assert!(more.stddev(1) > plain.stddev(1) * 1.2);
    assert!(less.stddev(1) < plain.stddev(1) * 0.7);

    // Chroma: the spread between channels of a pixel.
    let chroma = |px: &Pixels| {
        let mut sum = 0.0;
        for y in (0..160).step_by(4) {
            for x in (0..240).step_by(4) {
                let [r, g, b] = px.rgb(x, y).map(f64::from);
                sum += r.max(g).max(b) - r.min(g).min(b);
            }
        }
        sum
    };
    let vivid = with(TransformSpec {
        saturation: 50,
        ..Default::default()
    });
    let washed = with(TransformSpec {
        saturation: -100,
        ..Default::default()
    });
    assert!(chroma(&vivid) > chroma(&plain) * 1.2);
    assert!(chroma(&washed) < chroma(&plain) * 0.1);
}

#[test]
fn gamma_above_one_lifts_the_mid_tones() {
    let fx = Fixtures::new();
    let dark = solid(&fx, "dark.png", 240, 160, [64, 64, 64]);
    let px = filtered(
        &dark,
        TransformSpec {
            gamma: Some(2.0),
            ..Default::default()
        },
    );
    // 255 · (64/255)^(1/2) ≈ 128.
    assert_near(px.rgb(10, 10), [128, 128, 128], 2, "gamma 2");
}

#[test]
fn norm_stretches_a_low_contrast_image_to_the_full_range() {
    let fx = Fixtures::new();
    let flat = make(&fx, "flat.png", 240, 160, 3, |x, _| {
        vec![(100 + x * 50 / 239) as u8; 3]
    });
    let px = filtered(
        &flat,
        TransformSpec {
            normalize: true,
            ..Default::default()
        },
    );
    let (lo, hi) = px.min_max(0);
    assert!(lo <= 10 && hi >= 245, "{lo}..{hi}");
}

#[test]
fn bg_flattens_transparency_onto_the_colour() {
    let fx = Fixtures::new();
    let src = make(&fx, "half.png", 240, 160, 4, |x, _| {
        if x < 120 {
            vec![0, 255, 0, 255]
        } else {
            vec![0, 0, 0, 0]
        }
    });
    let px = filtered(
        &src,
        TransformSpec {
            background: Some([255, 0, 0]),
            ..Default::default()
        },
    );
    assert_eq!(px.bands, 3, "no alpha left");
    assert_near(px.rgb(200, 80), RED, 0, "transparent half");
    assert_near(px.rgb(20, 80), GREEN, 0, "opaque half");
}
