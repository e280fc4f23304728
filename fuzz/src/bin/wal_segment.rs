//! AFL++ harness for the `wal_segment` target (see `raftkv_fuzz::wal_segment`).

fn main() {
    afl::fuzz!(|data: &[u8]| {
        raftkv_fuzz::wal_segment(data);
    });
}
