//! The hand-written training step against independent references: central finite differences of
//! the loss, a naive full-matrix CLIP loss, and one AdamW step computed by hand.

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;
use satclip_core::network::{Linear, Siren, Weights};
use satclip_core::train::{clip_loss, AdamW, ClipBatch, ClipModel, Gradients, INITIAL_LOGIT_SCALE};

fn small_model(rng: &mut Pcg64) -> ClipModel<f64> {
    // din 9 (L = 3 harmonics), hidden 8, two sine layers, embedding 4; head 5 → 4.
    let mut siren = Siren::new(&mut Weights::Init(rng), 9, 8, 4, 2).unwrap();
    // Larger first-layer weights than the official init, so that the sines are far from linear.
    siren.layers[0].linear.weight.iter_mut().for_each(|w| *w *= 20.0);
    ClipModel::new(
        satclip_core::Network::Siren(siren),
        Some(Linear::torch_default(rng, 5, 4, true)),
        INITIAL_LOGIT_SCALE,
    )
}

fn batch_data(rng: &mut Pcg64, n: usize) -> (Vec<f64>, Vec<f64>) {
    (
        (0..n * 9).map(|_| rng.random_range(-1.0..1.0)).collect(),
        (0..n * 5).map(|_| rng.random_range(-1.0..1.0)).collect(),
    )
}

fn loss_with(
    model: &ClipModel<f64>,
    loc: &[f64],
    img: &[f64],
    n: usize,
    dropout_seed: Option<u64>,
) -> (f64, Gradients<f64>) {
    let batch = ClipBatch { location_features: loc, image_features: img, n };
    let mut rng = dropout_seed.map(Pcg64::seed_from_u64);
    let out = model.step(&batch, rng.as_mut().map(|r| r as &mut dyn rand::RngCore));
    (out.loss, out.gradients)
}

fn other_networks(rng: &mut Pcg64) -> Vec<ClipModel<f64>> {
    let head = Linear::torch_default(rng, 5, 4, true);
    [("linear", 2), ("mlp", 2), ("mlp", 0), ("fcnet", 2)]
        .into_iter()
        .map(|(pe_type, num_hidden_layers)| {
            let hp = satclip_core::Hyperparameters {
                pe_type: pe_type.into(),
                capacity: 6,
                embed_dim: 4,
                num_hidden_layers,
                ..Default::default()
            };
            let net = satclip_core::Network::init(&hp, 9, rng).unwrap();
            ClipModel::new(net.cast(), Some(head.clone()), INITIAL_LOGIT_SCALE)
        })
        .collect()
}

#[test]
fn every_network_matches_central_finite_differences() {
    let mut rng = Pcg64::seed_from_u64(12);
    let n = 7;
    let (loc, img) = batch_data(&mut rng, n);
    for model in other_networks(&mut rng) {
        for dropout in [None, Some(3)] {
            check_gradients(&model, &loc, &img, n, dropout);
        }
    }
}

fn check_gradients(model: &ClipModel<f64>, loc: &[f64], img: &[f64], n: usize, dropout: Option<u64>) {
    let (_, grads) = loss_with(model, loc, img, n, dropout);
    let mut probe = model.clone();
    let names: Vec<String> = probe.parameters_mut().into_iter().map(|p| p.name).collect();
    assert_eq!(names.len(), grads.tensors.len(), "{names:?}");
    for (t, name) in names.iter().enumerate() {
        let len = grads.tensors[t].len();
        for idx in [0, len / 2, len - 1] {
            let h = 1e-6;
            let mut plus = model.clone();
            plus.parameters_mut()[t].values[idx] += h;
            let mut minus = model.clone();
            minus.parameters_mut()[t].values[idx] -= h;
            let numeric =
                (loss_with(&plus, loc, img, n, dropout).0 - loss_with(&minus, loc, img, n, dropout).0) / (2.0 * h);
            let analytic = grads.tensors[t][idx];
            let err = (numeric - analytic).abs() / numeric.abs().max(1e-3);
            assert!(err < 1e-5, "{name}[{idx}] dropout {dropout:?}: analytic {analytic}, numeric {numeric}");
        }
    }
}

