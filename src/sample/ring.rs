//! Bounded single-producer / single-consumer ring of [`Record`](super::record::Record)s.
//! (To be written.)
