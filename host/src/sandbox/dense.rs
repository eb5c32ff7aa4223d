//! Dense guest memory: linear memories and fiber stacks of small
//! components as plain anonymous read-write mappings.
//!
//! Linux bounds a process's memory mappings (`vm.max_map_count`, 65,530
//! by default), and wasmtime's default layout costs a parked guest about
//! seven of them: a linear memory is a 4 GiB reservation whose
//! inaccessible tail and guard regions are mappings of their own, its
//! copy-on-write image is a file mapping, and a fiber stack has a guard
//! page below it. So about 9,400 parked guests exhausted the mappings,
//! whatever the memory.
//!
//! Here a linear memory is one anonymous read-write mapping that reserves
//! (`MAP_NORESERVE`, address space only) room to grow to the memory limit,
//! and a fiber stack is one anonymous read-write mapping. The kernel merges
//! adjacent anonymous mappings with the same protection and flags into one,
//! so thousands of guests cost a handful of mappings, and untouched pages
//! cost nothing. What the layout gives up is what the mappings bought:
//! - bounds checks are explicit in the compiled code (no guard region:
//!   `memory_reservation` 0), the only safe choice once the bytes past a
//!   memory's end are mapped read-write;
//! - no copy-on-write image: data segments are copied in at instantiation
//!   (small for the components this engine runs, see [`DENSE_MAX_DATA`]);
//! - past [`GUARDED_STACKS`] live stacks, a fiber stack has no guard page
//!   (see [`DenseStacks`]).

use std::collections::BTreeMap;
use std::ops::Range;
use std::ptr::NonNull;
use std::sync::{Arc, Mutex};

use rustix::mm::{MapFlags, MremapFlags, ProtFlags};
use wasmtime::{LinearMemory, MemoryCreator, MemoryType, StackCreator, StackMemory};

/// One anonymous read-write mapping, unmapped on drop.
struct Region {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: the region is plain memory owned by this value; wasmtime
// synchronizes the guest's accesses.
#[expect(unsafe_code, reason = "raw memory regions handed to wasmtime")]
unsafe impl Send for Region {}
// SAFETY: as for Send: `&Region` only hands out its address.
#[expect(unsafe_code, reason = "raw memory regions handed to wasmtime")]
unsafe impl Sync for Region {}

fn page_align(bytes: usize) -> Option<usize> {
    let page = rustix::param::page_size();
    bytes.checked_add(page - 1).map(|b| b & !(page - 1))
}

impl Region {
    /// Maps `len` bytes (page aligned, non-zero), read-write, reserving
    /// address space only.
    #[expect(unsafe_code, reason = "mmap of fresh anonymous memory")]
    fn map(len: usize) -> std::io::Result<Self> {
        // SAFETY: a fresh anonymous mapping at an address the kernel
        // chooses aliases nothing.
        let ptr = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE | MapFlags::NORESERVE,
            )
        }?;
        let base = NonNull::new(ptr.cast::<u8>()).ok_or_else(|| std::io::Error::from_raw_os_error(12))?;
        Ok(Self { base, len })
    }

    /// Grows the mapping to `len` bytes, moving it if it can't grow in
    /// place (its pages move with it: nothing is copied or touched).
    #[expect(unsafe_code, reason = "mremap of a mapping this value owns")]
    fn grow(&mut self, len: usize) -> std::io::Result<()> {
        // SAFETY: the range is exactly the mapping this value owns; wasmtime
        // re-reads the base of a memory that may move after growing it.
        let ptr = unsafe { rustix::mm::mremap(self.base.as_ptr().cast(), self.len, len, MremapFlags::MAYMOVE) }?;
        self.base = NonNull::new(ptr.cast::<u8>()).ok_or_else(|| std::io::Error::from_raw_os_error(12))?;
        self.len = len;
        Ok(())
    }
}

