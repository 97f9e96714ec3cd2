//! The engine end to end on real files: sniff, probe, limits, presets, metadata, pHash.

mod fixtures;

use fixtures::{decode, landscape, read, render, stripes, Fixtures};
use imaging::{
    check_limits, default_presets, hamming, probe_file, process_file, sniff, ImageFormat,
    ImagingError, LimitError, Limits, OutputFormat, Processed,
};

fn sizes(p: &Processed) -> Vec<(String, OutputFormat, u32, u32)> {
    p.renditions
        .iter()
        .map(|r| (r.preset.clone(), r.format, r.width, r.height))
        .collect()
}

fn process(path: &std::path::Path) -> Result<Processed, ImagingError> {
    let format = sniff(&read(path)).expect("fixture sniffs");
    process_file(path, format, &default_presets())
}

#[test]
fn every_accepted_format_is_sniffed_from_its_bytes_and_probed() {
    let fx = Fixtures::new();
    let rgb = render(120, 80, landscape);
    let cases = [
        ("a.jpg", ImageFormat::Jpeg),
        ("a.png", ImageFormat::Png),
        ("a.gif", ImageFormat::Gif),
        ("a.webp", ImageFormat::Webp),
        ("a.tif", ImageFormat::Tiff),
        ("a.heic", ImageFormat::Heic),
        ("a.avif", ImageFormat::Avif),
    ];
    for (name, format) in cases {
        let path = fx.save(name, &rgb, 120, 80, 3);
        assert_eq!(sniff(&read(&path)), Some(format), "{name}");
        let probe = probe_file(&path, format).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            (probe.width, probe.height, probe.frames),
            (120, 80, 1),
            "{name}"
        );
    }
    let bmp = fx.write("a.bmp", &fixtures::bmp(120, 80, &rgb));
    assert_eq!(sniff(&read(&bmp)), Some(ImageFormat::Bmp));
    let probe = probe_file(&bmp, ImageFormat::Bmp).unwrap();
    assert_eq!((probe.width, probe.height, probe.frames), (120, 80, 1));
}

#[test]
fn names_do_not_matter_only_content_does() {
    let fx = Fixtures::new();
    let jpeg = fx.picture("photo.jpg", 64, 48, landscape);
    let disguised = fx.write("photo.png", &read(&jpeg));
    assert_eq!(sniff(&read(&disguised)), Some(ImageFormat::Jpeg));
    assert_eq!(sniff(b"just some text, not an image\n"), None);
}

#[test]
fn animations_and_multipage_files_report_their_frames() {
    let fx = Fixtures::new();
    let frames: Vec<u8> = [landscape, stripes, landscape]
        .iter()
        .flat_map(|s| render(64, 48, *s))
        .collect();
    for (name, format) in [
        ("anim.gif", ImageFormat::Gif),
        ("anim.webp", ImageFormat::Webp),
        ("pages.tif", ImageFormat::Tiff),
    ] {
        let path = fx.save(&format!("{name}[page-height=48]"), &frames, 64, 144, 3);
        let probe = probe_file(&path, format).unwrap();
        assert_eq!(
            (probe.width, probe.height, probe.frames),
            (64, 48, 3),
            "{name}"
        );
        // Presets come from the first frame.
        let done = process_file(&path, format, &default_presets()).unwrap();
        assert_eq!((done.width, done.height), (64, 48), "{name}");
    }
}

