//! Issue 9, defect 4: a registration that fails leaves no empty family behind. After the
//! process-wide cell space is used up, every new name fails (`CellSpaceExhausted`); before
//! the fix each failure still inserted an empty family (51,700 of them after 1.1 M bad names
//! in the run), growing memory and the exposition without bound.
//!
//! Own binary: it fills the process's cell space.

mod common;

use hotmeter::{Error, Registry};

#[test]
fn failed_registrations_leave_no_family() {
    let filler = Registry::with_limits(hotmeter::DEFAULT_SERIES_CAP, 2_000_000);
    common::exhaust_cell_space(&filler);

    let r = Registry::new();
    let families_before = r.snapshot().families.len();
    const BAD: usize = 10_000;
    for i in 0..BAD {
        let name = format!("late_{i}");
        let err = match i % 4 {
            0 => r.counter(&format!("{name}_total"), &[]).map(drop),
            1 => r.gauge(&name, &[("a", "b")]).map(drop),
            2 => r.histogram(&name, &[]).map(drop),
            _ => r.sampled(&name, &[]).map(drop),
        };
        assert!(
            matches!(err, Err(Error::CellSpaceExhausted)) || (i % 4 == 1 && err.is_ok()),
            "{name}: {err:?}"
        );
    }
    // Gauges need no cells (one shared atomic each), so they still register.
    let snap = r.snapshot();
    let empty = snap.families.iter().filter(|f| f.series.is_empty()).count();
    assert_eq!(
        empty, 0,
        "{empty} empty families left by failed registrations"
    );
    assert_eq!(snap.families.len(), families_before + BAD / 4);
    // A failed name stays free: once registered as another kind it works.
    assert!(r.gauge("late_0_total", &[]).is_ok());
}
