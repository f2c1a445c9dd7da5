//! The threads every parallel decode runs on: one pool per process.
//!
//! rayon's global pool is built once per process image. After `fork()` the
//! child has a copy of its bookkeeping but none of its threads, so a decode in
//! the child would queue work for workers that do not exist and wait forever
//! (Python's multiprocessing with the fork start method, PyTorch's DataLoader
//! workers). This pool is tagged with the id of the process that built it: a
//! process that finds another's builds its own and leaves the inherited one
//! alone, never dropped or touched, since its locks may be held by threads
//! that no longer exist. Nothing here takes a lock, so a fork at any moment,
//! in the middle of another thread's decode included, leaves the child able
//! to decode.

use std::sync::atomic::{AtomicPtr, Ordering};

use crate::error::{Error, Result};

/// A pool and the process that built it.
struct Owned {
    pid: u32,
    pool: rayon::ThreadPool,
}

/// This process's pool, or an inherited one, or null. Never freed once set.
static POOL: AtomicPtr<Owned> = AtomicPtr::new(std::ptr::null_mut());

/// This process's pool, built on first use (in a forked child, on its first
/// use there).
fn pool() -> Result<&'static rayon::ThreadPool> {
    let pid = std::process::id();
    loop {
        let seen = POOL.load(Ordering::Acquire);
        // SAFETY: a non-null `POOL` comes from `Box::into_raw` below and is
        // never freed (an inherited one is leaked on purpose), so it is valid
        // for the rest of the process.
        if let Some(owned) = unsafe { seen.as_ref() } {
            if owned.pid == pid {
                return Ok(&owned.pool);
            }
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads())
            .thread_name(|i| format!("gguf-dequant-{i}"))
            .build()
            .map_err(|e| Error::Invalid(format!("cannot start the decoding threads: {e}")))?;
        let fresh = Box::into_raw(Box::new(Owned { pid, pool }));
        match POOL.compare_exchange(seen, fresh, Ordering::AcqRel, Ordering::Acquire) {
            // `seen` (none, or the parent's) is left as it is: leaked
            // SAFETY: `fresh` is now `POOL`'s, never freed (see above).
            Ok(_) => return Ok(unsafe { &(*fresh).pool }),
            // Another thread of this process set one first: use that, and
            // drop ours, which no work ever reached.
            // SAFETY: `fresh` came from `Box::into_raw` above and was never
            // shared.
            Err(_) => drop(unsafe { Box::from_raw(fresh) }),
        }
    }
}

/// The pool's size: `RAYON_NUM_THREADS` where it is a count from 1 to the
/// CPUs this process may use, else the CPUs. More threads than CPUs only
/// contend, and a huge count would start a thread for each before any work.
fn threads() -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .map_or(cpus, |n| n.min(cpus))
}

/// Runs `f` on this process's pool: the parallel iterators inside it use its
/// threads. Inside a rayon pool already (a caller's own
/// `ThreadPool::install`, as `bench --threads` and the benchmarks do), `f`
/// runs there, on the threads that caller chose.
pub fn install<R: Send>(f: impl FnOnce() -> R + Send) -> Result<R> {
    if rayon::current_thread_index().is_some() {
        return Ok(f());
    }
    Ok(pool()?.install(f))
}

/// The number of threads [`install`] runs on, from here.
pub fn current_num_threads() -> usize {
    if rayon::current_thread_index().is_some() {
        return rayon::current_num_threads();
    }
    pool().map_or(1, rayon::ThreadPool::current_num_threads)
}
