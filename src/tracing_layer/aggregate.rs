//! Repeat aggregation: a bounded table of recent kept lines, keyed by (callsite, sample
//! rate, the line's text without its timestamp), that folds a burst of identical lines into
//! one "repeated N times" line (the seed's structured logger's rule: more than 5 in 1 s).

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use rustc_hash::FxHashMap;

use super::writer::LineSource;
use super::{Clock, NonBlocking, push_timestamp};
use crate::{Counter, Gauge, k_to_rate};

/// The rules of repeat aggregation ([`SamplingLayerBuilder::repeats`](super::SamplingLayerBuilder::repeats)).
///
/// A line repeats another when it comes from the same callsite, at the same sample rate,
/// with the same text after its timestamp: level, target, every field value and the
/// correlation id (so different ids are never merged). ERROR lines are never aggregated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Repeats {
    /// Written as usual up to this many times within [`within`](Self::within) of the first;
    /// the next repeats are aggregated (default 5: the 6th within 1 s is the first
    /// aggregated).
    pub threshold: u32,
    /// The detection window, and how long a burst may pause before its aggregate line is
    /// written (default 1 s).
    pub within: Duration,
    /// An aggregate line covers at most this long, first to last occurrence (default 10 s);
    /// a burst that goes on starts a new aggregate.
    pub max_window: Duration,
    /// An aggregate line stands for at most this many events (default 1,000).
    pub max_count: u64,
    /// Distinct lines tracked at once (default 1,024). While the table is full, a new line
    /// is written as usual, untracked (counted `log_aggregation_untracked_total`), until the
    /// next sweep (every [`within`](Self::within)) removes the entries that expired: the
    /// cap costs aggregation, never a line.
    pub max_entries: usize,
}

impl Default for Repeats {
    fn default() -> Self {
        Self {
            threshold: 5,
            within: Duration::from_secs(1),
            max_window: Duration::from_secs(10),
            max_count: 1_000,
            max_entries: 1_024,
        }
    }
}

enum State {
    /// Written as usual: `n` occurrences since `start`.
    Counting { start: Instant, n: u32 },
    /// Held back: `count` occurrences, `first` to `last`.
    Aggregating {
        first: Instant,
        last: Instant,
        first_wall: SystemTime,
        count: u64,
    },
    /// An aggregate just closed at a cap while its burst goes on: the next occurrence
    /// within `within` of `last` opens a new one.
    Hot { last: Instant },
}

struct Entry {
    site: usize,
    k: u8,
    /// The line after `ts=... `, up to its ` sample_rate=`.
    body: Box<str>,
    state: State,
}

struct Table {
    map: FxHashMap<u64, Entry>,
    /// Set by `drain_all`: from then on every line is written as usual.
    closed: bool,
    next_sweep: Option<Instant>,
}

/// The counters and gauges the layer refreshes at each tick.
pub(crate) struct Meters {
    pub(crate) aggregated: [Counter; 5],
    pub(crate) lines: Counter,
    pub(crate) untracked: Counter,
    pub(crate) entries: Gauge,
    /// `log_events_kept_total`, `log_events_sampled_out_total` and the effective rate gauge,
    /// per level.
    pub(crate) kept: [Counter; 5],
    pub(crate) sampled_out: [Counter; 5],
    pub(crate) effective: [Gauge; 5],
}

impl Meters {
    /// `log_effective_sample_rate{level}` = kept / seen since the start (1 before any).
    pub(crate) fn refresh_rates(&self) {
        for i in 0..5 {
            let kept = self.kept[i].value();
            let seen = kept + self.sampled_out[i].value();
            let rate = if seen == 0 {
                1.0
            } else {
                kept as f64 / seen as f64
            };
            self.effective[i].set(rate);
        }
    }
}

/// The layer's part that the writer's worker ticks: the repeat table (if on) and the
/// effective-rate gauges.
pub(crate) struct Aggregator {
    rules: Option<Repeats>,
    clock: std::sync::Arc<dyn Clock>,
    table: Mutex<Table>,
    pub(crate) meters: Meters,
    writer: NonBlocking,
}

