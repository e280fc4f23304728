//! AFL++ harness for the `resp` target (see `raftkv_fuzz::resp`).

fn main() {
    afl::fuzz!(|data: &[u8]| {
        raftkv_fuzz::resp(data);
    });
}
