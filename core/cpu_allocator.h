#pragma once
// revkit's CPU allocator: counts the bytes it hands out (current and peak) and keeps freed large blocks for reuse.
//
// Why: a training step frees and allocates the same large activations over and over. glibc's malloc serves them
// from its heaps once its mmap threshold has adapted, where fragmentation keeps hundreds of MB resident above what
// tensors hold; malloc's mmap for every large block instead costs 40% more step time in page faults. This
// allocator cuts large blocks (128 KiB and more) from segments it maps itself, of 64 MiB or the block's size: best
// fit by size, the rest of a block split off, a freed block merged with free neighbours. Memory freed by one kind
// of tensor serves the next of any size, so a step's varying shapes come from the pages earlier steps wrote (no
// page faults after the first step) and the pages written stay close to the most that tensors held at once: the
// seed's detector training at 320x320, batch 8, peaks at 1.3 GB resident in `full` and `column` mode where
// malloc takes 2.0 and 2.2 GB, at 0.76x and 0.78x malloc's step time (BENCHMARKS.md, "revkit's CPU allocator").
// When a new segment would take the pages written past an eighth above the most ever in use, segments with no
// block in use are unmapped first, the longest idle first (a segment with a block in use keeps the pages it has
// written). REVKIT_CPU_CACHE=0 leaves large blocks to malloc, for comparisons.
#include <cstddef>
#include <cstdint>
#include <memory>

namespace revkit {

struct CpuAllocatorStats {
  int64_t allocated = 0;          // bytes in tensors now (as requested)
  int64_t peak_allocated = 0;     // their peak since the last reset_peak
  int64_t resident = 0;           // bytes of the segments' pages ever handed out: what the cache keeps resident
  int64_t cached = 0;             // of those, bytes in free blocks, ready for reuse
  int64_t segments = 0;           // segments mapped now
  int64_t reused = 0;             // large allocations served from free blocks
  int64_t mapped_segments = 0;    // segments mapped so far
  int64_t released_segments = 0;  // segments unmapped so far
};

class CpuAllocator {
 public:
  // Makes it the process's CPU allocator once; later calls do nothing. Tensors allocated before are neither
  // counted nor cached (they keep their own deleter). Safe to call from several threads.
  static void install();
  static bool installed();
  static CpuAllocatorStats stats();
  static int64_t current_bytes();
  static int64_t peak_bytes();
  // Starts a new peak measurement from the bytes held now.
  static void reset_peak();
  // Unmaps every segment with no block in use.
  static void release_cached();
  // Blocks at least this large are cut from segments; smaller ones come from malloc.
  static constexpr int64_t kLargeBlock = 128 << 10;
};

// The large-block cache behind CpuAllocator, on its own: blocks of whole pages cut from segments, best fit, split
// and merged. Thread-safe. CpuAllocator keeps one for the process; tests make their own.
class CpuBlockCache {
 public:
  CpuBlockCache();
  ~CpuBlockCache();  // unmaps every segment: no block may be used after
  CpuBlockCache(const CpuBlockCache&) = delete;
  CpuBlockCache& operator=(const CpuBlockCache&) = delete;

  // A page-aligned block of at least `bytes`; throws c10::OutOfMemoryError when none can be mapped.
  char* allocate(size_t bytes);
  void free(char* block);
  // Unmaps every segment with no block in use, and starts the bound again from the bytes in use now.
  void release_idle();
  // resident, cached, segments and the counters (allocated and peak_allocated are CpuAllocator's).
  CpuAllocatorStats stats() const;
  // Held across fork() so that a child never inherits it locked.
  void lock();
  void unlock();

  // Segments are at least this large. Pages never written cost no memory, so a large segment costs no more than
  // the blocks it has served, and gives a freed block neighbours to merge with.
  static constexpr size_t kSegment = size_t{64} << 20;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace revkit
