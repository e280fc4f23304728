//! AFL++ harness for the `config` target (see `raftkv_fuzz::config`).

fn main() {
    afl::fuzz!(|data: &[u8]| {
        raftkv_fuzz::config(data);
    });
}