impl Drop for Region {
    #[expect(unsafe_code, reason = "munmap of a mapping this value owns")]
    fn drop(&mut self) {
        // SAFETY: the mapping is owned by this value and no longer used
        // (wasmtime drops a memory or stack only after its last use).
        let _ = unsafe { rustix::mm::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

/// Creates linear memories as [`Region`]s reserving room up to the limit.
pub(super) struct DenseMemories {
    /// The memory limit of one guest, bytes (reserved up front).
    pub(super) limit: usize,
}

struct DenseMemory {
    region: Region,
    size: usize,
    /// The memory's declared maximum, bytes.
    maximum: Option<usize>,
}

#[expect(unsafe_code, reason = "wasmtime's custom memory interface")]
// SAFETY: the memory is owned by the instance that asked for it;
// `as_ptr` is the start of `byte_capacity` mapped read-write bytes, of
// which the first `byte_size` are the guest's; bytes past `byte_size` are
// zero (fresh anonymous pages, never accessible before growing), and the
// engine compiles explicit bounds checks against `byte_size`
// (`memory_reservation` 0, no guard region).
unsafe impl LinearMemory for DenseMemory {
    fn byte_size(&self) -> usize {
        self.size
    }

    fn byte_capacity(&self) -> usize {
        self.region.len
    }

    fn grow_to(&mut self, new_size: usize) -> wasmtime::Result<()> {
        if self.maximum.is_some_and(|max| new_size > max) {
            wasmtime::bail!("memory would grow to {new_size} bytes, past its maximum");
        }
        if new_size > self.region.len {
            let len = page_align(new_size).ok_or_else(|| wasmtime::format_err!("memory size overflows"))?;
            self.region.grow(len)?;
        }
        self.size = new_size;
        Ok(())
    }

    fn as_ptr(&self) -> *mut u8 {
        self.region.base.as_ptr()
    }
}

#[expect(unsafe_code, reason = "wasmtime's custom memory interface")]
// SAFETY: see `DenseMemory`: every memory is a fresh mapping owned by it.
unsafe impl MemoryCreator for DenseMemories {
    fn new_memory(
        &self,
        _ty: MemoryType,
        minimum: usize,
        maximum: Option<usize>,
        _reserved_size_in_bytes: Option<usize>,
        guard_size_in_bytes: usize,
    ) -> Result<Box<dyn LinearMemory>, String> {
        if guard_size_in_bytes != 0 {
            return Err("dense memories have no guard region".into());
        }
        // Room to grow to the limit (or the declared maximum), in address
        // space only; where even that is refused, the exact size (growth
        // then moves the mapping).
        let room = maximum.unwrap_or(usize::MAX).min(self.limit).max(minimum).max(1);
        let exact = page_align(minimum.max(1)).ok_or("memory size overflows")?;
        let region = match page_align(room).map(Region::map) {
            Some(Ok(r)) => r,
            _ => Region::map(exact).map_err(|e| format!("cannot map {minimum} bytes of guest memory: {e}"))?,
        };
        Ok(Box::new(DenseMemory {
            region,
            size: minimum,
            maximum,
        }))
    }
}

/// Live fiber stacks that get a guard page; later ones go without.
///
/// A guard page is a mapping of its own and splits its neighbours apart:
/// a guarded parked guest costs two mappings. 16,384 guarded stacks cost
/// at most 32,768 of the default 65,530, which leaves the rest for
/// everything else; and the default hot cache (10,000 instances) never
/// goes past them.
pub const GUARDED_STACKS: usize = 16_384;

/// Creates fiber stacks as [`Region`]s: with a guard page below while
/// fewer than `guarded_max` guarded stacks are live, without past that.
///
/// Without a guard page, stacks of neighbouring guests merge into one
/// mapping. The guest's own frames are still bounded by wasmtime's stack
/// limit check (`max_wasm_stack`, 1 MiB of the 2 MiB stack): only host
/// code that ran more than 1 MiB deep on such a stack would go past its end
/// unnoticed, into a neighbouring stack or memory.
pub(super) struct DenseStacks {
    pub(super) guarded_max: usize,
    /// Guarded stacks live now (shared with the stacks, which count
    /// themselves out when dropped).
    pub(super) guarded: Arc<std::sync::atomic::AtomicUsize>,
}

impl DenseStacks {
    pub(super) fn new(guarded_max: usize) -> Self {
        Self {
            guarded_max,
            guarded: Arc::default(),
        }
    }
}

struct DenseStack {
    region: Region,
    guard: usize,
    /// The count of guarded stacks this one is in, if guarded.
    guarded: Option<Arc<std::sync::atomic::AtomicUsize>>,
}

/// The usable range (start → end) of every live dense stack, so that a
/// guest parking on one can find its bounds.
static STACKS: Mutex<BTreeMap<usize, usize>> = Mutex::new(BTreeMap::new());

/// Stack kept below the caller's frame by [`release_dead_stack`]: room for
/// the calls between it and the fiber's switch, which touch it again.
const KEEP_BELOW: usize = 8 << 10;

/// Returns to the kernel the pages of the current dense fiber stack below
/// the caller's frame (less [`KEEP_BELOW`]): a parked guest's stack then
/// holds only its live frames, not the deepest it ever reached. Nothing
/// when the caller is not on a dense stack.
#[expect(unsafe_code, reason = "madvise of dead pages of the current stack")]
pub(super) fn release_dead_stack() {
    let marker = 0u8;
    let here = std::ptr::addr_of!(marker) as usize;
    let stacks = STACKS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let Some((&start, &end)) = stacks.range(..=here).next_back() else {
        return;
    };
    if here >= end {
        return;
    }
    let page = rustix::param::page_size();
    let dead_end = here.saturating_sub(KEEP_BELOW) & !(page - 1);
    if dead_end > start {
        // SAFETY: [start, dead_end) lies in a stack this module mapped,
        // below the frames in use on it (stacks grow down: every live frame
        // is at or above `here`, and the calls made from here on stay
        // within KEEP_BELOW); its pages come back zero-filled if touched.
        let _ = unsafe {
            rustix::mm::madvise(
                start as *mut std::ffi::c_void,
                dead_end - start,
                rustix::mm::Advice::LinuxDontNeed,
            )
        };
    }
}

impl Drop for DenseStack {
    fn drop(&mut self) {
        if let Some(count) = &self.guarded {
            count.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        }
        let start = self.range().start;
        STACKS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&start);
    }
}

#[expect(unsafe_code, reason = "wasmtime's custom stack interface")]
// SAFETY: the stack is a fresh, page-aligned, zero-filled mapping owned
// by this value; `range` excludes the guard page, if any.
unsafe impl StackMemory for DenseStack {
    fn top(&self) -> *mut u8 {
        self.region.base.as_ptr().wrapping_add(self.region.len)
    }

    fn range(&self) -> Range<usize> {
        let base = self.region.base.as_ptr() as usize;
        base + self.guard..base + self.region.len
    }

    fn guard_range(&self) -> Range<*mut u8> {
        let base = self.region.base.as_ptr();
        base..base.wrapping_add(self.guard)
    }
}

#[expect(unsafe_code, reason = "wasmtime's custom stack interface")]
// SAFETY: see `DenseStack`.
unsafe impl StackCreator for DenseStacks {
    fn new_stack(&self, size: usize, _zeroed: bool) -> wasmtime::Result<Box<dyn StackMemory>> {
        use std::sync::atomic::Ordering;
        let guarded = self
            .guarded
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < self.guarded_max).then_some(n + 1)
            })
            .is_ok();
        // Counted from here: a failure below counts the stack out on drop.
        let counted = guarded.then(|| self.guarded.clone());
        let guard = if guarded { rustix::param::page_size() } else { 0 };
        let len = page_align(size)
            .and_then(|s| s.checked_add(guard))
            .ok_or_else(|| wasmtime::format_err!("stack size overflows"));
        let region = match len.and_then(|len| Region::map(len).map_err(wasmtime::Error::from)) {
            Ok(r) => r,
            Err(e) => {
                if let Some(count) = counted {
                    count.fetch_sub(1, Ordering::SeqCst);
                }
                return Err(e);
            }
        };
        let stack = DenseStack {
            region,
            guard,
            guarded: counted,
        };
        if guard > 0 {
            protect_none(&stack.region, guard)?;
        }
        let range = stack.range();
        STACKS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(range.start, range.end);
        Ok(Box::new(stack))
    }
}

