//! Numeric kernels shared by the fast inference engine and the training step: a float trait for
//! f32/f64, a strided GEMM over the `gemm` crate, and elementwise kernels (sine/cosine, exp) that
//! the compiler vectorises. The polynomial versions are compiled for AVX-512 and AVX2 and chosen
//! at run time. The f64 sine stays within 2 ulp of libm, so that the f64 path remains a faithful
//! reference; f64's exp calls libm.

use std::fmt::Debug;
use std::iter::Sum;
use std::ops::{Add, AddAssign, Div, Mul, MulAssign, Neg, Sub, SubAssign};
use std::sync::atomic::{AtomicU64, Ordering};

/// The precision of a computation, and of the numbers a file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    F32,
    F64,
}

impl Dtype {
    /// Bytes per value.
    pub fn size(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::F64 => 8,
        }
    }
}

impl std::str::FromStr for Dtype {
    type Err = String;

    /// `f32`/`float32` or `f64`/`float64`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f32" | "float32" => Ok(Self::F32),
            "f64" | "float64" => Ok(Self::F64),
            other => Err(format!("dtype `{other}`: use f32 (float32) or f64 (float64)")),
        }
    }
}

pub trait Float:
    Copy
    + Send
    + Sync
    + Debug
    + Default
    + PartialOrd
    + Sum
    + 'static
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + MulAssign
{
    const ZERO: Self;
    const ONE: Self;
    fn from_f64(v: f64) -> Self;
    fn to_f64(self) -> f64;
    fn sqrt(self) -> Self;
    fn exp(self) -> Self;
    fn ln(self) -> Self;
    fn max(self, other: Self) -> Self;
    /// `(sin(w·x), cos(w·x))` for every element: sines written in place, cosines to `cos`.
    fn sin_cos_scaled(x: &mut [Self], w: Self, cos: Option<&mut [Self]>);
    /// `exp(x − shift)` in place.
    fn exp_shifted(x: &mut [Self], shift: Self);
}

/// The methods f32 and f64 share: constants, conversions and the std functions.
macro_rules! float_basics {
    ($t:ty) => {
        const ZERO: Self = 0.0;
        const ONE: Self = 1.0;
        fn from_f64(v: f64) -> Self {
            v as $t
        }
        fn to_f64(self) -> f64 {
            self as f64
        }
        fn sqrt(self) -> Self {
            <$t>::sqrt(self)
        }
        fn exp(self) -> Self {
            <$t>::exp(self)
        }
        fn ln(self) -> Self {
            <$t>::ln(self)
        }
        fn max(self, other: Self) -> Self {
            <$t>::max(self, other)
        }
    };
}

impl Float for f64 {
    float_basics!(f64);
    fn sin_cos_scaled(x: &mut [Self], w: Self, cos: Option<&mut [Self]>) {
        // The vectorised kernel reduces by multiples of π/2 exactly only up to SIN_COS_F64_LIMIT;
        // beyond it (or on a non-finite value) libm's full reduction is needed.
        if x.iter().all(|v| (w * *v).abs() <= simd::SIN_COS_F64_LIMIT) {
            return simd::sin_cos_scaled_f64(x, w, cos);
        }
        match cos {
            Some(cos) => {
                for (v, c) in x.iter_mut().zip(cos) {
                    let (s, co) = (w * *v).sin_cos();
                    *v = s;
                    *c = co;
                }
            }
            None => x.iter_mut().for_each(|v| *v = (w * *v).sin()),
        }
    }
    fn exp_shifted(x: &mut [Self], shift: Self) {
        x.iter_mut().for_each(|v| *v = (*v - shift).exp());
    }
}

impl Float for f32 {
    float_basics!(f32);
    fn sin_cos_scaled(x: &mut [Self], w: Self, cos: Option<&mut [Self]>) {
        simd::sin_cos_scaled_f32(x, w, cos)
    }
    fn exp_shifted(x: &mut [Self], shift: Self) {
        simd::exp_shifted_f32(x, shift)
    }
}

