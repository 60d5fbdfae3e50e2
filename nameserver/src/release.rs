//! Giving the memory of a registry that shrank back to the system.
//!
//! glibc's allocator keeps what a process freed in its arenas and returns it only from the
//! top of a heap, so a registry that held a flood of registrations stays resident at the
//! flood's size after it is removed (10,000 registrations of 1 KiB: 12 MiB before, 42 MiB
//! after). When the registry has shrunk by [`RELEASE_AFTER`] instances, the nameserver asks
//! the allocator to return its free pages (`malloc_trim`), on a blocking thread since it walks
//! every arena.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::task::JoinHandle;

/// By how many instances the registry must shrink from its high-water mark before freed
/// memory is given back: about a megabyte, so steady churn costs no trim.
pub(crate) const RELEASE_AFTER: usize = 1024;

/// The registry's high-water mark since memory was last given back.
#[derive(Debug, Default)]
pub(crate) struct Shrinkage {
    high_water: AtomicUsize,
}

impl Shrinkage {
    /// Notes that the registry holds `instances` now. Once it has shrunk by
    /// [`RELEASE_AFTER`] since the high-water mark (which then starts again here), gives freed
    /// memory back on a blocking thread, and returns that thread's handle.
    pub(crate) fn note(&self, instances: usize) -> Option<JoinHandle<()>> {
        let high_water = self.high_water.fetch_max(instances, Ordering::Relaxed);
        let shrank = high_water >= instances + RELEASE_AFTER
            && self
                .high_water
                .compare_exchange(high_water, instances, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok();
        if !shrank {
            return None;
        }
        tracing::debug!(target: "nameserver", from = high_water, to = instances, "registry shrank; giving freed memory back");
        // Outside a runtime (a test of the library alone) there is nothing to spawn on.
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        Some(runtime.spawn_blocking(release_freed_memory))
    }
}

/// Asks glibc to give the free pages of every arena back to the system.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[expect(
    unsafe_code,
    reason = "glibc's `malloc_trim` has no safe binding; this is the project's only unsafe call"
)]
fn release_freed_memory() {
    unsafe extern "C" {
        fn malloc_trim(pad: usize) -> i32;
    }
    // SAFETY: `malloc_trim` takes no pointer, touches only the allocator's own free lists
    // and locks each arena while it does; any thread may call it at any time.
    unsafe {
        malloc_trim(0);
    }
}

/// Elsewhere the system allocators (musl, macOS, Windows) return freed memory by themselves,
/// or have no such call.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_freed_memory() {}
