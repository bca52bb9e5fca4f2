//! Readable top keys: the keys as their users passed them, for the few the flusher reports.
//!
//! A record carries only its key's hash. After each flush the flusher says which reported
//! top keys have no name yet ([`KeyNames::want`]): their hashes set bits in a 4,096-bit
//! filter. A sampled event whose key hash hits the filter writes the key's label
//! ([`SampleKey::write_label`](super::key::SampleKey::write_label)) into the table, under a
//! lock; every other sampled event pays one load and a bit test, and a call that is not
//! sampled pays nothing. The flusher then reads the names of its top keys
//! ([`KeyNames::name`]) and forgets the names of keys no longer reported, so the table
//! holds at most the reported keys (and never more than [`MAX_NAMES`]).
//!
//! A heavy key is named at its first sampled event after the flush that first reported it;
//! until then (and for a key type that writes no label) it shows as its hash.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use rustc_hash::{FxHashMap, FxHashSet};

use super::key::truncate_label;

/// Most names held at once.
pub const MAX_NAMES: usize = 4096;

/// Bits of the wanted filter: 64 words.
const FILTER_WORDS: usize = 64;

/// The names of reported top keys (see the module docs).
pub struct KeyNames {
    /// Bit `hash % 4096` set: some wanted key may have this hash.
    wanted: [AtomicU64; FILTER_WORDS],
    names: Mutex<FxHashMap<u64, Arc<str>>>,
}

impl Default for KeyNames {
    fn default() -> Self {
        Self {
            wanted: core::array::from_fn(|_| AtomicU64::new(0)),
            names: Mutex::default(),
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
        let bit = (hash as usize) % (FILTER_WORDS * 64);
        // Relaxed: a hint; a sampled event that misses a fresh bit names the key at its
        // next sample, and a stale bit costs one look in the table.
        self.wanted[bit / 64].load(Ordering::Relaxed) >> (bit % 64) & 1 != 0
    }

    /// Names the key of hash `hash` with what `write` writes (cut to the label limit), if
    /// it has no name yet and the table has room. Empty labels are not kept.
    #[cold]
    #[inline(never)]
    pub fn offer(&self, hash: u64, write: impl FnOnce(&mut String)) {
        let mut names = self.names.lock().unwrap_or_else(PoisonError::into_inner);
        if names.contains_key(&hash) || names.len() >= MAX_NAMES {
            return;
        }
        let mut label = String::new();
        write(&mut label);
        truncate_label(&mut label);
        if !label.is_empty() {
            names.insert(hash, Arc::from(label));
        }
    }

    /// The name of the key of hash `hash`, if one was offered.
    pub fn name(&self, hash: u64) -> Option<Arc<str>> {
        self.names
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&hash)
            .cloned()
    }

    /// The flusher's request after a flush: `reported` are the hashes of every top key it
    /// reports now. Forgets the names of other keys, and sets the filter to the reported
    /// keys that have no name.
    pub fn want(&self, reported: &FxHashSet<u64>) {
        let mut filter = [0u64; FILTER_WORDS];
        {
            let mut names = self.names.lock().unwrap_or_else(PoisonError::into_inner);
            names.retain(|h, _| reported.contains(h));
            for &h in reported {
                if !names.contains_key(&h) {
                    let bit = (h as usize) % (FILTER_WORDS * 64);
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
        // An empty label is no name.
        names.offer(9, |_| {});
        assert_eq!(names.name(9), None);
        // Named keys leave the filter; 9 is still wanted.
        names.want(&reported);
        assert!(!names.wanted(7) && names.wanted(9));
        // 7 no longer reported: its name goes.
        names.want(&[9].into_iter().collect());
        assert_eq!(names.name(7), None);
    }

    #[test]
    fn labels_are_cut_at_a_character_boundary() {
        let names = KeyNames::default();
        // 63 ASCII bytes, then a 2-byte character that would end past 64.
        names.offer(1, |out| {
            out.push_str(&"a".repeat(63));
            out.push('é');
        });
        assert_eq!(names.name(1).as_deref(), Some("a".repeat(63).as_str()));
    }
}