#[expect(unsafe_code, reason = "mprotect of a guard page in a mapping this value owns")]
fn protect_none(region: &Region, len: usize) -> std::io::Result<()> {
    // SAFETY: the first `len` bytes of a fresh mapping owned by `region`,
    // not yet handed out.
    unsafe { rustix::mm::mprotect(region.base.as_ptr().cast(), len, rustix::mm::MprotectFlags::empty()) }?;
    Ok(())
}

/// Components whose data segments hold at most this many bytes run on the
/// dense engine: copying them in at instantiation costs little, and their
/// pages are resident either way. The JavaScript and Python runtimes carry
/// hundreds of kilobytes to megabytes of data (their interpreters' heaps):
/// those keep copy-on-write images, which map them for free.
pub const DENSE_MAX_DATA: usize = 256 << 10;

/// Whether the component `bytes` suits the dense engine: it parses as a
/// component or module whose data segments (nested ones included) hold at
/// most [`DENSE_MAX_DATA`] bytes.
#[must_use]
pub fn suits(bytes: &[u8]) -> bool {
    data_bytes(bytes, 0).is_some_and(|n| n <= DENSE_MAX_DATA)
}

/// Deepest nesting of components [`data_bytes`] follows (a deploy's bytes
/// are untrusted: the scan must not recurse without bound).
const MAX_NESTING: usize = 16;

