//! [`Timer`]: records the seconds elapsed since it started into a histogram when dropped.
//!
//! It sits in the macros' layer, above [`Histogram`] (`metric`): a timer from `timer!`
//! records through its call site's cached slot (`SiteHandle<Histogram>`) and one from
//! [`Histogram::start_timer`] through the handle, so `metric` needs nothing from the
//! macros' layer, and both `start_timer`s live here (`macro_support` does not name
//! `Timer`: no cycle).

#[cfg(not(hotmeter_disabled))]
use std::time::Instant;

use crate::macro_support::SiteHandle;
use crate::metric::Histogram;

impl Histogram {
    /// Starts a timer that records the elapsed seconds into this histogram when dropped.
    #[inline]
    pub fn start_timer(self) -> Timer {
        #[cfg(not(hotmeter_disabled))]
        return Timer {
            target: TimerTarget::Handle(self),
            start: Instant::now(),
        };
        #[cfg(hotmeter_disabled)]
        return Timer::DISABLED;
    }
}

impl SiteHandle<Histogram> {
    /// Starts a timer that records the elapsed seconds when dropped (under
    /// `--cfg hotmeter_disabled`, one that reads no clock).
    #[cfg_attr(not(hotmeter_disabled), inline)]
    #[cfg_attr(hotmeter_disabled, inline(always))]
    pub fn start_timer(self) -> Timer {
        #[cfg(not(hotmeter_disabled))]
        return Timer::at_site(self, Instant::now());
        #[cfg(hotmeter_disabled)]
        return Timer::DISABLED;
    }
}

/// Records the seconds elapsed since it was created into a histogram when dropped.
#[cfg(not(hotmeter_disabled))]
#[must_use = "a timer records when it is dropped; bind it with `let _t = ...`"]
#[derive(Debug)]
pub struct Timer {
    target: TimerTarget,
    start: Instant,
}

/// Where a [`Timer`] records: a handle, or a macro call site (through its slot).
#[cfg(not(hotmeter_disabled))]
#[derive(Debug)]
enum TimerTarget {
    Handle(Histogram),
    Site(SiteHandle<Histogram>),
}

#[cfg(not(hotmeter_disabled))]
impl Timer {
    /// A timer recording through a `timer!` call site.
    #[inline]
    pub(crate) fn at_site(site: SiteHandle<Histogram>, start: Instant) -> Self {
        Self {
            target: TimerTarget::Site(site),
            start,
        }
    }

    /// Stops the timer now, recording the elapsed time.
    pub fn stop(self) {}
}

#[cfg(not(hotmeter_disabled))]
impl Drop for Timer {
    #[inline]
    fn drop(&mut self) {
        let secs = self.start.elapsed().as_secs_f64();
        match self.target {
            TimerTarget::Handle(h) => h.record(secs),
            TimerTarget::Site(s) => s.record(secs),
        }
    }
}

/// Records the seconds elapsed since it was created into a histogram when dropped; under
/// `--cfg hotmeter_disabled` it reads no clock and records nothing.
#[cfg(hotmeter_disabled)]
#[must_use = "a timer records when it is dropped; bind it with `let _t = ...`"]
#[derive(Debug)]
pub struct Timer {
    _off: (),
}

#[cfg(hotmeter_disabled)]
impl Timer {
    /// The timer of a disabled build.
    pub(crate) const DISABLED: Timer = Timer { _off: () };

    /// Stops the timer now, recording the elapsed time.
    pub fn stop(self) {}
}
