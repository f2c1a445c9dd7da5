//! fakecuda: a software CUDA driver. It exports the driver API entry points
//! (`cuInit`, `cuMemAllocAsync`, `cuLaunchKernel`, ...) that cudarc 0.19
//! resolves by name from `libcuda.so`, for everything gguf-dequant does, and
//! runs the launches' kernels through gguf-dequant's PTX interpreter over a
//! model of device memory. Linked as `libcuda.so` first on the library path
//! (scripts/fake-gpu.sh), it lets the crate's real GPU code path run where
//! there is no GPU.
//!
//! It is strict where the real driver documents an error (every handle,
//! pointer, size and launch shape checked, the documented code returned) and
//! adversarial where the real one is merely allowed to be lucky: queued work
//! runs as late as stream order and event waits allow, pinned host memory is
//! read when a copy runs, device memory is poisoned until written (a kernel
//! or a copy reading unwritten bytes faults), addresses are never reused (a
//! use after free faults), and freeing memory queued work still uses, or
//! leaking anything past a context's teardown, is reported (stderr and the
//! file `FAKECUDA_REPORT` names). Every device is named as the software
//! driver's and every error message says so: no result of it can pass for a
//! GPU's. Speed, the hardware's own faults and other libraries' kernels are
//! for a real GPU.
//!
//! Every entry point catches panics (none may unwind into C) and holds one
//! lock over the whole driver while it runs, kernels included.
//!
//! Environment: `FAKECUDA_DEVICES` (how many devices, default 2, at most 8),
//! `FAKECUDA_REPORT` (a file the violations are appended to),
//! `FAKECUDA_TRACE=1` (every call and its result on stderr),
//! `FAKECUDA_QUIET` (failed calls not printed; they are by default).

#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![allow(non_snake_case)]

mod driver;
mod host;
mod image;

use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Mutex, OnceLock};

use driver::*;

pub use driver::DEVICE_NAME;

type CUresult = c_uint;
type CUdevice = c_int;
type CUdeviceptr = u64;
type Handle = *mut c_void;

static DRIVER: Mutex<Option<Driver>> = Mutex::new(None);

thread_local! {
    /// The last failure on this thread: (code, message), for cuGetErrorString.
    static LAST: std::cell::RefCell<Option<(CUresult, String)>> = const { std::cell::RefCell::new(None) };
}

fn trace() -> bool {
    static T: OnceLock<bool> = OnceLock::new();
    *T.get_or_init(|| std::env::var_os("FAKECUDA_TRACE").is_some_and(|v| v == "1"))
}

/// Runs one entry point: the lock held, panics caught, failures recorded.
fn api(name: &str, f: impl FnOnce(&mut Driver) -> R<()>) -> CUresult {
    let r = catch_unwind(AssertUnwindSafe(|| {
        let mut g = DRIVER.lock().unwrap_or_else(|p| p.into_inner());
        match g.as_mut() {
            Some(d) => f(d),
            None => fail(NOT_INITIALIZED, "cuInit has not been called"),
        }
    }));
    let r = r.unwrap_or_else(|p| {
        let what = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        fail(UNKNOWN, format!("the software driver panicked: {what}"))
    });
    match r {
        Ok(()) => {
            if trace() {
                eprintln!("fakecuda: {name} -> CUDA_SUCCESS");
            }
            SUCCESS
        }
        Err(f) => {
            if trace() || f.code != NOT_READY {
                // Every failure is printed: the code alone says too little.
                if trace() || std::env::var_os("FAKECUDA_QUIET").is_none() {
                    eprintln!(
                        "fakecuda (software CUDA driver): {name} -> {}: {}",
                        error_name(f.code),
                        f.msg
                    );
                }
            }
            LAST.with(|l| *l.borrow_mut() = Some((f.code, format!("{name}: {}", f.msg))));
            f.code
        }
    }
}

/// Writes `v` through the out-parameter `p`.
///
/// # Safety
/// `p` is null or valid for a write of `T` (the API's contract).
unsafe fn out<T>(p: *mut T, v: T) -> R<()> {
    if p.is_null() {
        return fail(INVALID_VALUE, "a null output pointer");
    }
    // SAFETY: non-null, and valid for writes by the caller's contract.
    unsafe { p.write(v) };
    Ok(())
}

