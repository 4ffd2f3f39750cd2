//! The one matrix product the encoder needs, behind a safe signature so that the GEMM backend
//! can change without touching the networks.

/// `out[n×o] = x[n×k] · wᵀ`, where `w` is `[o×k]` row-major (PyTorch's `Linear.weight` layout).
///
/// Single-threaded on purpose: callers parallelise over batch tiles, which scales better for the
/// tall-skinny products of a location encoder than splitting one product.
pub fn matmul_transposed_b(x: &[f64], n: usize, k: usize, w: &[f64], o: usize, out: &mut [f64]) {
    assert_eq!(x.len(), n * k, "lhs has the wrong size");
    assert_eq!(w.len(), o * k, "rhs has the wrong size");
    assert_eq!(out.len(), n * o, "output has the wrong size");
    if n == 0 || o == 0 {
        return;
    }
    if k == 0 {
        out.fill(0.0);
        return;
    }
    // SAFETY: the three slices have exactly the sizes the strides address (checked above):
    // dst is n×o row-major (cs 1, rs o); lhs is n×k row-major (cs 1, rs k); rhs(k, j) = w[j, k],
    // so its row stride is 1 and its column stride is k. With read_dst = false, dst is only written.
    unsafe {
        gemm::gemm(
            n,
            o,
            k,
            out.as_mut_ptr(),
            1,
            o as isize,
            false,
            x.as_ptr(),
            1,
            k as isize,
            w.as_ptr(),
            k as isize,
            1,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_naive_product() {
        let (n, k, o) = (7, 5, 3);
        let x: Vec<f64> = (0..n * k).map(|i| (i as f64 * 0.37).sin()).collect();
        let w: Vec<f64> = (0..o * k).map(|i| (i as f64 * 0.91).cos()).collect();
        let mut out = vec![f64::NAN; n * o];
        matmul_transposed_b(&x, n, k, &w, o, &mut out);
        for r in 0..n {
            for c in 0..o {
                let expect: f64 = (0..k).map(|d| x[r * k + d] * w[c * k + d]).sum();
                assert!((out[r * o + c] - expect).abs() < 1e-14);
            }
        }
    }
}
