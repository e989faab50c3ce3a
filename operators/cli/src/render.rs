use std::path::{Path, PathBuf};

use anyhow::Result;
use paved_api::Cloud;

pub fn render_files(_files: &[PathBuf], _compositions: &Path, _cloud: Cloud) -> Result<String> {
    anyhow::bail!("not yet")
}

pub fn validate_files(_files: &[PathBuf]) -> Result<Vec<String>> {
    anyhow::bail!("not yet")
}