/// The bytes of data sections in a component or core module binary,
/// nested modules and components included; `None` if it doesn't parse or
/// nests deeper than [`MAX_NESTING`].
fn data_bytes(bytes: &[u8], depth: usize) -> Option<usize> {
    const COMPONENT: [u8; 4] = [0x0d, 0x00, 0x01, 0x00];
    const MODULE: [u8; 4] = [0x01, 0x00, 0x00, 0x00];
    fn leb(bytes: &[u8], at: &mut usize) -> Option<usize> {
        let mut value: u64 = 0;
        for shift in (0..35).step_by(7) {
            let byte = *bytes.get(*at)?;
            *at += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return usize::try_from(value).ok();
            }
        }
        None
    }
    if depth > MAX_NESTING || bytes.get(..4)? != b"\0asm" {
        return None;
    }
    let version: [u8; 4] = bytes.get(4..8)?.try_into().ok()?;
    let component = match version {
        COMPONENT => true,
        MODULE => false,
        _ => return None,
    };
    let (mut at, mut total) = (8usize, 0usize);
    while at < bytes.len() {
        let id = bytes[at];
        at += 1;
        let size = leb(bytes, &mut at)?;
        let body = bytes.get(at..at.checked_add(size)?)?;
        total = total.checked_add(match (component, id) {
            // A nested core module or component.
            (true, 1 | 4) => data_bytes(body, depth + 1)?,
            // A core module's data section.
            (false, 11) => size,
            _ => 0,
        })?;
        at += size;
    }
    Some(total)
}