fn error_name(code: CUresult) -> &'static str {
    match code {
        0 => "CUDA_SUCCESS",
        1 => "CUDA_ERROR_INVALID_VALUE",
        2 => "CUDA_ERROR_OUT_OF_MEMORY",
        3 => "CUDA_ERROR_NOT_INITIALIZED",
        4 => "CUDA_ERROR_DEINITIALIZED",
        100 => "CUDA_ERROR_NO_DEVICE",
        101 => "CUDA_ERROR_INVALID_DEVICE",
        200 => "CUDA_ERROR_INVALID_IMAGE",
        201 => "CUDA_ERROR_INVALID_CONTEXT",
        209 => "CUDA_ERROR_NO_BINARY_FOR_GPU",
        218 => "CUDA_ERROR_INVALID_PTX",
        400 => "CUDA_ERROR_INVALID_HANDLE",
        401 => "CUDA_ERROR_ILLEGAL_STATE",
        500 => "CUDA_ERROR_NOT_FOUND",
        600 => "CUDA_ERROR_NOT_READY",
        700 => "CUDA_ERROR_ILLEGAL_ADDRESS",
        701 => "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES",
        702 => "CUDA_ERROR_LAUNCH_TIMEOUT",
        709 => "CUDA_ERROR_CONTEXT_IS_DESTROYED",
        719 => "CUDA_ERROR_LAUNCH_FAILED",
        801 => "CUDA_ERROR_NOT_SUPPORTED",
        999 => "CUDA_ERROR_UNKNOWN",
        _ => "",
    }
}

/// A string that lives as long as the process (cuGetError* hand out pointers).
fn interned(s: String) -> *const c_char {
    static STRINGS: Mutex<Option<HashMap<String, &'static CStr>>> = Mutex::new(None);
    let mut g = STRINGS.lock().unwrap_or_else(|p| p.into_inner());
    let map = g.get_or_insert_with(HashMap::new);
    if let Some(c) = map.get(&s) {
        return c.as_ptr();
    }
    let c: &'static CStr = Box::leak(
        CString::new(s.replace('\0', " "))
            .expect("no NUL")
            .into_boxed_c_str(),
    );
    map.insert(s, c);
    c.as_ptr()
}

/// # Safety
/// `pStr` is valid for a write of a pointer.
#[no_mangle]
pub unsafe extern "C" fn cuGetErrorName(error: CUresult, pStr: *mut *const c_char) -> CUresult {
    let name = error_name(error);
    if name.is_empty() || pStr.is_null() {
        return INVALID_VALUE;
    }
    // SAFETY: non-null, valid for a write by the caller's contract.
    unsafe { pStr.write(interned(name.to_string())) };
    SUCCESS
}

/// The error's name, that the driver is the software one, and what exactly
/// failed where this thread's last failure had this code.
///
/// # Safety
/// `pStr` is valid for a write of a pointer.
#[no_mangle]
pub unsafe extern "C" fn cuGetErrorString(error: CUresult, pStr: *mut *const c_char) -> CUresult {
    let name = error_name(error);
    if name.is_empty() || pStr.is_null() {
        return INVALID_VALUE;
    }
    let detail = LAST.with(|l| match &*l.borrow() {
        Some((c, m)) if *c == error => format!(": {m}"),
        _ => String::new(),
    });
    let s = format!("{name} from fakecuda, the SOFTWARE CUDA driver (not a GPU){detail}");
    // SAFETY: non-null, valid for a write by the caller's contract.
    unsafe { pStr.write(interned(s)) };
    SUCCESS
}

/// # Safety
/// None beyond the C API's.
#[no_mangle]
pub unsafe extern "C" fn cuInit(flags: c_uint) -> CUresult {
    let r = catch_unwind(|| {
        if flags != 0 {
            return INVALID_VALUE;
        }
        let mut g = DRIVER.lock().unwrap_or_else(|p| p.into_inner());
        if g.is_none() {
            *g = Some(Driver::new());
        }
        SUCCESS
    });
    r.unwrap_or(UNKNOWN)
}

