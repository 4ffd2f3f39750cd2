//! Tower layouts against independently known facts of the timm models (parameter counts with 13
//! input channels and a 256-d head); ResNet50 has no fixture checkpoint, so this is its check.

use satclip_vision::synthetic::synthetic_tower_weights;
use satclip_vision::{Image, Tower};

/// Trainable parameters (weights and biases; batch-norm running statistics excluded).
fn trainable(t: &satclip_core::TensorMap) -> usize {
    t.names().filter(|n| !n.contains("running_")).map(|n| t.shape(n).unwrap().iter().product::<usize>()).sum()
}

#[test]
fn parameter_counts_match_timm() {
    // timm resnet18: 11,689,512 with 3 channels and 1000 classes; resnet50: 25,557,032;
    // vit_small_patch16_224: 22,050,664. Swap the stem for 13 channels and the head for 256.
    let cases = [
        ("moco_resnet18", 11_689_512 + 64 * 10 * 49 - (512 * 1000 + 1000) + (512 * 256 + 256)),
        ("moco_resnet50", 25_557_032 + 64 * 10 * 49 - (2048 * 1000 + 1000) + (2048 * 256 + 256)),
        ("moco_vit16", 22_050_664 + 384 * 10 * 256 - (384 * 1000 + 1000) + (384 * 256 + 256)),
    ];
    for (name, expected) in cases {
        let weights = synthetic_tower_weights(name, 1).unwrap();
        assert_eq!(trainable(&weights), expected, "{name}");
    }
    // The ViT-S/16 of the fixture checkpoint: 22,747,264 visual parameters (reference notes).
    assert_eq!(trainable(&synthetic_tower_weights("moco_vit16", 1).unwrap()), 22_747_264);
}

#[test]
fn resnet50_loads_and_embeds_with_the_official_key_layout() {
    let tower = Tower::load("moco_resnet50", synthetic_tower_weights("moco_resnet50", 7).unwrap()).unwrap();
    let image = Image {
        channels: 13,
        height: 64,
        width: 64,
        data: (0..13 * 64 * 64).map(|i| (i % 97) as f32 / 97.0).collect(),
    };
    let Tower::ResNet(resnet) = &tower else { panic!() };
    assert_eq!(resnet.pooled(&image).len(), 2048);
    assert_eq!(tower.head().out_dim, 256);
    let e = tower.head().forward(&resnet.pooled(&image), 1, false);
    assert!(e.iter().all(|v| v.is_finite()) && e.len() == 256);

    // A missing or misshaped tensor names the key.
    let mut weights = synthetic_tower_weights("moco_resnet50", 7).unwrap();
    weights.insert("layer3.5.conv2.weight", satclip_core::Tensor::zeros(vec![256, 256, 1, 1]));
    let err = Tower::load("moco_resnet50", weights).unwrap_err().to_string();
    assert!(err.contains("layer3.5.conv2.weight") && err.contains("[256, 256, 3, 3]"), "{err}");
    // ResNet18 weights are not a ResNet50: leftovers or missing keys are reported.
    assert!(Tower::load("moco_resnet50", synthetic_tower_weights("moco_resnet18", 7).unwrap()).is_err());
    assert!(Tower::load("moco_resnet101", synthetic_tower_weights("moco_resnet18", 7).unwrap()).is_err());
}
