//! A child made by `fork()` decodes correctly, whatever its parent did first
//! (issue 23): rayon's global pool has no threads in a forked child, so a
//! decode there waited forever; decodes run on `gguf_dequant::pool`, one pool
//! per process. Each child runs under a deadline, so a hang fails the test
//! instead of hanging it. A forked child also runs the one test here that
//! needs a memory limit of its own.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use gguf_dequant::{cpu, GgmlType};

/// How long a child may take before it counts as hung (it needs milliseconds).
const DEADLINE: Duration = Duration::from_secs(60);

/// q8_0 blocks of `n` elements (many of the fast path's parallel chunks):
/// scale 1.0, varied quants.
fn blocks(n: usize) -> Vec<u8> {
    let mut src = Vec::new();
    for b in 0..n / 32 {
        src.extend_from_slice(&0x3c00u16.to_le_bytes());
        src.extend((0..32u8).map(|i| i.wrapping_mul(7).wrapping_add(b as u8)));
    }
    src
}

/// Forks a child that decodes `src` and compares with `want`: whether it
/// exited with success before the deadline.
fn child_decodes(src: &[u8], want: &[f32]) -> bool {
    in_child(|| {
        cpu::dequantize_to_vec::<f32>(GgmlType::Q8_0, src)
            .ok()
            .as_deref()
            == Some(want)
    })
}

/// Runs `check` in a forked child: whether it returned true, before the
/// deadline and without dying of a signal.
fn in_child(check: impl FnOnce() -> bool) -> bool {
    // SAFETY: the child only runs `check` (this crate's code, the allocator)
    // and leaves with `_exit`, running nothing of the test harness's.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(check)).unwrap_or(false);
        // SAFETY: ends the child at once, without the parent's exit handlers.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    let start = Instant::now();
    let mut status = 0;
    loop {
        // SAFETY: waits for our own child, without blocking.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        assert!(r >= 0, "waitpid failed");
        if r == pid {
            return libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
        }
        if start.elapsed() > DEADLINE {
            // SAFETY: our own child, hung: killed and reaped.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A decode into a new vector too large for the memory left is an error, not
/// an abort: a child limited to 256 MiB of address space above what it uses
/// asks for about 750 MB of output.
#[test]
fn a_decode_too_large_for_memory_is_an_error() {
    assert!(
        in_child(|| {
            let src = vec![0u8; 34 * (6 << 20)]; // 6 Mi q8_0 blocks: 204 MB
            let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
            let pages: u64 = statm.split(' ').next().unwrap().parse().unwrap();
            let limit = pages * 4096 + (256 << 20);
            let rlimit = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            // SAFETY: sets this (child) process's own limit from a valid struct.
            assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &rlimit) }, 0);
            match cpu::dequantize_to_vec::<f32>(GgmlType::Q8_0, &src) {
                Err(e) => e.to_string().contains("do not fit in memory"),
                Ok(_) => false,
            }
        }),
        "the child aborted, or its decode did not fail as it should"
    );
}

#[test]
fn a_forked_child_decodes_after_and_during_the_parents_decodes() {
    let src = blocks(1 << 21);
    let want: Vec<f32> = cpu::dequantize_to_vec(GgmlType::Q8_0, &src).unwrap();
    assert_eq!(want[33], 8.0); // block 1, quant 1: 1 * 7 + 1

    // after the parent's decode, its pool's threads all idle
    assert!(
        child_decodes(&src, &want),
        "the child hung or decoded wrong values"
    );

    // while another thread of the parent is in the middle of decodes
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let busy = s.spawn(|| {
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let got: Vec<f32> = cpu::dequantize_to_vec(GgmlType::Q8_0, &src).unwrap();
                assert!(got == want);
                n += 1;
            }
            n
        });
        for _ in 0..5 {
            assert!(
                child_decodes(&src, &want),
                "a child forked during a decode hung or decoded wrong values"
            );
        }
        stop.store(true, Ordering::Relaxed);
        assert!(busy.join().unwrap() > 0);
    });
}

/// `RAYON_NUM_THREADS` asking for more threads than CPUs gets a pool of the
/// CPUs: a huge count started a thread for each (a million: minutes in the
/// kernel, the memory of their stacks) before any work.
#[test]
fn a_huge_thread_count_from_the_environment_is_capped() {
    let src = blocks(1 << 16);
    let want: Vec<f32> = cpu::dequantize_to_vec(GgmlType::Q8_0, &src).unwrap();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert!(
        in_child(|| {
            // the child has one thread: nothing reads the environment meanwhile
            std::env::set_var("RAYON_NUM_THREADS", "4096");
            gguf_dequant::pool::current_num_threads() <= cpus
                && cpu::dequantize_to_vec::<f32>(GgmlType::Q8_0, &src).ok() == Some(want)
        }),
        "the child's pool has more threads than CPUs, or it hung"
    );
}
