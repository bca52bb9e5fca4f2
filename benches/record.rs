//! Criterion benchmarks of the record paths. (To be written.)
fn main() {}
