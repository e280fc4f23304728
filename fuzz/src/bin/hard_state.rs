//! AFL++ harness for the `hard_state` target (see `raftkv_fuzz::hard_state`).

fn main() {
    afl::fuzz!(|data: &[u8]| {
        raftkv_fuzz::hard_state(data);
    });
}
