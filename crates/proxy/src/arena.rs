//! Chunk memory that the kernel can send without copying it.
//!
//! A reply's body is mostly cached chunk bytes. Written with `writev`, the kernel copies
//! every byte into socket buffers, and a profile of 64 KiB range replies put 31% of shoal's
//! CPU in that copy. nginx avoids it with `sendfile(2)` from its cache files. The arena
//! gives shoal the same: chunks live in one memory file (`memfd`), mapped read-only into
//! the process, so a chunk is still an ordinary [`Bytes`] for everything that reads it
//! (ranges, multipart, TLS, HTTP/2), while the plain-HTTP front (`serve::io::Sendfile`)
//! recognises a slice of the mapping and sends it with `sendfile` from the file instead.
//!
//! Why this is safe to send while the cache keeps changing: `sendfile` hands the socket
//! references to the file's pages, which the kernel may still hold after the call returns
//! (until the peer has the bytes). A freed slot is therefore never overwritten in place: its
//! pages are punched out of the file first, so a later chunk in that slot gets new pages and
//! bytes still on their way keep the old ones.
//!
//! Slots are `chunk_size` bytes of address space each; a chunk uses the pages it fills, so
//! a short last chunk costs only its own size. When every slot is taken (more chunks alive
//! than the budget allows for, such as evicted chunks still being sent), a chunk simply
//! stays on the heap.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::Bytes;
use memmap2::{MmapOptions, MmapRaw};
use parking_lot::Mutex;
use rustix::fs::{FallocateFlags, MemfdFlags};

/// Chunks shorter than this stay on the heap: for small bodies one `writev` of headers and
/// body costs less than a separate `sendfile`.
pub const MIN_ZERO_COPY: usize = 32 << 10;

/// A memory file of fixed-size slots, each holding at most one chunk.
pub struct Arena {
    file: File,
    map: MmapRaw,
    slot_size: usize,
    free: Mutex<Vec<usize>>,
}

impl std::fmt::Debug for Arena {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Arena")
            .field("slot_size", &self.slot_size)
            .field("slots", &(self.map.len() / self.slot_size))
            .finish()
    }
}

impl Arena {
    /// An arena of `slots` slots of `slot_size` bytes. Only address space is reserved; memory
    /// is used as chunks are written.
    pub fn new(slot_size: usize, slots: usize) -> io::Result<Arc<Arena>> {
        let slot_size = slot_size.max(1).next_multiple_of(page_size());
        let len = slot_size
            .checked_mul(slots.max(1))
            .ok_or_else(|| io::Error::other("arena size overflows"))?;
        let fd = rustix::fs::memfd_create("shoal-chunks", MemfdFlags::CLOEXEC)?;
        let file = File::from(fd);
        file.set_len(len as u64)?;
        let map = MmapOptions::new().len(len).map_raw_read_only(&file)?;
        Ok(Arc::new(Arena {
            file,
            map,
            slot_size,
            free: Mutex::new((0..slots.max(1)).rev().collect()),
        }))
    }

    /// A copy of `data` in a free slot, or `None` when it does not fit a slot, is shorter than
    /// [`MIN_ZERO_COPY`], or no slot is free (the caller keeps it on the heap).
    pub fn adopt(self: &Arc<Self>, data: &[u8]) -> Option<Bytes> {
        if data.len() < MIN_ZERO_COPY || data.len() > self.slot_size {
            return None;
        }
        let index = self.free.lock().pop()?;
        let offset = (index * self.slot_size) as u64;
        if let Err(e) = self.file.write_all_at(data, offset) {
            tracing::warn!(error = %e, "writing a chunk to the memory file failed; kept on the heap");
            self.release(index);
            return None;
        }
        metrics::gauge!("shoal_arena_bytes").increment(data.len() as f64);
        Some(Bytes::from_owner(Slot {
            arena: self.clone(),
            index,
            len: data.len(),
        }))
    }

    /// Where `bytes` lies in the memory file, if it lies in it.
    pub fn locate(&self, bytes: &[u8]) -> Option<u64> {
        let start = self.map.as_ptr() as usize;
        let at = bytes.as_ptr() as usize;
        let offset = at.checked_sub(start)?;
        (!bytes.is_empty() && offset + bytes.len() <= self.map.len()).then_some(offset as u64)
    }

