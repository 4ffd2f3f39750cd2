//! The training step against the official code: CLIP loss, logits and gradients for the 20
//! indexed fixture tiles as one batch (eval mode, no dropout), with the fixture checkpoint's
//! location encoder and logit scale and the official image embeddings of those tiles.

use satclip_core::encoding::SphericalHarmonics;
use satclip_core::network::Network;
use satclip_core::train::{ClipBatch, ClipModel};
use satclip_io::LightningCheckpoint;
use satclip_testkit::{read_npy, shared_file};

#[test]
fn loss_logits_and_gradients_match_the_official_step() {
    let (Some(ckpt), Some(loss_json), Some(grads_npz), Some(img_emb)) = (
        shared_file("fixtures/satclip-resnet18-l10.ckpt"),
        shared_file("fixtures/clip_loss_resnet18_l10.json"),
        shared_file("fixtures/grads_resnet18_l10.npz"),
        shared_file("fixtures/img_emb_resnet18.npy"),
    ) else {
        return;
    };
    let fixture: serde_json::Value = serde_json::from_slice(&std::fs::read(&loss_json).unwrap()).unwrap();
    let (_, coords) = satclip_testkit::clip_fixture_batch(&fixture);
    let n = coords.len();
    assert_eq!(n, 20);

    let mut checkpoint = LightningCheckpoint::open(&ckpt).unwrap();
    let logit_scale = checkpoint.tensor("model.logit_scale").unwrap().data[0];
    assert!((logit_scale - fixture["logit_scale_param"].as_f64().unwrap()).abs() < 1e-12);
    let encoder = checkpoint.location_encoder().unwrap();
    let Network::Siren(siren) = encoder.network() else { panic!("released models use a SIREN") };

    let sh = SphericalHarmonics::new(10).unwrap();
    let mut features = vec![0.0; n * sh.dim()];
    for (row, &[lon, lat]) in features.chunks_exact_mut(sh.dim()).zip(&coords) {
        sh.encode_into(lon, lat, row);
    }
    // Rows 0–19 of the image embeddings are the index.csv tiles, in the batch's order.
    let (_, dim, images) = read_npy(&img_emb);
    let images = &images[..n * dim];

    let model = ClipModel { location: Network::Siren(siren.clone()), head: None, logit_scale };
    let out = model.step(&ClipBatch { location_features: &features, image_features: images, n }, None);
    let official_loss = fixture["loss_float64_recomputed_from_same_features"].as_f64().unwrap();
    let relative = (out.loss - official_loss).abs() / official_loss;
    eprintln!("loss: ours {:.10}, official {official_loss:.10}, relative error {relative:.2e}", out.loss);
    // Measured 3.4e-15: the same f64 arithmetic.
    assert!(relative <= 5e-14, "{relative:e}");

    // Logits from our embeddings, against the official 20×20 logits_per_image.
    let locations = encoder.embed(&coords).unwrap();
    let unit = |v: &[f64]| -> Vec<f64> {
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        v.iter().map(|x| x / norm).collect()
    };
    let mut worst = 0.0f64;
    for (i, row) in fixture["logits_per_image"].as_array().unwrap().iter().enumerate() {
        let img = unit(&images[i * dim..(i + 1) * dim]);
        for (j, official) in row.as_array().unwrap().iter().enumerate() {
            let loc = unit(locations.row(j));
            let ours = logit_scale.exp() * img.iter().zip(&loc).map(|(a, b)| a * b).sum::<f64>();
            worst = worst.max((ours - official.as_f64().unwrap()).abs());
        }
    }
    eprintln!("logits: max abs diff {worst:.2e}");
    assert!(worst <= 1e-5);

    // Gradients of every trainable location tensor and of the logit scale.
    let mut probe = model.clone();
    let names: Vec<String> = probe.parameters_mut().into_iter().map(|p| p.name).collect();
    let official = satclip_io::npy::read_npz(&grads_npz).unwrap();
    let mut checked = 0;
    for (name, _, values) in &official {
        let Some(t) = names.iter().position(|n| n == name) else {
            assert!(name.starts_with("visual."), "unexpected gradient {name}");
            continue; // the visual head's gradient needs the image tower's pooled features
        };
        let ours = &out.gradients.tensors[t];
        assert_eq!(ours.len(), values.len(), "{name}");
        let scale = values.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let err = ours.iter().zip(values).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max) / scale;
        eprintln!("grad {name}: max |official| {scale:.3e}, max error relative to it {err:.2e}");
        // Measured at most 1.9e-6 (README).
        assert!(err <= 2e-5, "{name}: {err:e}");
        checked += 1;
    }
    assert_eq!(checked, 7, "six location tensors and the logit scale");
}
