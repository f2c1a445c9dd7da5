//! Device memory as the interpreter checks it: allocations (the module's
//! tables, read-only, and the buffers a launch is given) at addresses with
//! gaps between them, every byte known to be written or not, and for the
//! launch under way, which thread wrote each byte.
//!
//! Every access must lie inside one allocation, be naturally aligned for its
//! width (a 16-byte vector at 16 bytes), read only bytes that were written
//! (by the host or a kernel), and write only bytes no other thread of the
//! same launch wrote: these kernels have no synchronization, so two threads
//! writing the same byte is a race whose winner a GPU does not promise.

use super::parse::{Module, TABLE_BASE};

/// Where launch buffers start in the interpreter's address space (tables sit
/// below, at `parse::TABLE_BASE`).
pub(crate) const BUFFER_BASE: u64 = 0x0000_7f00_0000_0000;
/// Unmapped bytes after every buffer: an access just past its end faults.
const GAP: u64 = 1 << 16;

/// A rule an access broke.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Not inside any allocation.
    Outside { addr: u64, len: u64 },
    /// Not aligned to its width.
    Misaligned { addr: u64, len: u64 },
    /// Reads a byte nobody wrote.
    Unwritten { addr: u64, alloc: String },
    /// Writes a read-only table.
    ReadOnly { addr: u64, alloc: String },
    /// Writes, or reads, a byte another thread of the launch wrote.
    Race {
        addr: u64,
        alloc: String,
        other: u32,
        read: bool,
    },
    /// The host had no memory for the launch's record of writers.
    HostMemory { alloc: String },
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::Outside { addr, len } => {
                write!(
                    f,
                    "{len}-byte access at {addr:#x} is outside every allocation"
                )
            }
            Fault::Misaligned { addr, len } => {
                write!(
                    f,
                    "{len}-byte access at {addr:#x} is not {len}-byte aligned"
                )
            }
            Fault::Unwritten { addr, alloc } => {
                write!(f, "reads {addr:#x} in {alloc}, which was never written")
            }
            Fault::ReadOnly { addr, alloc } => {
                write!(f, "writes {addr:#x} in the read-only {alloc}")
            }
            Fault::HostMemory { alloc } => {
                write!(f, "out of host memory recording the writers of {alloc}")
            }
            Fault::Race {
                addr,
                alloc,
                other,
                read,
            } => write!(
                f,
                "{} {addr:#x} in {alloc}, which thread {other} of the same launch wrote (a race)",
                if *read { "reads" } else { "writes" }
            ),
        }
    }
}

struct Alloc {
    name: String,
    base: u64,
    bytes: Vec<u8>,
    /// One bit a byte: written by the host or a kernel.
    written: Vec<u64>,
    read_only: bool,
    /// For the launch under way: 1 + the linear id of the thread that wrote
    /// each byte, 0 where none did (empty until the launch's first store).
    writer: Vec<u32>,
}

impl Alloc {
    fn is_written(&self, i: usize) -> bool {
        self.written[i / 64] >> (i % 64) & 1 != 0
    }
    fn mark_written(&mut self, i: usize) {
        self.written[i / 64] |= 1 << (i % 64);
    }
    fn mark_written_range(&mut self, off: usize, len: usize) {
        let mut j = off;
        let end = off + len;
        while j < end {
            if j.is_multiple_of(64) && j + 64 <= end {
                self.written[j / 64] = u64::MAX;
                j += 64;
            } else {
                self.mark_written(j);
                j += 1;
            }
        }
    }
    fn end(&self) -> u64 {
        self.base + self.bytes.len() as u64
    }
}

/// The memory of one interpreted device.
pub struct Memory {
    allocs: Vec<Alloc>,
    next: u64,
    /// The allocation the last access found (accesses come in runs).
    last: usize,
}

impl Memory {
    /// Memory holding `module`'s tables, written and read-only.
    pub fn new(module: &Module) -> Memory {
        let allocs = module
            .tables
            .iter()
            .map(|t| Alloc {
                name: format!("table {}", t.name),
                base: t.base,
                written: vec![u64::MAX; t.bytes.len().div_ceil(64)],
                bytes: t.bytes.clone(),
                read_only: true,
                writer: Vec::new(),
            })
            .collect();
        Memory {
            allocs,
            next: BUFFER_BASE,
            last: 0,
        }
    }

    /// A buffer of `len` bytes, none written (its bytes poisoned: all ones),
    /// 256-byte aligned as the CUDA allocator's are. Returns its address.
    pub fn alloc(&mut self, name: &str, len: usize) -> Result<u64, String> {
        let bytes = crate::alloc::try_vec::<u8>(len as u64)
            .ok_or_else(|| format!("out of host memory for a {len}-byte buffer"))?;
        let mut bytes = bytes;
        bytes.fill(0xff);
        let base = self.next;
        self.next = (base + len as u64 + GAP).next_multiple_of(256);
        self.allocs.push(Alloc {
            name: format!("buffer {name}"),
            base,
            written: vec![0; len.div_ceil(64)],
            bytes,
            read_only: false,
            writer: Vec::new(),
        });
        Ok(base)
    }

