//! What a model spec names. Every command, the Python bindings and the service take the same
//! specs: an encoder's name (`default`, `vit16-l40`, `geoclip`, `sh-l10`, …), a Hub repository
//! (`microsoft/SatCLIP-ViT16-L40`, or `hf://org/name/file.ckpt` for any other), either of those
//! two with `@revision`, or a file (official `.ckpt` or native model directory).

use std::path::{Path, PathBuf};

use satclip_hub::{ConsoleProgress, Hub, HubFile};

use crate::registry::{find, EncoderEntry, Origin, ENCODERS};
use crate::{Error, Result};

pub enum ModelSpec {
    /// Built in, installed or computed (not a Hub download).
    Registered(&'static EncoderEntry),
    Hub(HubFile),
    File(PathBuf),
}

impl ModelSpec {
    pub fn parse(spec: &str) -> Result<Self> {
        let invalid = |e: satclip_hub::Error| Error::format(Path::new(spec), e.to_string());
        if let Some(entry) = find(spec) {
            return Ok(match entry.origin {
                Origin::Hub { repo, file, .. } => Self::Hub(HubFile::new(repo, "main", file).map_err(invalid)?),
                _ => Self::Registered(entry),
            });
        }
        // An existing file wins over every reading of its name as a Hub spec.
        if Path::new(spec).exists() {
            return Ok(Self::File(spec.into()));
        }
        let (name, revision) = match spec.rsplit_once('@') {
            Some((name, revision)) if !name.is_empty() => (name, revision),
            _ => (spec, "main"),
        };
        if let Some(rest) = name.strip_prefix("hf://") {
            let mut parts = rest.splitn(3, '/');
            let repo = format!("{}/{}", parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
            let file = match (parts.next(), released(&repo)) {
                (Some(file), _) => file.to_string(),
                (None, Some((_, file))) => file.to_string(),
                (None, None) => {
                    return Err(Error::format(
                        Path::new(spec),
                        "name the file too: hf://organisation/name/file.ckpt[@revision]",
                    ))
                }
            };
            let repo = released(&repo).map_or(repo, |(canonical, _)| canonical.to_string());
            return Ok(Self::Hub(HubFile::new(&repo, revision, &file).map_err(invalid)?));
        }
        let entry = find(name).and_then(|e| match e.origin {
            Origin::Hub { repo, file, .. } => Some((repo, file)),
            _ => None,
        });
        if let Some((repo, file)) = entry.or_else(|| released(name)) {
            return Ok(Self::Hub(HubFile::new(repo, revision, file).map_err(invalid)?));
        }
        Ok(Self::File(spec.into()))
    }

    /// The local file this spec names, downloading a Hub file (visibly) unless it is cached.
    pub fn checkpoint(&self, spec: &str) -> Result<PathBuf> {
        match self {
            Self::File(path) => Ok(path.clone()),
            Self::Hub(file) => fetch(file),
            Self::Registered(entry) => Err(Error::format(
                Path::new(spec),
                format!(
                    "is the {} encoder, not a checkpoint: this command needs a SatCLIP checkpoint (a .ckpt, a native \
                     model directory, or a released model such as vit16-l40)",
                    entry.name
                ),
            )),
        }
    }
}

/// The local path of a checkpoint spec (a file, or a Hub name fetched into the cache).
pub fn resolve_checkpoint(spec: &str) -> Result<PathBuf> {
    ModelSpec::parse(spec)?.checkpoint(spec)
}

fn fetch(file: &HubFile) -> Result<PathBuf> {
    Hub::from_env()
        .fetch(file, &mut ConsoleProgress::default())
        .map_err(|e| Error::format(Path::new(&file.repo), e.to_string()))
}

/// The released checkpoint whose repository is `repo` (in any letter case): canonical repository
/// name and file.
fn released(repo: &str) -> Option<(&'static str, &'static str)> {
    ENCODERS.iter().find_map(|e| match e.origin {
        Origin::Hub { repo: r, file, .. } if r.eq_ignore_ascii_case(repo) => Some((r, file)),
        _ => None,
    })
}

/// The released model whose file name `path` ends in, for the hint when such a file is missing.
pub fn released_file(path: &Path) -> Option<&'static EncoderEntry> {
    let name = path.file_name()?.to_str()?.to_ascii_lowercase();
    ENCODERS.iter().find(|e| matches!(e.origin, Origin::Hub { file, .. } if file == name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub(spec: &str) -> HubFile {
        match ModelSpec::parse(spec).unwrap() {
            ModelSpec::Hub(file) => file,
            _ => panic!("{spec} is not a Hub spec"),
        }
    }

    #[test]
    fn names_repositories_and_revisions_resolve_to_hub_files() {
        let main = HubFile::new("microsoft/SatCLIP-ViT16-L40", "main", "satclip-vit16-l40.ckpt").unwrap();
        for spec in [
            "vit16-l40",
            "satclip-vit16-l40",
            "microsoft/SatCLIP-ViT16-L40",
            "microsoft/satclip-vit16-l40",
            "hf://microsoft/SatCLIP-ViT16-L40",
        ] {
            assert_eq!(hub(spec), main, "{spec}");
        }
        let pinned = "0ef2acc0b91d3c8cfdf4a0cc03207095989287ab";
        assert_eq!(hub(&format!("vit16-l40@{pinned}")).revision, pinned);
        assert_eq!(hub(&format!("microsoft/SatCLIP-ViT16-L40@{pinned}")).revision, pinned);
        let other = hub("hf://someone/my-satclip/runs/last.ckpt@v2");
        assert_eq!(
            (other.repo.as_str(), other.revision.as_str(), other.filename.as_str()),
            ("someone/my-satclip", "v2", "runs/last.ckpt")
        );
        assert!(ModelSpec::parse("hf://someone/my-satclip").is_err());
        assert!(ModelSpec::parse("hf://../x/y.ckpt").is_err());
    }

    #[test]
    fn registered_names_and_paths_stay_what_they_were() {
        assert!(matches!(ModelSpec::parse("default").unwrap(), ModelSpec::Registered(e) if e.name == "default"));
        assert!(matches!(ModelSpec::parse("sh-l10").unwrap(), ModelSpec::Registered(_)));
        // A path that does not exist and is no Hub name stays a path (its error names it).
        assert!(matches!(ModelSpec::parse("runs/model.ckpt").unwrap(), ModelSpec::File(_)));
        assert!(matches!(ModelSpec::parse("someone/model").unwrap(), ModelSpec::File(_)));
        assert_eq!(released_file(Path::new("models/SATCLIP-RESNET50-L10.CKPT")).map(|e| e.name), Some("resnet50-l10"));
        assert!(released_file(Path::new("my-run.ckpt")).is_none());
    }
}
