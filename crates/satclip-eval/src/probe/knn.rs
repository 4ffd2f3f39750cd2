//! k nearest neighbours in the standardised features.

use satclip_core::kernels::{gemm, MatRef};

use super::{rows_where, Fitted, Folds, Labels, Predictions};

/// Neighbour counts tried by kNN.
pub const NEIGHBOURS: [usize; 6] = [1, 3, 5, 10, 20, 50];

/// For each query row, the training rows sorted by Euclidean distance, nearest `keep` of them.
fn neighbours(train: &[f64], queries: &[f64], d: usize, keep: usize) -> Vec<Vec<usize>> {
    let n = train.len() / d;
    let norms: Vec<f64> = train.chunks_exact(d).map(|r| r.iter().map(|v| v * v).sum()).collect();
    let keep = keep.min(n);
    let mut result = Vec::with_capacity(queries.len() / d);
    let mut dots = Vec::new();
    for block in queries.chunks(512 * d) {
        let m = block.len() / d;
        dots.resize(m * n, 0.0);
        gemm(&mut dots, MatRef::row_major(block, m, d), MatRef::row_major(train, n, d).t(), 1.0, false, true);
        for row in dots.chunks_exact(n) {
            // ‖q − t‖² − ‖q‖² = ‖t‖² − 2 q·t ranks the same; ties go to the earlier row.
            let dist: Vec<f64> = row.iter().zip(&norms).map(|(qt, tt)| tt - 2.0 * qt).collect();
            let mut idx: Vec<usize> = (0..n).collect();
            let by = |a: &usize, b: &usize| dist[*a].total_cmp(&dist[*b]).then(a.cmp(b));
            if keep < n {
                idx.select_nth_unstable_by(keep - 1, by);
                idx.truncate(keep);
            }
            idx.sort_by(by);
            result.push(idx);
        }
    }
    result
}

/// Mean of the neighbours' values, or the most frequent class (ties: the class of the nearer
/// neighbour).
fn vote(near: &[usize], labels: Labels, k: usize) -> (f64, usize) {
    let near = &near[..k.min(near.len())];
    match labels {
        Labels::Values(v) => (near.iter().map(|&i| v[i]).sum::<f64>() / near.len() as f64, 0),
        Labels::Classes { class, .. } => {
            let mut counts: Vec<(usize, usize)> = Vec::new();
            for &i in near {
                match counts.iter_mut().find(|(c, _)| *c == class[i]) {
                    Some(entry) => entry.1 += 1,
                    None => counts.push((class[i], 1)),
                }
            }
            let best = counts.iter().fold(counts[0], |b, c| if c.1 > b.1 { *c } else { b });
            (0.0, best.0)
        }
    }
}

/// k nearest neighbours; k from [`NEIGHBOURS`] by cross-validated squared error or accuracy.
pub(super) fn fit(z: &[f64], labels: Labels, zt: &[f64], d: usize, folds: &Folds) -> Fitted {
    let n = labels.len();
    let kmax = *NEIGHBOURS.last().expect("non-empty");
    let mut loss = vec![0.0; NEIGHBOURS.len()];
    for f in 0..folds.count() {
        let train_rows: Vec<usize> = (0..n).filter(|&i| folds.of(i) != f).collect();
        let val_rows: Vec<usize> = (0..n).filter(|&i| folds.of(i) == f).collect();
        let near =
            neighbours(&rows_where(z, d, |i| folds.of(i) != f), &rows_where(z, d, |i| folds.of(i) == f), d, kmax);
        for (q, list) in val_rows.iter().zip(&near) {
            let list: Vec<usize> = list.iter().map(|&j| train_rows[j]).collect();
            for (slot, &k) in NEIGHBOURS.iter().enumerate() {
                let (value, class) = vote(&list, labels, k);
                loss[slot] += match labels {
                    Labels::Values(v) => (value - v[*q]).powi(2),
                    Labels::Classes { class: c, .. } => f64::from(u8::from(class != c[*q])),
                };
            }
        }
    }
    let slot = (0..NEIGHBOURS.len()).fold(0, |b, s| if loss[s] < loss[b] { s } else { b });
    let k = NEIGHBOURS[slot];
    let near = neighbours(z, zt, d, k);
    let predictions = match labels {
        Labels::Values(_) => Predictions::Values(near.iter().map(|l| vote(l, labels, k).0).collect()),
        Labels::Classes { class, count } => {
            // Scores are the neighbours' vote shares; the class is the vote's, whose ties go to
            // the nearer neighbour.
            let mut scores = vec![0.0; near.len() * count];
            for (row, list) in scores.chunks_exact_mut(count).zip(&near) {
                list.iter().take(k).for_each(|&i| row[class[i]] += 1.0 / k.min(list.len()) as f64);
            }
            Predictions::Classes { class: near.iter().map(|l| vote(l, labels, k).1).collect(), scores }
        }
    };
    Fitted { predictions, chosen: format!("k={k}") }
}

#[cfg(test)]
mod tests {
    use super::neighbours;

    #[test]
    fn knn_with_one_neighbour_returns_the_nearest_label() {
        let x = vec![0.0, 0.0, 10.0, 10.0, 0.0, 10.0];
        let near = neighbours(&x, &[9.0, 9.5, 0.1, -0.1], 2, 1);
        assert_eq!(near, vec![vec![1], vec![0]]);
    }
}
