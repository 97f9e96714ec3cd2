//! Output formats and their options, animations, colour management and metadata.

use imaging::transform::{TransformFormat, TransformSpec};

use crate::helpers::*;

const ALL: [TransformFormat; 5] = [
    TransformFormat::Jpeg,
    TransformFormat::Png,
    TransformFormat::Webp,
    TransformFormat::Avif,
    TransformFormat::Gif,
];

#[test]
fn every_output_format_decodes_at_the_asked_size_with_its_magic() {
    let fx = Fixtures::new();
    let src = fx.picture("land.jpg", 640, 480, landscape);
    let spec = TransformSpec {
        width: Some(160),
        ..Default::default()
    };
    for format in ALL {
        let out = transform(&src, &spec, format);
        assert_eq!((out.width, out.height, out.format), (160, 120, format));
        let px = Pixels::decode(&out.bytes);
        // The sun is in the upper right, the hill in the lower part: colours survive.
        let sky = px.rgb(20, 10);
        assert!(sky[2] > sky[0], "{format:?}: sky is blue, got {sky:?}");
    }
}

#[test]
fn metadata_never_survives_in_any_format() {
    let fx = Fixtures::new();
    let jpeg = read(&fx.picture("land.jpg", 320, 240, landscape));
    let tagged = fx.write(
        "exif.jpg",
        &crate::fixtures::with_exif(&jpeg, 1, "secret-marker"),
    );
    for format in ALL {
        let out = transform(&tagged, &TransformSpec::default(), format);
        let leaked = out.bytes.windows(13).any(|w| w == b"secret-marker");
        assert!(!leaked, "{format:?} kept EXIF");
        let exif = out.bytes.windows(6).any(|w| w == b"Exif\0\0");
        assert!(!exif, "{format:?} has an EXIF block");
    }
}

#[test]
fn lower_quality_gives_fewer_bytes() {
    let fx = Fixtures::new();
    let src = fx.picture("land.png", 400, 300, stripes);
    for format in [
        TransformFormat::Jpeg,
        TransformFormat::Webp,
        TransformFormat::Avif,
    ] {
        let at = |q| {
            let spec = TransformSpec {
                quality: Some(q),
                ..Default::default()
            };
            transform(&src, &spec, format).bytes.len()
        };
        let (low, high) = (at(20), at(90));
        assert!(low < high, "{format:?}: q20 {low} B vs q90 {high} B");
    }
}

#[test]
fn lossless_webp_round_trips_the_pixels_exactly() {
    let fx = Fixtures::new();
    let rgb = render(200, 150, stripes);
    let src = fx.save("src.png", &rgb, 200, 150, 3);
    let spec = TransformSpec {
        lossless: true,
        ..Default::default()
    };
    let out = transform(&src, &spec, TransformFormat::Webp);
    assert_eq!(Pixels::decode(&out.bytes).data, rgb);
    let lossy = transform(&src, &TransformSpec::default(), TransformFormat::Webp);
    assert_ne!(Pixels::decode(&lossy.bytes).data, rgb);
}

#[test]
fn prog_1_makes_progressive_jpeg_and_interlaced_png() {
    let fx = Fixtures::new();
    let src = fx.picture("land.jpg", 320, 240, landscape);
    let prog = TransformSpec {
        progressive: true,
        ..Default::default()
    };
    let has = |bytes: &[u8], marker: u8| bytes.windows(2).any(|w| w == [0xFF, marker]);
    let out = transform(&src, &prog, TransformFormat::Jpeg);
    assert!(has(&out.bytes, 0xC2), "SOF2 (progressive)");
    let base = transform(&src, &TransformSpec::default(), TransformFormat::Jpeg);
    assert!(
        has(&base.bytes, 0xC0) && !has(&base.bytes, 0xC2),
        "baseline SOF0"
    );
    // IHDR's interlace method is byte 28 of the file.
    assert_eq!(transform(&src, &prog, TransformFormat::Png).bytes[28], 1);
    let png = transform(&src, &TransformSpec::default(), TransformFormat::Png);
    assert_eq!(png.bytes[28], 0);
}

