//! The embedding space as a picture (the SatCLIP paper's RQ3): a 2-D layout of points'
//! embeddings (t-SNE, or PCA when asked), coloured by a task's labels, and a number for how well
//! the labels separate in the embedding itself (a kNN probe's held-out score), since a layout
//! alone can make clusters look cleaner or messier than they are.

use std::path::Path;

use satclip_io::error::Result;

use crate::maps::{leading_eigenvectors, project, ramp, WeightedMoments};
use crate::plot::{fit, Canvas, GLYPH, GREY, INK, WHITE};
use crate::probe::{fit_predict, Folds, Labels, Predictions, Probe};
use crate::task::{ClassificationMetrics, RegressionMetrics, Target};

/// t-SNE runs on this many principal components of the standardised embedding (the usual
/// denoising step, and it makes each distance 5× cheaper for a 256-d embedding).
pub const TSNE_COMPONENTS: usize = 50;
/// t-SNE's perplexity, iterations and Barnes-Hut accuracy: the common defaults.
pub const TSNE_PERPLEXITY: f64 = 30.0;
pub const TSNE_EPOCHS: usize = 1000;
const TSNE_THETA: f64 = 0.5;

/// Share of the points the separability probe holds out.
pub const HELD_OUT: f64 = 0.2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Barnes-Hut t-SNE from a PCA start.
    Tsne,
    /// The first two principal components of the standardised embedding.
    Pca,
}

impl std::str::FromStr for Method {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "tsne" | "t-sne" => Ok(Self::Tsne),
            "pca" => Ok(Self::Pca),
            other => Err(format!("layout `{other}` is neither tsne nor pca")),
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Tsne => "t-SNE",
            Self::Pca => "PCA",
        })
    }
}

/// Fewest points a t-SNE layout takes: each point needs 3 × perplexity neighbours.
pub fn tsne_min_points() -> usize {
    (3.0 * TSNE_PERPLEXITY) as usize + 2
}

/// A 2-D position for each row of `features` (`[n × d]`). Deterministic: t-SNE starts from the
/// first two principal components (scaled to a deviation of 1e-4, as scikit-learn and openTSNE
/// do), not from random positions.
pub fn layout(features: &[f64], d: usize, method: Method) -> std::result::Result<Vec<[f64; 2]>, String> {
    let n = features.len() / d.max(1);
    if n < 3 {
        return Err(format!("a layout needs at least 3 points, not {n}"));
    }
    if method == Method::Tsne && n < tsne_min_points() {
        return Err(format!("t-SNE needs at least {} points, not {n}; use the PCA layout", tsne_min_points()));
    }
    let mut moments = WeightedMoments::new(d);
    moments.add(features, &vec![1.0; n]);
    let (standardiser, cov) = moments.finish();
    let k = match method {
        Method::Pca => 2.min(d),
        Method::Tsne => TSNE_COMPONENTS.min(d),
    };
    let components = project(features, &standardiser, &leading_eigenvectors(&cov, d, k), k);
    let column =
        |j: usize| -> Vec<f64> { components.chunks_exact(k).map(|r| r.get(j).copied().unwrap_or(0.0)).collect() };
    let (first, second) = (column(0), column(1));
    if method == Method::Pca {
        return Ok(first.into_iter().zip(second).map(|(x, y)| [x, y]).collect());
    }
    let deviation = (first.iter().map(|v| v * v).sum::<f64>() / n as f64).sqrt().max(1e-300);
    let start: Vec<f64> =
        first.iter().zip(&second).flat_map(|(x, y)| [x / deviation * 1e-4, y / deviation * 1e-4]).collect();
    let rows: Vec<&[f64]> = components.chunks_exact(k).collect();
    let euclidean = |a: &&[f64], b: &&[f64]| a.iter().zip(b.iter()).map(|(x, y)| (x - y).powi(2)).sum::<f64>().sqrt();
    let mut tsne = bhtsne::tSNE::<f64, &[f64], 2>::new(&rows);
    tsne.perplexity(TSNE_PERPLEXITY).epochs(TSNE_EPOCHS).initial_embedding(start).barnes_hut(TSNE_THETA, euclidean);
    Ok(tsne.embedding().chunks_exact(2).map(|p| [p[0], p[1]]).collect())
}

