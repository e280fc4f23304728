//! AFL++ harness for the `kv_snapshot` target (see `raftkv_fuzz::kv_snapshot`).

fn main() {
    afl::fuzz!(|data: &[u8]| {
        raftkv_fuzz::kv_snapshot(data);
    });
}