/// A strided view of a matrix: element (i, j) is `data[i·row_stride + j·col_stride]`.
#[derive(Clone, Copy)]
pub struct MatRef<'a, T> {
    // Private: the GEMM trusts these to describe memory inside `data`, which the constructors
    // check; public fields would let safe code describe memory outside it.
    data: &'a [T],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a, T> MatRef<'a, T> {
    pub fn row_major(data: &'a [T], rows: usize, cols: usize) -> Self {
        Self::strided(data, rows, cols, cols, 1)
    }

    /// A view whose element (i, j) is `data[i · row_stride + j · col_stride]`.
    ///
    /// # Panics
    /// If the view reaches past `data` (with the arithmetic checked, so no stride can wrap).
    pub fn strided(data: &'a [T], rows: usize, cols: usize, row_stride: usize, col_stride: usize) -> Self {
        let reach = if rows == 0 || cols == 0 {
            Some(0)
        } else {
            (rows - 1)
                .checked_mul(row_stride)
                .and_then(|r| r.checked_add((cols - 1).checked_mul(col_stride)?))
                .and_then(|r| r.checked_add(1))
        };
        assert!(reach.is_some_and(|r| r <= data.len() && r <= isize::MAX as usize), "strided view runs past its data");
        Self { data, rows, cols, row_stride, col_stride }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The transpose, without copying.
    pub fn t(self) -> Self {
        Self {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }
}

/// The instruction set the GEMM runs with on this CPU, chosen by the `gemm` crate at run time:
/// its AVX-512 kernels on a CPU with AVX-512F, else its FMA (AVX2) kernels, else portable code.
pub fn gemm_isa() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return "avx512f";
        }
        if std::arch::is_x86_feature_detected!("fma") {
            return "fma (avx2)";
        }
    }
    "portable"
}

/// Twice the multiply-adds of every [`gemm`] call in this process so far: benchmarks count a
/// workload's FLOPs by running it once (an image tower's convolutions, linears and attention).
static GEMM_FLOPS: AtomicU64 = AtomicU64::new(0);

/// The FLOPs [`gemm`] has done in this process (2 per multiply-add).
pub fn gemm_flops() -> u64 {
    GEMM_FLOPS.load(Ordering::Relaxed)
}

/// `dst[m×n] (row-major) = (accumulate ? dst : 0) + alpha · a[m×k] · b[k×n]`.
pub fn gemm<T: Float>(dst: &mut [T], a: MatRef<T>, b: MatRef<T>, alpha: T, accumulate: bool, parallel: bool) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(b.rows, k, "inner dimensions differ");
    assert_eq!(Some(dst.len()), m.checked_mul(n), "destination has the wrong size");
    GEMM_FLOPS.fetch_add(2 * (m * n * k) as u64, Ordering::Relaxed);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst.fill(T::ZERO);
        }
        return;
    }
    let parallelism = if parallel { gemm::Parallelism::Rayon(0) } else { gemm::Parallelism::None };
    // SAFETY: every index the strides reach lies inside its slice (checked without overflow when
    // the view was made, and views cannot be changed after); dst is m×n row-major and only read
    // when `accumulate`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            T::ONE,
            alpha,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// Adds `bias` to every row of a row-major matrix.
pub fn add_bias<T: Float>(x: &mut [T], bias: &[T]) {
    for row in x.chunks_exact_mut(bias.len()) {
        for (v, b) in row.iter_mut().zip(bias) {
            *v += *b;
        }
    }
}

/// Column sums of a row-major `[rows × cols]` matrix, added into `out`.
pub fn add_column_sums<T: Float>(x: &[T], cols: usize, out: &mut [T]) {
    for row in x.chunks_exact(cols) {
        for (o, v) in out.iter_mut().zip(row) {
            *o += *v;
        }
    }
}

/// `simd_dispatch!(name, body, (args))` defines `pub fn name(args)` that runs `body`, an
/// `#[inline(always)]` function of plain loops, compiled for AVX-512 and for AVX2 + FMA and chosen
/// at run time, or as portable code on other CPUs and targets.
macro_rules! simd_dispatch {
    ($name:ident, $body:ident, ($($arg:ident: $ty:ty),*)) => {
        pub fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                unsafe fn wide($($arg: $ty),*) { $body($($arg),*) }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn narrow($($arg: $ty),*) { $body($($arg),*) }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU supports the features this copy was compiled for.
                    return unsafe { wide($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                    // SAFETY: as above.
                    return unsafe { narrow($($arg),*) };
                }
            }
            $body($($arg),*)
        }
    };
}
pub(crate) use simd_dispatch;

/// sin(x) and cos(x) within 1 ulp of libm for |x| ≤ 1e6 (the caller's bound), written to be
/// inlined into loops that the compiler vectorises.
pub(crate) use simd::sin_cos_one_f64 as sin_cos_f64;

mod simd {
    //! Polynomial kernels (f32, and the f64 sine). Written as plain loops over slices and
    //! compiled three times (AVX-512, AVX2+FMA, baseline) so that each machine runs the widest
    //! vectors it has.

