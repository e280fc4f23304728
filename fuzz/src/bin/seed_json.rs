//! AFL++ harness for the `seed_json` target (see `raftkv_fuzz::seed_json`).

fn main() {
    afl::fuzz!(|data: &[u8]| {
        raftkv_fuzz::seed_json(data);
    });
}
