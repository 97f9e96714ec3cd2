//! Sets the test gates (`skip_postgres`, …): see `build/test_gates.rs`.

include!("../../build/test_gates.rs");

fn main() {
    emit_test_gates();
}
