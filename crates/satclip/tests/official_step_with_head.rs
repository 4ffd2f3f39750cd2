//! The whole official training step: ResNet18 tower features of the 20 indexed tiles through the
//! checkpoint's trainable `fc` head, the location encoder, the CLIP loss, and the gradients of
//! every trainable tensor — including the image head — against `grads_resnet18_l10.npz`.

use satclip::core::encoding::SphericalHarmonics;
use satclip::core::network::Network;
use satclip::core::train::{ClipBatch, ClipModel};
use satclip::io::LightningCheckpoint;
use satclip::vision::Tower;
use satclip_testkit::{shared_dir, shared_file};

#[test]
fn all_gradients_including_the_image_head_match() {
    let (Some(ckpt_path), Some(loss_json), Some(grads), Some(shared)) = (
        shared_file("fixtures/satclip-resnet18-l10.ckpt"),
        shared_file("fixtures/clip_loss_resnet18_l10.json"),
        shared_file("fixtures/grads_resnet18_l10.npz"),
        shared_dir(),
    ) else {
        return;
    };
    let fixture: serde_json::Value = serde_json::from_slice(&std::fs::read(&loss_json).unwrap()).unwrap();
    let (files, coords) = satclip_testkit::clip_fixture_batch(&fixture);
    let n = files.len();

    let Tower::ResNet(resnet) = satclip::load_tower(&ckpt_path).unwrap() else { panic!("a ResNet18 checkpoint") };
    let mut pooled = Vec::new();
    for f in &files {
        let (image, _) = satclip::read_sentinel2(&shared.join("data/s2-samples").join(f), 256).unwrap();
        pooled.extend(resnet.pooled(&image).into_iter().map(|v| v as f64));
    }
    let mut ckpt = LightningCheckpoint::open(&ckpt_path).unwrap();
    let logit_scale = ckpt.tensor("model.logit_scale").unwrap().data[0];
    let encoder = ckpt.location_encoder().unwrap();
    let Network::Siren(siren) = encoder.network() else { panic!() };
    let model = ClipModel { location: Network::Siren(siren.clone()), head: Some(resnet.fc.cast::<f64>()), logit_scale };

    let sh = SphericalHarmonics::new(10).unwrap();
    let mut features = vec![0.0; n * sh.dim()];
    for (row, &[lon, lat]) in features.chunks_exact_mut(sh.dim()).zip(&coords) {
        sh.encode_into(lon, lat, row);
    }
    let out = model.step(&ClipBatch { location_features: &features, image_features: &pooled, n }, None);
    let official_loss = fixture["loss_float64_recomputed_from_same_features"].as_f64().unwrap();
    let relative = (out.loss - official_loss).abs() / official_loss;
    eprintln!("loss: ours {:.10}, official {official_loss:.10}, relative error {relative:.2e}", out.loss);
    // Measured 3.5e-8 (the tower runs in f32).
    assert!(relative < 3.5e-7, "{relative:e}");

    let mut probe = model.clone();
    let names: Vec<String> = probe.parameters_mut().into_iter().map(|p| p.name).collect();
    let mut checked = 0;
    for (name, _, values) in satclip::io::npy::read_npz(&grads).unwrap() {
        // The fixture names the image head `visual.fc`; ours is the generic `visual.head`.
        let ours_name = name.replace("visual.fc.", "visual.head.");
        let t = names.iter().position(|n| *n == ours_name).unwrap_or_else(|| panic!("no parameter for {name}"));
        let scale = values.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let err = out.gradients.tensors[t].iter().zip(&values).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max) / scale;
        eprintln!("grad {name}: max error relative to max |official| {err:.2e}");
        // Measured at most 3.2e-6.
        assert!(err <= 3e-5, "{name}: {err:e}");
        checked += 1;
    }
    assert_eq!(checked, 9, "six location tensors, the head's weight and bias, the logit scale");
}