/// # Safety
/// `v` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn cuDriverGetVersion(v: *mut c_int) -> CUresult {
    // SAFETY: by the caller's contract.
    api("cuDriverGetVersion", |_| unsafe { out(v, 13000) })
}

/// # Safety
/// `count` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn cuDeviceGetCount(count: *mut c_int) -> CUresult {
    api("cuDeviceGetCount", |d| {
        let n = d.devices.len() as c_int;
        if n == 0 {
            // SAFETY: by the caller's contract.
            unsafe { out(count, 0) }?;
            return fail(NO_DEVICE, "FAKECUDA_DEVICES=0");
        }
        // SAFETY: by the caller's contract.
        unsafe { out(count, n) }
    })
}

/// # Safety
/// `device` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn cuDeviceGet(device: *mut CUdevice, ordinal: c_int) -> CUresult {
    api("cuDeviceGet", |d| {
        let i = d.device(ordinal)?;
        // SAFETY: by the caller's contract.
        unsafe { out(device, i as CUdevice) }
    })
}

/// # Safety
/// `name` is valid for `len` bytes of writes.
#[no_mangle]
pub unsafe extern "C" fn cuDeviceGetName(name: *mut c_char, len: c_int, dev: CUdevice) -> CUresult {
    api("cuDeviceGetName", |d| {
        d.device(dev)?;
        if name.is_null() || len <= 0 {
            return fail(INVALID_VALUE, "a null or empty name buffer");
        }
        let bytes = DEVICE_NAME.as_bytes();
        let n = bytes.len().min(len as usize - 1);
        // SAFETY: `name` holds `len` bytes by the caller's contract; n + 1 <= len.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), name.cast::<u8>(), n);
            name.add(n).write(0);
        }
        Ok(())
    })
}

/// # Safety
/// `bytes` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn cuDeviceTotalMem_v2(bytes: *mut usize, dev: CUdevice) -> CUresult {
    api("cuDeviceTotalMem_v2", |d| {
        d.device(dev)?;
        // SAFETY: by the caller's contract.
        unsafe { out(bytes, TOTAL_MEM as usize) }
    })
}

/// # Safety
/// `pi` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn cuDeviceGetAttribute(
    pi: *mut c_int,
    attrib: c_uint,
    dev: CUdevice,
) -> CUresult {
    api("cuDeviceGetAttribute", |d| {
        d.device(dev)?;
        // An H200 SXM's values.
        let v = match attrib {
            1 => 1024,       // MAX_THREADS_PER_BLOCK
            2 | 3 => 1024,   // MAX_BLOCK_DIM_X, Y
            4 => 64,         // MAX_BLOCK_DIM_Z
            5 => i32::MAX,   // MAX_GRID_DIM_X
            6 | 7 => 65535,  // MAX_GRID_DIM_Y, Z
            8 => 48 << 10,   // MAX_SHARED_MEMORY_PER_BLOCK
            9 => 64 << 10,   // TOTAL_CONSTANT_MEMORY
            10 => 32,        // WARP_SIZE
            11 => i32::MAX,  // MAX_PITCH
            12 => 65536,     // MAX_REGISTERS_PER_BLOCK
            13 => 1_980_000, // CLOCK_RATE (kHz)
            14 => 512,       // TEXTURE_ALIGNMENT
            16 => 132,       // MULTIPROCESSOR_COUNT
            18 => 0,         // INTEGRATED
            19 => 1,         // CAN_MAP_HOST_MEMORY
            31 => 1,         // CONCURRENT_KERNELS
            36 => 3_201_000, // MEMORY_CLOCK_RATE (kHz)
            37 => 6144,      // GLOBAL_MEMORY_BUS_WIDTH
            38 => 50 << 20,  // L2_CACHE_SIZE
            39 => 2048,      // MAX_THREADS_PER_MULTIPROCESSOR
            40 => 3,         // ASYNC_ENGINE_COUNT
            41 => 1,         // UNIFIED_ADDRESSING
            75 => 9,         // COMPUTE_CAPABILITY_MAJOR
            76 => 0,         // COMPUTE_CAPABILITY_MINOR
            81 => 228 << 10, // MAX_SHARED_MEMORY_PER_MULTIPROCESSOR
            82 => 65536,     // MAX_REGISTERS_PER_MULTIPROCESSOR
            97 => 227 << 10, // MAX_SHARED_MEMORY_PER_BLOCK_OPTIN
            106 => 32,       // MAX_BLOCKS_PER_MULTIPROCESSOR
            115 => 1,        // MEMORY_POOLS_SUPPORTED
            _ => {
                return fail(
                    INVALID_VALUE,
                    format!("device attribute {attrib} is not modelled by the software driver"),
                )
            }
        };
        // SAFETY: by the caller's contract.
        unsafe { out(pi, v) }
    })
}

