//! The six checkpoints released with SatCLIP (Klemmer, Rolf et al.), hosted on Hugging Face as
//! `microsoft/SatCLIP-{ResNet18,ResNet50,ViT16}-{L10,L40}`. Nothing is downloaded here: a
//! missing checkpoint's error says where to get it.

/// (file name, Hugging Face repository) of each released checkpoint.
pub const RELEASED: [(&str, &str); 6] = [
    ("satclip-resnet18-l10.ckpt", "microsoft/SatCLIP-ResNet18-L10"),
    ("satclip-resnet18-l40.ckpt", "microsoft/SatCLIP-ResNet18-L40"),
    ("satclip-resnet50-l10.ckpt", "microsoft/SatCLIP-ResNet50-L10"),
    ("satclip-resnet50-l40.ckpt", "microsoft/SatCLIP-ResNet50-L40"),
    ("satclip-vit16-l10.ckpt", "microsoft/SatCLIP-ViT16-L10"),
    ("satclip-vit16-l40.ckpt", "microsoft/SatCLIP-ViT16-L40"),
];

/// Where to download the released checkpoint whose file name `path` ends in.
pub fn download_url(path: &std::path::Path) -> Option<String> {
    let name = path.file_name()?.to_str()?.to_ascii_lowercase();
    RELEASED
        .iter()
        .find(|(file, _)| *file == name)
        .map(|(file, repo)| format!("https://huggingface.co/{repo}/resolve/main/{file}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn released_names_map_to_their_repositories() {
        assert_eq!(
            download_url("models/satclip-vit16-l40.ckpt".as_ref()).as_deref(),
            Some("https://huggingface.co/microsoft/SatCLIP-ViT16-L40/resolve/main/satclip-vit16-l40.ckpt")
        );
        assert!(download_url("SATCLIP-RESNET50-L10.CKPT".as_ref()).unwrap().contains("SatCLIP-ResNet50-L10"));
        assert_eq!(download_url("my-run.ckpt".as_ref()), None);
    }
}