#[test]
fn gradients_match_central_finite_differences() {
    let mut rng = Pcg64::seed_from_u64(11);
    let model = small_model(&mut rng);
    let n = 7;
    let (loc, img) = batch_data(&mut rng, n);
    for dropout in [None, Some(5)] {
        check_gradients(&model, &loc, &img, n, dropout);
    }
}

/// The obvious implementation: the whole N×N matrix, both softmaxes, both products.
fn naive_clip(img: &[f64], loc: &[f64], n: usize, d: usize, scale: f64) -> (f64, Vec<f64>, Vec<f64>, f64) {
    let logit = |i: usize, j: usize| scale * (0..d).map(|k| img[i * d + k] * loc[j * d + k]).sum::<f64>();
    let l: Vec<Vec<f64>> = (0..n).map(|i| (0..n).map(|j| logit(i, j)).collect()).collect();
    let lse = |v: &mut dyn Iterator<Item = f64>| {
        let v: Vec<f64> = v.collect();
        let m = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        m + v.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
    };
    let row: Vec<f64> = (0..n).map(|i| lse(&mut l[i].iter().cloned())).collect();
    let col: Vec<f64> = (0..n).map(|j| lse(&mut (0..n).map(|i| l[i][j]))).collect();
    let loss = (0..n).map(|i| row[i] + col[i] - 2.0 * l[i][i]).sum::<f64>() / (2.0 * n as f64);
    let (mut di, mut dl, mut ds) = (vec![0.0; n * d], vec![0.0; n * d], 0.0);
    for i in 0..n {
        for j in 0..n {
            let g = ((l[i][j] - row[i]).exp() + (l[i][j] - col[j]).exp()) / (2.0 * n as f64)
                - if i == j { 1.0 / n as f64 } else { 0.0 };
            ds += g * l[i][j];
            for k in 0..d {
                di[i * d + k] += scale * g * loc[j * d + k];
                dl[j * d + k] += scale * g * img[i * d + k];
            }
        }
    }
    (loss, di, dl, ds)
}

#[test]
fn blocked_clip_loss_equals_the_full_matrix_computation() {
    let mut rng = Pcg64::seed_from_u64(2);
    let (n, d) = (600, 6); // more than two row blocks, the last one partial
    let unit = |rng: &mut Pcg64| -> Vec<f64> {
        let mut v: Vec<f64> = (0..n * d).map(|_| rng.random_range(-1.0..1.0)).collect();
        for row in v.chunks_exact_mut(d) {
            let norm = row.iter().map(|x| x * x).sum::<f64>().sqrt();
            row.iter_mut().for_each(|x| *x /= norm);
        }
        v
    };
    let (img, loc) = (unit(&mut rng), unit(&mut rng));
    let scale = 25.0;
    let ours = clip_loss(&img, &loc, n, d, scale);
    let (loss, di, dl, ds) = naive_clip(&img, &loc, n, d, scale);
    assert!((ours.value - loss).abs() < 1e-12, "{} vs {loss}", ours.value);
    assert!((ours.d_logit_scale - ds).abs() < 1e-12 * ds.abs().max(1.0), "{} vs {ds}", ours.d_logit_scale);
    for (a, b) in ours.d_image.iter().zip(&di).chain(ours.d_location.iter().zip(&dl)) {
        assert!((a - b).abs() < 1e-13);
    }
    // The f32 kernels agree with f64 to float tolerance.
    let (img32, loc32): (Vec<f32>, Vec<f32>) =
        (img.iter().map(|v| *v as f32).collect(), loc.iter().map(|v| *v as f32).collect());
    let ours32 = clip_loss(&img32, &loc32, n, d, scale as f32);
    assert!((ours32.value - loss).abs() / loss < 1e-5, "{} vs {loss}", ours32.value);
    for (a, b) in ours32.d_image.iter().zip(&di) {
        assert!((*a as f64 - b).abs() < 1e-6);
    }
}

