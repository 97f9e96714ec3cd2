//! 64-bit perceptual hash (pHash) of a 32×32 greyscale image, and Hamming distance.
//!
//! Hand-written on purpose: hashing a 32×32 buffer is a 32-point DCT and a median, about
//! forty lines, while the usual crates (`image` + `image_hasher`) would bring a second
//! decoding and resizing stack beside libvips just for this.
//!
//! Scheme (as pHash.org): 2D DCT-II of the 32×32 luminance, keep the 8×8 lowest frequencies
//! without the DC row and column (rows/columns 1..=8, so overall brightness does not count),
//! and set one bit per coefficient above their median.

use std::f64::consts::PI;
use std::sync::OnceLock;

/// Side of the greyscale square the hash is computed from.
pub const HASH_SIDE: usize = 32;
const N: usize = HASH_SIDE;

/// Number of differing bits between two hashes (0 = same picture, ~32 = unrelated).
pub fn hamming(a: u64, b: u64) -> u32 {
    (a ^ b).count_ones()
}

/// pHash of a row-major 32×32 8-bit greyscale image.
pub fn phash(grey: &[u8; N * N]) -> u64 {
    let coeffs = dct2(grey);
    let mut low = [0f64; 64];
    for (i, v) in low.iter_mut().enumerate() {
        *v = coeffs[(i / 8 + 1) * N + (i % 8 + 1)];
    }
    let mut sorted = low;
    sorted.sort_by(f64::total_cmp);
    let median = (sorted[31] + sorted[32]) / 2.0;
    low.iter()
        .enumerate()
        .filter(|(_, &v)| v > median)
        .fold(0u64, |hash, (i, _)| hash | 1 << i)
}

/// cos(π(2n+1)k / 2N), indexed [k][n]; the normalisation factors do not change which
/// coefficients are above the median within rows/columns 1..=8, so they are left out.
fn cosines() -> &'static [[f64; N]; N] {
    static TABLE: OnceLock<[[f64; N]; N]> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = [[0.0; N]; N];
        for (k, row) in t.iter_mut().enumerate() {
            for (n, c) in row.iter_mut().enumerate() {
                *c = (PI * (2 * n + 1) as f64 * k as f64 / (2 * N) as f64).cos();
            }
        }
        t
    })
}

/// Separable 2D DCT-II: rows, then columns. O(2·N³) = 65k multiply-adds.
fn dct2(grey: &[u8; N * N]) -> Vec<f64> {
    let c = cosines();
    let mut rows = vec![0.0; N * N];
    for y in 0..N {
        for k in 0..N {
            rows[y * N + k] = (0..N).map(|x| f64::from(grey[y * N + x]) * c[k][x]).sum();
        }
    }
    let mut out = vec![0.0; N * N];
    for x in 0..N {
        for k in 0..N {
            out[k * N + x] = (0..N).map(|y| rows[y * N + x] * c[k][y]).sum();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A smooth "scene" in continuous coordinates (0..1): two blobs on a gradient.
    fn scene(u: f64, v: f64) -> f64 {
        let blob = |cx: f64, cy: f64, r: f64| (-((u - cx).powi(2) + (v - cy).powi(2)) / r).exp();
        40.0 + 80.0 * u + 120.0 * blob(0.3, 0.35, 0.02) - 60.0 * blob(0.7, 0.7, 0.04)
    }

    /// Samples `f` at the centre of each pixel of `side`×`side`, averaged over `k`×`k`
    /// subpixels (k > 1 is a box-filtered downscale of a k× larger rendering).
    fn render(k: usize, f: impl Fn(f64, f64) -> f64) -> [u8; N * N] {
        let side = (N * k) as f64;
        let mut g = [0u8; N * N];
        for (i, p) in g.iter_mut().enumerate() {
            let (x, y) = (i % N, i / N);
            let sum: f64 = (0..k * k)
                .map(|j| {
                    f(
                        ((x * k + j % k) as f64 + 0.5) / side,
                        ((y * k + j / k) as f64 + 0.5) / side,
                    )
                })
                .sum();
            *p = (sum / (k * k) as f64).round().clamp(0.0, 255.0) as u8;
        }
        g
    }

    #[test]
    fn dct_of_a_flat_image_is_only_dc() {
        let d = dct2(&[100; N * N]);
        assert!((d[0] - 100.0 * (N * N) as f64).abs() < 1e-6);
        assert!(d[1..].iter().all(|v| v.abs() < 1e-6));
    }

    #[test]
    fn identical_images_have_distance_zero() {
        let a = render(1, scene);
        assert_eq!(hamming(phash(&a), phash(&a)), 0);
    }

    #[test]
    fn brightened_or_resampled_images_stay_close() {
        let a = phash(&render(1, scene));
        let brighter = phash(&render(1, |u, v| scene(u, v) * 1.1 + 12.0));
        let resampled = phash(&render(4, scene));
        assert!(
            hamming(a, brighter) < 10,
            "brightened: {}",
            hamming(a, brighter)
        );
        assert!(
            hamming(a, resampled) < 10,
            "resampled: {}",
            hamming(a, resampled)
        );
    }

    #[test]
    fn unrelated_images_are_far_apart() {
        let a = phash(&render(1, scene));
        let stripes = phash(&render(1, |u, v| {
            128.0 + 100.0 * ((u * 29.0).sin() * (v * 9.0).cos())
        }));
        let mirrored = phash(&render(1, |u, v| scene(1.0 - v, 1.0 - u)));
        assert!(hamming(a, stripes) > 20, "stripes: {}", hamming(a, stripes));
        assert!(
            hamming(a, mirrored) > 20,
            "mirrored: {}",
            hamming(a, mirrored)
        );
    }

    #[test]
    fn hamming_counts_differing_bits() {
        assert_eq!(hamming(0, u64::MAX), 64);
        assert_eq!(hamming(0b1011, 0b0001), 2);
    }
}
