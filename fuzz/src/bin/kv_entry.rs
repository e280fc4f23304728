//! AFL++ harness for the `kv_entry` target (see `raftkv_fuzz::kv_entry`).

fn main() {
    afl::fuzz!(|data: &[u8]| {
        raftkv_fuzz::kv_entry(data);
    });
}