#[test]
fn upload_of_a_declared_100000px_png_is_rejected_before_decoding() {
    let fx = Fixtures::new();
    let path = fx.write("bomb.png", &fixtures::png_header_only(100_000, 100_000));
    let started = std::time::Instant::now();
    let probe = probe_file(&path, ImageFormat::Png).unwrap();
    assert!(
        started.elapsed().as_millis() < 500,
        "probing must not decode"
    );
    assert_eq!((probe.width, probe.height), (100_000, 100_000));
    let err = check_limits(&probe, &Limits::default()).unwrap_err();
    assert!(
        matches!(err, LimitError::SideTooLong { width: 100_000, .. }),
        "{err}"
    );
    let err = check_limits(
        &probe,
        &Limits {
            max_side: 100_000,
            ..Limits::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            LimitError::TooManyPixels {
                pixels: 10_000_000_000,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn truncated_and_garbage_files_fail_with_corrupt_not_a_panic() {
    let fx = Fixtures::new();
    let jpeg = read(&fx.picture("whole.jpg", 640, 480, landscape));
    let header_cut = fx.write("header.jpg", &jpeg[..100]);
    assert!(matches!(
        probe_file(&header_cut, ImageFormat::Jpeg),
        Err(ImagingError::Corrupt(_))
    ));
    let data_cut = fx.write("data.jpg", &jpeg[..jpeg.len() / 2]);
    let outcome = probe_file(&data_cut, ImageFormat::Jpeg).and_then(|_| process(&data_cut));
    assert!(
        matches!(outcome, Err(ImagingError::Corrupt(_))),
        "{outcome:?}"
    );

    let mut garbage = vec![0xFF, 0xD8, 0xFF, 0xE0];
    garbage.extend((0..4000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    let garbage = fx.write("garbage.jpg", &garbage);
    assert!(probe_file(&garbage, ImageFormat::Jpeg).is_err());
    assert!(process(&garbage).is_err());
    for format in [
        ImageFormat::Png,
        ImageFormat::Gif,
        ImageFormat::Webp,
        ImageFormat::Heic,
        ImageFormat::Bmp,
    ] {
        assert!(probe_file(&garbage, format).is_err(), "{format:?}");
    }
}

#[test]
fn a_5k_jpeg_gives_every_preset_in_webp_and_jpeg() {
    let fx = Fixtures::new();
    let path = fx.picture("big.jpg", 5120, 2880, landscape);
    let done = process(&path).unwrap();
    assert_eq!((done.width, done.height), (5120, 2880));
    let expected = [
        ("thumb", 256, 256),
        ("small", 640, 360),
        ("large", 1920, 1080),
    ];
    let want: Vec<_> = expected
        .iter()
        .flat_map(|&(n, w, h)| {
            [
                (n.to_string(), OutputFormat::Webp, w, h),
                (n.to_string(), OutputFormat::Jpeg, w, h),
            ]
        })
        .collect();
    assert_eq!(sizes(&done), want);
    for r in &done.renditions {
        let magic = match r.format {
            OutputFormat::Jpeg => ImageFormat::Jpeg,
            OutputFormat::Webp => ImageFormat::Webp,
        };
        assert_eq!(sniff(&r.bytes), Some(magic));
        assert_eq!(decode(&r.bytes), (r.width, r.height, 3), "{r:?}");
    }
}

#[test]
fn a_small_source_is_never_upscaled() {
    let fx = Fixtures::new();
    let done = process(&fx.picture("small.jpg", 300, 200, landscape)).unwrap();
    let dims: Vec<_> = done
        .renditions
        .iter()
        .map(|r| (r.preset.as_str(), r.width, r.height))
        .collect();
    assert_eq!(
        dims.iter().step_by(2).copied().collect::<Vec<_>>(),
        [
            ("thumb", 256, 200),
            ("small", 300, 200),
            ("large", 300, 200)
        ]
    );
}

#[test]
fn exif_orientation_is_applied_and_no_metadata_survives() {
    let fx = Fixtures::new();
    let marker = "FH-GPS-MARKER-52N";
    let plain = read(&fx.picture("plain.jpg", 600, 400, landscape));
    let path = fx.write("rotated.jpg", &fixtures::with_exif(&plain, 6, marker));
    let header = libvips::VipsImage::new_from_file(path.to_str().unwrap()).unwrap();
    assert_eq!(
        header.get_orientation(),
        6,
        "fixture carries EXIF orientation 6"
    );

    let done = process(&path).unwrap();
    assert_eq!((done.width, done.height), (400, 600));
    let large = done
        .renditions
        .iter()
        .find(|r| r.preset == "large")
        .unwrap();
    assert_eq!((large.width, large.height), (400, 600));
    for r in &done.renditions {
        let has = |needle: &[u8]| r.bytes.windows(needle.len()).any(|w| w == needle);
        assert!(
            !has(b"Exif") && !has(marker.as_bytes()),
            "{r:?} kept metadata"
        );
        assert!(
            !has(b"ICC_PROFILE") && !has(b"http://ns.adobe.com/xap"),
            "{r:?} kept metadata"
        );
    }
}

#[test]
fn alpha_is_flattened_for_jpeg_and_kept_in_webp() {
    let fx = Fixtures::new();
    let rgba: Vec<u8> = render(200, 100, landscape)
        .chunks(3)
        .enumerate()
        .flat_map(|(i, p)| [p[0], p[1], p[2], if i % 200 < 100 { 255 } else { 0 }])
        .collect();
    let done = process(&fx.save("alpha.png", &rgba, 200, 100, 4)).unwrap();
    for r in &done.renditions {
        let bands = if r.format == OutputFormat::Webp { 4 } else { 3 };
        assert_eq!(decode(&r.bytes).2, bands, "{r:?}");
    }
}

#[test]
fn heic_avif_and_bmp_uploads_are_processed() {
    let fx = Fixtures::new();
    let rgb = render(800, 600, landscape);
    let bmp = fx.write("a.bmp", &fixtures::bmp(800, 600, &rgb));
    for path in [
        fx.save("a.heic", &rgb, 800, 600, 3),
        fx.save("a.avif", &rgb, 800, 600, 3),
        bmp,
    ] {
        let done = process(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!((done.width, done.height), (800, 600));
        assert_eq!(
            sizes(&done)[2..4]
                .iter()
                .map(|s| (s.2, s.3))
                .collect::<Vec<_>>(),
            [(640, 480); 2]
        );
    }
}

#[test]
fn phash_matches_edits_of_a_picture_and_separates_different_ones() {
    let fx = Fixtures::new();
    let original = process(&fx.picture("orig.jpg", 1200, 800, landscape)).unwrap();
    let brighter: Vec<u8> = render(600, 400, landscape)
        .iter()
        .map(|&c| c.saturating_add(20))
        .collect();
    let edited = process(&fx.save("edit.png", &brighter, 600, 400, 3)).unwrap();
    let other = process(&fx.picture("other.jpg", 1200, 800, stripes)).unwrap();
    let near = hamming(original.phash, edited.phash);
    let far = hamming(original.phash, other.phash);
    assert!(near < 10, "edited copy is {near} bits away");
    assert!(far > 20, "unrelated picture is only {far} bits away");
}

#[test]
fn the_placeholder_is_a_thumbhash_of_the_picture_in_its_colours_and_shape() {
    let fx = Fixtures::new();
    // Left half red, right half blue, twice as wide as high; and a grey one.
    let rgb = render(400, 200, |x, _| {
        if x < 0.5 {
            [220.0, 20.0, 20.0]
        } else {
            [20.0, 20.0, 220.0]
        }
    });
    let done = process(&fx.save("halves.png", &rgb, 400, 200, 3)).unwrap();
    assert!(
        (10..=40).contains(&done.placeholder.len()),
        "{}",
        done.placeholder.len()
    );
    let ratio = thumbhash::thumb_hash_to_approximate_aspect_ratio(&done.placeholder).unwrap();
    assert!((1.6..=2.4).contains(&ratio), "aspect {ratio}");
    let (w, _, pixels) = thumbhash::thumb_hash_to_rgba(&done.placeholder).unwrap();
    let (left, right) = (&pixels[..4], &pixels[(w - 1) * 4..w * 4]);
    assert!(left[0] > left[2] + 60, "reddish on the left: {left:?}");
    assert!(right[2] > right[0] + 60, "bluish on the right: {right:?}");
    let grey = fx.save("grey.png", &vec![128u8; 64 * 64], 64, 64, 1);
    let done = process(&grey).unwrap();
    let (r, g, b, _) = thumbhash::thumb_hash_to_average_rgba(&done.placeholder).unwrap();
    assert!(
        (r - g).abs() < 0.05 && (g - b).abs() < 0.05,
        "grey stays grey: {r} {g} {b}"
    );
}