    /// The memory file, to send from.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// Slots not holding a chunk.
    pub fn free_slots(&self) -> usize {
        self.free.lock().len()
    }

    /// Frees a slot's pages (bytes still being sent keep theirs) and makes it available.
    fn release(&self, index: usize) {
        let offset = (index * self.slot_size) as u64;
        let punch = FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE;
        match rustix::fs::fallocate(&self.file, punch, offset, self.slot_size as u64) {
            Ok(()) => self.free.lock().push(index),
            // Never reuse a slot whose old pages may still be in flight: lose it instead.
            Err(e) => tracing::warn!(error = %e, "freeing a memory file slot failed; slot retired"),
        }
    }
}

fn page_size() -> usize {
    rustix::param::page_size()
}

/// One chunk in the arena; the slot is freed when the last [`Bytes`] of it is dropped.
struct Slot {
    arena: Arc<Arena>,
    index: usize,
    len: usize,
}

impl AsRef<[u8]> for Slot {
    #[allow(unsafe_code)]
    fn as_ref(&self) -> &[u8] {
        let start = self.index * self.arena.slot_size;
        debug_assert!(start + self.len <= self.arena.map.len());
        // SAFETY: the range lies inside the mapping (slots are within its length, `len` is at
        // most a slot), which lives as long as `self.arena`. The mapping is read-only and its
        // file is written only through `adopt`, into a slot taken off the free list, before
        // its `Slot` exists; the slot goes back on the list only in `Drop`. So nothing
        // changes these bytes while `self` lives.
        unsafe { std::slice::from_raw_parts(self.arena.map.as_ptr().add(start), self.len) }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        metrics::gauge!("shoal_arena_bytes").decrement(self.len as f64);
        self.arena.release(self.index);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, seed: u8) -> Vec<u8> {
        (0..n).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect()
    }

    #[test]
    fn adopted_bytes_read_back_and_are_located_in_the_file() {
        let arena = Arena::new(64 << 10, 4).unwrap();
        let d = data(40_000, 1);
        let b = arena.adopt(&d).unwrap();
        assert_eq!(&b[..], &d[..]);
        let at = arena.locate(&b).unwrap();
        let mut back = vec![0; d.len()];
        arena.file.read_exact_at(&mut back, at).unwrap();
        assert_eq!(back, d);
        // A slice of it is located at its own offset; heap bytes are not located.
        assert_eq!(arena.locate(&b.slice(100..200)), Some(at + 100));
        assert_eq!(arena.locate(&d), None);
    }

    #[test]
    fn small_oversized_and_overflowing_chunks_stay_on_the_heap() {
        let arena = Arena::new(64 << 10, 2).unwrap();
        assert!(arena.adopt(&data(MIN_ZERO_COPY - 1, 0)).is_none());
        assert!(arena.adopt(&data((64 << 10) + 1, 0)).is_none());
        let a = arena.adopt(&data(MIN_ZERO_COPY, 1)).unwrap();
        let b = arena.adopt(&data(MIN_ZERO_COPY, 2)).unwrap();
        assert!(
            arena.adopt(&data(MIN_ZERO_COPY, 3)).is_none(),
            "no slot left"
        );
        assert_eq!(arena.free_slots(), 0);
        drop(a);
        assert_eq!(arena.free_slots(), 1);
        drop(b);
        assert_eq!(arena.free_slots(), 2);
    }

    #[test]
    fn a_reused_slot_never_changes_bytes_still_held() {
        let arena = Arena::new(64 << 10, 1).unwrap();
        let first = data(50_000, 7);
        let a = arena.adopt(&first).unwrap();
        let clone = a.slice(10..20_000);
        drop(a);
        // The clone keeps the slot: it is not free, and a new chunk goes to the heap.
        assert_eq!(arena.free_slots(), 0);
        assert!(arena.adopt(&data(50_000, 9)).is_none());
        assert_eq!(&clone[..], &first[10..20_000]);
        drop(clone);
        let second = data(33_000, 9);
        let b = arena.adopt(&second).unwrap();
        assert_eq!(&b[..], &second[..]);
        // The punched tail of the slot reads as zeros, not as the first chunk's bytes.
        let mut tail = vec![1; 1000];
        arena.file.read_exact_at(&mut tail, 40_000).unwrap();
        assert!(tail.iter().all(|&x| x == 0));
    }
}
