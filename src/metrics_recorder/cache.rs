//! The recorder's per-key handle cache: an insert-only open-addressing hash table whose
//! lookups take no lock and allocate nothing (the read side of a "lock-free reads, locked
//! writes" table, as in Cliff Click's and `papaya`'s designs, without deletion).
//!
//! Entries are never removed (a hotmeter series lives for the process anyway), so a reader
//! needs no epoch: an entry, once published, stays valid until the cache is dropped, and a
//! table replaced by a larger one is kept (retired) until then too. Writers (cache misses,
//! the cold path) serialize on a mutex.
//!
//! Model-checked in `tests/loom_facade_cache.rs` (under `--cfg loom` this file is the
//! crate's `facade_cache` module).

use std::sync::{Mutex, PoisonError};

use metrics::Key;

use crate::sync::{AtomicPtr, Ordering};

/// One cached key and what it resolved to.
struct Entry<V> {
    key: Key,
    value: V,
}

/// A power-of-two array of slots, each null or a published entry.
struct Table<V> {
    slots: Box<[AtomicPtr<Entry<V>>]>,
}

impl<V> Table<V> {
    fn new(capacity: usize) -> Box<Self> {
        debug_assert!(capacity.is_power_of_two());
        Box::new(Table {
            slots: (0..capacity)
                .map(|_| AtomicPtr::new(std::ptr::null_mut()))
                .collect(),
        })
    }

    fn mask(&self) -> usize {
        self.slots.len() - 1
    }
}

/// What the writers share: the entries (owned here), and the tables readers may still hold.
struct Writer<V> {
    entries: Vec<*mut Entry<V>>,
    retired: Vec<*mut Table<V>>,
}

/// The cache: `get` is lock-free and allocation-free; `get_or_insert_with` locks on a miss.
pub struct Cache<V> {
    table: AtomicPtr<Table<V>>,
    writer: Mutex<Writer<V>>,
    /// Entries at most; past it a miss resolves without caching (`get_or_insert_with`
    /// returns `Err`).
    cap: usize,
}

// SAFETY: the raw pointers are owned boxes (entries, tables) shared read-only once
// published; `V: Send + Sync` makes sharing and dropping them from any thread sound.
unsafe impl<V: Send + Sync> Send for Cache<V> {}
// SAFETY: as above; readers only get `&V`, writers serialize on the mutex.
unsafe impl<V: Send + Sync> Sync for Cache<V> {}

impl<V> Cache<V> {
    /// An empty cache holding at most `cap` entries.
    pub fn new(cap: usize) -> Self {
        Self::with_slots(cap, 64)
    }

    /// An empty cache holding at most `cap` entries, starting with `slots` slots (a power
    /// of two, at least 2; small ones let a loom model reach the growth path).
    pub fn with_slots(cap: usize, slots: usize) -> Self {
        assert!(slots.is_power_of_two() && slots >= 2);
        Cache {
            table: AtomicPtr::new(Box::into_raw(Table::new(slots))),
            writer: Mutex::new(Writer {
                entries: Vec::new(),
                retired: Vec::new(),
            }),
            cap,
        }
    }

    /// The entry for `key`, if cached. No lock, no allocation, no write to shared memory.
    #[inline]
    pub fn get(&self, key: &Key) -> Option<&V> {
        // Acquire: pairs with the Release store of a grown table in `insert`, so its slots
        // (filled before the store) are visible.
        let table = self.table.load(Ordering::Acquire);
        // SAFETY: `table` was published by `new` or `insert` and is freed only in `drop`
        // (a replaced table is retired, not freed), which needs `&mut self`.
        let table = unsafe { &*table };
        let mask = table.mask();
        let mut i = key.get_hash() as usize & mask;
        loop {
            // Acquire: pairs with the Release store of the slot in `place`, so the entry
            // written before it is visible.
            let p = table.slots[i].load(Ordering::Acquire);
            if p.is_null() {
                return None;
            }
            // SAFETY: a non-null slot points at an entry boxed in `insert`, freed only in
            // `drop`.
            let e = unsafe { &*p };
            if e.key == *key {
                return Some(&e.value);
            }
            i = (i + 1) & mask;
        }
    }

