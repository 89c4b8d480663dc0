//! Artifacts: a gzip-compressed tar holding a task's `outputs` files, its captured output (for replay) and a JSON
//! manifest. Bytes in, bytes out, so a remote store can upload and download them as they are.

use std::io::{Read, Write};
use std::path::{Component, Path};

use serde::{Deserialize, Serialize};

const MANIFEST: &str = "manifest.json";
const OUTPUT: &str = "output";
const FILES: &str = "files/";
/// The most an artifact may unpack to: a small download must not unpack into more memory than irun can have.
const UNPACKED_MAX: u64 = 2 << 30;

/// What an artifact says about the run that made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Manifest {
    pub(crate) key: String,
    pub(crate) task: String,
    /// Each part of the key and its digest (see `key::PARTS`).
    pub(crate) parts: Vec<(String, String)>,
    pub(crate) exit_status: i32,
    pub(crate) duration_ms: u64,
    pub(crate) irun_version: String,
}

/// One line (or piece) of captured output: whether it went to stderr, and its bytes.
pub(crate) type Line = (bool, Vec<u8>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Artifact {
    pub(crate) manifest: Manifest,
    /// (path relative to the project, content, mode).
    pub(crate) files: Vec<(String, Vec<u8>, u32)>,
    pub(crate) output: Vec<Line>,
}

impl Artifact {
    pub(crate) fn pack(&self) -> std::io::Result<Vec<u8>> {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut tar = tar::Builder::new(gz);
        let mut add = |path: &str, data: &[u8], mode: u32| {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(mode);
            header.set_entry_type(tar::EntryType::Regular);
            tar.append_data(&mut header, path, data)
        };
        add(MANIFEST, &serde_json::to_vec(&self.manifest)?, 0o644)?;
        let mut output = Vec::new();
        for (stderr, text) in &self.output {
            output.push(u8::from(*stderr));
            output.extend_from_slice(&(text.len() as u32).to_le_bytes());
            output.extend_from_slice(text);
        }
        add(OUTPUT, &output, 0o644)?;
        for (path, data, mode) in &self.files {
            add(&format!("{FILES}{path}"), data, *mode)?;
        }
        tar.into_inner()?.finish()
    }

    /// The artifact in `bytes`; an error says why it is not one (corrupt, truncated, a path leaving the project).
    pub(crate) fn unpack(bytes: &[u8]) -> Result<Artifact, String> {
        Artifact::unpack_within(bytes, UNPACKED_MAX)
    }

    fn unpack_within(bytes: &[u8], max: u64) -> Result<Artifact, String> {
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
        let (mut manifest, mut output, mut files) = (None, Vec::new(), Vec::new());
        let mut total = 0u64;
        for entry in tar.entries().map_err(|e| e.to_string())? {
            let mut entry = entry.map_err(|e| e.to_string())?;
            // An entry reads as many bytes as its header says: the sum is what it unpacks to.
            total = total.saturating_add(entry.header().size().map_err(|e| e.to_string())?);
            if total > max {
                return Err(format!("it unpacks to more than {max} bytes"));
            }
            let path = entry.path().map_err(|e| e.to_string())?.to_string_lossy().into_owned();
            let mode = entry.header().mode().unwrap_or(0o644);
            let mut data = Vec::new();
            entry.read_to_end(&mut data).map_err(|e| e.to_string())?;
            if path == MANIFEST {
                manifest = Some(serde_json::from_slice(&data).map_err(|e| format!("its manifest: {e}"))?);
            } else if path == OUTPUT {
                output = lines(&data).ok_or("its captured output is cut short")?;
            } else if let Some(rel) = path.strip_prefix(FILES) {
                if !inside(rel) {
                    return Err(format!("it holds `{rel}`, outside the project"));
                }
                files.push((rel.to_string(), data, mode));
            }
        }
        let manifest = manifest.ok_or("it has no manifest")?;
        Ok(Artifact { manifest, files, output })
    }

    /// Write the outputs under `root`, each atomically (a temporary file in the same folder, renamed over the old
    /// one), and remove `existing` outputs the artifact does not hold: the outputs are then as the stored run left
    /// them.
    pub(crate) fn restore(&self, root: &Path, existing: &[String]) -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        for (rel, data, mode) in &self.files {
            let path = root.join(rel);
            let dir = path.parent().unwrap_or(root);
            std::fs::create_dir_all(dir)?;
            let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
            tmp.write_all(data)?;
            // Permission bits only: no set-user-id, set-group-id or sticky bit comes from an artifact.
            tmp.as_file().set_permissions(std::fs::Permissions::from_mode(mode & 0o777))?;
            tmp.persist(&path).map_err(|e| e.error)?;
        }
        for rel in existing {
            if !self.files.iter().any(|(p, _, _)| p == rel) {
                match std::fs::remove_file(root.join(rel)) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
        }
        Ok(())
    }
}

fn lines(mut data: &[u8]) -> Option<Vec<Line>> {
    let mut out = Vec::new();
    while let Some((&stream, rest)) = data.split_first() {
        let len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        out.push((stream == 1, rest.get(4..4 + len)?.to_vec()));
        data = &rest[4 + len..];
    }
    Some(out)
}

/// A relative path that stays inside the folder it is joined to.
fn inside(rel: &str) -> bool {
    !rel.is_empty() && Path::new(rel).components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn artifact() -> Artifact {
        Artifact {
            manifest: Manifest {
                key: "k".into(),
                task: "build".into(),
                parts: vec![("command".into(), "d".into())],
                exit_status: 0,
                duration_ms: 12,
                irun_version: "0.1.0".into(),
            },
            files: vec![("out/a.bin".into(), vec![0, 1, 2, 255], 0o755)],
            output: vec![(false, b"hello".to_vec()), (true, b"warn\xff".to_vec())],
        }
    }

    #[test]
    fn an_artifact_unpacks_to_what_was_packed() {
        let a = artifact();
        assert_eq!(Artifact::unpack(&a.pack().unwrap()).unwrap(), a);
    }

    #[test]
    fn a_corrupt_or_truncated_artifact_is_an_error_not_a_panic() {
        let bytes = artifact().pack().unwrap();
        assert!(Artifact::unpack(&bytes[..bytes.len() / 2]).is_err());
        assert!(Artifact::unpack(b"not an artifact").is_err());
        assert!(Artifact::unpack(&[]).is_err());
    }

    #[test]
    fn an_artifact_that_unpacks_to_more_than_the_limit_is_refused() {
        let bytes = artifact().pack().unwrap();
        assert!(Artifact::unpack_within(&bytes, 10_000).is_ok());
        assert!(Artifact::unpack_within(&bytes, 5).unwrap_err().contains("unpacks to more than 5 bytes"));
    }

    #[test]
    fn restore_keeps_permission_bits_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mut a = artifact();
        a.files[0].2 = 0o4755;
        a.restore(dir.path(), &[]).unwrap();
        let mode = std::fs::metadata(dir.path().join("out/a.bin")).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o755, "no set-user-id bit");
    }

    #[test]
    fn a_path_outside_the_project_is_refused() {
        assert!(!inside("../escape") && !inside("/etc/passwd") && !inside("out/../../x") && !inside(""));
        assert!(inside("out/a.bin") && inside("./a"));
    }

    #[test]
    fn restore_writes_the_files_and_removes_outputs_the_run_did_not_leave() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("out")).unwrap();
        std::fs::write(dir.path().join("out/stale"), "old").unwrap();
        std::fs::write(dir.path().join("out/a.bin"), "old").unwrap();
        artifact().restore(dir.path(), &["out/stale".into(), "out/a.bin".into()]).unwrap();
        assert_eq!(std::fs::read(dir.path().join("out/a.bin")).unwrap(), [0, 1, 2, 255]);
        assert!(!dir.path().join("out/stale").exists());
        let names: Vec<_> =
            std::fs::read_dir(dir.path().join("out")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["a.bin"], "no temporary file is left");
    }
}
