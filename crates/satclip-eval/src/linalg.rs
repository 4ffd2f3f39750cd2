//! Dense symmetric positive-definite solves for the ridge probes: a blocked Cholesky factorisation
//! and blocked triangular solves whose bulk runs through GEMM, so a 1600-feature probe (SH L=40)
//! with hundreds of classes takes a fraction of a second per strength.

use satclip_core::kernels::{gemm, MatRef};

const BLOCK: usize = 64;

/// `d × d` row-major view of rows `r0..` and columns `c0..c0 + cols` of a row-major matrix with
/// `d` columns.
fn view(a: &[f64], d: usize, r0: usize, rows: usize, c0: usize, cols: usize) -> MatRef<'_, f64> {
    let start = r0 * d + c0;
    let len = if rows == 0 { 0 } else { (rows - 1) * d + cols };
    MatRef::strided(&a[start..start + len], rows, cols, d, 1)
}

/// Overwrites the lower triangle of the symmetric `a` (`d × d`, row-major) with L, A = L Lᵀ.
/// Fails when a pivot is not positive (A is not positive definite to working precision).
pub fn cholesky(a: &mut [f64], d: usize) -> Result<(), String> {
    let mut update = Vec::new();
    for k0 in (0..d).step_by(BLOCK) {
        let k1 = (k0 + BLOCK).min(d);
        // Diagonal block, unblocked (earlier blocks' contributions are already subtracted).
        for j in k0..k1 {
            let mut diag = a[j * d + j];
            for k in k0..j {
                diag -= a[j * d + k] * a[j * d + k];
            }
            if !(diag > 0.0) {
                return Err(format!("matrix is not positive definite (pivot {j} is {diag:e})"));
            }
            let diag = diag.sqrt();
            a[j * d + j] = diag;
            for i in j + 1..k1 {
                let mut v = a[i * d + j];
                for k in k0..j {
                    v -= a[i * d + k] * a[j * d + k];
                }
                a[i * d + j] = v / diag;
            }
        }
        // Panel below the block: L21 = A21 L11⁻ᵀ, row by row.
        for i in k1..d {
            for j in k0..k1 {
                let mut v = a[i * d + j];
                for k in k0..j {
                    v -= a[i * d + k] * a[j * d + k];
                }
                a[i * d + j] = v / a[j * d + j];
            }
        }
        // Trailing matrix: A22 −= L21 L21ᵀ.
        let rest = d - k1;
        if rest > 0 {
            update.resize(rest * rest, 0.0);
            let panel = view(a, d, k1, rest, k0, k1 - k0);
            gemm(&mut update, panel, panel.t(), 1.0, false, true);
            for (i, row) in update.chunks_exact(rest).enumerate() {
                let dst = &mut a[(k1 + i) * d + k1..(k1 + i) * d + k1 + i + 1];
                dst.iter_mut().zip(row).for_each(|(x, u)| *x -= u);
            }
        }
    }
    Ok(())
}

/// Solves A X = B in place for `k` right-hand sides (`b` is `d × k`, row-major), given L from
/// [`cholesky`]: forward substitution with L, then backward with Lᵀ, a block of rows at a time.
pub fn cholesky_solve(l: &[f64], d: usize, b: &mut [f64], k: usize) {
    let mut tmp = Vec::new();
    // L Y = B, top block first.
    for k0 in (0..d).step_by(BLOCK) {
        let k1 = (k0 + BLOCK).min(d);
        let (done, rest) = b.split_at_mut(k0 * k);
        let block = &mut rest[..(k1 - k0) * k];
        if k0 > 0 {
            gemm(block, view(l, d, k0, k1 - k0, 0, k0), MatRef::row_major(done, k0, k), -1.0, true, true);
        }
        for i in k0..k1 {
            for j in k0..i {
                let lij = l[i * d + j];
                let (src, dst) = (j - k0, i - k0);
                let (head, tail) = block.split_at_mut(dst * k);
                tail[..k].iter_mut().zip(&head[src * k..(src + 1) * k]).for_each(|(x, y)| *x -= lij * y);
            }
            let inv = 1.0 / l[i * d + i];
            block[(i - k0) * k..(i - k0 + 1) * k].iter_mut().for_each(|x| *x *= inv);
        }
    }
    // Lᵀ X = Y, bottom block first.
    let starts: Vec<usize> = (0..d).step_by(BLOCK).collect();
    for &k0 in starts.iter().rev() {
        let k1 = (k0 + BLOCK).min(d);
        let (head, done) = b.split_at_mut(k1 * k);
        let block = &mut head[k0 * k..];
        if k1 < d {
            tmp.resize((k1 - k0) * k, 0.0);
            // (Lᵀ)[k0..k1, k1..d] = L[k1..d, k0..k1]ᵀ.
            let lt = view(l, d, k1, d - k1, k0, k1 - k0).t();
            gemm(&mut tmp, lt, MatRef::row_major(done, d - k1, k), 1.0, false, true);
            block.iter_mut().zip(&tmp).for_each(|(x, t)| *x -= t);
        }
        for i in (k0..k1).rev() {
            for j in i + 1..k1 {
                let lji = l[j * d + i];
                let (src, dst) = (j - k0, i - k0);
                let (upper, lower) = block.split_at_mut(src * k);
                upper[dst * k..(dst + 1) * k].iter_mut().zip(&lower[..k]).for_each(|(x, y)| *x -= lji * y);
            }
            let inv = 1.0 / l[i * d + i];
            block[(i - k0) * k..(i - k0 + 1) * k].iter_mut().for_each(|x| *x *= inv);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn solves_a_known_system() {
        let mut a = vec![4.0, 2.0, 2.0, 3.0];
        cholesky(&mut a, 2).unwrap();
        let mut b = vec![2.0, 1.0];
        cholesky_solve(&a, 2, &mut b, 1);
        // [4 2; 2 3] x = [2 1] → x = [0.5, 0]
        assert!((b[0] - 0.5).abs() < 1e-12 && b[1].abs() < 1e-12);
    }

    /// Sizes across several blocks and a ragged last block: A X must reproduce B.
    #[test]
    fn blocked_solve_reproduces_the_right_hand_sides() {
        let mut rng = rand_pcg::Pcg64::seed_from_u64(3);
        for &(d, k) in &[(1usize, 1usize), (63, 2), (64, 1), (150, 7), (257, 3)] {
            let n = d + 20;
            let x: Vec<f64> = (0..n * d).map(|_| rng.random_range(-1.0..1.0)).collect();
            let mut a = vec![0.0; d * d];
            gemm(&mut a, MatRef::row_major(&x, n, d).t(), MatRef::row_major(&x, n, d), 1.0, false, false);
            (0..d).for_each(|i| a[i * d + i] += 0.1);
            let want: Vec<f64> = (0..d * k).map(|_| rng.random_range(-1.0..1.0)).collect();
            let mut b = vec![0.0; d * k];
            gemm(&mut b, MatRef::row_major(&a, d, d), MatRef::row_major(&want, d, k), 1.0, false, false);
            let mut l = a.clone();
            cholesky(&mut l, d).unwrap();
            cholesky_solve(&l, d, &mut b, k);
            let err = b.iter().zip(&want).map(|(g, w)| (g - w).abs()).fold(0.0, f64::max);
            assert!(err < 1e-8, "d={d} k={k}: {err:e}");
        }
    }

    #[test]
    fn refuses_an_indefinite_matrix() {
        let mut a = vec![1.0, 2.0, 2.0, 1.0];
        assert!(cholesky(&mut a, 2).unwrap_err().contains("not positive definite"));
    }
}
