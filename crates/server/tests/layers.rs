//! The server's layering, checked: a module imports only from layers below its own (the
//! order `lib.rs` documents). An import from above is how the one import circle the
//! server once had (lower files reaching back into the node loop) came about; this test
//! keeps it from coming back. A new top-level module must be given its layer here.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// Layers, lowest first. Modules of one layer may not import each other either.
const LAYERS: &[&[&str]] = &[
    &[
        "metrics",
        "password",
        "reply",
        "status",
        "clock",
        "glob",
        "state_file",
    ],
    &["events"],
    &["config"],
    &["protected", "tls", "cluster_id", "members"],
    &["handle"],
    &[
        "store",
        "snapshots",
        "transport",
        "resp",
        "admin",
        "admin_client",
    ],
    &["open"],
    &["node_loop"],
    &["server", "cli"],
    &["member_cli", "join"],
    &["up"],
];

fn rank_of() -> BTreeMap<&'static str, usize> {
    LAYERS
        .iter()
        .enumerate()
        .flat_map(|(rank, mods)| mods.iter().map(move |m| (*m, rank)))
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The names `X` of every `crate::X` in `text` (comments included: a doc link to a
/// higher layer is a dependency of the reader, if not of the compiler).
fn crate_imports(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.push(name);
        }
    }
    out
}

#[test]
fn no_server_module_imports_from_a_layer_above_it() {
    let rank = rank_of();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut violations = Vec::new();
    for file in files {
        let rel = file.strip_prefix(&src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let module = top.trim_end_matches(".rs").to_string();
        if module == "lib" || module == "main" {
            continue;
        }
        let Some(&own) = rank.get(module.as_str()) else {
            violations.push(format!("{module}: not in LAYERS (give it a layer)"));
            continue;
        };
        let text = fs::read_to_string(&file).unwrap();
        for imported in crate_imports(&text) {
            if imported == module {
                continue;
            }
            let Some(&theirs) = rank.get(imported.as_str()) else {
                continue; // an item re-exported at the root, not a module
            };
            if theirs >= own {
                violations.push(format!(
                    "{}: imports crate::{imported} (layer {theirs}) from layer {own}",
                    rel.display()
                ));
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn every_module_in_lib_rs_has_a_layer() {
    let rank = rank_of();
    let lib = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    for line in lib.lines() {
        if let Some(name) = line.trim().strip_prefix("pub mod ") {
            let name = name.trim_end_matches(';');
            assert!(rank.contains_key(name), "module {name} has no layer");
        }
    }
}
