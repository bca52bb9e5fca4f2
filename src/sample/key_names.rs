//! Readable top keys: the keys as their users passed them, for the few the flusher reports.
//!
//! A record carries only its key's hash. After each flush the flusher says which reported
//! top keys have no name yet ([`KeyNames::want`]): the exact set, under a lock, and their
//! hashes' bits in a 4,096-bit filter. A sampled event whose key hash hits the filter takes
//! the lock; if its key is wanted it writes the key's label
//! ([`SampleKey::write_label`](super::key::SampleKey::write_label)) into the table, and the
//! key leaves the wanted set (named, or known to write no label) and its filter bit is
//! cleared. Every other sampled event pays one load and a bit test (a false positive of the
//! filter: a lock and a set lookup), and a call that is not sampled pays nothing. The
//! flusher then reads the names of its top keys ([`KeyNames::name`]) and forgets the names
//! of keys no longer reported, so the table holds only reported keys (never more than
//! [`MAX_NAMES`]).
//!
//! A heavy key is named at its first sampled event after the flush that first reported it;
//! until then (and for a key type that writes no label) it shows as its hash.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use rustc_hash::{FxHashMap, FxHashSet};

/// The table behind the lock.
#[derive(Default)]
struct Table {
    names: FxHashMap<u64, Arc<str>>,
    /// Reported keys without a name that no sampled event has offered since the flush.
    wanted: FxHashSet<u64>,
    /// Reported keys whose label was empty (a key type that writes none): not wanted again
    /// while they stay reported.
    unnamed: FxHashSet<u64>,
}

use super::key::truncate_label;

/// Most names held at once.
pub const MAX_NAMES: usize = 4096;

/// Bits of the wanted filter: 64 words.
const FILTER_WORDS: usize = 64;

/// The names of reported top keys (see the module docs).
pub struct KeyNames {
    /// Bit `hash % 4096` set: some wanted key may have this hash.
    wanted: [AtomicU64; FILTER_WORDS],
    table: Mutex<Table>,
}

impl Default for KeyNames {
    fn default() -> Self {
        Self {
            wanted: core::array::from_fn(|_| AtomicU64::new(0)),
            table: Mutex::default(),
        }
    }
}

impl std::fmt::Debug for KeyNames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyNames").finish_non_exhaustive()
    }
}

impl KeyNames {
    /// Whether the flusher may want the key of hash `hash` named (false positives possible).
    #[inline(always)]
    pub fn wanted(&self, hash: u64) -> bool {
        let bit = filter_bit(hash);
        // Relaxed: a hint; a sampled event that misses a fresh bit names the key at its
        // next sample, and a stale bit costs one look in the table.
        self.wanted[bit / 64].load(Ordering::Relaxed) >> (bit % 64) & 1 != 0
    }

    /// Names the key of hash `hash` with what `write` writes (cut to the label limit), if
    /// the flusher wants it named; `write` is not called otherwise. A key whose label is
    /// empty is not asked again while it stays reported.
    #[cold]
    #[inline(never)]
    pub fn offer(&self, hash: u64, write: impl FnOnce(&mut String)) {
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        if !table.wanted.remove(&hash) {
            // A false positive of the filter, or named since.
            return;
        }
        let bit = filter_bit(hash);
        // Relaxed: see `wanted`. Another wanted key sharing the bit is named after the next
        // flush sets it again.
        self.wanted[bit / 64].fetch_and(!(1 << (bit % 64)), Ordering::Relaxed);
        let mut label = String::new();
        write(&mut label);
        truncate_label(&mut label);
        if label.is_empty() {
            table.unnamed.insert(hash);
        } else if table.names.len() < MAX_NAMES {
            table.names.insert(hash, Arc::from(label));
        }
    }

    /// The name of the key of hash `hash`, if one was offered.
    pub fn name(&self, hash: u64) -> Option<Arc<str>> {
        self.table
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .names
            .get(&hash)
            .cloned()
    }

    /// The flusher's request after a flush: `reported` are the hashes of every top key it
    /// reports now. Forgets the names of other keys, and wants the reported keys that have
    /// none (except those known to write no label).
    pub fn want(&self, reported: &FxHashSet<u64>) {
        let mut filter = [0u64; FILTER_WORDS];
        {
            let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
            let Table {
                names,
                wanted,
                unnamed,
            } = &mut *table;
            names.retain(|h, _| reported.contains(h));
            unnamed.retain(|h| reported.contains(h));
            wanted.clear();
            for &h in reported {
                if !names.contains_key(&h)
                    && !unnamed.contains(&h)
                    && names.len() + wanted.len() < MAX_NAMES
                {
                    wanted.insert(h);
                    let bit = filter_bit(h);
                    filter[bit / 64] |= 1 << (bit % 64);
                }
            }
        }
        for (word, bits) in self.wanted.iter().zip(filter) {
            // Relaxed: see `wanted`.
            word.store(bits, Ordering::Relaxed);
        }
    }
}

/// The filter bit of a key hash (its low bits: a keyed family's kept keys share their
/// high ones).
fn filter_bit(hash: u64) -> usize {
    (hash as usize) % (FILTER_WORDS * 64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_wanted_keys_are_named_and_unreported_ones_forgotten() {
        let names = KeyNames::default();
        assert!(!names.wanted(7));
        let reported: FxHashSet<u64> = [7, 9].into_iter().collect();
        names.want(&reported);
        assert!(names.wanted(7) && names.wanted(9));
        names.offer(7, |out| out.push_str("client-7"));
        assert_eq!(names.name(7).as_deref(), Some("client-7"));
        // A second offer does not rename.
        names.offer(7, |out| out.push_str("other"));
        assert_eq!(names.name(7).as_deref(), Some("client-7"));
        // An empty label is no name, and the key is not wanted again while reported.
        names.offer(9, |_| {});
        assert_eq!(names.name(9), None);
        assert!(
            !names.wanted(7) && !names.wanted(9),
            "offered keys leave the filter"
        );
        names.want(&reported);
        assert!(!names.wanted(7) && !names.wanted(9));
        // A key not wanted (a false positive of the filter) is not named.
        names.offer(11, |_| panic!("not wanted: its label is not written"));
        assert_eq!(names.name(11), None);
        // 7 no longer reported: its name goes.
        names.want(&[9].into_iter().collect());
        assert_eq!(names.name(7), None);
    }

    #[test]
    fn labels_are_cut_at_a_character_boundary() {
        let names = KeyNames::default();
        names.want(&[1].into_iter().collect());
        // 63 ASCII bytes, then a 2-byte character that would end past 64.
        names.offer(1, |out| {
            out.push_str(&"a".repeat(63));
            out.push('é');
        });
        assert_eq!(names.name(1).as_deref(), Some("a".repeat(63).as_str()));
    }
}