/// How well the target is told apart in the embedding, by one probe trained on a seeded 80 % of
/// the points and scored on the rest: accuracy for classes, R² for values.
#[derive(Clone, Debug, PartialEq)]
pub struct Separability {
    pub probe: Probe,
    /// `accuracy` or `r2`.
    pub metric: &'static str,
    pub value: f64,
    /// The hyperparameter the probe chose, e.g. `k=10`.
    pub chosen: String,
    pub n_test: usize,
}

/// Separability by kNN (k by cross-validation, as in `satclip eval`: neighbourhoods, which any
/// encoder that keeps nearby places nearby does well on) and by a linear probe (logistic for
/// classes, ridge for values: whether the target lies along directions of the embedding).
pub fn separability(
    features: &[f64],
    d: usize,
    target: &Target,
    seed: u64,
) -> std::result::Result<Vec<Separability>, String> {
    let n = features.len() / d.max(1);
    let train = crate::random_split(n, HELD_OUT, seed);
    let rows = |want: bool| -> Vec<usize> { (0..n).filter(|&i| train[i] == want).collect() };
    let (train_rows, test_rows) = (rows(true), rows(false));
    let gather =
        |idx: &[usize]| -> Vec<f64> { idx.iter().flat_map(|&i| features[i * d..(i + 1) * d].to_vec()).collect() };
    let (x_train, x_test) = (gather(&train_rows), gather(&test_rows));
    let (values, classes);
    let (labels, linear) = match target {
        Target::Values(v) => {
            values = train_rows.iter().map(|&i| v[i]).collect::<Vec<_>>();
            (Labels::Values(&values), Probe::Ridge)
        }
        Target::Classes { class, names } => {
            classes = train_rows.iter().map(|&i| class[i]).collect::<Vec<_>>();
            (Labels::Classes { class: &classes, count: names.len() }, Probe::Logistic)
        }
    };
    [Probe::Knn, linear]
        .into_iter()
        .map(|probe| {
            let fitted = fit_predict(probe, &x_train, labels, &x_test, d, seed, &Folds::interleaved(train_rows.len()))?;
            let (metric, value) = match (target, &fitted.predictions) {
                (Target::Classes { class, .. }, Predictions::Classes { class: p, .. }) => {
                    let truth: Vec<usize> = test_rows.iter().map(|&i| class[i]).collect();
                    ("accuracy", ClassificationMetrics::of(&truth, p).accuracy)
                }
                (Target::Values(v), Predictions::Values(p)) => {
                    let truth: Vec<f64> = test_rows.iter().map(|&i| v[i]).collect();
                    ("r2", RegressionMetrics::of(&truth, p).r2)
                }
                _ => unreachable!("probes predict the kind of their labels"),
            };
            Ok(Separability { probe, metric, value, chosen: fitted.chosen, n_test: test_rows.len() })
        })
        .collect()
}

/// Distinct colours for classes, most frequent class first (Tableau 20's hues); classes past the
/// palette are drawn grey and listed as "other" in the legend.
const PALETTE: [[u8; 3]; 20] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [23, 190, 207],
    [188, 189, 34],
    [127, 127, 127],
    [174, 199, 232],
    [255, 187, 120],
    [152, 223, 138],
    [255, 152, 150],
    [197, 176, 213],
    [196, 156, 148],
    [247, 182, 210],
    [158, 218, 229],
    [219, 219, 141],
    [57, 59, 121],
];

const WIDTH: usize = 1440;
const HEIGHT: usize = 900;
const PLOT: usize = 820;
const MARGIN: usize = 40;
const LEGEND_X: usize = MARGIN + PLOT + 24;
const LEGEND_CHARS: usize = (WIDTH - LEGEND_X - 20) / GLYPH - 2;

/// What colours the points.
pub enum Colouring<'a> {
    Classes { class: &'a [usize], names: &'a [String] },
    Values(&'a [f64]),
}