    /// Memory with no tables and no buffers: a device before any module is
    /// loaded (the software CUDA driver's, `fakecuda/`, which places every
    /// buffer itself with [`Memory::map`]).
    pub fn empty() -> Memory {
        Memory {
            allocs: Vec::new(),
            next: BUFFER_BASE,
            last: 0,
        }
    }

    /// Adds `module`'s tables (written, read-only) unless a table is already
    /// at their address: a second load of the same module shares them.
    pub fn add_tables(&mut self, module: &Module) -> Result<(), String> {
        for t in &module.tables {
            if let Some(a) = self.allocs.iter().find(|a| a.base == t.base) {
                if a.bytes != t.bytes {
                    return Err(format!(
                        "table {} differs from the table already at {:#x}",
                        t.name, t.base
                    ));
                }
                continue;
            }
            self.allocs.push(Alloc {
                name: format!("table {}", t.name),
                base: t.base,
                written: vec![u64::MAX; t.bytes.len().div_ceil(64)],
                bytes: t.bytes.clone(),
                read_only: true,
                writer: Vec::new(),
            });
        }
        Ok(())
    }

    /// A buffer of `len` bytes at `base`, chosen by the caller: 256-byte
    /// aligned, at or above the buffers' base, overlapping nothing (gaps are
    /// the caller's to leave). Its bytes are poisoned (all ones) and unwritten.
    pub fn map(&mut self, name: &str, base: u64, len: usize) -> Result<(), String> {
        let end = base
            .checked_add(len as u64)
            .ok_or_else(|| format!("buffer {name} at {base:#x} wraps the address space"))?;
        if base < BUFFER_BASE || !base.is_multiple_of(256) {
            return Err(format!(
                "buffer {name} at {base:#x}: below {BUFFER_BASE:#x} or not 256-byte aligned"
            ));
        }
        if let Some(a) = self.allocs.iter().find(|a| base < a.end() && a.base < end) {
            return Err(format!("buffer {name} at {base:#x} overlaps {}", a.name));
        }
        let mut bytes = crate::alloc::try_vec::<u8>(len as u64)
            .ok_or_else(|| format!("out of host memory for a {len}-byte buffer"))?;
        bytes.fill(0xff);
        self.allocs.push(Alloc {
            name: format!("buffer {name}"),
            base,
            written: vec![0; len.div_ceil(64)],
            bytes,
            read_only: false,
            writer: Vec::new(),
        });
        self.next = self.next.max((end + GAP).next_multiple_of(256));
        Ok(())
    }

    /// Removes the buffer that starts at `base`: every later access to its
    /// bytes is outside every allocation.
    pub fn unmap(&mut self, base: u64) -> Result<(), String> {
        let i = self
            .allocs
            .iter()
            .position(|a| a.base == base && !a.read_only)
            .ok_or_else(|| format!("no buffer starts at {base:#x}"))?;
        self.allocs.swap_remove(i);
        self.last = 0;
        Ok(())
    }

    /// Whether `len` bytes at `addr` lie inside one writable buffer.
    pub fn is_mapped(&mut self, addr: u64, len: usize) -> bool {
        self.find(addr, len as u64)
            .is_some_and(|i| !self.allocs[i].read_only)
    }

    /// A device-to-device copy of `len` bytes: the destination's bytes are
    /// written where the source's were, and stay unwritten where they were
    /// not (poison copied is still poison).
    pub fn copy_within(&mut self, dst: u64, src: u64, len: usize) -> Result<(), String> {
        let s = self.find(src, len as u64).ok_or_else(|| {
            format!("device copy of {len} bytes from {src:#x}: outside every allocation")
        })?;
        let a = &self.allocs[s];
        let off = (src - a.base) as usize;
        let bytes = a.bytes[off..off + len].to_vec();
        let written: Vec<bool> = (off..off + len).map(|j| a.is_written(j)).collect();
        let d = self.find_writable(dst, len, &format!("device copy of {len} bytes to"))?;
        let a = &mut self.allocs[d];
        let off = (dst - a.base) as usize;
        a.bytes[off..off + len].copy_from_slice(&bytes);
        for (j, w) in written.into_iter().enumerate() {
            if w {
                a.mark_written(off + j);
            } else {
                a.written[(off + j) / 64] &= !(1 << ((off + j) % 64));
            }
        }
        Ok(())
    }

    /// Sets `len` bytes at `addr` to `value` (a memset: written).
    pub fn fill(&mut self, addr: u64, len: usize, value: u8) -> Result<(), String> {
        let i = self.find_writable(addr, len, &format!("memset of {len} bytes at"))?;
        let a = &mut self.allocs[i];
        let off = (addr - a.base) as usize;
        a.bytes[off..off + len].fill(value);
        a.mark_written_range(off, len);
        Ok(())
    }

