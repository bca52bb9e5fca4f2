//! Cell allocation: which arena cells a new series gets. Ids are process-wide (every arena
//! has a cell for every id), handed out by an atomic bump per pool, never reused.

use std::sync::atomic::{AtomicU32, Ordering};

use super::{CHUNK_CELLS, MAX_CELLS};

/// Cells `0..RESERVED_CELLS` are never handed out: they back the discard handles that a
/// macro call site falls back to when its registration fails.
pub(crate) const RESERVED_CELLS: u32 = 256;

/// The part of the process's cell id space a registry takes its cells from (arenas are
/// process-wide, so ids are unique across registries). The global registry, the one the
/// macros record into, has a half of its own: registries made by the program (for dynamic
/// names, tests, calibration) cannot use up the cells the macros need, nor the other way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CellPool {
    /// Cells `RESERVED_CELLS .. MAX_CELLS / 2`: the global engine's registry.
    Global,
    /// Cells `MAX_CELLS / 2 .. MAX_CELLS`: every other registry.
    Other,
}

/// Next free cell id of each pool.
static NEXT_GLOBAL: AtomicU32 = AtomicU32::new(RESERVED_CELLS);
static NEXT_OTHER: AtomicU32 = AtomicU32::new((MAX_CELLS / 2) as u32);

/// Hands out `n` consecutive cells (n ≤ one chunk) of `pool` that never straddle a chunk
/// boundary, so the record path reaches all of a series' cells through one chunk lookup.
pub(crate) fn allocate_cells(pool: CellPool, n: u32) -> Result<u32, CellSpaceExhausted> {
    assert!(n as usize <= CHUNK_CELLS, "a series fits in one chunk");
    let (next, limit) = match pool {
        CellPool::Global => (&NEXT_GLOBAL, MAX_CELLS / 2),
        CellPool::Other => (&NEXT_OTHER, MAX_CELLS),
    };
    let mut start = 0;
    // Relaxed: only uniqueness of the handed-out ranges matters, which the RMW guarantees.
    next.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |next| {
        let chunk_end = (next | (CHUNK_CELLS as u32 - 1)).checked_add(1)?;
        start = if next.checked_add(n)? > chunk_end {
            chunk_end
        } else {
            next
        };
        let end = start.checked_add(n)?;
        (end as usize <= limit).then_some(end)
    })
    .map(|_| start)
    .map_err(|_| CellSpaceExhausted)
}

/// The cell id space of a [`CellPool`] is used up (an [`Error::CellSpaceExhausted`] to the
/// registry).
///
/// [`Error::CellSpaceExhausted`]: crate::Error::CellSpaceExhausted
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CellSpaceExhausted;
