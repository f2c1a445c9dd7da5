//! The driver's state: devices, their primary contexts, streams of queued
//! operations, events, modules, device and pinned host memory; and the
//! executor that runs a stream's operations only when something waits for
//! them (a host synchronization, a synchronous copy, a context's teardown),
//! and then only those that stream order and event waits put before what is
//! waited for. Nothing runs early by luck: an operation no wait orders
//! before a read is still queued when the read runs.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Instant;

use gguf_dequant::ptx::{self, LaunchConfig, Memory, Module as Ptx};

use crate::host;

pub type Code = u32;
pub const SUCCESS: Code = 0;
pub const INVALID_VALUE: Code = 1;
pub const OUT_OF_MEMORY: Code = 2;
pub const NOT_INITIALIZED: Code = 3;
pub const NO_DEVICE: Code = 100;
pub const INVALID_DEVICE: Code = 101;
pub const INVALID_IMAGE: Code = 200;
pub const INVALID_CONTEXT: Code = 201;
pub const NO_BINARY_FOR_GPU: Code = 209;
pub const INVALID_PTX: Code = 218;
pub const INVALID_HANDLE: Code = 400;
pub const NOT_FOUND: Code = 500;
pub const NOT_READY: Code = 600;
pub const ILLEGAL_ADDRESS: Code = 700;
pub const NOT_SUPPORTED: Code = 801;
pub const UNKNOWN: Code = 999;

/// Every device's name: no result can be mistaken for a GPU's.
pub const DEVICE_NAME: &str = "NVIDIA H200 [fakecuda: SOFTWARE CUDA driver, not a GPU]";
/// An H200's memory as its driver reports it (143771 MiB).
pub const TOTAL_MEM: u64 = 143_771 << 20;
/// Where device `d`'s allocations start: the interpreter's buffer base, 1 TiB
/// a device, so that no two devices share an address (unified addressing).
const DEVICE_BASE: u64 = 0x0000_7f00_0000_0000;
/// Unmapped bytes after each allocation: an access just past one faults.
const GAP: u64 = 1 << 16;

/// A failed call: its code and what exactly was wrong.
#[derive(Clone, Debug)]
pub struct Fail {
    pub code: Code,
    pub msg: String,
}

pub type R<T> = Result<T, Fail>;

pub fn fail<T>(code: Code, msg: impl Into<String>) -> R<T> {
    Err(Fail {
        code,
        msg: msg.into(),
    })
}

/// A rule broken where the API has no error to return (a leak, a free of
/// memory queued work still uses): printed, and appended to the file
/// `FAKECUDA_REPORT` names, which scripts/fake-gpu.sh requires to be empty.
pub fn report(msg: &str) {
    let line = format!("fakecuda (software CUDA driver): VIOLATION: {msg}");
    eprintln!("{line}");
    if let Some(path) = std::env::var_os("FAKECUDA_REPORT") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{line}");
        }
    }
}

/// Handles: a tag a kind, so that one kind's handle is never taken for another's.
pub const CTX_TAG: u64 = 0x0c70_0000_0000;
pub const STREAM_TAG: u64 = 0x057e_0000_0000;
pub const EVENT_TAG: u64 = 0x0e7e_0000_0000;
pub const MODULE_TAG: u64 = 0x0d0d_0000_0000;
pub const FUNCTION_TAG: u64 = 0x0f00_0000_0000;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum AllocState {
    /// `cuMemAllocAsync` was called; the allocation exists once it runs.
    Queued,
    Live,
    /// `cuMemFreeAsync` was called (or is queued): no new use is allowed.
    FreeQueued,
}

struct DevAlloc {
    len: usize,
    state: AllocState,
}

pub struct Device {
    mem: Memory,
    allocs: BTreeMap<u64, DevAlloc>,
    next: u64,
    used: u64,
    retain: u32,
    /// A fault of queued work: every later call of the context returns it.
    sticky: Option<Fail>,
    null_stream: u64,
    generation: u64,
}

/// Where a copy's host bytes are.
enum HostSrc {
    /// Pageable memory, copied when the call was made (as the real driver
    /// stages it).
    Staged(Vec<u8>),
    /// Page-locked memory: read when the copy runs.
    Pinned(usize, usize),
}

enum HostDst {
    Pinned(usize),
    Pageable(usize),
}

/// One side of a 2-D copy's rows.
#[derive(Clone, Copy)]
enum Place {
    Host(usize),
    Device(u64),
}

enum Kind {
    Nop,
    Record {
        event: u64,
        generation: u64,
    },
    Alloc {
        base: u64,
        len: usize,
    },
    Free {
        dev: usize,
        base: u64,
    },
    HtoD {
        dst: u64,
        src: HostSrc,
    },
    DtoH {
        dst: HostDst,
        src: u64,
        len: usize,
    },
    DtoD {
        dst: u64,
        src: u64,
        len: usize,
    },
    Memset {
        dst: u64,
        value: u8,
        len: usize,
    },
    Copy2D {
        src: Place,
        /// The source rows' span, copied when queued, where it is pageable.
        staged: Option<Vec<u8>>,
        src_pitch: usize,
        dst: Place,
        dst_pitch: usize,
        width: usize,
        height: usize,
    },
    Launch {
        module: u64,
        ptx: &'static Ptx,
        name: String,
        grid: [u32; 3],
        block: [u32; 3],
        params: Vec<u64>,
    },
}

struct Op {
    seq: u64,
    deps: Vec<(u64, u64)>,
    kind: Kind,
    /// The device allocations (bases) and pinned buffers (bases) it uses.
    dev_refs: Vec<u64>,
    host_refs: Vec<usize>,
    what: String,
}

struct Stream {
    dev: usize,
    blocking: bool,
    null: bool,
    queue: VecDeque<Op>,
    enqueued: u64,
    done: u64,
    destroyed: bool,
}

struct Event {
    dev: usize,
    timing: bool,
    record: Option<(u64, u64)>,
    generation: u64,
    time: Option<Instant>,
    queries: u32,
}

struct ModuleRec {
    dev: usize,
    ptx: &'static Ptx,
    /// The kernels of the image's cubin for this device (from a fatbin).
    cubin: Option<Vec<String>>,
}

struct FunctionRec {
    module: u64,
    dev: usize,
    name: String,
}

struct Pinned {
    len: usize,
    dev: usize,
    /// Freed by `cuMemFreeHost` while queued copies still used it: kept (and
    /// poisoned) so that they fail when they run, instead of reading freed memory.
    quarantined: bool,
}

