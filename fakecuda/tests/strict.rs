//! The software driver's own rules, called directly (the crate is also an
//! rlib): what it refuses, what it reports, and that queued work runs only
//! when waited for. One test, its scenarios in turn: they share the driver's
//! global state, and each ends by releasing its context (whose teardown
//! clears a fault).

use std::ffi::c_void;
use std::ptr::null_mut;

use fakecuda::*;

const OK: u32 = 0;
const INVALID_VALUE: u32 = 1;
const INVALID_CONTEXT: u32 = 201;
const INVALID_HANDLE: u32 = 400;
const ILLEGAL_ADDRESS: u32 = 700;

/// Retains device 0's primary context and makes it current.
fn open() {
    let mut ctx = null_mut();
    // SAFETY: valid out-pointers; the context handle comes from the driver.
    unsafe {
        assert_eq!(cuInit(0), OK);
        assert_eq!(cuDevicePrimaryCtxRetain(&mut ctx, 0), OK);
        assert_eq!(cuCtxSetCurrent(ctx), OK);
    }
}

fn close() {
    // SAFETY: releases the retain of `open`.
    unsafe { assert_eq!(cuDevicePrimaryCtxRelease_v2(0), OK) };
}

fn alloc(n: usize) -> u64 {
    let mut p = 0;
    // SAFETY: a valid out-pointer.
    assert_eq!(unsafe { cuMemAlloc_v2(&mut p, n) }, OK);
    p
}

fn stream() -> *mut c_void {
    let mut s = null_mut();
    // SAFETY: a valid out-pointer.
    assert_eq!(unsafe { cuStreamCreate(&mut s, 1) }, OK);
    s
}

fn pinned(n: usize) -> *mut u8 {
    let mut p = null_mut();
    // SAFETY: a valid out-pointer.
    assert_eq!(unsafe { cuMemHostAlloc(&mut p, n, 0) }, OK);
    p.cast()
}

