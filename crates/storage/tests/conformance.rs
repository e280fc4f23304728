//! Every store runs the same conformance suite.

use storage::conformance::{self, Harness};
use storage::{FileLogOptions, FileLogStore, MemLogStore};

/// The seed replica's store: everything durable at once, "reopen" keeps it all.
struct Mem;

impl Harness for Mem {
    type Store = MemLogStore;
    fn fresh(&mut self) -> MemLogStore {
        MemLogStore::new()
    }
    fn reopen(&mut self, mut store: MemLogStore) -> MemLogStore {
        store.crash();
        store
    }
}

/// The simulator's store: reopen is a crash that loses whatever was not synced.
struct MemModel;

impl Harness for MemModel {
    type Store = MemLogStore;
    fn fresh(&mut self) -> MemLogStore {
        MemLogStore::with_durability_model()
    }
    fn reopen(&mut self, mut store: MemLogStore) -> MemLogStore {
        store.crash();
        store
    }
}

/// The file store with tiny segments, so every check crosses segment boundaries.
struct File {
    root: tempfile::TempDir,
    next: usize,
    segment_bytes: u64,
}

impl File {
    fn new(segment_bytes: u64) -> Self {
        File {
            root: tempfile::tempdir().unwrap(),
            next: 0,
            segment_bytes,
        }
    }
    fn options(&self) -> FileLogOptions {
        FileLogOptions {
            max_segment_bytes: self.segment_bytes,
            ..FileLogOptions::default()
        }
    }
}

impl Harness for File {
    type Store = FileLogStore;
    fn fresh(&mut self) -> FileLogStore {
        self.next += 1;
        let dir = self.root.path().join(format!("log{}", self.next));
        let (store, report) = FileLogStore::open(dir, self.options()).unwrap();
        assert!(report.created);
        store
    }
    fn reopen(&mut self, store: FileLogStore) -> FileLogStore {
        let dir = store.dir().to_path_buf();
        drop(store);
        let (store, report) = FileLogStore::open(dir, self.options()).unwrap();
        assert!(!report.created);
        assert_eq!(report.torn_tail, None, "a synced log has no torn tail");
        store
    }
}

#[test]
fn mem_store_conforms() {
    conformance::run_all(&mut Mem);
}

#[test]
fn mem_store_with_durability_model_conforms() {
    conformance::run_all(&mut MemModel);
}

#[test]
fn file_store_conforms_with_tiny_segments() {
    conformance::run_all(&mut File::new(256));
}

#[test]
fn file_store_conforms_with_default_segments() {
    conformance::run_all(&mut File::new(storage::DEFAULT_SEGMENT_BYTES));
}
