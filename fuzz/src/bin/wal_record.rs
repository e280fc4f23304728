//! AFL++ harness for the `wal_record` target (see `raftkv_fuzz::wal_record`).

fn main() {
    afl::fuzz!(|data: &[u8]| {
        raftkv_fuzz::wal_record(data);
    });
}
