//! The JSON file: the whole `Report`, pretty-printed so a diff between two runs reads.

use std::path::Path;

use super::Report;

pub fn to_string(report: &Report) -> String {
    serde_json::to_string_pretty(report).expect("a Report always serialises")
}

pub fn from_str(text: &str) -> Result<Report, String> {
    serde_json::from_str(text).map_err(|e| format!("results JSON: {e}"))
}

pub fn write(report: &Report, path: &Path) -> Result<(), String> {
    let mut text = to_string(report);
    text.push('\n');
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

pub fn read(path: &Path) -> Result<Report, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    from_str(&text)
}