    /// The allocation holding `len` bytes at `addr` that the host may write,
    /// or an error that starts with `what`.
    fn find_writable(&mut self, addr: u64, len: usize, what: &str) -> Result<usize, String> {
        self.find(addr, len as u64)
            .filter(|&i| !self.allocs[i].read_only)
            .ok_or_else(|| format!("{what} {addr:#x}: outside every writable allocation"))
    }

    fn find(&mut self, addr: u64, len: u64) -> Option<usize> {
        let hit = |a: &Alloc| addr >= a.base && addr.checked_add(len).is_some_and(|e| e <= a.end());
        if self.allocs.get(self.last).is_some_and(hit) {
            return Some(self.last);
        }
        let i = self.allocs.iter().position(hit)?;
        self.last = i;
        Some(i)
    }

    /// The host writes `data` at `addr` (a copy to the device).
    pub fn write_host(&mut self, addr: u64, data: &[u8]) -> Result<(), String> {
        let i = self.find(addr, data.len() as u64).ok_or_else(|| {
            format!(
                "host copy of {} bytes to {addr:#x}: outside every allocation",
                data.len()
            )
        })?;
        let a = &mut self.allocs[i];
        let off = (addr - a.base) as usize;
        a.bytes[off..off + data.len()].copy_from_slice(data);
        a.mark_written_range(off, data.len());
        Ok(())
    }

    /// The host reads `len` bytes at `addr` (a copy from the device); an
    /// error names the first byte no one wrote.
    pub fn read_host(&mut self, addr: u64, len: usize) -> Result<&[u8], String> {
        let i = self.find(addr, len as u64).ok_or_else(|| {
            format!("host copy of {len} bytes from {addr:#x}: outside every allocation")
        })?;
        let a = &self.allocs[i];
        let off = (addr - a.base) as usize;
        if let Some(j) = (off..off + len).find(|&j| !a.is_written(j)) {
            return Err(format!(
                "byte {} of the {len} bytes copied back from {} was never written",
                j - off,
                a.name
            ));
        }
        Ok(&a.bytes[off..off + len])
    }

    /// Forgets which thread wrote what: a new launch begins.
    pub(crate) fn begin_launch(&mut self) {
        for a in &mut self.allocs {
            a.writer = Vec::new();
        }
    }

    /// A device load of `len` (1 to 16) bytes at `addr`, little-endian, by
    /// thread `tid`: bytes another thread of the launch wrote are a race
    /// (nothing orders the two threads). Reads before another thread's
    /// write are not seen: threads run one after another here.
    #[inline]
    pub(crate) fn load(&mut self, addr: u64, len: u64, tid: u32) -> Result<u128, Fault> {
        if !addr.is_multiple_of(len) {
            return Err(Fault::Misaligned { addr, len });
        }
        let i = self.find(addr, len).ok_or(Fault::Outside { addr, len })?;
        let a = &self.allocs[i];
        let off = (addr - a.base) as usize;
        if let Some(j) = (0..len as usize).find(|&j| !a.is_written(off + j)) {
            return Err(Fault::Unwritten {
                addr: addr + j as u64,
                alloc: a.name.clone(),
            });
        }
        if !a.writer.is_empty() {
            for j in 0..len as usize {
                let w = a.writer[off + j];
                if w != 0 && w != tid + 1 {
                    return Err(Fault::Race {
                        addr: addr + j as u64,
                        alloc: a.name.clone(),
                        other: w - 1,
                        read: true,
                    });
                }
            }
        }
        let v = (0..len as usize)
            .rev()
            .fold(0u128, |v, j| v << 8 | a.bytes[off + j] as u128);
        Ok(v)
    }

    /// A device store of the low `len` bytes of `v` at `addr` by thread `tid`.
    #[inline]
    pub(crate) fn store(&mut self, addr: u64, len: u64, v: u128, tid: u32) -> Result<(), Fault> {
        if !addr.is_multiple_of(len) {
            return Err(Fault::Misaligned { addr, len });
        }
        let i = self.find(addr, len).ok_or(Fault::Outside { addr, len })?;
        let a = &mut self.allocs[i];
        if a.read_only {
            return Err(Fault::ReadOnly {
                addr,
                alloc: a.name.clone(),
            });
        }
        if a.writer.is_empty() {
            a.writer =
                crate::alloc::try_vec(a.bytes.len() as u64).ok_or_else(|| Fault::HostMemory {
                    alloc: a.name.clone(),
                })?;
        }
        let off = (addr - a.base) as usize;
        for j in 0..len as usize {
            let w = a.writer[off + j];
            if w != 0 && w != tid + 1 {
                return Err(Fault::Race {
                    addr: addr + j as u64,
                    alloc: a.name.clone(),
                    other: w - 1,
                    read: false,
                });
            }
        }
        for j in 0..len as usize {
            a.writer[off + j] = tid + 1;
            a.bytes[off + j] = (v >> (8 * j)) as u8;
            a.mark_written(off + j);
        }
        Ok(())
    }
}

/// Whether `addr` lies where the module's tables are placed (below every
/// launch buffer).
pub(crate) fn is_table_address(addr: u64) -> bool {
    (TABLE_BASE..BUFFER_BASE).contains(&addr)
}
