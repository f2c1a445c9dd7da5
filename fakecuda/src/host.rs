//! Host memory the caller hands over, read and written without trusting it:
//! through `process_vm_readv`/`process_vm_writev` on this process, which
//! fail with EFAULT on an unmapped address where a plain access would crash.

/// `len` bytes at `addr`, or why not.
pub fn read(addr: usize, len: usize) -> Result<Vec<u8>, String> {
    if addr == 0 {
        return Err("a null host pointer".into());
    }
    let mut buf = Vec::new();
    buf.try_reserve_exact(len)
        .map_err(|_| format!("out of host memory for {len} bytes"))?;
    buf.resize(len, 0);
    if len == 0 {
        return Ok(buf);
    }
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: len,
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: len,
    };
    // SAFETY: `local` is `len` writable bytes of `buf`; the kernel checks
    // `remote` and fails with EFAULT where it is not mapped.
    let n = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
    if n == len as isize {
        Ok(buf)
    } else {
        Err(format!(
            "{len} bytes at host address {addr:#x} are not readable ({})",
            std::io::Error::last_os_error()
        ))
    }
}

/// Writes `data` at `addr`, or says why not.
pub fn write(addr: usize, data: &[u8]) -> Result<(), String> {
    if addr == 0 {
        return Err("a null host pointer".into());
    }
    if data.is_empty() {
        return Ok(());
    }
    let local = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: `local` is `data`, only read; the kernel checks `remote`.
    let n = unsafe { libc::process_vm_writev(libc::getpid(), &local, 1, &remote, 1, 0) };
    if n == data.len() as isize {
        Ok(())
    } else {
        Err(format!(
            "{} bytes at host address {addr:#x} are not writable ({})",
            data.len(),
            std::io::Error::last_os_error()
        ))
    }
}

/// A little-endian integer of `size` (1 to 8) bytes at `addr`.
pub fn read_uint(addr: usize, size: usize) -> Result<u64, String> {
    let b = read(addr, size)?;
    Ok(b.iter().rev().fold(0u64, |v, &x| v << 8 | x as u64))
}