    const INV_PI: f32 = std::f32::consts::FRAC_1_PI;
    // π split in three for Cody–Waite range reduction: exact products k·PI_A, k·PI_B for |k| < 2^12.
    const PI_A: f32 = 3.140625;
    const PI_B: f32 = 0.000_967_502_6;
    const PI_C: f32 = 1.509_957_9e-7;
    /// 1.5 · 2^23: adding and subtracting it rounds an f32 to the nearest integer.
    const ROUND: f32 = 12_582_912.0;

    /// sin(r) and cos(r) for r in [−π/2, π/2]: least-squares fits on Chebyshev nodes, absolute
    /// error below 1e-7 before f32 rounding.
    #[inline(always)]
    fn sin_cos_reduced(r: f32) -> (f32, f32) {
        let r2 = r * r;
        let s = r + r * r2 * (-1.666_666_6e-1 + r2 * (8.333_242e-3 + r2 * (-1.982_276_2e-4 + r2 * 2.634_815_5e-6)));
        let c = 1.0
            + r2 * (-0.5
                + r2 * (4.166_666_8e-2
                    + r2 * (-1.388_894e-3 + r2 * (2.480_892e-5 + r2 * (-2.794_575e-7 + r2 * 2.744_657_4e-9)))));
        (s, c)
    }

    #[inline(always)]
    fn sin_cos_one(x: f32) -> (f32, f32) {
        // x = kπ + r, |r| ≤ π/2; sin x = (−1)^k sin r, cos x = (−1)^k cos r.
        let shifted = x * INV_PI + ROUND;
        let k = shifted - ROUND;
        let odd = shifted.to_bits() << 31;
        let r = ((x - k * PI_A) - k * PI_B) - k * PI_C;
        let (s, c) = sin_cos_reduced(r);
        (f32::from_bits(s.to_bits() ^ odd), f32::from_bits(c.to_bits() ^ odd))
    }

    /// `one(w·x)` for every element, a (sine, cosine) pair: sines in place, cosines to `cos`.
    #[inline(always)]
    fn sin_cos_slice<T: Copy + std::ops::Mul<Output = T>>(
        x: &mut [T],
        w: T,
        cos: Option<&mut [T]>,
        one: impl Fn(T) -> (T, T),
    ) {
        match cos {
            Some(cos) => {
                for (v, c) in x.iter_mut().zip(cos.iter_mut()) {
                    (*v, *c) = one(w * *v);
                }
            }
            None => {
                for v in x.iter_mut() {
                    *v = one(w * *v).0;
                }
            }
        }
    }

    #[inline(always)]
    fn sin_cos_body(x: &mut [f32], w: f32, cos: Option<&mut [f32]>) {
        sin_cos_slice(x, w, cos, sin_cos_one)
    }

    #[inline(always)]
    fn exp_one(x: f32) -> f32 {
        // e^x = 2^n · e^r with n = round(x / ln 2), |r| ≤ ln2/2; below −87 the result is 0.
        let x = x.max(-87.0).min(88.0);
        let shifted = x * std::f32::consts::LOG2_E + ROUND;
        let n = shifted - ROUND;
        let r = (x - n * 0.693_145_75) - n * 1.428_606_8e-6;
        let p = 1.0
            + r * (1.0
                + r * (0.5 + r * (1.666_666_5e-1 + r * (4.166_579_6e-2 + r * (8.336_937e-3 + r * 1.394_004_7e-3)))));
        let exponent = ((shifted.to_bits() as i32 - ROUND.to_bits() as i32) + 127).max(0) as u32;
        p * f32::from_bits(exponent << 23)
    }

    #[inline(always)]
    fn exp_body(x: &mut [f32], shift: f32) {
        for v in x.iter_mut() {
            *v = exp_one(*v - shift);
        }
    }

    /// |x| below which [`sin_cos_one_f64`] reduces exactly: k·PIO2_A is exact for |k| < 2^20.
    pub const SIN_COS_F64_LIMIT: f64 = 1.0e6;
    const TWO_OVER_PI: f64 = std::f64::consts::FRAC_2_PI;
    // π/2 in four parts (fdlibm's pio2_1, pio2_2, pio2_3 and pio2_3t, ≈ 1.5707963267, 6.08e-11,
    // 2.02e-21, 8.48e-32): the first three have 33 significant bits, so their products with k
    // are exact.
    const PIO2_A: f64 = f64::from_bits(0x3FF9_21FB_5440_0000);
    const PIO2_B: f64 = f64::from_bits(0x3DD0_B461_1A60_0000);
    const PIO2_C: f64 = f64::from_bits(0x3BA3_198A_2E00_0000);
    const PIO2_D: f64 = f64::from_bits(0x397B_839A_2520_49C1);
    /// 1.5 · 2^52: adding and subtracting it rounds an f64 to the nearest integer.
    const ROUND_F64: f64 = 6_755_399_441_055_744.0;