impl Aggregator {
    pub(crate) fn new(
        rules: Option<Repeats>,
        clock: std::sync::Arc<dyn Clock>,
        meters: Meters,
        writer: NonBlocking,
    ) -> Self {
        Self {
            rules,
            clock,
            table: Mutex::new(Table {
                map: FxHashMap::default(),
                closed: false,
                next_sweep: None,
            }),
            meters,
            writer,
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        // Every update leaves the table consistent; a panic in between is ignored.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether repeat aggregation is on.
    pub(crate) fn on(&self) -> bool {
        self.rules.is_some()
    }

    /// A kept, non-ERROR line at `now`: `true` to write it as usual, `false` when it was
    /// folded into an aggregate. Lines that closed meanwhile are sent here.
    pub(crate) fn offer(&self, site: usize, level: usize, k: u8, body: &str, now: Instant) -> bool {
        let Some(rules) = self.rules else { return true };
        let mut out = Vec::new();
        let write = {
            let mut t = self.table();
            self.offer_locked(&mut t, &rules, site, level, k, body, now, &mut out)
        };
        for line in out {
            self.writer.send(line);
        }
        write
    }

    #[allow(clippy::too_many_arguments)]
    fn offer_locked(
        &self,
        t: &mut Table,
        rules: &Repeats,
        site: usize,
        level: usize,
        k: u8,
        body: &str,
        now: Instant,
        out: &mut Vec<String>,
    ) -> bool {
        if t.closed {
            return true;
        }
        if t.next_sweep.is_none_or(|at| now >= at) {
            self.sweep(t, rules, now, out);
            t.next_sweep = Some(now + rules.within);
        }
        let seed = (site as u64) ^ (u64::from(k) << 56);
        let h = xxhash_rust::xxh3::xxh3_64_with_seed(body.as_bytes(), seed);
        if let Some(e) = t.map.get_mut(&h) {
            if e.site != site || e.k != k || *e.body != *body {
                // Two lines with one hash: the newcomer goes untracked (written as usual).
                self.meters.untracked.inc();
                return true;
            }
            if self.expire(e, rules, now, out) {
                return self.step(e, rules, level, now, out);
            }
            t.map.remove(&h);
        }
        // Full: untracked until the next sweep (at most `within` away) frees entries. No
        // sweep here: a table full of live entries would be swept on every line.
        if t.map.len() >= rules.max_entries {
            self.meters.untracked.inc();
            return true;
        }
        t.map.insert(
            h,
            Entry {
                site,
                k,
                body: body.into(),
                state: State::Counting { start: now, n: 1 },
            },
        );
        true
    }

    /// One more occurrence of a live entry.
    fn step(
        &self,
        e: &mut Entry,
        rules: &Repeats,
        level: usize,
        now: Instant,
        out: &mut Vec<String>,
    ) -> bool {
        match &mut e.state {
            State::Counting { n, .. } => {
                *n += 1;
                if *n <= rules.threshold {
                    return true;
                }
            }
            State::Aggregating { last, count, .. } => {
                *count += 1;
                *last = now;
                self.meters.aggregated[level].inc();
                if *count >= rules.max_count {
                    self.emit(e, out);
                    e.state = State::Hot { last: now };
                }
                return false;
            }
            State::Hot { .. } => {}
        }
        e.state = State::Aggregating {
            first: now,
            last: now,
            first_wall: self.clock.wall(),
            count: 1,
        };
        self.meters.aggregated[level].inc();
        false
    }

    /// Applies the time rules to `e` at `now`: `false` when it is done (its aggregate, if
    /// any, appended to `out`), to be removed.
    fn expire(&self, e: &mut Entry, rules: &Repeats, now: Instant, out: &mut Vec<String>) -> bool {
        let since = |t: Instant| now.saturating_duration_since(t);
        match e.state {
            State::Counting { start, .. } => since(start) <= rules.within,
            State::Hot { last } => since(last) <= rules.within,
            State::Aggregating { first, last, .. } => {
                if since(last) > rules.within {
                    self.emit(e, out);
                    false
                } else if since(first) >= rules.max_window {
                    self.emit(e, out);
                    e.state = State::Hot { last };
                    true
                } else {
                    true
                }
            }
        }
    }

    fn sweep(&self, t: &mut Table, rules: &Repeats, now: Instant, out: &mut Vec<String>) {
        t.map.retain(|_, e| self.expire(e, rules, now, out));
    }

    /// The aggregate line of `e` (which must be aggregating).
    fn emit(&self, e: &Entry, out: &mut Vec<String>) {
        let State::Aggregating {
            first,
            last,
            first_wall,
            count,
        } = e.state
        else {
            return;
        };
        let window = last.saturating_duration_since(first);
        let mut line = String::with_capacity(e.body.len() + 160);
        line.push_str("ts=");
        push_timestamp(&mut line, first_wall);
        line.push(' ');
        line.push_str(&e.body);
        line.push_str(&format!(
            " sample_rate={} repeated={count} first=",
            k_to_rate(e.k)
        ));
        push_timestamp(&mut line, first_wall);
        line.push_str(" last=");
        push_timestamp(&mut line, first_wall + window);
        line.push_str(&format!(" window_s={:.6}\n", window.as_secs_f64()));
        self.meters.lines.inc();
        out.push(line);
    }
}

impl LineSource for Aggregator {
    fn tick(&self, out: &mut Vec<String>) {
        self.meters.refresh_rates();
        let Some(rules) = self.rules else { return };
        let now = self.clock.now();
        let mut t = self.table();
        if !t.closed {
            self.sweep(&mut t, &rules, now, out);
        }
        self.meters.entries.set(t.map.len() as f64);
    }

    fn drain_all(&self, out: &mut Vec<String>) {
        self.meters.refresh_rates();
        let mut t = self.table();
        t.closed = true;
        for (_, e) in t.map.drain() {
            self.emit(&e, out);
        }
        self.meters.entries.set(0.0);
    }
}
