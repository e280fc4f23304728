//! Runs saved inputs through the fuzz targets without AFL (a plain build): to check the
//! corpus, reproduce a crash, or test a fix.
//!
//! `replay TARGET PATH...`: each PATH a file, or a directory of files (AFL's output
//! directories work: `queue/`, `crashes/`). `replay all CORPUS_DIR`: every target over
//! `CORPUS_DIR/<target>/`.

use std::path::{Path, PathBuf};

fn files(path: &Path) -> Vec<PathBuf> {
    if path.is_dir() {
        let mut out: Vec<PathBuf> = std::fs::read_dir(path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
            .map(|e| e.expect("dir entry").path())
            .filter(|p| p.is_file())
            .collect();
        out.sort();
        out
    } else {
        vec![path.to_path_buf()]
    }
}

fn run(name: &str, paths: &[PathBuf]) -> usize {
    let f = raftkv_fuzz::target(name).unwrap_or_else(|| {
        let names: Vec<_> = raftkv_fuzz::TARGETS.iter().map(|(n, _)| *n).collect();
        eprintln!("unknown target {name:?}; targets: {}", names.join(" "));
        std::process::exit(2)
    });
    let mut n = 0;
    for p in paths.iter().flat_map(|p| files(p)) {
        let data = std::fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
        if std::env::var_os("REPLAY_VERBOSE").is_some() {
            eprintln!("{name}: {}", p.display());
        }
        f(&data);
        n += 1;
    }
    n
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: replay TARGET PATH... | replay all CORPUS_DIR");
        std::process::exit(2);
    }
    if args[0] == "all" {
        let root = PathBuf::from(&args[1]);
        for (name, _) in raftkv_fuzz::TARGETS {
            let n = run(name, &[root.join(name)]);
            println!("{name}: {n} inputs, no failure");
        }
    } else {
        let paths: Vec<PathBuf> = args[1..].iter().map(PathBuf::from).collect();
        let n = run(&args[0], &paths);
        println!("{}: {n} inputs, no failure", args[0]);
    }
}