/// Three 64×48 frames (red, green, blue) shown 70 ms each, looping 3 times, as `name`.
fn animation(fx: &Fixtures, name: &str) -> std::path::PathBuf {
    let frames: Vec<u8> = [RED, GREEN, BLUE]
        .iter()
        .flat_map(|c| c.repeat(64 * 48))
        .collect();
    let path = fx.save(&format!("{name}[page-height=48]"), &frames, 64, 144, 3);
    if !name.ends_with(".gif") {
        return path;
    }
    // libvips cannot be told delays here, so patch the GIF: every Graphic Control Extension
    // (21 F9 04 flags delay-lo delay-hi …) gets 7 cs, the NETSCAPE2.0 block a loop count of 3.
    let mut gif = read(&path);
    for i in 0..gif.len() - 8 {
        if gif[i..i + 3] == [0x21, 0xF9, 0x04] {
            gif[i + 4] = 7;
        }
        // "NETSCAPE2.0", then 03 01 loop-lo loop-hi 00.
        if &gif[i..i + 8] == b"NETSCAPE" {
            (gif[i + 13], gif[i + 14]) = (3, 0);
        }
    }
    fx.write(name, &gif)
}

#[test]
fn animated_gif_and_webp_stay_animated_with_every_frame_resized_and_timed() {
    let fx = Fixtures::new();
    let spec = TransformSpec {
        width: Some(32),
        rotate: imaging::transform::Rotation::Deg90,
        ..Default::default()
    };
    for input in ["anim.gif", "anim.webp"] {
        let src = animation(&fx, input);
        for format in [TransformFormat::Webp, TransformFormat::Gif] {
            let what = format!("{input} → {format:?}");
            let out = transform(&src, &spec, format);
            assert_eq!(
                (out.width, out.height),
                (24, 32),
                "{what}: turned frame size"
            );
            assert_eq!(frames(&out.bytes), (3, 24, 32), "{what}");
            let last = Pixels::decode_page(&out.bytes, 2);
            assert_near(last.rgb(12, 16), BLUE, 12, &what);
            if input.ends_with(".gif") {
                assert_eq!(field(&out.bytes, "delay").trim(), "70 70 70", "{what}");
                // libvips reports GIF loop counts in its own convention; kept as loaded.
                let looped = field(&read(&src), "loop");
                assert_eq!(field(&out.bytes, "loop"), looped, "{what}");
                assert_ne!(
                    looped.trim(),
                    "0",
                    "the fixture loops a finite number of times"
                );
            }
        }
    }
}

#[test]
fn frame_n_or_a_still_format_takes_one_frame() {
    let fx = Fixtures::new();
    let src = animation(&fx, "anim.gif");
    let first = TransformSpec {
        frame: Some(0),
        ..Default::default()
    };
    let out = transform(&src, &first, TransformFormat::Webp);
    assert_eq!(frames(&out.bytes), (1, 64, 48));
    assert_near(Pixels::decode(&out.bytes).rgb(30, 20), RED, 12, "frame 0");
    let second = TransformSpec {
        frame: Some(1),
        ..Default::default()
    };
    let out = transform(&src, &second, TransformFormat::Png);
    assert_near(Pixels::decode(&out.bytes).rgb(30, 20), GREEN, 2, "frame 1");
    let out = transform(&src, &TransformSpec::default(), TransformFormat::Jpeg);
    assert_eq!((out.width, out.height), (64, 48), "JPEG takes frame 0");
}

#[test]
fn cmyk_and_icc_tagged_jpegs_come_out_as_srgb() {
    let fx = Fixtures::new();
    let red = solid(&fx, "red.png", 64, 64, RED);
    let red = libvips::VipsImage::new_from_file(red.to_str().unwrap()).unwrap();
    for profile in ["cmyk", "p3"] {
        let converted = libvips::ops::icc_transform(&red, profile).expect("icc_transform");
        let path = fx.path(&format!("{profile}.jpg"));
        converted
            .image_write_to_file(path.to_str().unwrap())
            .expect("save tagged jpeg");
        let out = transform(&path, &TransformSpec::default(), TransformFormat::Png);
        let px = Pixels::decode(&out.bytes);
        assert_eq!(px.bands, 3, "{profile}");
        let [r, g, b] = px.rgb(32, 32);
        assert!(r > 200 && g < 80 && b < 80, "{profile}: {r},{g},{b}");
    }
}
