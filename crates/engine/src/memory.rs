//! The process's memory: transparent huge pages off.
//!
//! mimalloc (the binary's allocator) asks the kernel for transparent huge pages for its
//! arenas, so the first touch of each fresh 2 MB region makes the kernel zero all of it.
//! A transaction allocates and frees tens of megabytes of short-lived documents, and
//! that zeroing was 15–21% of an import's CPU; with huge pages off, the import measured
//! faster in every interleaved pair, and the write workloads' tails no worse
//! (docs/benchmarks.md, session 10). This is what `MIMALLOC_ALLOW_THP=0` does, set by the
//! program rather than left to its environment.

/// Turns transparent huge pages off for the whole process (`PR_SET_THP_DISABLE`, kept
/// across `fork` and `exec`). Call it first thing in `main`; memory already mapped
/// follows too, as the kernel checks the flag when a page is faulted in.
#[cfg(target_os = "linux")]
pub fn no_transparent_huge_pages() -> std::io::Result<()> {
    // SAFETY: prctl with integer arguments only; it sets a flag of the calling process.
    let r = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Elsewhere there is nothing to turn off.
#[cfg(not(target_os = "linux"))]
pub fn no_transparent_huge_pages() -> std::io::Result<()> {
    Ok(())
}