/// # Safety
/// `pctx` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn cuDevicePrimaryCtxRetain(pctx: *mut Handle, dev: CUdevice) -> CUresult {
    api("cuDevicePrimaryCtxRetain", |d| {
        let i = d.device(dev)?;
        if pctx.is_null() {
            return fail(INVALID_VALUE, "a null output pointer");
        }
        let h = d.retain(i);
        // SAFETY: by the caller's contract.
        unsafe { out(pctx, h as Handle) }
    })
}

/// # Safety
/// None beyond the C API's.
#[no_mangle]
pub unsafe extern "C" fn cuDevicePrimaryCtxRelease_v2(dev: CUdevice) -> CUresult {
    api("cuDevicePrimaryCtxRelease_v2", |d| {
        let i = d.device(dev)?;
        d.release(i)
    })
}

/// # Safety
/// `pctx` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn cuCtxGetCurrent(pctx: *mut Handle) -> CUresult {
    // SAFETY: by the caller's contract.
    api("cuCtxGetCurrent", |_| unsafe {
        out(pctx, current_handle() as Handle)
    })
}

/// # Safety
/// None beyond the C API's.
#[no_mangle]
pub unsafe extern "C" fn cuCtxSetCurrent(ctx: Handle) -> CUresult {
    api("cuCtxSetCurrent", |d| {
        let h = ctx as u64;
        if h != 0 {
            d.ctx_device(h)?;
        }
        set_current_handle(h);
        Ok(())
    })
}

/// # Safety
/// None beyond the C API's.
#[no_mangle]
pub unsafe extern "C" fn cuCtxSynchronize() -> CUresult {
    api("cuCtxSynchronize", |d| d.synchronize_context())
}

/// # Safety
/// `free` and `total` are valid for writes.
#[no_mangle]
pub unsafe extern "C" fn cuMemGetInfo_v2(free: *mut usize, total: *mut usize) -> CUresult {
    api("cuMemGetInfo_v2", |d| {
        let (f, t) = d.mem_info()?;
        // SAFETY: by the caller's contract.
        unsafe { out(free, f) }?;
        // SAFETY: by the caller's contract.
        unsafe { out(total, t) }
    })
}

/// # Safety
/// `s` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn cuStreamCreate(s: *mut Handle, flags: c_uint) -> CUresult {
    api("cuStreamCreate", |d| {
        if s.is_null() {
            return fail(INVALID_VALUE, "a null output pointer");
        }
        let h = d.create_stream(flags)?;
        // SAFETY: by the caller's contract.
        unsafe { out(s, h as Handle) }
    })
}

/// # Safety
/// None beyond the C API's.
#[no_mangle]
pub unsafe extern "C" fn cuStreamDestroy_v2(s: Handle) -> CUresult {
    api("cuStreamDestroy_v2", |d| d.destroy_stream(s as u64))
}

/// # Safety
/// None beyond the C API's.
#[no_mangle]
pub unsafe extern "C" fn cuStreamSynchronize(s: Handle) -> CUresult {
    api("cuStreamSynchronize", |d| d.synchronize_stream(s as u64))
}

/// # Safety
/// None beyond the C API's.
#[no_mangle]
pub unsafe extern "C" fn cuStreamWaitEvent(s: Handle, e: Handle, flags: c_uint) -> CUresult {
    api("cuStreamWaitEvent", |d| {
        d.wait_event(s as u64, e as u64, flags)
    })
}

/// # Safety
/// `e` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn cuEventCreate(e: *mut Handle, flags: c_uint) -> CUresult {
    api("cuEventCreate", |d| {
        if e.is_null() {
            return fail(INVALID_VALUE, "a null output pointer");
        }
        let h = d.create_event(flags)?;
        // SAFETY: by the caller's contract.
        unsafe { out(e, h as Handle) }
    })
}