/// Draws the layout as a scatter plot with `title` above it and a legend on the right (classes
/// by frequency, or a colour bar for values), and writes it as PNG.
pub fn render(points: &[[f64; 2]], colouring: &Colouring, title: &[String], out: &Path) -> Result<()> {
    let mut canvas = Canvas::new(WIDTH, HEIGHT, WHITE);
    for (i, line) in title.iter().enumerate() {
        canvas.text(MARGIN, 10 + i * 20, &fit(line, (WIDTH - 2 * MARGIN) / (2 * GLYPH)), 2, INK);
    }
    let top = 10 + title.len() * 20 + 10;
    let colour_of: Vec<[u8; 3]> = match colouring {
        Colouring::Classes { class, names } => {
            let order = by_frequency(class, names.len());
            let mut slot = vec![None; names.len()];
            order.iter().take(PALETTE.len()).enumerate().for_each(|(s, &(c, _))| slot[c] = Some(PALETTE[s]));
            draw_class_legend(&mut canvas, top, &order, names, &slot);
            class.iter().map(|&c| slot[c].unwrap_or(GREY)).collect()
        }
        Colouring::Values(values) => {
            let (lo, hi) = percentiles(values);
            draw_ramp_legend(&mut canvas, top, lo, hi);
            values.iter().map(|v| ramp((v - lo) / (hi - lo).max(1e-12))).collect()
        }
    };
    // A frame around the plot area, then the points, in an order that mixes the classes so that
    // none is painted over wholesale.
    let side = PLOT.min(HEIGHT - top - MARGIN);
    canvas.fill(MARGIN - 1, top - 1, side + 2, side + 2, GREY);
    canvas.fill(MARGIN, top, side, side, WHITE);
    let (min, max) = bounds(points);
    let span = (0..2).map(|a| (max[a] - min[a]).max(1e-12)).fold(0.0, f64::max);
    let to_pixel = |p: [f64; 2], a: usize| -> usize {
        let centred = (p[a] - (min[a] + max[a]) / 2.0) / span + 0.5;
        let t = if a == 1 { 1.0 - centred } else { centred };
        ((t * (side - 5) as f64).round().max(0.0) as usize).min(side - 5)
    };
    let mut order: Vec<usize> = (0..points.len()).collect();
    order.sort_by_key(|&i| (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    for i in order {
        canvas.fill(MARGIN + 1 + to_pixel(points[i], 0), top + 1 + to_pixel(points[i], 1), 3, 3, colour_of[i]);
    }
    canvas.write_png(out)
}

/// Classes with at least one point, most frequent first (ties by name order), with counts.
fn by_frequency(class: &[usize], count: usize) -> Vec<(usize, usize)> {
    let mut counts = vec![0usize; count];
    class.iter().for_each(|&c| counts[c] += 1);
    let mut order: Vec<(usize, usize)> = counts.into_iter().enumerate().filter(|(_, n)| *n > 0).collect();
    order.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    order
}

fn draw_class_legend(
    canvas: &mut Canvas,
    top: usize,
    order: &[(usize, usize)],
    names: &[String],
    slot: &[Option<[u8; 3]>],
) {
    let line = 16;
    let mut y = top;
    for &(c, n) in order.iter().take(PALETTE.len()) {
        canvas.fill(LEGEND_X, y, 10, 10, slot[c].unwrap_or(GREY));
        let label = format!("{} ({n})", fit(&names[c], LEGEND_CHARS.saturating_sub(8)));
        canvas.text(LEGEND_X + 16, y + 1, &label, 1, INK);
        y += line;
    }
    if order.len() > PALETTE.len() {
        let rest: usize = order[PALETTE.len()..].iter().map(|(_, n)| n).sum();
        canvas.fill(LEGEND_X, y, 10, 10, GREY);
        let label = format!("{} other classes ({rest})", order.len() - PALETTE.len());
        canvas.text(LEGEND_X + 16, y + 1, &label, 1, INK);
    }
}

fn draw_ramp_legend(canvas: &mut Canvas, top: usize, lo: f64, hi: f64) {
    let height = 300;
    for row in 0..height {
        canvas.fill(LEGEND_X, top + row, 20, 1, ramp(1.0 - row as f64 / (height - 1) as f64));
    }
    canvas.text(LEGEND_X + 28, top, &format!("{hi:.4} (99th pct)"), 1, INK);
    canvas.text(LEGEND_X + 28, top + height - 8, &format!("{lo:.4} (1st pct)"), 1, INK);
}

/// The 1st and 99th percentiles: the colour bar's ends, so that a few extremes do not wash out
/// the rest.
fn percentiles(values: &[f64]) -> (f64, f64) {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let at = |q: usize| sorted[(sorted.len() - 1) * q / 100];
    (at(1), at(99))
}

fn bounds(points: &[[f64; 2]]) -> ([f64; 2], [f64; 2]) {
    points.iter().fold(([f64::INFINITY; 2], [f64::NEG_INFINITY; 2]), |(lo, hi), p| {
        ([lo[0].min(p[0]), lo[1].min(p[1])], [hi[0].max(p[0]), hi[1].max(p[1])])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two well-apart clusters in 8-d, 100 points each: they differ along four of the features
    /// together (so that the direction is the leading one after standardising), with noise.
    fn clusters() -> (Vec<f64>, Vec<usize>) {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_pcg::Pcg64::seed_from_u64(5);
        let mut x = Vec::new();
        let mut class = Vec::new();
        for i in 0..200 {
            let c = i % 2;
            class.push(c);
            for j in 0..8 {
                let shift = if j < 4 { c as f64 * 10.0 } else { 0.0 };
                x.push(shift + rng.random_range(-1.0..1.0));
            }
        }
        (x, class)
    }

    fn separated(points: &[[f64; 2]], class: &[usize]) -> bool {
        // Every point is nearer to its own cluster's mean than to the other's.
        let mean = |c: usize| {
            let members: Vec<&[f64; 2]> = points.iter().zip(class).filter(|(_, k)| **k == c).map(|(p, _)| p).collect();
            let m = members.len() as f64;
            [members.iter().map(|p| p[0]).sum::<f64>() / m, members.iter().map(|p| p[1]).sum::<f64>() / m]
        };
        let (a, b) = (mean(0), mean(1));
        let dist = |p: &[f64; 2], q: [f64; 2]| (p[0] - q[0]).hypot(p[1] - q[1]);
        points.iter().zip(class).all(|(p, &c)| (dist(p, a) < dist(p, b)) == (c == 0))
    }

    #[test]
    fn both_layouts_keep_well_apart_clusters_apart() {
        let (x, class) = clusters();
        for method in [Method::Pca, Method::Tsne] {
            let points = layout(&x, 8, method).unwrap();
            assert_eq!(points.len(), 200);
            assert!(points.iter().all(|p| p[0].is_finite() && p[1].is_finite()));
            assert!(separated(&points, &class), "{method}");
        }
        // Too few points for t-SNE's neighbourhoods: an error that says what to do.
        let err = layout(&x[..8 * 50], 8, Method::Tsne).unwrap_err();
        assert!(err.contains("PCA"), "{err}");
    }

    #[test]
    fn separability_is_perfect_for_apart_clusters_and_at_chance_for_shuffled_ones() {
        let (x, class) = clusters();
        let names = vec!["a".to_string(), "b".to_string()];
        let target = Target::Classes { class: class.clone(), names: names.clone() };
        for s in separability(&x, 8, &target, 0).unwrap() {
            assert_eq!((s.metric, s.value, s.n_test), ("accuracy", 1.0, 40), "{}", s.probe);
        }
        // Labels unrelated to the clusters: about half right.
        let shuffled: Vec<usize> = (0..200).map(|i| usize::from((i * 7 + i / 3) % 5 < 2)).collect();
        for s in separability(&x, 8, &Target::Classes { class: shuffled, names }, 0).unwrap() {
            assert!(s.value < 0.75, "{}: {}", s.probe, s.value);
        }
        // Values: R² from both probes, near 1 for the cluster coordinate itself.
        let along: Vec<f64> = x.chunks_exact(8).map(|r| r[0]).collect();
        let probes: Vec<(Probe, &str)> =
            separability(&x, 8, &Target::Values(along), 0).unwrap().iter().map(|s| (s.probe, s.metric)).collect();
        assert_eq!(probes, vec![(Probe::Knn, "r2"), (Probe::Ridge, "r2")]);
    }

    #[test]
    fn the_legend_lists_classes_by_frequency_and_greys_the_rest() {
        let class: Vec<usize> = (0..100)
            .map(|i| {
                if i < 60 {
                    2
                } else if i < 90 {
                    0
                } else {
                    1
                }
            })
            .collect();
        assert_eq!(by_frequency(&class, 4), vec![(2, 60), (0, 30), (1, 10)]);
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("latent.png");
        let points: Vec<[f64; 2]> = (0..100).map(|i| [i as f64, (i * i) as f64]).collect();
        let names: Vec<String> = ["b", "c", "a", "unused"].iter().map(|s| s.to_string()).collect();
        render(&points, &Colouring::Classes { class: &class, names: &names }, &["t".into()], &out).unwrap();
        let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&out).unwrap()));
        let info = decoder.read_info().unwrap().info().clone();
        assert_eq!((info.width, info.height), (WIDTH as u32, HEIGHT as u32));
    }
}
