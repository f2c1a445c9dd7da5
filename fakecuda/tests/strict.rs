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
const NOT_FOUND: u32 = 500;
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

    // Launches: the kernel's own PTX signature and limits, the device's
    // limits, and inputs nothing wrote.
    open();
    unsafe {
        let text =
            std::ffi::CString::new(gguf_dequant::ptx::source("90").expect("the build's PTX"))
                .unwrap();
        let mut m = null_mut();
        assert_eq!(cuModuleLoadData(&mut m, text.as_ptr().cast()), OK);
        let mut f = null_mut();
        assert_eq!(
            cuModuleGetFunction(&mut f, m, c"no_such_kernel".as_ptr()),
            NOT_FOUND
        );
        assert_eq!(cuModuleGetFunction(&mut f, m, c"gdq_q4_0_f32".as_ptr()), OK);
        let (src, dst) = (alloc(18), alloc(32 * 4));
        let block = [0u8; 18]; // a q4_0 block of scale 0: 32 zeros
        assert_eq!(cuMemcpyHtoD_v2(src, block.as_ptr().cast(), 18), OK);
        let (mut a, mut b, mut n) = (src, dst, 1u64);
        let mut params: [*mut c_void; 3] = [
            (&mut a as *mut u64).cast(),
            (&mut b as *mut u64).cast(),
            (&mut n as *mut u64).cast(),
        ];
        let launch = |grid: [u32; 3], block: [u32; 3], params: *mut *mut c_void| {
            cuLaunchKernel(
                f,
                grid[0],
                grid[1],
                grid[2],
                block[0],
                block[1],
                block[2],
                0,
                null_mut(),
                params,
                null_mut(),
            )
        };
        let p = params.as_mut_ptr();
        assert_eq!(
            launch([1, 65536, 1], [256, 1, 1], p),
            INVALID_VALUE,
            "gridDim.y"
        );
        assert_eq!(
            launch([1, 1, 1], [512, 1, 1], p),
            INVALID_VALUE,
            "the kernel's .maxntid"
        );
        assert_eq!(
            launch([1, 1, 1], [1025, 1, 1], p),
            INVALID_VALUE,
            "1024 threads a block"
        );
        assert_eq!(
            launch([1, 1, 1], [256, 1, 1], null_mut()),
            INVALID_VALUE,
            "no parameters"
        );
        let mut short: [*mut c_void; 3] = [params[0], params[1], null_mut()];
        assert_eq!(
            launch([1, 1, 1], [256, 1, 1], short.as_mut_ptr()),
            INVALID_VALUE,
            "two of three"
        );
        assert_eq!(launch([1, 1, 1], [256, 1, 1], p), OK);
        let mut out = [1f32; 32];
        assert_eq!(cuMemcpyDtoH_v2(out.as_mut_ptr().cast(), dst, 128), OK);
        assert_eq!(out, [0f32; 32]);
        // an input never written: the kernel's read faults when it runs
        a = alloc(18);
        assert_eq!(launch([1, 1, 1], [256, 1, 1], p), OK);
        assert_eq!(cuCtxSynchronize(), ILLEGAL_ADDRESS);
        for d in [src, dst, a] {
            assert_eq!(cuMemFree_v2(d), OK);
        }
        assert_eq!(cuModuleUnload(m), OK);
    }
    close();
    assert!(reported().contains("never written"), "{}", reported());
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