/// # Safety
/// None beyond the C API's.
#[no_mangle]
pub unsafe extern "C" fn cuEventDestroy_v2(e: Handle) -> CUresult {
    api("cuEventDestroy_v2", |d| d.destroy_event(e as u64))
}

/// # Safety
/// None beyond the C API's.
#[no_mangle]
pub unsafe extern "C" fn cuEventRecord(e: Handle, s: Handle) -> CUresult {
    api("cuEventRecord", |d| d.record_event(e as u64, s as u64))
}

/// # Safety
/// None beyond the C API's.
#[no_mangle]
pub unsafe extern "C" fn cuEventSynchronize(e: Handle) -> CUresult {
    api("cuEventSynchronize", |d| d.synchronize_event(e as u64))
}

/// # Safety
/// None beyond the C API's.
#[no_mangle]
pub unsafe extern "C" fn cuEventQuery(e: Handle) -> CUresult {
    api("cuEventQuery", |d| d.query_event(e as u64))
}

/// # Safety
/// `ms` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn cuEventElapsedTime(ms: *mut f32, start: Handle, end: Handle) -> CUresult {
    api("cuEventElapsedTime", |d| {
        if ms.is_null() {
            return fail(INVALID_VALUE, "a null output pointer");
        }
        let v = d.elapsed(start as u64, end as u64)?;
        // SAFETY: by the caller's contract.
        unsafe { out(ms, v) }
    })
}

/// # Safety
/// `ms` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn cuEventElapsedTime_v2(
    ms: *mut f32,
    start: Handle,
    end: Handle,
) -> CUresult {
    // SAFETY: the same contract.
    unsafe { cuEventElapsedTime(ms, start, end) }
}

/// # Safety
/// `dptr` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn cuMemAlloc_v2(dptr: *mut CUdeviceptr, bytes: usize) -> CUresult {
    api("cuMemAlloc_v2", |d| {
        if dptr.is_null() {
            return fail(INVALID_VALUE, "a null output pointer");
        }
        let p = d.mem_alloc(bytes)?;
        // SAFETY: by the caller's contract.
        unsafe { out(dptr, p) }
    })
}

/// # Safety
/// `dptr` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn cuMemAllocAsync(
    dptr: *mut CUdeviceptr,
    bytes: usize,
    s: Handle,
) -> CUresult {
    api("cuMemAllocAsync", |d| {
        if dptr.is_null() {
            return fail(INVALID_VALUE, "a null output pointer");
        }
        let p = d.mem_alloc_async(bytes, s as u64)?;
        // SAFETY: by the caller's contract.
        unsafe { out(dptr, p) }
    })
}

/// # Safety
/// None beyond the C API's.
#[no_mangle]
pub unsafe extern "C" fn cuMemFree_v2(dptr: CUdeviceptr) -> CUresult {
    api("cuMemFree_v2", |d| d.mem_free(dptr))
}

/// # Safety
/// None beyond the C API's.
#[no_mangle]
pub unsafe extern "C" fn cuMemFreeAsync(dptr: CUdeviceptr, s: Handle) -> CUresult {
    api("cuMemFreeAsync", |d| d.mem_free_async(dptr, s as u64))
}

/// # Safety
/// `pp` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn cuMemHostAlloc(
    pp: *mut *mut c_void,
    bytes: usize,
    flags: c_uint,
) -> CUresult {
    api("cuMemHostAlloc", |d| {
        if pp.is_null() {
            return fail(INVALID_VALUE, "a null output pointer");
        }
        let p = d.host_alloc(bytes, flags)?;
        // SAFETY: by the caller's contract.
        unsafe { out(pp, p as *mut c_void) }
    })
}

/// # Safety
/// `pp` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn cuMemAllocHost_v2(pp: *mut *mut c_void, bytes: usize) -> CUresult {
    // SAFETY: the same contract.
    unsafe { cuMemHostAlloc(pp, bytes, 0) }
}

/// # Safety
/// None beyond the C API's.
#[no_mangle]
pub unsafe extern "C" fn cuMemFreeHost(p: *mut c_void) -> CUresult {
    api("cuMemFreeHost", |d| d.host_free(p as usize))
}

