//! Recording benchmarks (a stub until the criterion benches land).

fn main() {}