    /// sin(r) and cos(r) for |r| ≤ π/4: Taylor series to r¹⁷ and r¹⁸, whose first omitted terms
    /// are below 1e-19 there.
    #[inline(always)]
    fn sin_cos_reduced_f64(r: f64) -> (f64, f64) {
        const S: [f64; 8] = [
            -1.0 / 6.0,
            1.0 / 120.0,
            -1.0 / 5040.0,
            1.0 / 362_880.0,
            -1.0 / 39_916_800.0,
            1.0 / 6_227_020_800.0,
            -1.0 / 1_307_674_368_000.0,
            1.0 / 355_687_428_096_000.0,
        ];
        const C: [f64; 8] = [
            1.0 / 24.0,
            -1.0 / 720.0,
            1.0 / 40_320.0,
            -1.0 / 3_628_800.0,
            1.0 / 479_001_600.0,
            -1.0 / 87_178_291_200.0,
            1.0 / 20_922_789_888_000.0,
            -1.0 / 6_402_373_705_728_000.0,
        ];
        let r2 = r * r;
        let horner = |c: &[f64; 8]| c.iter().rev().fold(0.0, |acc, &k| acc * r2 + k);
        let s = r + r * r2 * horner(&S);
        let c = 1.0 - 0.5 * r2 + r2 * r2 * horner(&C);
        (s, c)
    }

    /// sin(x) and cos(x) for |x| ≤ [`SIN_COS_F64_LIMIT`], within 2 ulp of 1 (absolute) of libm.
    #[inline(always)]
    pub(crate) fn sin_cos_one_f64(x: f64) -> (f64, f64) {
        // x = k·π/2 + r, |r| ≤ π/4; the quadrant k mod 4 picks ±sin r or ±cos r.
        let shifted = x * TWO_OVER_PI + ROUND_F64;
        let k = shifted - ROUND_F64;
        let quadrant = shifted.to_bits();
        let r = (((x - k * PIO2_A) - k * PIO2_B) - k * PIO2_C) - k * PIO2_D;
        let (s, c) = sin_cos_reduced_f64(r);
        let swap = 0u64.wrapping_sub(quadrant & 1);
        let (s, c) = (s.to_bits(), c.to_bits());
        let sin = (s & !swap) | (c & swap);
        let cos = (c & !swap) | (s & swap);
        (f64::from_bits(sin ^ ((quadrant & 2) << 62)), f64::from_bits(cos ^ ((quadrant.wrapping_add(1) & 2) << 62)))
    }

    #[inline(always)]
    fn sin_cos_body_f64(x: &mut [f64], w: f64, cos: Option<&mut [f64]>) {
        sin_cos_slice(x, w, cos, sin_cos_one_f64)
    }

    simd_dispatch!(sin_cos_scaled_f32, sin_cos_body, (x: &mut [f32], w: f32, cos: Option<&mut [f32]>));
    simd_dispatch!(exp_shifted_f32, exp_body, (x: &mut [f32], shift: f32));
    simd_dispatch!(sin_cos_scaled_f64, sin_cos_body_f64, (x: &mut [f64], w: f64, cos: Option<&mut [f64]>));

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn sine_and_cosine_are_accurate_over_the_working_range() {
            let mut worst = 0.0f64;
            for i in 0..200_000 {
                let x = -300.0 + i as f32 * 0.003;
                let (s, c) = sin_cos_one(x);
                let (es, ec) = (x as f64).sin_cos();
                worst = worst.max((s as f64 - es).abs()).max((c as f64 - ec).abs());
            }
            assert!(worst < 5e-7, "max error {worst:e}");
        }

