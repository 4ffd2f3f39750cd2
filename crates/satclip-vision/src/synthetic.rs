//! Random weights in the official key layout, for benchmarks and for testing towers for which no
//! real checkpoint is at hand (ResNet50). Values are small and well-conditioned, not meaningful.

use rand::{Rng, SeedableRng};
use satclip_core::{Tensor, TensorMap};

/// Tensors keyed as `model.visual.*` minus the prefix, for `moco_resnet18`, `moco_resnet50` or
/// `moco_vit16`, with a 256-d head. `None` for an unknown tower name.
pub fn synthetic_tower_weights(vision_layers: &str, seed: u64) -> Option<TensorMap> {
    let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
    let mut next = move || rng.random::<f64>() - 0.5;
    let mut t = TensorMap::new();
    let mut add = |name: String, shape: &[usize], scale: f64, offset: f64| {
        let n: usize = shape.iter().product();
        t.insert(name, Tensor { shape: shape.to_vec(), data: (0..n).map(|_| offset + scale * next()).collect() });
    };
    let conv = |add: &mut dyn FnMut(String, &[usize], f64, f64), name: &str, cout: usize, cin: usize, k: usize| {
        add(format!("{name}.weight"), &[cout, cin, k, k], (2.0 / (cin * k * k) as f64).sqrt(), 0.0);
    };
    let bn = |add: &mut dyn FnMut(String, &[usize], f64, f64), name: &str, c: usize| {
        add(format!("{name}.weight"), &[c], 0.2, 1.0);
        add(format!("{name}.bias"), &[c], 0.2, 0.0);
        add(format!("{name}.running_mean"), &[c], 0.2, 0.0);
        add(format!("{name}.running_var"), &[c], 0.5, 1.0);
    };
    match vision_layers {
        "moco_resnet18" | "moco_resnet50" => {
            let bottleneck = vision_layers == "moco_resnet50";
            let (blocks, expansion) = if bottleneck { ([3, 4, 6, 3], 4) } else { ([2, 2, 2, 2], 1) };
            conv(&mut add, "conv1", 64, crate::IN_CHANNELS, 7);
            bn(&mut add, "bn1", 64);
            let mut cin = 64;
            for (stage, count) in blocks.into_iter().enumerate() {
                let width = 64 << stage;
                let cout = width * expansion;
                for i in 0..count {
                    let p = format!("layer{}.{i}", stage + 1);
                    let convs: Vec<(usize, usize, usize)> = if bottleneck {
                        vec![(width, cin, 1), (width, width, 3), (cout, width, 1)]
                    } else {
                        vec![(width, cin, 3), (width, width, 3)]
                    };
                    for (j, (o, c, k)) in convs.into_iter().enumerate() {
                        conv(&mut add, &format!("{p}.conv{}", j + 1), o, c, k);
                        bn(&mut add, &format!("{p}.bn{}", j + 1), o);
                    }
                    if i == 0 && (stage > 0 || cin != cout) {
                        conv(&mut add, &format!("{p}.downsample.0"), cout, cin, 1);
                        bn(&mut add, &format!("{p}.downsample.1"), cout);
                    }
                    cin = cout;
                }
            }
            add("fc.weight".into(), &[256, cin], 0.05, 0.0);
            add("fc.bias".into(), &[256], 0.05, 0.0);
        }
        "moco_vit16" => {
            let (w, mlp) = (384, 1536);
            add("patch_embed.proj.weight".into(), &[w, crate::IN_CHANNELS, 16, 16], 0.02, 0.0);
            add("patch_embed.proj.bias".into(), &[w], 0.02, 0.0);
            add("cls_token".into(), &[1, 1, w], 0.02, 0.0);
            add("pos_embed".into(), &[1, 197, w], 0.02, 0.0);
            for i in 0..12 {
                let p = format!("blocks.{i}");
                for (name, out, inp) in
                    [("attn.qkv", 3 * w, w), ("attn.proj", w, w), ("mlp.fc1", mlp, w), ("mlp.fc2", w, mlp)]
                {
                    add(format!("{p}.{name}.weight"), &[out, inp], (1.0 / inp as f64).sqrt(), 0.0);
                    add(format!("{p}.{name}.bias"), &[out], 0.02, 0.0);
                }
                for norm in ["norm1", "norm2"] {
                    add(format!("{p}.{norm}.weight"), &[w], 0.1, 1.0);
                    add(format!("{p}.{norm}.bias"), &[w], 0.1, 0.0);
                }
            }
            add("norm.weight".into(), &[w], 0.1, 1.0);
            add("norm.bias".into(), &[w], 0.1, 0.0);
            add("head.weight".into(), &[256, w], 0.05, 0.0);
            add("head.bias".into(), &[256], 0.05, 0.0);
        }
        _ => return None,
    }
    Some(t)
}