#[test]
fn the_driver_refuses_reports_and_runs_late() {
    let report = std::env::temp_dir().join(format!("fakecuda-strict-{}.txt", std::process::id()));
    std::env::set_var("FAKECUDA_REPORT", &report);
    std::env::set_var("FAKECUDA_QUIET", "1");
    let reported = || std::fs::read_to_string(&report).unwrap_or_default();

    // SAFETY (every block below): the pointers handed over are live locals or
    // the driver's own allocations of the sizes given.

    // No context current: refused.
    unsafe {
        assert_eq!(cuInit(0), OK);
        assert_eq!(cuCtxSetCurrent(null_mut()), OK);
        let mut p = 0;
        assert_eq!(cuMemAlloc_v2(&mut p, 16), INVALID_CONTEXT);
    }

    // Sizes, handles, dangling pointers.
    open();
    unsafe {
        let mut p = 0;
        assert_eq!(cuMemAlloc_v2(&mut p, 0), INVALID_VALUE, "zero bytes");
        let d = alloc(64);
        let host = [1u8; 64];
        assert_eq!(
            cuMemcpyHtoD_v2(d + 32, host.as_ptr().cast(), 64),
            INVALID_VALUE,
            "past the end of the allocation"
        );
        assert_eq!(cuMemFree_v2(d), OK);
        assert_eq!(
            cuMemcpyHtoD_v2(d, host.as_ptr().cast(), 64),
            INVALID_VALUE,
            "use after free"
        );
        assert_eq!(cuMemFree_v2(d), INVALID_VALUE, "double free");
        assert_eq!(cuStreamSynchronize(0x1234 as *mut c_void), INVALID_HANDLE);
        let s = stream();
        assert_eq!(cuStreamDestroy_v2(s), OK);
        assert_eq!(cuStreamSynchronize(s), INVALID_HANDLE, "a destroyed stream");
        let mut e = null_mut();
        assert_eq!(cuEventCreate(&mut e, 0x10), INVALID_VALUE, "event flags");
    }
    close();

    // Device memory is poisoned until written: copying back unwritten bytes
    // is a fault, sticky for the context.
    open();
    unsafe {
        let d = alloc(16);
        let mut back = [0u8; 16];
        assert_eq!(
            cuMemcpyDtoH_v2(back.as_mut_ptr().cast(), d, 16),
            ILLEGAL_ADDRESS
        );
        assert_eq!(cuCtxSynchronize(), ILLEGAL_ADDRESS, "the fault is sticky");
        assert_eq!(cuMemFree_v2(d), OK);
    }
    close();
    assert!(reported().contains("never written"), "{}", reported());
    std::fs::remove_file(&report).ok();

    // Work runs as late as stream order allows: a copy on stream A is not
    // run by a copy back on stream B that does not wait for it ...
    open();
    unsafe {
        let (a, b) = (stream(), stream());
        let src = pinned(16);
        std::ptr::write_bytes(src, 7, 16);
        let d = alloc(16);
        let back = pinned(16);
        assert_eq!(cuMemcpyHtoDAsync_v2(d, src.cast(), 16, a), OK);
        assert_eq!(cuMemcpyDtoHAsync_v2(back.cast(), d, 16, b), OK);
        assert_eq!(
            cuStreamSynchronize(b),
            ILLEGAL_ADDRESS,
            "B read before A wrote"
        );
        assert_eq!(cuStreamSynchronize(a), ILLEGAL_ADDRESS);
        for p in [src, back] {
            assert_eq!(cuMemFreeHost(p.cast()), OK);
        }
        assert_eq!(cuMemFree_v2(d), OK);
        for s in [a, b] {
            assert_eq!(cuStreamDestroy_v2(s), OK);
        }
    }
    close();
    std::fs::remove_file(&report).ok();

    // ... and with the event wait it passes; pinned memory is read when the
    // copy runs (here after the host rewrote it), not when it was queued.
    open();
    unsafe {
        let (a, b) = (stream(), stream());
        let src = pinned(16);
        std::ptr::write_bytes(src, 7, 16);
        let d = alloc(16);
        let back = pinned(16);
        let mut e = null_mut();
        assert_eq!(cuEventCreate(&mut e, 2), OK);
        assert_eq!(cuMemcpyHtoDAsync_v2(d, src.cast(), 16, a), OK);
        std::ptr::write_bytes(src, 9, 16);
        assert_eq!(cuEventRecord(e, a), OK);
        assert_eq!(cuStreamWaitEvent(b, e, 0), OK);
        assert_eq!(cuMemcpyDtoHAsync_v2(back.cast(), d, 16, b), OK);
        assert_eq!(cuStreamSynchronize(b), OK);
        assert_eq!(std::slice::from_raw_parts(back, 16), &[9u8; 16]);
        assert_eq!(cuEventDestroy_v2(e), OK);
        for p in [src, back] {
            assert_eq!(cuMemFreeHost(p.cast()), OK);
        }
        assert_eq!(cuMemFree_v2(d), OK);
        for s in [a, b] {
            assert_eq!(cuStreamDestroy_v2(s), OK);
        }
    }
    close();
    assert_eq!(reported(), "", "nothing to report");

    // Freeing pinned memory a queued copy reads: reported, and the copy
    // faults when it runs.
    open();
    unsafe {
        let a = stream();
        let src = pinned(16);
        let d = alloc(16);
        assert_eq!(cuMemcpyHtoDAsync_v2(d, src.cast(), 16, a), OK);
        assert_eq!(cuMemFreeHost(src.cast()), OK);
        assert_eq!(cuStreamSynchronize(a), ILLEGAL_ADDRESS);
        assert_eq!(cuMemFree_v2(d), OK);
        assert_eq!(cuStreamDestroy_v2(a), OK);
    }
    close();
    assert!(reported().contains("cuMemFreeHost"), "{}", reported());
    std::fs::remove_file(&report).ok();

    // A leak at the context's teardown is reported.
    open();
    let _leaked = alloc(100);
    close();
    assert!(reported().contains("leaked"), "{}", reported());
    std::fs::remove_file(&report).ok();

    // The software driver says what it is.
    unsafe {
        let mut name = [0i8; 128];
        assert_eq!(cuDeviceGetName(name.as_mut_ptr(), 128, 0), OK);
        let name = std::ffi::CStr::from_ptr(name.as_ptr()).to_string_lossy();
        assert!(name.contains("SOFTWARE CUDA driver"), "{name}");
        let mut s = std::ptr::null();
        assert_eq!(cuGetErrorString(INVALID_VALUE, &mut s), OK);
        let s = std::ffi::CStr::from_ptr(s).to_string_lossy();
        assert!(s.contains("SOFTWARE CUDA driver"), "{s}");
    }
}