        #[test]
        fn f64_sine_and_cosine_are_within_two_ulp_of_libm() {
            // Every quadrant, the edges of the reduction (multiples of π/4 and π/2, where the
            // reduced argument is largest or cancels) and the far end of the range.
            let quarter = std::f64::consts::FRAC_PI_4;
            let mut xs: Vec<f64> = (0..400_000).map(|i| -600.0 + i as f64 * 0.003_000_1).collect();
            for k in -4000i32..4000 {
                let edge = k as f64 * quarter;
                xs.extend([edge, edge.next_up(), edge.next_down()]);
            }
            xs.extend((0..10_000).map(|i| SIN_COS_F64_LIMIT - i as f64 * 97.3));
            xs.extend([0.0, -0.0, 1e-300, -1e-300, SIN_COS_F64_LIMIT, -SIN_COS_F64_LIMIT]);
            let mut worst = 0.0f64;
            for &x in &xs {
                let (s, c) = sin_cos_one_f64(x);
                let (es, ec) = x.sin_cos();
                worst = worst.max((s - es).abs()).max((c - ec).abs());
            }
            assert!(worst <= 2.0 * f64::EPSILON, "max error {worst:e}");
        }

        #[test]
        fn exp_is_accurate_and_saturates() {
            for i in 0..100_000 {
                let x = -80.0 + i as f32 * 0.0016;
                let got = exp_one(x) as f64;
                let want = (x as f64).exp();
                assert!(((got - want) / want).abs() < 3e-7, "exp({x}) = {got} vs {want}");
            }
            assert_eq!(exp_one(-1000.0), 0.0f32.max(exp_one(-1000.0)));
            assert!(exp_one(-1000.0) < 1e-37);
            assert!(exp_one(f32::NEG_INFINITY) < 1e-37);
        }

        #[test]
        fn dispatched_kernels_match_the_scalar_definition() {
            let mut x: Vec<f32> = (0..1000).map(|i| i as f32 * 0.37 - 150.0).collect();
            let orig = x.clone();
            let mut cos = vec![0.0; x.len()];
            sin_cos_scaled_f32(&mut x, 2.0, Some(&mut cos));
            for ((s, c), o) in x.iter().zip(&cos).zip(&orig) {
                assert!((*s as f64 - (2.0 * *o as f64).sin()).abs() < 1e-5);
                assert!((*c as f64 - (2.0 * *o as f64).cos()).abs() < 1e-5);
            }
            let mut y: Vec<f64> = (0..1000).map(|i| i as f64 * 0.37 - 150.0).collect();
            let orig = y.clone();
            let mut cos = vec![0.0; y.len()];
            sin_cos_scaled_f64(&mut y, 2.0, Some(&mut cos));
            for ((s, c), o) in y.iter().zip(&cos).zip(&orig) {
                let (es, ec) = sin_cos_one_f64(2.0 * o);
                assert_eq!((s.to_bits(), c.to_bits()), (es.to_bits(), ec.to_bits()));
            }
            let mut e: Vec<f32> = (0..300).map(|i| i as f32 * 0.1 - 20.0).collect();
            let orig = e.clone();
            exp_shifted_f32(&mut e, 1.5);
            for (g, o) in e.iter().zip(&orig) {
                let want = ((*o - 1.5) as f64).exp();
                assert!(((*g as f64 - want) / want).abs() < 1e-6);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f64_sines_beyond_the_fast_range_and_non_finite_values_fall_back_to_libm() {
        let mut x = vec![0.5, 3.0e7, -2.0e9, f64::NAN, f64::INFINITY];
        let orig = x.clone();
        let mut cos = vec![0.0; x.len()];
        f64::sin_cos_scaled(&mut x, 1.0, Some(&mut cos));
        for ((s, c), o) in x.iter().zip(&cos).zip(&orig) {
            assert_eq!(s.to_bits(), o.sin().to_bits());
            assert_eq!(c.to_bits(), o.cos().to_bits());
        }
    }

    #[test]
    fn strided_gemm_handles_transposes_and_accumulation() {
        let a: Vec<f64> = (0..6).map(|v| v as f64).collect(); // 2×3
        let b: Vec<f64> = (0..12).map(|v| (v as f64) * 0.5).collect(); // 3×4
        let mut c = vec![1.0; 8];
        gemm(&mut c, MatRef::row_major(&a, 2, 3), MatRef::row_major(&b, 3, 4), 2.0, true, false);
        for i in 0..2 {
            for j in 0..4 {
                let want: f64 = 1.0 + 2.0 * (0..3).map(|k| a[i * 3 + k] * b[k * 4 + j]).sum::<f64>();
                assert_eq!(c[i * 4 + j], want);
            }
        }
        // aᵀ·a via a transposed view: 3×3.
        let mut g = vec![0.0; 9];
        gemm(&mut g, MatRef::row_major(&a, 2, 3).t(), MatRef::row_major(&a, 2, 3), 1.0, false, false);
        assert_eq!(g[1], a[0] * a[1] + a[3] * a[4]);
    }
}