/// # Safety
/// None beyond the C API's (the host pointer is checked before use).
#[no_mangle]
pub unsafe extern "C" fn cuMemcpyHtoDAsync_v2(
    dst: CUdeviceptr,
    src: *const c_void,
    n: usize,
    s: Handle,
) -> CUresult {
    api("cuMemcpyHtoDAsync_v2", |d| {
        d.htod(dst, src as usize, n, s as u64, false)
    })
}

/// # Safety
/// None beyond the C API's (the host pointer is checked before use).
#[no_mangle]
pub unsafe extern "C" fn cuMemcpyHtoD_v2(
    dst: CUdeviceptr,
    src: *const c_void,
    n: usize,
) -> CUresult {
    api("cuMemcpyHtoD_v2", |d| d.htod(dst, src as usize, n, 0, true))
}

/// # Safety
/// None beyond the C API's (the host pointer is checked before use).
#[no_mangle]
pub unsafe extern "C" fn cuMemcpyDtoHAsync_v2(
    dst: *mut c_void,
    src: CUdeviceptr,
    n: usize,
    s: Handle,
) -> CUresult {
    api("cuMemcpyDtoHAsync_v2", |d| {
        d.dtoh(dst as usize, src, n, s as u64, false)
    })
}

/// # Safety
/// None beyond the C API's (the host pointer is checked before use).
#[no_mangle]
pub unsafe extern "C" fn cuMemcpyDtoH_v2(dst: *mut c_void, src: CUdeviceptr, n: usize) -> CUresult {
    api("cuMemcpyDtoH_v2", |d| d.dtoh(dst as usize, src, n, 0, true))
}

/// # Safety
/// None beyond the C API's.
#[no_mangle]
pub unsafe extern "C" fn cuMemcpyDtoDAsync_v2(
    dst: CUdeviceptr,
    src: CUdeviceptr,
    n: usize,
    s: Handle,
) -> CUresult {
    api("cuMemcpyDtoDAsync_v2", |d| {
        d.dtod(dst, src, n, s as u64, false)
    })
}

/// # Safety
/// None beyond the C API's.
#[no_mangle]
pub unsafe extern "C" fn cuMemcpyDtoD_v2(dst: CUdeviceptr, src: CUdeviceptr, n: usize) -> CUresult {
    api("cuMemcpyDtoD_v2", |d| d.dtod(dst, src, n, 0, true))
}

/// # Safety
/// None beyond the C API's.
#[no_mangle]
pub unsafe extern "C" fn cuMemsetD8Async(
    dst: CUdeviceptr,
    uc: u8,
    n: usize,
    s: Handle,
) -> CUresult {
    api("cuMemsetD8Async", |d| d.memset(dst, uc, n, s as u64, false))
}

/// # Safety
/// None beyond the C API's.
#[no_mangle]
pub unsafe extern "C" fn cuMemsetD8_v2(dst: CUdeviceptr, uc: u8, n: usize) -> CUresult {
    api("cuMemsetD8_v2", |d| d.memset(dst, uc, n, 0, true))
}

/// `CUDA_MEMCPY2D` (the `_v2` layout).
#[repr(C)]
pub struct Memcpy2D {
    src_x: usize,
    src_y: usize,
    src_type: c_uint,
    src_host: *const c_void,
    src_device: CUdeviceptr,
    src_array: *mut c_void,
    src_pitch: usize,
    dst_x: usize,
    dst_y: usize,
    dst_type: c_uint,
    dst_host: *mut c_void,
    dst_device: CUdeviceptr,
    dst_array: *mut c_void,
    dst_pitch: usize,
    width: usize,
    height: usize,
}

