//! Per-column standardisation, shared by the probes and the maps.

/// Per-column mean and deviation of a row-major matrix, optionally with row weights.
pub(crate) struct Standardiser {
    pub(crate) mean: Vec<f64>,
    /// Deviations; 1 for constant columns, so that they standardise to zero and drop out.
    pub(crate) scale: Vec<f64>,
}

impl Standardiser {
    pub(crate) fn fit(x: &[f64], d: usize, weights: Option<&[f64]>) -> Self {
        let weight = |i: usize| weights.map_or(1.0, |w| w[i]);
        let total = weights.map_or((x.len() / d) as f64, |w| w.iter().sum());
        let mut mean = vec![0.0; d];
        for (i, r) in x.chunks_exact(d).enumerate() {
            mean.iter_mut().zip(r).for_each(|(m, v)| *m += weight(i) * v / total);
        }
        let mut scale = vec![0.0; d];
        for (i, r) in x.chunks_exact(d).enumerate() {
            scale.iter_mut().zip(r).zip(&mean).for_each(|((s, v), m)| *s += weight(i) * (v - m).powi(2) / total);
        }
        // Constant features get unit scale: they standardise to zero and drop out.
        scale.iter_mut().for_each(|s| *s = if *s > 1e-24 { s.sqrt() } else { 1.0 });
        Self { mean, scale }
    }

    pub(crate) fn apply(&self, x: &[f64]) -> Vec<f64> {
        x.chunks_exact(self.mean.len())
            .flat_map(|r| r.iter().zip(&self.mean).zip(&self.scale).map(|((v, m), s)| (v - m) / s))
            .collect()
    }
}
