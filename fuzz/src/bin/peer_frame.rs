//! AFL++ harness for the `peer_frame` target (see `raftkv_fuzz::peer_frame`).

fn main() {
    afl::fuzz!(|data: &[u8]| {
        raftkv_fuzz::peer_frame(data);
    });
}
