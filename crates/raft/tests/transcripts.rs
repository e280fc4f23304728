//! Runs every transcript in `tests/testdata/` (see `transcript/mod.rs` for the command
//! language). `RAFT_REWRITE=1 cargo test -p raft --test transcripts` regenerates the
//! expected output.

mod transcript;

use std::path::Path;

#[test]
fn transcripts() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata");
    let rewrite = std::env::var_os("RAFT_REWRITE").is_some_and(|v| v != "0");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/testdata")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 20,
        "expected at least 20 transcripts, found {}",
        files.len()
    );
    let failures: Vec<String> = files
        .iter()
        .flat_map(|f| transcript::run_file(f, rewrite))
        .collect();
    assert!(
        failures.is_empty(),
        "{} transcript block(s) differ (RAFT_REWRITE=1 regenerates them):\n\n{}",
        failures.len(),
        failures.join("\n")
    );
}
