//! AFL++ harness for the `snapshot_file` target (see `raftkv_fuzz::snapshot_file`).

fn main() {
    afl::fuzz!(|data: &[u8]| {
        raftkv_fuzz::snapshot_file(data);
    });
}