/// Configures `config` for dense guests (see the module documentation).
pub(super) fn configure(config: &mut wasmtime::Config, limit: usize, guarded_stacks: usize) {
    config.memory_reservation(0);
    config.memory_guard_size(0);
    config.guard_before_linear_memory(false);
    config.memory_reservation_for_growth(0);
    config.memory_init_cow(false);
    config.with_host_memory(Arc::new(DenseMemories { limit }));
    config.with_host_stack(Arc::new(DenseStacks::new(guarded_stacks)));
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: usize = 1 << 10;
    const MIB: usize = 1 << 20;

    fn memory(limit: usize, minimum: usize) -> Box<dyn LinearMemory> {
        let pages = u32::try_from(minimum / (64 * KIB)).expect("pages");
        DenseMemories { limit }
            .new_memory(MemoryType::new(pages, None), minimum, None, Some(0), 0)
            .expect("memory")
    }

    fn mappings() -> usize {
        std::fs::read_to_string("/proc/self/maps")
            .expect("maps")
            .lines()
            .count()
    }

    #[test]
    #[expect(unsafe_code, reason = "reads and writes the test's own memory")]
    fn a_memory_grows_in_place_within_its_reservation_and_moves_past_it() {
        let mut m = memory(4 * MIB, 64 * KIB);
        assert_eq!((m.byte_size(), m.byte_capacity()), (64 * KIB, 4 * MIB));
        let base = m.as_ptr();
        // SAFETY: within the memory's first 64 KiB.
        unsafe { base.write(7) };
        m.grow_to(MIB).expect("grow");
        assert_eq!(m.as_ptr(), base, "in place");
        // SAFETY: within the grown memory; never written: zero.
        assert_eq!(unsafe { base.add(MIB - 1).read() }, 0);
        m.grow_to(8 * MIB).expect("grow past the reservation");
        assert_eq!(m.byte_size(), 8 * MIB);
        // SAFETY: the contents moved with the mapping.
        assert_eq!(unsafe { m.as_ptr().read() }, 7);
        // SAFETY: within the grown memory; never written: zero.
        assert_eq!(unsafe { m.as_ptr().add(8 * MIB - 1).read() }, 0);
    }

    #[test]
    fn a_declared_maximum_bounds_growth() {
        let mut m = DenseMemories { limit: 4 * MIB }
            .new_memory(MemoryType::new(1, Some(2)), 64 * KIB, Some(128 * KIB), Some(0), 0)
            .expect("memory");
        assert_eq!(m.byte_capacity(), 128 * KIB);
        assert!(m.grow_to(192 * KIB).is_err());
    }

    #[test]
    fn data_bytes_are_counted_in_nested_modules_and_garbage_is_refused() {
        // A core module: header, a custom section (0), a data section (11)
        // of 5 bytes.
        let mut module = b"\0asm\x01\0\0\0".to_vec();
        module.extend([0, 2, 1, b'x']);
        module.extend([11, 5, 1, 0, 0x41, 0, 0x0b]);
        assert_eq!(data_bytes(&module, 0), Some(5));
        // A component holding that module twice, once in a nested component.
        let mut inner = b"\0asm\x0d\0\x01\0".to_vec();
        inner.push(1);
        inner.push(u8::try_from(module.len()).expect("short"));
        inner.extend(&module);
        let mut outer = inner.clone();
        outer.push(4);
        outer.push(u8::try_from(inner.len()).expect("short"));
        outer.extend(&inner);
        assert_eq!(data_bytes(&outer, 0), Some(10));
        assert!(suits(&outer));
        assert_eq!(data_bytes(b"\0asm\x01\0\0\0\x0b\x7f", 0), None, "truncated");
        assert_eq!(data_bytes(b"not wasm", 0), None);
        assert!(!suits(b"not wasm"));
        // Nested deeper than the bound: refused, not followed.
        let mut deep = module.clone();
        for _ in 0..=MAX_NESTING {
            let mut wrapper = b"\0asm\x0d\0\x01\0".to_vec();
            let mut size = Vec::new();
            let mut n = deep.len();
            loop {
                let byte = u8::try_from(n & 0x7f).expect("7 bits");
                n >>= 7;
                if n == 0 {
                    size.push(byte);
                    break;
                }
                size.push(byte | 0x80);
            }
            wrapper.push(4);
            wrapper.extend(size);
            wrapper.extend(&deep);
            deep = wrapper;
        }
        assert_eq!(data_bytes(&deep, 0), None);
    }

    #[test]
    fn the_rust_guests_suit_the_dense_engine_the_js_and_python_runtimes_not() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/guests");
        for (lang, dense) in [("rust", true), ("js", false), ("python", false)] {
            // Only where `make guests` built them.
            if let Ok(bytes) = std::fs::read(root.join(lang).join("features.wasm")) {
                assert_eq!(suits(&bytes), dense, "{lang}: {:?} data bytes", data_bytes(&bytes, 0));
            }
        }
    }

    #[test]
    fn guard_regions_are_refused() {
        assert!(
            DenseMemories { limit: MIB }
                .new_memory(MemoryType::new(1, None), 64 * KIB, None, Some(0), 64 * KIB)
                .is_err()
        );
    }

    #[test]
    fn many_memories_and_stacks_cost_few_mappings() {
        let before = mappings();
        let stacks = DenseStacks::new(0);
        let mut held = Vec::new();
        for _ in 0..500 {
            held.push((
                memory(MIB, 64 * KIB),
                stacks.new_stack(256 * KIB, false).expect("stack"),
            ));
        }
        let added = mappings().saturating_sub(before);
        // Apart they would be 1,000 mappings; other threads of the test
        // binary may map a few of their own meanwhile.
        assert!(added < 100, "{added} mappings for 500 memories and 500 stacks");
        let (_, stack) = &held[0];
        assert!(stack.guard_range().is_empty());
        assert_eq!(stack.range().len(), 256 * KIB);
        assert_eq!(stack.top() as usize, stack.range().end);
    }

    #[test]
    fn the_first_stacks_have_a_guard_page_below_later_ones_none() {
        let stacks = DenseStacks::new(2);
        let a = stacks.new_stack(64 * KIB, false).expect("stack");
        let b = stacks.new_stack(64 * KIB, false).expect("stack");
        let c = stacks.new_stack(64 * KIB, false).expect("stack");
        for s in [&a, &b] {
            let guard = s.guard_range();
            assert_eq!(guard.end as usize, s.range().start);
            assert_eq!(guard.end as usize - guard.start as usize, rustix::param::page_size());
        }
        assert!(c.guard_range().is_empty(), "past the bound");
        drop(a);
        let d = stacks.new_stack(64 * KIB, false).expect("stack");
        assert!(!d.guard_range().is_empty(), "a guarded stack went: room for one");
    }
}