    /// The entry for `key`, made by `make` if absent (under the writers' lock; `make` runs
    /// at most once per key while the cache has room). `Err` with what `make` made when the
    /// cache is full: the caller then uses it without caching it.
    #[cold]
    #[inline(never)]
    pub fn get_or_insert_with(&self, key: &Key, make: impl FnOnce() -> V) -> Result<&V, V> {
        let mut w = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(v) = self.get(key) {
            return Ok(v);
        }
        let value = make();
        if w.entries.len() >= self.cap {
            return Err(value);
        }
        let entry = Box::into_raw(Box::new(Entry {
            key: key.clone(),
            value,
        }));
        w.entries.push(entry);
        // Relaxed: only writers store the table pointer, and they hold the lock.
        let table = self.table.load(Ordering::Relaxed);
        // SAFETY: as in `get`; under the lock nobody else replaces it.
        let len = unsafe { &*table }.slots.len();
        if w.entries.len() * 4 > len * 3 {
            // Keep the load at or below 3/4: build a table twice the size with every entry,
            // publish it, and retire the old one (readers may still be probing it).
            let grown = Box::into_raw(Table::new(len * 2));
            for &e in &w.entries {
                // SAFETY: `grown` is ours until published; `e` is a live entry.
                unsafe { place(&*grown, e) };
            }
            // Release: publishes the filled slots of `grown`; pairs with the Acquire load
            // in `get`.
            self.table.store(grown, Ordering::Release);
            w.retired.push(table);
        } else {
            // SAFETY: `table` is live (see above) and `entry` is a live entry.
            unsafe { place(&*table, entry) };
        }
        // SAFETY: `entry` stays allocated until `drop`.
        Ok(&unsafe { &*entry }.value)
    }
}

/// Puts `entry` in the first empty slot of its probe sequence in `table` (which has one:
/// the load stays at or below 3/4). Writers only, under the lock.
///
/// # Safety
/// `entry` points at a live entry that outlives the table's use.
unsafe fn place<V>(table: &Table<V>, entry: *mut Entry<V>) {
    let mask = table.mask();
    // SAFETY: the caller's contract.
    let mut i = unsafe { &*entry }.key.get_hash() as usize & mask;
    // Relaxed: only writers fill slots, under the lock.
    while !table.slots[i].load(Ordering::Relaxed).is_null() {
        i = (i + 1) & mask;
    }
    // Release: publishes the entry written before; pairs with the Acquire load in `get`.
    table.slots[i].store(entry, Ordering::Release);
}

impl<V> Drop for Cache<V> {
    fn drop(&mut self) {
        let w = self
            .writer
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        // Relaxed: `&mut self`, no other thread can touch the cache any more.
        let table = self.table.load(Ordering::Relaxed);
        // SAFETY: `&mut self`: no reader is left; each pointer was made by `Box::into_raw`
        // and is freed exactly once here (entries are listed once; tables are the current
        // one and the retired ones).
        unsafe {
            for &e in &w.entries {
                drop(Box::from_raw(e));
            }
            for &t in &w.retired {
                drop(Box::from_raw(t));
            }
            drop(Box::from_raw(table));
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn inserts_are_found_across_growth_and_the_cap_holds() {
        let cache = Cache::new(1000);
        let keys: Vec<Key> = (0..1000)
            .map(|i| {
                Key::from_parts(
                    format!("m{}", i % 37),
                    vec![metrics::Label::new("i", i.to_string())],
                )
            })
            .collect();
        for (i, k) in keys.iter().enumerate() {
            assert!(cache.get(k).is_none());
            assert_eq!(*cache.get_or_insert_with(k, || i).unwrap(), i);
            // Every earlier key is still there, whatever tables grew meanwhile.
            if i % 97 == 0 {
                for (j, k) in keys[..=i].iter().enumerate() {
                    assert_eq!(cache.get(k), Some(&j));
                }
            }
        }
        // A second insert of a cached key returns the first value, without `make`.
        assert_eq!(
            *cache
                .get_or_insert_with(&keys[5], || unreachable!())
                .unwrap(),
            5
        );
        // Full: a new key is resolved but not cached.
        let extra = Key::from_name("extra");
        assert_eq!(cache.get_or_insert_with(&extra, || 7).unwrap_err(), 7);
        assert!(cache.get(&extra).is_none());
    }

    #[test]
    fn concurrent_readers_and_writers_agree() {
        let cache = Cache::new(usize::MAX);
        let keys: Vec<Key> = (0..2000).map(|i| Key::from_name(format!("k{i}"))).collect();
        std::thread::scope(|s| {
            for t in 0..4 {
                let (cache, keys) = (&cache, &keys);
                s.spawn(move || {
                    for round in 0..2 {
                        for (i, k) in keys.iter().enumerate().skip(t) {
                            let v = match cache.get(k) {
                                Some(v) => *v,
                                None => *cache.get_or_insert_with(k, || i).unwrap(),
                            };
                            assert_eq!(v, i, "thread {t}, round {round}");
                        }
                    }
                });
            }
        });
    }
}