#[test]
fn adamw_follows_the_torch_update_rule() {
    let mut rng = Pcg64::seed_from_u64(9);
    let mut model = small_model(&mut rng);
    let before = model.clone();
    let mut before_model = before.clone();
    let grads = Gradients {
        tensors: model.parameters_mut().iter().map(|p| p.values.iter().map(|v| 0.5 * v + 0.01).collect()).collect(),
    };
    let mut opt = AdamW::satclip();
    opt.update(model.parameters_mut(), &grads);
    opt.update(model.parameters_mut(), &grads);
    let (lr, wd, b1, b2, eps) = (1e-4, 0.01, 0.9f64, 0.999f64, 1e-8);
    for ((p_new, p_old), g) in model.parameters_mut().into_iter().zip(before_model.parameters_mut()).zip(&grads.tensors)
    {
        for ((new, old), g) in p_new.values.iter().zip(p_old.values.iter()).zip(g) {
            // Two steps with the same gradient, written out.
            let mut p = *old;
            let (mut m, mut v) = (0.0, 0.0);
            for t in 1..=2 {
                if p_new.decay {
                    p *= 1.0 - lr * wd;
                }
                m = b1 * m + (1.0 - b1) * g;
                v = b2 * v + (1.0 - b2) * g * g;
                let m_hat = m / (1.0 - b1.powi(t));
                let v_hat = v / (1.0 - b2.powi(t));
                p -= lr * m_hat / (v_hat.sqrt() + eps);
            }
            assert!((new - p).abs() < 1e-15, "{}: {new} vs {p}", p_new.name);
        }
    }
}

#[test]
fn recomputing_logits_gives_the_same_result_as_storing_them() {
    let mut rng = Pcg64::seed_from_u64(4);
    let (n, d) = (700, 5);
    let unit: Vec<f32> = {
        let mut v: Vec<f32> = (0..2 * n * d).map(|_| rng.random_range(-1.0..1.0)).collect();
        for row in v.chunks_exact_mut(d) {
            let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
            row.iter_mut().for_each(|x| *x /= norm);
        }
        v
    };
    let (img, loc) = unit.split_at(n * d);
    // A large scale also exercises the max-tracking softmax path.
    for scale in [14.3f32, 90.0] {
        let stored = satclip_core::train::clip_loss_with_budget(img, loc, n, d, scale, usize::MAX);
        let recomputed = satclip_core::train::clip_loss_with_budget(img, loc, n, d, scale, 0);
        assert_eq!(stored.value, recomputed.value);
        assert_eq!(stored.d_image, recomputed.d_image);
        assert_eq!(stored.d_location, recomputed.d_location);
        let wide: (Vec<f64>, Vec<f64>) =
            (img.iter().map(|v| *v as f64).collect(), loc.iter().map(|v| *v as f64).collect());
        let (loss, ..) = naive_clip(&wide.0, &wide.1, n, d, scale as f64);
        assert!((stored.value - loss).abs() / loss < 1e-5, "scale {scale}: {} vs {loss}", stored.value);
    }
}

/// The loss's logits buffer is kept from step to step: whatever the previous step left in it
/// (another batch of the same size, a smaller one), a step gives exactly what a fresh model does.
#[test]
fn steps_on_a_reused_logits_buffer_equal_steps_of_a_fresh_model() {
    let mut rng = Pcg64::seed_from_u64(21);
    let model = small_model(&mut rng);
    // Past the loss's 256-row blocks, so that the stored logits span several blocks.
    let (a1, a2, b) = (batch_data(&mut rng, 300), batch_data(&mut rng, 300), batch_data(&mut rng, 40));
    let fresh = |(loc, img): &(Vec<f64>, Vec<f64>), n| loss_with(&model.clone(), loc, img, n, None);
    let (ra1, ra2, rb) = (fresh(&a1, 300), fresh(&a2, 300), fresh(&b, 40));
    for ((loc, img), n, want) in [(&a1, 300, &ra1), (&a2, 300, &ra2), (&b, 40, &rb), (&a2, 300, &ra2)] {
        let (loss, gradients) = loss_with(&model, loc, img, n, None);
        assert_eq!(loss, want.0, "n = {n}");
        assert!(gradients.tensors == want.1.tensors, "n = {n}: the gradients differ");
    }
}
