//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::cell::RefCell;
use std::fmt::Write as _;
use std::sync::Once;

use bytes::Bytes;
use raft::{Entry, EntryKind};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Entry `index` of `term` with `len` bytes of data derived from the index.
pub fn entry(index: u64, term: u64, len: usize) -> Entry {
    Entry {
        term,
        index,
        kind: EntryKind::Normal,
        data: Bytes::from(
            (0..len)
                .map(|i| (index as usize * 31 + i) as u8)
                .collect::<Vec<u8>>(),
        ),
    }
}

pub fn entries(lo: u64, hi: u64, term: u64, len: usize) -> Vec<Entry> {
    (lo..hi).map(|i| entry(i, term, len)).collect()
}

/// A process-wide tracing subscriber that appends each event, as
/// `LEVEL field=value ...`, to a buffer of the thread that emitted it (if that thread is
/// capturing). Global rather than `with_default` because tracing caches per-callsite
/// interest process-wide, and scoped subscribers in parallel tests then miss events.
struct Capture;

thread_local! {
    static CAPTURED: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
}

struct Line(String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={:?}", field.name(), value);
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        CAPTURED.with(|c| {
            if let Some(lines) = c.borrow_mut().as_mut() {
                let mut line = Line(event.metadata().level().to_string());
                event.record(&mut line);
                lines.push(line.0);
            }
        });
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

/// Runs `f` and returns its result with the log lines it emitted on this thread.
pub fn capture_logs<T>(f: impl FnOnce() -> T) -> (T, Vec<String>) {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        tracing::subscriber::set_global_default(Capture).expect("no other global subscriber");
    });
    CAPTURED.with(|c| *c.borrow_mut() = Some(Vec::new()));
    let out = f();
    let lines = CAPTURED.with(|c| c.borrow_mut().take()).unwrap_or_default();
    (out, lines)
}
