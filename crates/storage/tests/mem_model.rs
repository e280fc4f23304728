//! The in-memory store's durability model, as a simulator uses it.

mod common;

use common::entries;
use raft::{HardState, Membership, SnapshotMeta};
use storage::{FaultInjector, LogStore, MemLogStore, StorageError};

fn hs(term: u64, vote: Option<u64>, commit: u64) -> HardState {
    HardState {
        term,
        vote,
        commit,
        known_commit: 0,
    }
}

#[test]
fn crash_loses_exactly_the_unsynced_appends() {
    let mut s = MemLogStore::with_durability_model();
    s.append(&entries(1, 6, 1, 8)).unwrap();
    s.sync().unwrap();
    s.append(&entries(6, 9, 1, 8)).unwrap();
    s.append(&entries(9, 10, 2, 8)).unwrap();
    assert_eq!(s.unsynced_entries(), 4);
    s.crash();
    assert_eq!((s.last_index(), s.unsynced_entries()), (5, 0));
    assert_eq!(s.entries(1, 6, u64::MAX).unwrap(), entries(1, 6, 1, 8));
}

#[test]
fn crash_keeping_models_a_torn_tail() {
    let mut s = MemLogStore::with_durability_model();
    s.append(&entries(1, 4, 1, 8)).unwrap();
    s.append(&entries(4, 7, 1, 8)).unwrap();
    s.crash_keeping(4);
    assert_eq!(s.last_index(), 4);
    assert_eq!(s.entries(1, 5, u64::MAX).unwrap(), entries(1, 5, 1, 8));
}

#[test]
fn a_truncation_is_durable_at_once_its_new_entries_are_not() {
    let mut s = MemLogStore::with_durability_model();
    s.append(&entries(1, 11, 1, 8)).unwrap();
    s.sync().unwrap();
    s.append(&entries(11, 13, 1, 8)).unwrap(); // unsynced...
    s.append(&entries(12, 14, 2, 8)).unwrap(); // ...made durable by this truncation
    assert_eq!(s.last_index(), 13);
    s.crash();
    assert_eq!(s.entries(1, 12, u64::MAX).unwrap(), entries(1, 12, 1, 8));
    assert_eq!(
        s.last_index(),
        11,
        "old entry 12 is gone for good, new ones unsynced"
    );
    // Keeping part of the unsynced new entries.
    s.append(&entries(6, 9, 2, 8)).unwrap();
    s.crash_keeping(1);
    assert_eq!(s.last_index(), 6);
    assert_eq!(s.term(6).unwrap(), Some(2));
}

#[test]
fn term_and_vote_survive_a_crash_commit_alone_does_not() {
    let mut s = MemLogStore::with_durability_model();
    s.append(&entries(1, 11, 1, 8)).unwrap();
    s.sync().unwrap();
    s.save_hard_state(&hs(1, Some(2), 3)).unwrap();
    s.save_hard_state(&hs(1, Some(2), 9)).unwrap();
    assert_eq!(s.hard_state().commit, 9);
    s.crash();
    assert_eq!(s.hard_state(), hs(1, Some(2), 3));
}

/// A node catching up (told that more is committed than its durable log holds) must
/// remember it across a crash: the entries it appends next may replay configurations of
/// an earlier life of its ID (raft's `HardState::known_commit`). One that is caught up
/// does not pay a sync for it.
#[test]
fn known_commit_beyond_the_durable_log_survives_a_crash_within_it_need_not() {
    let mut s = MemLogStore::with_durability_model();
    s.append(&entries(1, 11, 1, 8)).unwrap();
    s.sync().unwrap();
    s.save_hard_state(&hs(1, None, 0)).unwrap();
    let within = HardState {
        known_commit: 10,
        ..hs(1, None, 0)
    };
    s.save_hard_state(&within).unwrap();
    s.crash();
    assert_eq!(
        s.hard_state().known_commit,
        0,
        "a rise within the log is a hint"
    );
    let beyond = HardState {
        known_commit: 500,
        ..hs(1, None, 0)
    };
    s.save_hard_state(&beyond).unwrap();
    s.append(&entries(11, 21, 1, 8)).unwrap();
    s.crash_keeping(5);
    assert_eq!(s.last_index(), 15);
    assert_eq!(s.hard_state().known_commit, 500);
}

#[test]
fn commit_is_clamped_to_the_surviving_log() {
    let mut s = MemLogStore::with_durability_model();
    s.append(&entries(1, 11, 1, 8)).unwrap();
    s.save_hard_state(&hs(1, None, 10)).unwrap();
    s.crash();
    assert_eq!(s.last_index(), 0);
    assert_eq!(s.hard_state(), hs(1, None, 0));
}

#[test]
fn compaction_and_reset_are_durable_on_return() {
    let mut s = MemLogStore::with_durability_model();
    s.append(&entries(1, 11, 1, 8)).unwrap();
    s.compact(4).unwrap(); // implies a sync
    s.crash();
    assert_eq!((s.first_index(), s.last_index()), (5, 10));
    let meta = SnapshotMeta {
        index: 30,
        term: 2,
        membership: Membership::new([1]),
    };
    s.append(&entries(11, 13, 1, 8)).unwrap();
    s.reset_to_snapshot(&meta).unwrap();
    s.crash();
    assert_eq!(
        (s.first_index(), s.last_index(), s.last_term()),
        (31, 30, 2)
    );
}

#[test]
fn without_the_model_nothing_is_lost() {
    let mut s = MemLogStore::new();
    s.append(&entries(1, 4, 1, 8)).unwrap();
    s.crash();
    assert_eq!(s.last_index(), 3);
    assert!(!s.models_durability());
}

#[test]
fn injected_faults_fail_the_store_until_a_crash() {
    let faults = FaultInjector::new();
    let mut s = MemLogStore::with_durability_model().with_faults(faults.clone());
    s.append(&entries(1, 4, 1, 8)).unwrap();
    s.sync().unwrap();
    faults.fail_writes_after(10);
    assert!(s.append(&entries(4, 6, 1, 8)).unwrap_err().is_io());
    assert_eq!(s.last_index(), 3);
    faults.clear();
    assert!(matches!(s.sync(), Err(StorageError::Failed(_))));
    s.crash();
    assert!(s.failure().is_none());
    s.append(&entries(4, 5, 1, 8)).unwrap();
    faults.fail_next_syncs(1);
    assert!(s.sync().unwrap_err().is_io());
    s.crash();
    assert_eq!(s.last_index(), 3);
    // A failed term/vote save claims nothing.
    faults.fail_next_syncs(1);
    assert!(s.save_hard_state(&hs(7, Some(1), 0)).is_err());
    assert_eq!(s.hard_state(), HardState::default());
}

#[test]
fn a_failed_write_after_a_truncation_keeps_the_truncation() {
    let faults = FaultInjector::new();
    let mut s = MemLogStore::with_durability_model().with_faults(faults.clone());
    s.append(&entries(1, 11, 1, 8)).unwrap();
    s.sync().unwrap();
    faults.fail_writes_after(0);
    assert!(s.append(&entries(6, 8, 2, 8)).unwrap_err().is_io());
    // Entries 6..10 are gone (durably); the new ones never arrived.
    assert_eq!(s.last_index(), 5);
    s.crash();
    assert_eq!(s.last_index(), 5);
}