pub struct Driver {
    pub devices: Vec<Device>,
    streams: HashMap<u64, Stream>,
    events: HashMap<u64, Event>,
    modules: HashMap<u64, ModuleRec>,
    functions: HashMap<u64, FunctionRec>,
    pinned: BTreeMap<usize, Pinned>,
    next_id: u64,
}

thread_local! {
    static CURRENT: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

pub fn current_handle() -> u64 {
    CURRENT.with(|c| c.get())
}

pub fn set_current_handle(h: u64) {
    CURRENT.with(|c| c.set(h))
}

const PINNED_ALIGN: usize = 4096;

fn pinned_layout(len: usize) -> Option<std::alloc::Layout> {
    std::alloc::Layout::from_size_align(len, PINNED_ALIGN).ok()
}

impl Driver {
    pub fn new() -> Driver {
        let n = std::env::var("FAKECUDA_DEVICES")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(2)
            .min(8);
        let mut d = Driver {
            devices: Vec::new(),
            streams: HashMap::new(),
            events: HashMap::new(),
            modules: HashMap::new(),
            functions: HashMap::new(),
            pinned: BTreeMap::new(),
            next_id: 1,
        };
        for i in 0..n {
            let dev = Device {
                mem: Memory::empty(),
                allocs: BTreeMap::new(),
                next: DEVICE_BASE + ((i as u64) << 40),
                used: 0,
                retain: 0,
                sticky: None,
                null_stream: 0,
                generation: 0,
            };
            d.devices.push(dev);
        }
        d
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    pub fn device(&self, dev: i32) -> R<usize> {
        if dev < 0 || dev as usize >= self.devices.len() {
            return fail(
                INVALID_DEVICE,
                format!(
                    "no device {dev}: the software driver presents {} (FAKECUDA_DEVICES)",
                    self.devices.len()
                ),
            );
        }
        Ok(dev as usize)
    }

    pub fn ctx_handle(dev: usize) -> u64 {
        CTX_TAG + dev as u64 + 1
    }

    /// The device of a context handle.
    pub fn ctx_device(&self, h: u64) -> R<usize> {
        let i = h.wrapping_sub(CTX_TAG + 1);
        if h <= CTX_TAG || i >= self.devices.len() as u64 {
            return fail(INVALID_CONTEXT, format!("{h:#x} is not a context"));
        }
        Ok(i as usize)
    }

    /// The current context's device: it must exist and be retained.
    pub fn current(&self) -> R<usize> {
        let h = current_handle();
        if h == 0 {
            return fail(INVALID_CONTEXT, "no context is current on this thread");
        }
        let d = self.ctx_device(h)?;
        if self.devices[d].retain == 0 {
            return fail(
                INVALID_CONTEXT,
                format!("the current context (device {d}'s primary) was released: it is destroyed"),
            );
        }
        Ok(d)
    }

    /// The current context's device, refusing where queued work faulted.
    pub fn current_ok(&self) -> R<usize> {
        let d = self.current()?;
        self.check_sticky(d)?;
        Ok(d)
    }

    fn check_sticky(&self, d: usize) -> R<()> {
        match &self.devices[d].sticky {
            Some(f) => fail(
                f.code,
                format!("the context is unusable after an earlier fault: {}", f.msg),
            ),
            None => Ok(()),
        }
    }

    // ---- contexts ----

    pub fn retain(&mut self, dev: usize) -> u64 {
        let first = self.devices[dev].retain == 0;
        self.devices[dev].retain += 1;
        if first {
            let sid = self.id();
            self.streams.insert(
                sid,
                Stream {
                    dev,
                    blocking: true,
                    null: true,
                    queue: VecDeque::new(),
                    enqueued: 0,
                    done: 0,
                    destroyed: false,
                },
            );
            let d = &mut self.devices[dev];
            d.null_stream = sid;
            d.generation += 1;
        }
        Self::ctx_handle(dev)
    }

    pub fn release(&mut self, dev: usize) -> R<()> {
        if self.devices[dev].retain == 0 {
            return fail(
                INVALID_CONTEXT,
                format!("device {dev}'s primary context is not retained"),
            );
        }
        self.devices[dev].retain -= 1;
        if self.devices[dev].retain == 0 {
            self.teardown(dev);
        }
        Ok(())
    }

    /// The primary context's destruction: its queued work runs, then
    /// whatever it still holds is reported as a leak and freed.
    fn teardown(&mut self, dev: usize) {
        // Its own streams' work, and other contexts' queued work on its
        // memory (frees cudarc queued in another context's stream): a GPU
        // would have run them by now, whatever their order.
        let mine = &self.devices[dev].allocs;
        let sids: Vec<u64> = self
            .streams
            .iter()
            .filter(|(_, s)| {
                s.dev == dev
                    || s.queue
                        .iter()
                        .any(|op| op.dev_refs.iter().any(|b| mine.contains_key(b)))
            })
            .map(|(&id, _)| id)
            .collect();
        for &sid in &sids {
            let end = self.streams[&sid].enqueued;
            if let Err(f) = self.ensure((sid, end)) {
                if self.devices[dev].sticky.is_none() {
                    report(&format!(
                        "device {dev}: queued work failed at context teardown: {}",
                        f.msg
                    ));
                }
            }
        }
        let mut leaks = Vec::new();
        for (base, a) in &self.devices[dev].allocs {
            leaks.push(format!(
                "{} bytes of device memory at {base:#x} ({:?})",
                a.len, a.state
            ));
        }
        for (p, a) in &self.pinned {
            if a.dev == dev && !a.quarantined {
                leaks.push(format!("{} bytes of pinned host memory at {p:#x}", a.len));
            }
        }
        for (&sid, s) in &self.streams {
            if s.dev == dev && !s.null && !s.destroyed {
                leaks.push(format!("stream {:#x}", STREAM_TAG + sid));
            }
        }
        let events = self.events.values().filter(|e| e.dev == dev).count();
        if events > 0 {
            leaks.push(format!("{events} events"));
        }
        let modules = self.modules.values().filter(|m| m.dev == dev).count();
        if modules > 0 {
            leaks.push(format!("{modules} modules"));
        }
        if !leaks.is_empty() {
            let after = if self.devices[dev].sticky.is_some() {
                " (after the fault reported above, which stopped its queued work)"
            } else {
                ""
            };
            report(&format!(
                "device {dev}: leaked at its primary context's teardown{after}: {}",
                leaks.join(", ")
            ));
        }
        // Everything of the context goes: its handles are invalid from now on.
        self.streams.retain(|_, s| s.dev != dev);
        self.events.retain(|_, e| e.dev != dev);
        self.modules.retain(|_, m| m.dev != dev);
        self.functions.retain(|_, f| f.dev != dev);
        let freed: Vec<usize> = self
            .pinned
            .iter()
            .filter(|(_, a)| a.dev == dev && !a.quarantined)
            .map(|(&p, _)| p)
            .collect();
        for p in freed {
            let a = self.pinned.remove(&p).expect("listed");
            // SAFETY: `p` was allocated by `cuMemHostAlloc` with this layout
            // and is freed once (it leaves the table here).
            unsafe { std::alloc::dealloc(p as *mut u8, pinned_layout(a.len).expect("valid")) };
        }
        let d = &mut self.devices[dev];
        d.mem = Memory::empty();
        d.allocs.clear();
        d.used = 0;
        d.sticky = None;
    }

    // ---- streams ----

    /// A stream handle (0: the current context's legacy default stream).
    pub fn stream(&self, h: u64) -> R<u64> {
        if h == 0 {
            let d = self.current()?;
            return Ok(self.devices[d].null_stream);
        }
        if h == 1 || h == 2 {
            return fail(
                INVALID_HANDLE,
                "CU_STREAM_LEGACY and CU_STREAM_PER_THREAD are not modelled by the software driver",
            );
        }
        let id = h.wrapping_sub(STREAM_TAG);
        match self.streams.get(&id) {
            Some(s) if h > STREAM_TAG && !s.destroyed => Ok(id),
            Some(_) => fail(INVALID_HANDLE, format!("stream {h:#x} was destroyed")),
            None => fail(INVALID_HANDLE, format!("{h:#x} is not a live stream")),
        }
    }

    /// A stream of the current context, for queuing work.
    fn stream_here(&self, h: u64) -> R<(u64, usize)> {
        let d = self.current_ok()?;
        let sid = self.stream(h)?;
        let sd = self.streams[&sid].dev;
        if sd != d {
            return fail(
                INVALID_HANDLE,
                format!("stream {h:#x} belongs to device {sd}'s context, not the current one (device {d})"),
            );
        }
        Ok((sid, d))
    }

    pub fn create_stream(&mut self, flags: u32) -> R<u64> {
        let d = self.current_ok()?;
        if flags > 1 {
            return fail(INVALID_VALUE, format!("stream flags {flags:#x}"));
        }
        let sid = self.id();
        self.streams.insert(
            sid,
            Stream {
                dev: d,
                blocking: flags == 0,
                null: false,
                queue: VecDeque::new(),
                enqueued: 0,
                done: 0,
                destroyed: false,
            },
        );
        Ok(STREAM_TAG + sid)
    }

    pub fn destroy_stream(&mut self, h: u64) -> R<()> {
        if h == 0 {
            return fail(INVALID_HANDLE, "the default stream cannot be destroyed");
        }
        let sid = self.stream(h)?;
        // Its queued work still runs (the driver releases it when done).
        self.streams.get_mut(&sid).expect("checked").destroyed = true;
        Ok(())
    }

    fn is_done(&self, (sid, seq): (u64, u64)) -> bool {
        self.streams.get(&sid).is_none_or(|s| s.done >= seq)
    }

    /// Queues `kind` on stream `sid`, after its earlier work and `deps`;
    /// returns its place.
    fn push(
        &mut self,
        sid: u64,
        kind: Kind,
        mut deps: Vec<(u64, u64)>,
        dev_refs: Vec<u64>,
        host_refs: Vec<usize>,
        what: String,
    ) -> (u64, u64) {
        let dev = self.streams[&sid].dev;
        // The legacy default stream and the blocking streams of the context
        // order each other; non-blocking streams (cudarc's) do not.
        let s = &self.streams[&sid];
        if s.null {
            for (&o, t) in &self.streams {
                if o != sid && t.dev == dev && t.blocking && t.enqueued > t.done {
                    deps.push((o, t.enqueued));
                }
            }
        } else if s.blocking {
            let n = self.devices[dev].null_stream;
            if let Some(t) = self.streams.get(&n) {
                if t.enqueued > t.done {
                    deps.push((n, t.enqueued));
                }
            }
        }
        let s = self.streams.get_mut(&sid).expect("live");
        s.enqueued += 1;
        let seq = s.enqueued;
        s.queue.push_back(Op {
            seq,
            deps,
            kind,
            dev_refs,
            host_refs,
            what,
        });
        (sid, seq)
    }

    /// Runs what `target` needs, and `target`: the operations before it in
    /// its stream and, first, those the events they wait for were recorded
    /// after, and nothing else.
    fn ensure(&mut self, target: (u64, u64)) -> R<()> {
        let mut first_err: Option<Fail> = None;
        let mut stack = vec![target];
        while let Some(&(sid, seq)) = stack.last() {
            let Some(s) = self.streams.get(&sid) else {
                stack.pop();
                continue;
            };
            if s.done >= seq {
                stack.pop();
                continue;
            }
            let op = s.queue.front().expect("a stream not done has queued work");
            if let Some(&dep) = op.deps.iter().find(|&&d| !self.is_done(d)) {
                stack.push(dep);
                continue;
            }
            let dev = s.dev;
            let s = self.streams.get_mut(&sid).expect("live");
            let op = s.queue.pop_front().expect("checked");
            s.done = op.seq;
            if self.devices[dev].sticky.is_some() {
                continue; // a faulted context runs nothing more
            }
            if let Err(f) = self.execute(dev, &op) {
                let f = Fail {
                    code: f.code,
                    msg: format!(
                        "{} (queued on stream {:#x}) failed: {}",
                        op.what,
                        STREAM_TAG + sid,
                        f.msg
                    ),
                };
                report(&f.msg);
                self.devices[dev].sticky = Some(f.clone());
                first_err.get_or_insert(f);
            }
        }
        if let Some(f) = first_err {
            return Err(f);
        }
        let dev = self.streams.get(&target.0).map(|s| s.dev);
        if let Some(d) = dev {
            self.check_sticky(d)?;
        }
        Ok(())
    }

    pub fn synchronize_stream(&mut self, h: u64) -> R<()> {
        let sid = self.stream(h)?;
        let d = self.streams[&sid].dev;
        self.check_sticky(d)?;
        let end = self.streams[&sid].enqueued;
        self.ensure((sid, end))
    }

    pub fn synchronize_context(&mut self) -> R<()> {
        let d = self.current_ok()?;
        let sids: Vec<(u64, u64)> = self
            .streams
            .iter()
            .filter(|(_, s)| s.dev == d)
            .map(|(&id, s)| (id, s.enqueued))
            .collect();
        for t in sids {
            self.ensure(t)?;
        }
        Ok(())
    }

    // ---- events ----

    pub fn create_event(&mut self, flags: u32) -> R<u64> {
        let d = self.current_ok()?;
        // DEFAULT 0, BLOCKING_SYNC 1, DISABLE_TIMING 2, INTERPROCESS 4 (which
        // needs DISABLE_TIMING).
        if flags & !7 != 0 || (flags & 4 != 0 && flags & 2 == 0) {
            return fail(INVALID_VALUE, format!("event flags {flags:#x}"));
        }
        let id = self.id();
        self.events.insert(
            id,
            Event {
                dev: d,
                timing: flags & 2 == 0,
                record: None,
                generation: 0,
                time: None,
                queries: 0,
            },
        );
        Ok(EVENT_TAG + id)
    }

    fn event(&self, h: u64) -> R<u64> {
        let id = h.wrapping_sub(EVENT_TAG);
        if h > EVENT_TAG && self.events.contains_key(&id) {
            Ok(id)
        } else {
            fail(INVALID_HANDLE, format!("{h:#x} is not a live event"))
        }
    }

    pub fn destroy_event(&mut self, h: u64) -> R<()> {
        let id = self.event(h)?;
        self.events.remove(&id);
        Ok(())
    }

    pub fn record_event(&mut self, e: u64, s: u64) -> R<()> {
        let id = self.event(e)?;
        let (sid, d) = self.stream_here(s)?;
        let ed = self.events[&id].dev;
        if ed != d {
            return fail(
                INVALID_HANDLE,
                format!("event {e:#x} is device {ed}'s context's, the stream device {d}'s"),
            );
        }
        let ev = self.events.get_mut(&id).expect("checked");
        ev.generation += 1;
        ev.time = None;
        ev.queries = 0;
        let generation = ev.generation;
        let at = self.push(
            sid,
            Kind::Record {
                event: id,
                generation,
            },
            Vec::new(),
            Vec::new(),
            Vec::new(),
            format!("record of event {e:#x}"),
        );
        self.events.get_mut(&id).expect("checked").record = Some(at);
        Ok(())
    }

    pub fn wait_event(&mut self, s: u64, e: u64, flags: u32) -> R<()> {
        let (sid, _) = self.stream_here(s)?;
        let id = self.event(e)?;
        if flags != 0 {
            return fail(INVALID_VALUE, format!("cuStreamWaitEvent flags {flags:#x}"));
        }
        // The wait is on the event's latest record at the time of the call;
        // an event never recorded is complete.
        let deps: Vec<(u64, u64)> = self.events[&id].record.into_iter().collect();
        self.push(
            sid,
            Kind::Nop,
            deps,
            Vec::new(),
            Vec::new(),
            format!("wait for event {e:#x}"),
        );
        Ok(())
    }

    pub fn synchronize_event(&mut self, e: u64) -> R<()> {
        let id = self.event(e)?;
        let d = self.events[&id].dev;
        self.check_sticky(d)?;
        match self.events[&id].record {
            Some(at) => self.ensure(at),
            None => Ok(()),
        }
    }

    /// Whether the event's work has run. Work runs only when waited for, so
    /// a query says NOT_READY while it is queued; the second query of the
    /// same record runs it (so that a polling loop ends).
    pub fn query_event(&mut self, e: u64) -> R<()> {
        let id = self.event(e)?;
        let Some(at) = self.events[&id].record else {
            return Ok(());
        };
        if self.is_done(at) {
            return Ok(());
        }
        let ev = self.events.get_mut(&id).expect("checked");
        ev.queries += 1;
        if ev.queries < 2 {
            return fail(NOT_READY, "the event's work is still queued");
        }
        self.ensure(at)
    }

    pub fn elapsed(&mut self, start: u64, end: u64) -> R<f32> {
        let (a, b) = (self.event(start)?, self.event(end)?);
        let (ea, eb) = (&self.events[&a], &self.events[&b]);
        if !ea.timing || !eb.timing {
            return fail(
                INVALID_HANDLE,
                "an event created with CU_EVENT_DISABLE_TIMING cannot be timed",
            );
        }
        if ea.record.is_none() || eb.record.is_none() {
            return fail(INVALID_HANDLE, "an event that was never recorded");
        }
        match (ea.time, eb.time) {
            (Some(x), Some(y)) => {
                let ms = if y >= x {
                    (y - x).as_secs_f64() * 1e3
                } else {
                    -((x - y).as_secs_f64() * 1e3)
                };
                Ok(ms as f32)
            }
            _ => fail(NOT_READY, "an event's work has not run"),
        }
    }

    // ---- device memory ----

    /// The allocation holding `len` bytes at `ptr` on device `d`, usable by
    /// new work (not freed, not queued for freeing).
    fn dev_range(&self, d: usize, ptr: u64, len: usize, what: &str) -> R<u64> {
        let Some((&base, a)) = self.devices[d].allocs.range(..=ptr).next_back() else {
            return fail(
                INVALID_VALUE,
                format!(
                    "{what}: {ptr:#x} is not device {d}'s memory (dangling, or another device's)"
                ),
            );
        };
        if ptr
            .checked_add(len as u64)
            .is_none_or(|e| e > base + a.len as u64)
        {
            return fail(
                INVALID_VALUE,
                format!(
                    "{what}: {len} bytes at {ptr:#x} are not inside one allocation (the one at {base:#x} holds {})",
                    a.len
                ),
            );
        }
        if a.state == AllocState::FreeQueued {
            return fail(
                INVALID_VALUE,
                format!(
                    "{what}: {ptr:#x} is in memory already freed (cuMemFree/cuMemFreeAsync called)"
                ),
            );
        }
        Ok(base)
    }

    fn reserve(&mut self, d: usize, len: usize) -> R<u64> {
        if len == 0 {
            // cuMemAlloc's documentation: a size of 0 is CUDA_ERROR_INVALID_VALUE.
            // cuMemAllocAsync's does not say: refused here all the same.
            return fail(INVALID_VALUE, "an allocation of 0 bytes");
        }
        let dev = &mut self.devices[d];
        if dev.used + len as u64 > TOTAL_MEM {
            return fail(
                OUT_OF_MEMORY,
                format!(
                    "{len} bytes more than the device's free {}",
                    TOTAL_MEM - dev.used
                ),
            );
        }
        let base = dev.next;
        dev.next = (base + len as u64 + GAP).next_multiple_of(512);
        dev.used += len as u64;
        Ok(base)
    }

    pub fn mem_alloc(&mut self, len: usize) -> R<u64> {
        let d = self.current_ok()?;
        let base = self.reserve(d, len)?;
        let dev = &mut self.devices[d];
        if let Err(e) = dev.mem.map("cuMemAlloc", base, len) {
            dev.used -= len as u64;
            return fail(OUT_OF_MEMORY, e);
        }
        dev.allocs.insert(
            base,
            DevAlloc {
                len,
                state: AllocState::Live,
            },
        );
        Ok(base)
    }

    pub fn mem_alloc_async(&mut self, len: usize, s: u64) -> R<u64> {
        let (sid, d) = self.stream_here(s)?;
        let base = self.reserve(d, len)?;
        self.devices[d].allocs.insert(
            base,
            DevAlloc {
                len,
                state: AllocState::Queued,
            },
        );
        self.push(
            sid,
            Kind::Alloc { base, len },
            Vec::new(),
            Vec::new(),
            Vec::new(),
            format!("cuMemAllocAsync of {len} bytes at {base:#x}"),
        );
        Ok(base)
    }

    fn alloc_at(&self, d: usize, base: u64) -> R<&DevAlloc> {
        match self.devices[d].allocs.get(&base) {
            Some(a) if a.state != AllocState::FreeQueued => Ok(a),
            Some(_) => fail(
                INVALID_VALUE,
                format!("{base:#x} is already freed (a double free)"),
            ),
            None => fail(
                INVALID_VALUE,
                format!("{base:#x} is not the start of an allocation of device {d}"),
            ),
        }
    }

    /// Queued operations, on any stream, that use the allocation at `base`
    /// (addresses are unique across devices: device `d` only documents it).
    fn users_of(&self, _d: usize, base: u64) -> Vec<String> {
        self.streams
            .iter()
            .flat_map(|(&sid, s)| {
                s.queue
                    .iter()
                    .filter(move |op| op.dev_refs.contains(&base))
                    .map(move |op| format!("{} on stream {:#x}", op.what, STREAM_TAG + sid))
            })
            .collect()
    }

    pub fn mem_free(&mut self, ptr: u64) -> R<()> {
        let d = self.current()?;
        self.alloc_at(d, ptr)?;
        let users = self.users_of(d, ptr);
        if !users.is_empty() {
            report(&format!(
                "cuMemFree of device memory at {ptr:#x} while queued work still uses it: {}",
                users.join("; ")
            ));
        }
        let dev = &mut self.devices[d];
        let a = dev.allocs.remove(&ptr).expect("checked");
        dev.used -= a.len as u64;
        if a.state == AllocState::Live {
            dev.mem.unmap(ptr).map_err(|e| Fail {
                code: UNKNOWN,
                msg: e,
            })?;
        }
        Ok(())
    }

    /// A stream-ordered free. The memory may be another device's (cudarc
    /// frees a slice on its stream without binding the slice's context, and
    /// the legacy default stream, handle 0, is the current context's): the
    /// free is then ordered in that other device's stream, and any work of
    /// the owner still queued on the memory when it runs is reported.
    pub fn mem_free_async(&mut self, ptr: u64, s: u64) -> R<()> {
        let (sid, d) = self.stream_here(s)?;
        let owner = (0..self.devices.len())
            .find(|&o| self.devices[o].allocs.contains_key(&ptr))
            .unwrap_or(d);
        self.alloc_at(owner, ptr)?;
        self.devices[owner]
            .allocs
            .get_mut(&ptr)
            .expect("checked")
            .state = AllocState::FreeQueued;
        self.push(
            sid,
            Kind::Free {
                dev: owner,
                base: ptr,
            },
            Vec::new(),
            vec![ptr],
            Vec::new(),
            format!("cuMemFreeAsync of device {owner}'s {ptr:#x}"),
        );
        Ok(())
    }

    pub fn mem_info(&self) -> R<(usize, usize)> {
        let d = self.current()?;
        Ok((
            (TOTAL_MEM - self.devices[d].used) as usize,
            TOTAL_MEM as usize,
        ))
    }

    // ---- pinned host memory ----

    pub fn host_alloc(&mut self, len: usize, flags: u32) -> R<usize> {
        let d = self.current_ok()?;
        if flags & !7 != 0 {
            return fail(INVALID_VALUE, format!("cuMemHostAlloc flags {flags:#x}"));
        }
        let Some(layout) = pinned_layout(len).filter(|_| len > 0) else {
            return fail(INVALID_VALUE, format!("a pinned allocation of {len} bytes"));
        };
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { std::alloc::alloc(layout) };
        if p.is_null() {
            return fail(
                OUT_OF_MEMORY,
                format!("no host memory for {len} pinned bytes"),
            );
        }
        // Contents are undefined until written: poisoned.
        // SAFETY: `p` holds `len` bytes just allocated.
        unsafe { std::ptr::write_bytes(p, 0xa5, len) };
        self.pinned.insert(
            p as usize,
            Pinned {
                len,
                dev: d,
                quarantined: false,
            },
        );
        Ok(p as usize)
    }

    pub fn host_free(&mut self, p: usize) -> R<()> {
        let _ = self.current()?;
        match self.pinned.get(&p) {
            Some(a) if !a.quarantined => {}
            _ => {
                return fail(
                    INVALID_VALUE,
                    format!("{p:#x} is not a live pinned allocation's start"),
                )
            }
        }
        // (A faulted context runs nothing more: its queued copies are no hazard.)
        let users: Vec<String> = self
            .streams
            .iter()
            .filter(|(_, s)| self.devices[s.dev].sticky.is_none())
            .flat_map(|(&sid, s)| {
                s.queue
                    .iter()
                    .filter(move |op| op.host_refs.contains(&p))
                    .map(move |op| format!("{} on stream {:#x}", op.what, STREAM_TAG + sid))
            })
            .collect();
        let a = self.pinned.get_mut(&p).expect("checked");
        if users.is_empty() {
            let a = self.pinned.remove(&p).expect("checked");
            // SAFETY: allocated with this layout by `host_alloc`, freed once.
            unsafe { std::alloc::dealloc(p as *mut u8, pinned_layout(a.len).expect("valid")) };
        } else {
            report(&format!(
                "cuMemFreeHost of pinned memory at {p:#x} before queued copies that read or write it ran: {}",
                users.join("; ")
            ));
            a.quarantined = true;
            // SAFETY: the allocation is kept (quarantined), `len` bytes at `p`.
            unsafe { std::ptr::write_bytes(p as *mut u8, 0xa5, a.len) };
        }
        Ok(())
    }

    /// The pinned allocation holding `len` bytes at `p`, if `p` is in one.
    fn pinned_at(&self, p: usize, len: usize) -> Option<R<usize>> {
        let (&base, a) = self.pinned.range(..=p).next_back()?;
        if p >= base + a.len {
            return None;
        }
        Some(if a.quarantined {
            fail(
                INVALID_VALUE,
                format!("{p:#x} is in pinned memory already freed"),
            )
        } else if p + len > base + a.len {
            fail(
                INVALID_VALUE,
                format!("{len} bytes at {p:#x} run past the pinned allocation at {base:#x}"),
            )
        } else {
            Ok(base)
        })
    }

    // ---- copies ----

    pub fn htod(&mut self, dst: u64, src: usize, len: usize, s: u64, sync: bool) -> R<()> {
        let (sid, d) = self.stream_here(s)?;
        if len == 0 {
            return Ok(());
        }
        let base = self.dev_range(d, dst, len, "host-to-device copy")?;
        let (src_k, host_refs) = match self.pinned_at(src, len) {
            Some(r) => (HostSrc::Pinned(src, len), vec![r?]),
            None => (
                HostSrc::Staged(host::read(src, len).map_err(|e| Fail {
                    code: INVALID_VALUE,
                    msg: format!("host-to-device copy source: {e}"),
                })?),
                Vec::new(),
            ),
        };
        let at = self.push(
            sid,
            Kind::HtoD { dst, src: src_k },
            Vec::new(),
            vec![base],
            host_refs,
            format!("host-to-device copy of {len} bytes to {dst:#x}"),
        );
        if sync {
            self.ensure(at)?;
        }
        Ok(())
    }

    pub fn dtoh(&mut self, dst: usize, src: u64, len: usize, s: u64, sync: bool) -> R<()> {
        let (sid, d) = self.stream_here(s)?;
        if len == 0 {
            return Ok(());
        }
        let base = self.dev_range(d, src, len, "device-to-host copy")?;
        let (dst_k, host_refs, pageable) = match self.pinned_at(dst, len) {
            Some(r) => (HostDst::Pinned(dst), vec![r?], false),
            None => {
                if dst == 0 {
                    return fail(INVALID_VALUE, "device-to-host copy to a null pointer");
                }
                (HostDst::Pageable(dst), Vec::new(), true)
            }
        };
        let at = self.push(
            sid,
            Kind::DtoH {
                dst: dst_k,
                src,
                len,
            },
            Vec::new(),
            vec![base],
            host_refs,
            format!("device-to-host copy of {len} bytes from {src:#x}"),
        );
        // To pageable memory the call returns once the copy is done (the
        // driver's documented synchronous behaviour).
        if sync || pageable {
            self.ensure(at)?;
        }
        Ok(())
    }

    pub fn dtod(&mut self, dst: u64, src: u64, len: usize, s: u64, sync: bool) -> R<()> {
        let (sid, d) = self.stream_here(s)?;
        if len == 0 {
            return Ok(());
        }
        let a = self.dev_range(d, src, len, "device-to-device copy source")?;
        let b = self.dev_range(d, dst, len, "device-to-device copy destination")?;
        let at = self.push(
            sid,
            Kind::DtoD { dst, src, len },
            Vec::new(),
            vec![a, b],
            Vec::new(),
            format!("device-to-device copy of {len} bytes from {src:#x} to {dst:#x}"),
        );
        if sync {
            self.ensure(at)?;
        }
        Ok(())
    }

    pub fn memset(&mut self, dst: u64, value: u8, len: usize, s: u64, sync: bool) -> R<()> {
        let (sid, d) = self.stream_here(s)?;
        if len == 0 {
            return Ok(());
        }
        let b = self.dev_range(d, dst, len, "memset")?;
        let at = self.push(
            sid,
            Kind::Memset { dst, value, len },
            Vec::new(),
            vec![b],
            Vec::new(),
            format!("memset of {len} bytes at {dst:#x}"),
        );
        if sync {
            self.ensure(at)?;
        }
        Ok(())
    }

    /// A 2-D copy: `height` rows of `width` bytes, each side with its pitch.
    #[allow(clippy::too_many_arguments)]
    pub fn copy_2d(
        &mut self,
        src: (u32, usize, u64, usize, usize, usize),
        dst: (u32, usize, u64, usize, usize, usize),
        width: usize,
        height: usize,
        s: u64,
    ) -> R<()> {
        let (sid, d) = self.stream_here(s)?;
        if width == 0 || height == 0 {
            return Ok(());
        }
        let mut dev_refs = Vec::new();
        let mut host_refs = Vec::new();
        let mut staged = None;
        let mut side = |this: &Self,
                        (ty, host, dev, x, y, pitch): (u32, usize, u64, usize, usize, usize),
                        is_src: bool|
         -> R<Place> {
            let which = if is_src { "source" } else { "destination" };
            if pitch < width || pitch > i32::MAX as usize {
                return fail(
                    INVALID_VALUE,
                    format!("2-D copy {which} pitch {pitch} for rows of {width} bytes"),
                );
            }
            let start = y
                .checked_mul(pitch)
                .and_then(|o| o.checked_add(x))
                .ok_or_else(|| Fail {
                    code: INVALID_VALUE,
                    msg: "2-D copy offsets overflow".into(),
                })?;
            let span = (height - 1) * pitch + width;
            match ty {
                1 => {
                    let p = host
                        .checked_add(start)
                        .filter(|_| host != 0)
                        .ok_or_else(|| Fail { code: INVALID_VALUE, msg: format!("2-D copy {which}: a null host pointer") })?;
                    match this.pinned_at(p, span) {
                        Some(r) => host_refs.push(r?),
                        None if is_src => {
                            staged = Some(host::read(p, span).map_err(|e| Fail {
                                code: INVALID_VALUE,
                                msg: format!("2-D copy source: {e}"),
                            })?);
                        }
                        None => {
                            return fail(
                                NOT_SUPPORTED,
                                "a 2-D copy into pageable host memory (the software driver models pinned only)",
                            )
                        }
                    }
                    Ok(Place::Host(p))
                }
                2 => {
                    let p = dev + start as u64;
                    dev_refs.push(this.dev_range(d, p, span, &format!("2-D copy {which}"))?);
                    Ok(Place::Device(p))
                }
                _ => fail(
                    NOT_SUPPORTED,
                    format!("2-D copy {which} memory type {ty} (arrays and unified memory are not modelled)"),
                ),
            }
        };
        let sp = side(self, src, true)?;
        let dp = side(self, dst, false)?;
        self.push(
            sid,
            Kind::Copy2D {
                src: sp,
                staged,
                src_pitch: src.5,
                dst: dp,
                dst_pitch: dst.5,
                width,
                height,
            },
            Vec::new(),
            dev_refs,
            host_refs,
            format!("2-D copy of {height} rows of {width} bytes"),
        );
        Ok(())
    }

    // ---- modules and launches ----

    pub fn load_module(&mut self, image: usize) -> R<u64> {
        let d = self.current_ok()?;
        if image == 0 {
            return fail(INVALID_VALUE, "a null module image");
        }
        let img = crate::image::read(image).map_err(|e| Fail {
            code: INVALID_IMAGE,
            msg: e,
        })?;
        let (ptx, cubin): (&'static Ptx, Option<Vec<String>>) = match img {
            crate::image::Image::Ptx(text) => {
                let m = Ptx::parse(&text).map_err(|e| Fail {
                    code: INVALID_PTX,
                    msg: format!("the interpreter cannot load this PTX: {e}"),
                })?;
                (Box::leak(Box::new(m)), None)
            }
            crate::image::Image::Fatbin(f) => {
                let archs: Vec<u32> = f.entries.iter().map(|e| e.1).collect();
                let Some((_, _, elf)) = f.entries.iter().find(|e| e.0 == 2 && e.1 == 90) else {
                    return fail(
                        NO_BINARY_FOR_GPU,
                        format!("the fatbin has no sm_90 cubin (its entries' architectures: {archs:?}); the software driver runs the build's compute_90 PTX only in place of sm_90 SASS"),
                    );
                };
                let names = crate::image::elf_functions(elf).map_err(|e| Fail {
                    code: INVALID_IMAGE,
                    msg: e,
                })?;
                let ptx = ptx::builtin("90").map_err(|e| Fail {
                    code: NO_BINARY_FOR_GPU,
                    msg: format!("the software driver's own compute_90 PTX: {e}"),
                })?;
                let missing: Vec<&str> = ptx
                    .kernel_names()
                    .filter(|k| !names.iter().any(|n| n == k))
                    .collect();
                if !missing.is_empty() {
                    return fail(
                        INVALID_IMAGE,
                        format!(
                            "the fatbin's sm_90 cubin lacks kernels of the PTX fakecuda was built with ({}): rebuild fakecuda with this crate",
                            missing.join(", ")
                        ),
                    );
                }
                (ptx, Some(names))
            }
        };
        self.devices[d].mem.add_tables(ptx).map_err(|e| Fail {
            code: INVALID_IMAGE,
            msg: e,
        })?;
        let id = self.id();
        self.modules.insert(id, ModuleRec { dev: d, ptx, cubin });
        Ok(MODULE_TAG + id)
    }

    fn module(&self, h: u64) -> R<u64> {
        let id = h.wrapping_sub(MODULE_TAG);
        if h > MODULE_TAG && self.modules.contains_key(&id) {
            Ok(id)
        } else {
            fail(INVALID_HANDLE, format!("{h:#x} is not a loaded module"))
        }
    }

    pub fn unload_module(&mut self, h: u64) -> R<()> {
        let id = self.module(h)?;
        let queued: Vec<String> = self
            .streams
            .values()
            .filter(|s| self.devices[s.dev].sticky.is_none())
            .flat_map(|s| s.queue.iter())
            .filter(|op| matches!(&op.kind, Kind::Launch { module, .. } if *module == id))
            .map(|op| op.what.clone())
            .collect();
        if !queued.is_empty() {
            report(&format!(
                "cuModuleUnload while launches of its kernels are still queued: {}",
                queued.join("; ")
            ));
        }
        self.functions.retain(|_, f| f.module != id);
        self.modules.remove(&id);
        Ok(())
    }

    pub fn get_function(&mut self, m: u64, name: &str) -> R<u64> {
        let _ = self.current()?;
        let id = self.module(m)?;
        let rec = &self.modules[&id];
        let in_cubin = rec
            .cubin
            .as_ref()
            .is_none_or(|c| c.iter().any(|n| n == name));
        if !in_cubin || rec.ptx.kernel_params(name).is_none() {
            return fail(NOT_FOUND, format!("no kernel named {name} in the module"));
        }
        let dev = rec.dev;
        if let Some((&k, _)) = self
            .functions
            .iter()
            .find(|(_, f)| f.module == id && f.name == name)
        {
            return Ok(FUNCTION_TAG + k);
        }
        let k = self.id();
        self.functions.insert(
            k,
            FunctionRec {
                module: id,
                dev,
                name: name.to_string(),
            },
        );
        Ok(FUNCTION_TAG + k)
    }

    /// Queues a launch; `params` reads parameter `i` of `size` bytes.
    #[allow(clippy::too_many_arguments)]
    pub fn launch(
        &mut self,
        f: u64,
        grid: [u32; 3],
        block: [u32; 3],
        shared: u32,
        s: u64,
        params: &mut dyn FnMut(usize, u32) -> Result<u64, String>,
    ) -> R<()> {
        let d = self.current_ok()?;
        let id = f.wrapping_sub(FUNCTION_TAG);
        let Some(func) = self.functions.get(&id).filter(|_| f > FUNCTION_TAG) else {
            return fail(
                INVALID_HANDLE,
                format!("{f:#x} is not a function of a loaded module"),
            );
        };
        if func.dev != d {
            return fail(
                INVALID_CONTEXT,
                format!("the kernel's module is device {}'s context's, the current context device {d}'s", func.dev),
            );
        }
        let name = func.name.clone();
        let module = func.module;
        let ptx = self.modules[&module].ptx;
        let (sid, _) = self.stream_here(s)?;
        if shared > 48 << 10 {
            return fail(
                INVALID_VALUE,
                format!("{shared} bytes of dynamic shared memory, past the 48 KiB allowed without opting in"),
            );
        }
        let sizes = ptx.kernel_params(&name).expect("looked up");
        let mut values = Vec::with_capacity(sizes.len());
        for (i, &size) in sizes.iter().enumerate() {
            if size > 8 {
                return fail(
                    NOT_SUPPORTED,
                    format!("{name}: parameter {i} of {size} bytes (only scalars are modelled)"),
                );
            }
            let v = params(i, size).map_err(|e| Fail {
                code: INVALID_VALUE,
                msg: format!(
                    "{name} takes {} parameters: parameter {i}: {e}",
                    sizes.len()
                ),
            })?;
            values.push(v);
        }
        let cfg = LaunchConfig {
            grid,
            block,
            params: &values,
        };
        if let Err(e) = ptx.check_launch(&name, &cfg) {
            let e = e.to_string();
            let code = if e.contains("interpreter") {
                NOT_SUPPORTED
            } else {
                INVALID_VALUE
            };
            return fail(code, e);
        }
        // The allocations the pointer parameters point into: the launch uses them.
        let dev_refs: Vec<u64> = values
            .iter()
            .filter_map(|&v| {
                let (&base, a) = self.devices[d].allocs.range(..=v).next_back()?;
                (v < base + a.len as u64 + 1).then_some(base)
            })
            .collect();
        for (&v, &size) in values.iter().zip(&sizes) {
            if size != 8 {
                continue;
            }
            if let Some((&base, a)) = self.devices[d].allocs.range(..=v).next_back() {
                if v <= base + a.len as u64 && a.state == AllocState::FreeQueued {
                    return fail(
                        INVALID_VALUE,
                        format!("{name}: a parameter points into freed memory at {base:#x}"),
                    );
                }
            }
        }
        self.push(
            sid,
            Kind::Launch {
                module,
                ptx,
                name: name.clone(),
                grid,
                block,
                params: values,
            },
            Vec::new(),
            dev_refs,
            Vec::new(),
            format!("launch of {name} <<<{grid:?}, {block:?}>>>"),
        );
        Ok(())
    }

    // ---- execution ----

    fn execute(&mut self, d: usize, op: &Op) -> R<()> {
        let illegal = |msg: String| Fail {
            code: ILLEGAL_ADDRESS,
            msg,
        };
        for &p in &op.host_refs {
            if self.pinned.get(&p).is_none_or(|a| a.quarantined) {
                return Err(illegal(format!(
                    "it uses pinned host memory at {p:#x} that cuMemFreeHost freed before it ran"
                )));
            }
        }
        match &op.kind {
            Kind::Nop => Ok(()),
            Kind::Record { event, generation } => {
                if let Some(e) = self.events.get_mut(event) {
                    if e.generation == *generation {
                        e.time = Some(Instant::now());
                    }
                }
                Ok(())
            }
            Kind::Alloc { base, len } => {
                let dev = &mut self.devices[d];
                dev.mem
                    .map("cuMemAllocAsync", *base, *len)
                    .map_err(|e| Fail {
                        code: OUT_OF_MEMORY,
                        msg: e,
                    })?;
                if let Some(a) = dev.allocs.get_mut(base) {
                    if a.state == AllocState::Queued {
                        a.state = AllocState::Live;
                    }
                }
                Ok(())
            }
            Kind::Free { dev: owner, base } => {
                let d = *owner;
                let users: Vec<String> = self
                    .users_of(d, *base)
                    .into_iter()
                    .filter(|u| !u.starts_with("cuMemFreeAsync"))
                    .collect();
                if !users.is_empty() {
                    report(&format!(
                        "cuMemFreeAsync of {base:#x} ran while work no event orders before it still uses the memory: {}",
                        users.join("; ")
                    ));
                }
                let dev = &mut self.devices[d];
                if let Some(a) = dev.allocs.remove(base) {
                    dev.used -= a.len as u64;
                }
                dev.mem.unmap(*base).map_err(illegal)
            }
            Kind::HtoD { dst, src } => {
                let mem = &mut self.devices[d].mem;
                if !mem.is_mapped(*dst, 1) {
                    return Err(illegal(format!("{dst:#x} is not allocated when the copy runs (freed, or its cuMemAllocAsync not yet run in stream order)")));
                }
                match src {
                    HostSrc::Staged(v) => mem.write_host(*dst, v),
                    HostSrc::Pinned(p, len) => {
                        // SAFETY: `p..p + len` lies in a live pinned allocation
                        // (checked above and when the copy was queued).
                        let bytes = unsafe { std::slice::from_raw_parts(*p as *const u8, *len) };
                        mem.write_host(*dst, bytes)
                    }
                }
                .map_err(illegal)
            }
            Kind::DtoH { dst, src, len } => {
                let bytes = self.devices[d]
                    .mem
                    .read_host(*src, *len)
                    .map_err(|e| illegal(format!("{e} (device memory is poisoned until written)")))?
                    .to_vec();
                match dst {
                    HostDst::Pinned(p) => {
                        // SAFETY: `p..p + len` lies in a live pinned allocation.
                        unsafe {
                            std::ptr::copy_nonoverlapping(bytes.as_ptr(), *p as *mut u8, *len)
                        };
                        Ok(())
                    }
                    HostDst::Pageable(p) => host::write(*p, &bytes).map_err(illegal),
                }
            }
            Kind::DtoD { dst, src, len } => self.devices[d]
                .mem
                .copy_within(*dst, *src, *len)
                .map_err(illegal),
            Kind::Memset { dst, value, len } => self.devices[d]
                .mem
                .fill(*dst, *len, *value)
                .map_err(illegal),
            Kind::Copy2D {
                src,
                staged,
                src_pitch,
                dst,
                dst_pitch,
                width,
                height,
            } => {
                let mem = &mut self.devices[d].mem;
                for r in 0..*height {
                    let row: Vec<u8> = match (src, staged) {
                        (Place::Host(_), Some(v)) => {
                            v[r * src_pitch..r * src_pitch + width].to_vec()
                        }
                        (Place::Host(p), None) => {
                            // SAFETY: the rows lie in a live pinned allocation
                            // (checked when queued and before this runs).
                            unsafe {
                                std::slice::from_raw_parts((p + r * src_pitch) as *const u8, *width)
                            }
                            .to_vec()
                        }
                        (Place::Device(a), _) => mem
                            .read_host(a + (r * src_pitch) as u64, *width)
                            .map_err(|e| {
                                illegal(format!("{e} (device memory is poisoned until written)"))
                            })?
                            .to_vec(),
                    };
                    match dst {
                        Place::Host(p) => {
                            // SAFETY: the rows lie in a live pinned allocation.
                            unsafe {
                                std::ptr::copy_nonoverlapping(
                                    row.as_ptr(),
                                    (p + r * dst_pitch) as *mut u8,
                                    *width,
                                )
                            }
                        }
                        Place::Device(a) => mem
                            .write_host(a + (r * dst_pitch) as u64, &row)
                            .map_err(illegal)?,
                    }
                }
                Ok(())
            }
            Kind::Launch {
                ptx,
                name,
                grid,
                block,
                module: _,
                params,
            } => {
                let cfg = LaunchConfig {
                    grid: *grid,
                    block: *block,
                    params,
                };
                ptx.launch(name, &mut self.devices[d].mem, &cfg)
                    .map_err(|e| illegal(format!("the kernel faulted: {e}")))
            }
        }
    }
}