/// # Safety
/// `p` is null or points to a `CUDA_MEMCPY2D` (read through a checked copy).
#[no_mangle]
pub unsafe extern "C" fn cuMemcpy2DAsync_v2(p: *const Memcpy2D, s: Handle) -> CUresult {
    api("cuMemcpy2DAsync_v2", |d| {
        let bytes = host::read(p as usize, std::mem::size_of::<Memcpy2D>()).map_err(|e| Fail {
            code: INVALID_VALUE,
            msg: format!("the CUDA_MEMCPY2D: {e}"),
        })?;
        // SAFETY: `bytes` holds size_of::<Memcpy2D>() bytes, a plain-data struct
        // of integers and pointers (any bit pattern is valid); read unaligned.
        let c: Memcpy2D = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
        if !c.src_array.is_null() && c.src_type == 3 || !c.dst_array.is_null() && c.dst_type == 3 {
            return fail(
                NOT_SUPPORTED,
                "CUDA arrays are not modelled by the software driver",
            );
        }
        d.copy_2d(
            (
                c.src_type,
                c.src_host as usize,
                c.src_device,
                c.src_x,
                c.src_y,
                c.src_pitch,
            ),
            (
                c.dst_type,
                c.dst_host as usize,
                c.dst_device,
                c.dst_x,
                c.dst_y,
                c.dst_pitch,
            ),
            c.width,
            c.height,
            s as u64,
        )
    })
}

/// # Safety
/// `module` is valid for a write; `image` is a fatbin or NUL-terminated PTX
/// (read through checked copies).
#[no_mangle]
pub unsafe extern "C" fn cuModuleLoadData(module: *mut Handle, image: *const c_void) -> CUresult {
    api("cuModuleLoadData", |d| {
        if module.is_null() {
            return fail(INVALID_VALUE, "a null output pointer");
        }
        let m = d.load_module(image as usize)?;
        // SAFETY: by the caller's contract.
        unsafe { out(module, m as Handle) }
    })
}

/// # Safety
/// None beyond the C API's.
#[no_mangle]
pub unsafe extern "C" fn cuModuleUnload(m: Handle) -> CUresult {
    api("cuModuleUnload", |d| d.unload_module(m as u64))
}

/// # Safety
/// `f` is valid for a write; `name` a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn cuModuleGetFunction(
    f: *mut Handle,
    m: Handle,
    name: *const c_char,
) -> CUresult {
    api("cuModuleGetFunction", |d| {
        if f.is_null() || name.is_null() {
            return fail(INVALID_VALUE, "a null pointer");
        }
        // SAFETY: a NUL-terminated string by the caller's contract.
        let name = unsafe { CStr::from_ptr(name) }
            .to_string_lossy()
            .into_owned();
        let h = d.get_function(m as u64, &name)?;
        // SAFETY: by the caller's contract.
        unsafe { out(f, h as Handle) }
    })
}

/// Launches: the parameters are read through `kernelParams` as the kernel's
/// PTX signature says (count and sizes), each pointer checked before use.
///
/// # Safety
/// None beyond the C API's (every pointer is read through a checked copy).
#[no_mangle]
pub unsafe extern "C" fn cuLaunchKernel(
    f: Handle,
    gx: c_uint,
    gy: c_uint,
    gz: c_uint,
    bx: c_uint,
    by: c_uint,
    bz: c_uint,
    shared: c_uint,
    s: Handle,
    kernel_params: *mut *mut c_void,
    extra: *mut *mut c_void,
) -> CUresult {
    api("cuLaunchKernel", |d| {
        if !kernel_params.is_null() && !extra.is_null() {
            return fail(INVALID_VALUE, "both kernelParams and extra are given");
        }
        if !extra.is_null() {
            return fail(
                NOT_SUPPORTED,
                "`extra` parameter buffers are not modelled by the software driver",
            );
        }
        let base = kernel_params as usize;
        let mut read = |i: usize, size: u32| -> Result<u64, String> {
            if base == 0 {
                return Err("kernelParams is null".into());
            }
            let p = host::read_uint(base + 8 * i, 8)
                .map_err(|e| format!("kernelParams[{i}] cannot be read ({e}): fewer parameters given than the kernel takes?"))?;
            if p == 0 {
                return Err(format!(
                    "kernelParams[{i}] is null: fewer parameters given than the kernel takes?"
                ));
            }
            host::read_uint(p as usize, size as usize).map_err(|e| {
                format!("its {size} bytes at kernelParams[{i}] = {p:#x} cannot be read ({e})")
            })
        };
        d.launch(
            f as u64,
            [gx, gy, gz],
            [bx, by, bz],
            shared,
            s as u64,
            &mut read,
        )
    })
}
