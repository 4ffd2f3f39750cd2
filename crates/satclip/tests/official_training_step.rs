//! The training step against the official code, on the 20 indexed fixture tiles as one batch
//! (eval mode, no dropout) with the fixture checkpoint's location encoder and logit scale: CLIP
//! loss, logits and gradients with the official image embeddings, then the whole step with the
//! ResNet18 tower's pooled features through the trainable `fc` head.

use satclip::core::encoding::SphericalHarmonics;
use satclip::core::train::{ClipBatch, ClipModel, StepOutput};
use satclip::io::LightningCheckpoint;
use satclip::vision::Tower;
use satclip::LocationEncoder;
use satclip_testkit::{read_npy, shared_dir, shared_file};

struct Batch {
    fixture: serde_json::Value,
    files: Vec<String>,
    coords: Vec<[f64; 2]>,
    /// Spherical harmonics (L = 10) of the points.
    features: Vec<f64>,
    encoder: LocationEncoder,
    logit_scale: f64,
    grads: Vec<(String, Vec<usize>, Vec<f64>)>,
}

fn batch() -> Option<Batch> {
    let fixture = shared_file("fixtures/clip_loss_resnet18_l10.json")?;
    let fixture: serde_json::Value = serde_json::from_slice(&std::fs::read(fixture).unwrap()).unwrap();
    let (files, coords) = satclip_testkit::clip_fixture_batch(&fixture);
    assert_eq!(coords.len(), 20);
    let mut checkpoint = LightningCheckpoint::open(&shared_file("fixtures/satclip-resnet18-l10.ckpt")?).unwrap();
    let logit_scale = checkpoint.tensor("model.logit_scale").unwrap().data[0];
    assert!((logit_scale - fixture["logit_scale_param"].as_f64().unwrap()).abs() < 1e-12);
    let sh = SphericalHarmonics::new(10).unwrap();
    let mut features = vec![0.0; coords.len() * sh.dim()];
    for (row, &[lon, lat]) in features.chunks_exact_mut(sh.dim()).zip(&coords) {
        sh.encode_into(lon, lat, row);
    }
    let grads = satclip::io::npy::read_npz(&shared_file("fixtures/grads_resnet18_l10.npz")?).unwrap();
    let encoder = checkpoint.location_encoder().unwrap();
    Some(Batch { fixture, files, coords, features, encoder, logit_scale, grads })
}

impl Batch {
    fn model(&self, head: Option<satclip::core::network::Linear<f64>>) -> ClipModel<f64> {
        ClipModel::new(self.encoder.network().clone(), head, self.logit_scale)
    }

    fn step(&self, model: &ClipModel<f64>, image_features: &[f64], max_relative_loss_error: f64) -> StepOutput<f64> {
        let n = self.coords.len();
        let out = model.step(&ClipBatch { location_features: &self.features, image_features, n }, None);
        let official = self.fixture["loss_float64_recomputed_from_same_features"].as_f64().unwrap();
        let relative = (out.loss - official).abs() / official;
        eprintln!("loss: ours {:.10}, official {official:.10}, relative error {relative:.2e}", out.loss);
        assert!(relative <= max_relative_loss_error, "{relative:e}");
        out
    }

    /// Compares every official gradient that `model` has (the image head named `visual.head`
    /// here, `visual.fc` there), relative to each tensor's largest value; returns how many.
    fn check_gradients(&self, model: &ClipModel<f64>, out: &StepOutput<f64>, bound: f64) -> usize {
        let names: Vec<String> = model.clone().parameters_mut().into_iter().map(|p| p.name).collect();
        let mut checked = 0;
        for (name, _, values) in &self.grads {
            let Some(t) = names.iter().position(|n| *n == name.replace("visual.fc.", "visual.head.")) else {
                assert!(name.starts_with("visual.") && model.head.is_none(), "no parameter for {name}");
                continue;
            };
            let ours = &out.gradients.tensors[t];
            assert_eq!(ours.len(), values.len(), "{name}");
            let scale = values.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            let err = ours.iter().zip(values).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max) / scale;
            eprintln!("grad {name}: max |official| {scale:.3e}, max error relative to it {err:.2e}");
            assert!(err <= bound, "{name}: {err:e}");
            checked += 1;
        }
        checked
    }
}

#[test]
fn loss_logits_and_gradients_match_the_official_step() {
    let (Some(batch), Some(img_emb)) = (batch(), shared_file("fixtures/img_emb_resnet18.npy")) else { return };
    // Rows 0–19 of the image embeddings are the index.csv tiles, in the batch's order.
    let (_, dim, images) = read_npy(&img_emb);
    let images = &images[..batch.coords.len() * dim];
    let model = batch.model(None);
    // Measured 3.4e-15: the same f64 arithmetic.
    let out = batch.step(&model, images, 5e-14);

    // Logits from our embeddings, against the official 20×20 logits_per_image.
    let locations = batch.encoder.embed(&batch.coords).unwrap();
    let unit = |v: &[f64]| -> Vec<f64> {
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        v.iter().map(|x| x / norm).collect()
    };
    let mut worst = 0.0f64;
    for (i, row) in batch.fixture["logits_per_image"].as_array().unwrap().iter().enumerate() {
        let img = unit(&images[i * dim..(i + 1) * dim]);
        for (j, official) in row.as_array().unwrap().iter().enumerate() {
            let loc = unit(locations.row(j));
            let ours = batch.logit_scale.exp() * img.iter().zip(&loc).map(|(a, b)| a * b).sum::<f64>();
            worst = worst.max((ours - official.as_f64().unwrap()).abs());
        }
    }
    eprintln!("logits: max abs diff {worst:.2e}");
    assert!(worst <= 1e-5);
    // Measured at most 1.9e-6 (README).
    assert_eq!(batch.check_gradients(&model, &out, 2e-5), 7, "six location tensors and the logit scale");
}

#[test]
fn all_gradients_including_the_image_head_match() {
    let (Some(batch), Some(ckpt), Some(shared)) =
        (batch(), shared_file("fixtures/satclip-resnet18-l10.ckpt"), shared_dir())
    else {
        return;
    };
    let Tower::ResNet(resnet) = satclip::load_tower(&ckpt).unwrap() else { panic!("a ResNet18 checkpoint") };
    let mut pooled = Vec::new();
    for f in &batch.files {
        let (image, _) = satclip::read_sentinel2(&shared.join("data/s2-samples").join(f), 256).unwrap();
        pooled.extend(resnet.pooled(&image).into_iter().map(|v| v as f64));
    }
    let model = batch.model(Some(resnet.fc.cast::<f64>()));
    // Measured 3.5e-8 (the tower runs in f32).
    let out = batch.step(&model, &pooled, 3.5e-7);
    // Measured at most 3.2e-6.
    let checked = batch.check_gradients(&model, &out, 3e-5);
    assert_eq!(checked, 9, "six location tensors, the head's weight and bias, the logit scale");
}
