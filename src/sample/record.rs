//! The compact record a sampled event leaves in its thread's ring: fixed-size plain data,
//! 32 bytes, stored as four `u64` words so a ring slot can be four relaxed atomics.

/// One sampled event.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Record {
    /// The sampled series (its first arena cell id).
    pub series: u32,
    /// The `k` in force when the event was sampled: it was kept with probability `2^-k`,
    /// so it stands for `2^k` events. Critical events have `k = 0`.
    pub k: u8,
    /// The observed value.
    pub value: f64,
    /// A stable hash of the event's key (client, request id), 0 when it has none.
    pub key: u64,
    /// Nanoseconds since the engine started, when the event was sampled.
    pub time_ns: u64,
    /// A critical event: never sampled out, never dropped for a full ring.
    pub critical: bool,
    /// Kept by its key (a keyed family: every event of a kept key is kept, so the records
    /// of one key count its events exactly, each still weighing `2^k` for the totals).
    pub keyed: bool,
}

impl Record {
    /// Bytes a record occupies in a ring slot.
    pub const SIZE: usize = 32;

    /// A record of these fields.
    #[inline(always)]
    pub fn new(series: u32, k: u8, value: f64, key: u64, time_ns: u64, critical: bool) -> Self {
        Self {
            series,
            k,
            value,
            key,
            time_ns,
            critical,
            keyed: false,
        }
    }

    /// This record, marked as kept by its key ([`Record::keyed`]).
    #[inline(always)]
    pub fn by_key(mut self) -> Self {
        self.keyed = true;
        self
    }

    /// The weight `2^k` (how many events this record stands for).
    #[inline]
    pub fn weight(&self) -> u64 {
        1u64 << self.k
    }

    /// The record as four words (series and k share the first).
    #[inline]
    pub fn to_words(&self) -> [u64; 4] {
        [
            self.series as u64
                | (self.k as u64) << 32
                | (self.critical as u64) << 40
                | (self.keyed as u64) << 41,
            self.value.to_bits(),
            self.key,
            self.time_ns,
        ]
    }

    /// The inverse of [`Record::to_words`].
    #[inline]
    pub fn from_words(w: [u64; 4]) -> Self {
        Self {
            series: w[0] as u32,
            k: (w[0] >> 32) as u8,
            value: f64::from_bits(w[1]),
            key: w[2],
            time_ns: w[3],
            critical: (w[0] >> 40) & 1 == 1,
            keyed: (w[0] >> 41) & 1 == 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip() {
        let r = Record {
            series: u32::MAX - 3,
            k: 63,
            value: -0.0042,
            key: 0xdead_beef_cafe_f00d,
            time_ns: u64::MAX,
            critical: true,
            keyed: false,
        };
        assert_eq!(Record::from_words(r.to_words()), r);
        let keyed = Record {
            critical: false,
            ..r
        }
        .by_key();
        assert_eq!(Record::from_words(keyed.to_words()), keyed);
        assert!(keyed.keyed);
        assert_eq!(r.weight(), 1 << 63);
        assert!(core::mem::size_of::<Record>() <= Record::SIZE);
    }
}
