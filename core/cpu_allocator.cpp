#include "core/cpu_allocator.h"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>
#include <c10/util/Exception.h>
#include <pthread.h>
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

namespace revkit {
namespace {

constexpr size_t kPage = 4096;

struct Segment;

// A run of pages inside a segment, in use or free; its neighbours by address are linked so that a freed block
// merges with free ones on either side.
struct Block {
  Segment* segment;
  char* base;
  size_t size;  // a multiple of the page size
  bool free = true;
  Block* prev = nullptr;
  Block* next = nullptr;
};

struct Segment {
  char* base;
  size_t size;
  size_t touched = 0;  // the end of the furthest block ever handed out: no page beyond it was ever written
  int64_t blocks_in_use = 0;
  uint64_t idle_since = 0;  // when its last block in use was freed: idle segments go in that order
};

// Free blocks by size, then address: the best fit is the first not smaller than a request.
struct BySize {
  bool operator()(const Block* a, const Block* b) const {
    return a->size != b->size ? a->size < b->size : a->base < b->base;
  }
};

}  // namespace

struct CpuBlockCache::Impl {
  mutable std::mutex mutex;  // guards everything below
  std::set<Block*, BySize> free_blocks;
  std::unordered_map<char*, Block*> in_use_blocks;
  std::vector<Segment*> segments;
  uint64_t next_idle = 0;
  size_t in_use = 0, touched = 0, high_water = 0;
  int64_t reused = 0, mapped_segments = 0, released_segments = 0;

  char* allocate(size_t bytes) {
    const size_t want = std::max<size_t>((bytes + kPage - 1) / kPage * kPage, kPage);
    std::lock_guard<std::mutex> lock(mutex);
    Block probe{nullptr, nullptr, want};
    auto fit = free_blocks.lower_bound(&probe);
    if (fit == free_blocks.end()) {
      map_segment(want);
      fit = free_blocks.lower_bound(&probe);
    } else {
      ++reused;
    }
    Block* block = *fit;
    // What can throw (bad_alloc) first, undone if a later step throws, so that a failure leaves the cache as it was.
    // The rest stays free when a large block could use it; a smaller rest goes with the block.
    std::unique_ptr<Block> rest;
    if (block->size - want >= static_cast<size_t>(CpuAllocator::kLargeBlock))
      rest = std::make_unique<Block>(Block{block->segment, block->base + want, block->size - want});
    const auto in_use_entry = in_use_blocks.emplace(block->base, block).first;
    if (rest) {
      try {
        free_blocks.insert(rest.get());  // its address differs from the block's: both may be in the set at once
      } catch (...) {
        in_use_blocks.erase(in_use_entry);
        throw;
      }
    }
    free_blocks.erase(fit);  // before the block's size changes: the set is ordered by it
    if (rest) {
      rest->prev = block;
      rest->next = block->next;
      if (block->next) block->next->prev = rest.get();
      block->next = rest.get();
      block->size = want;
      rest.release();  // owned by the free set now
    }
    block->free = false;
    Segment& segment = *block->segment;
    ++segment.blocks_in_use;
    const auto end = static_cast<size_t>(block->base + block->size - segment.base);
    if (end > segment.touched) {
      touched += end - segment.touched;
      segment.touched = end;
    }
    in_use += block->size;
    high_water = std::max(high_water, in_use);
    return block->base;
  }

  void free(char* base) {
    std::lock_guard<std::mutex> lock(mutex);
    auto found = in_use_blocks.find(base);
    TORCH_INTERNAL_ASSERT(found != in_use_blocks.end(), "CPU block cache: freeing a block it did not hand out");
    Block* block = found->second;
    in_use_blocks.erase(found);
    block->free = true;
    in_use -= block->size;
    Segment& segment = *block->segment;
    if (--segment.blocks_in_use == 0) segment.idle_since = next_idle++;
    if (Block* next = block->next; next && next->free) {
      free_blocks.erase(next);
      block->size += next->size;
      block->next = next->next;
      if (next->next) next->next->prev = block;
      delete next;
    }
    if (Block* prev = block->prev; prev && prev->free) {
      free_blocks.erase(prev);
      prev->size += block->size;
      prev->next = block->next;
      if (block->next) block->next->prev = prev;
      delete block;
      block = prev;
    }
    free_blocks.insert(block);
  }

  // Caller holds the mutex. Maps a segment with room for `want` bytes, first unmapping idle segments (no block in
  // use), the longest idle first, while the pages written would otherwise pass an eighth above the most ever in
  // use.
  void map_segment(size_t want) {
    const size_t bound = std::max(high_water, in_use + want);
    while (touched + want > bound + bound / 8 && release_idle_segment()) {
    }
    auto segment = std::make_unique<Segment>(Segment{nullptr, std::max(want, kSegment)});
    auto block = std::make_unique<Block>(Block{segment.get(), nullptr, segment->size});
    segments.reserve(segments.size() + 1);
    void* p = ::mmap(nullptr, segment->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      // Idle segments may be what stands in the way, or a limit on address space or committed memory that a
      // segment's size passes where the block alone would not.
      while (release_idle_segment()) {
      }
      segment->size = block->size = want;
      p = ::mmap(nullptr, want, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    }
    TORCH_CHECK_WITH(OutOfMemoryError, p != MAP_FAILED, "CPU allocator: not enough memory: you tried to allocate ",
                     want, " bytes (", std::strerror(errno), ")");
    segment->base = block->base = static_cast<char*>(p);
    try {
      free_blocks.insert(block.get());
    } catch (...) {
      ::munmap(p, segment->size);
      throw;
    }
    block.release();
    segments.push_back(segment.release());
    ++mapped_segments;
  }

  // Caller holds the mutex. Unmaps the segment idle longest; false when none is idle.
  bool release_idle_segment() {
    auto oldest = segments.end();
    for (auto it = segments.begin(); it != segments.end(); ++it)
      if ((*it)->blocks_in_use == 0 && (oldest == segments.end() || (*it)->idle_since < (*oldest)->idle_since))
        oldest = it;
    if (oldest == segments.end()) return false;
    unmap(*oldest);
    segments.erase(oldest);
    ++released_segments;
    return true;
  }

  // Caller holds the mutex. An idle segment is one free block: its blocks merged as they were freed.
  void unmap(Segment* segment) {
    Block probe{nullptr, segment->base, segment->size};
    auto block = free_blocks.find(&probe);
    TORCH_INTERNAL_ASSERT(block != free_blocks.end(), "CPU block cache: an idle segment is not one free block");
    delete *block;
    free_blocks.erase(block);
    touched -= segment->touched;
    ::munmap(segment->base, segment->size);
    delete segment;
  }
};

CpuBlockCache::CpuBlockCache() : impl_(std::make_unique<Impl>()) {}

CpuBlockCache::~CpuBlockCache() {
  for (Block* b : impl_->free_blocks) delete b;
  for (auto& [base, b] : impl_->in_use_blocks) delete b;
  for (Segment* s : impl_->segments) {
    ::munmap(s->base, s->size);
    delete s;
  }
}

char* CpuBlockCache::allocate(size_t bytes) { return impl_->allocate(bytes); }
void CpuBlockCache::free(char* block) { impl_->free(block); }

void CpuBlockCache::release_idle() {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  while (impl_->release_idle_segment()) {
  }
  impl_->high_water = impl_->in_use;
}

CpuAllocatorStats CpuBlockCache::stats() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  CpuAllocatorStats s;
  s.resident = static_cast<int64_t>(impl_->touched);
  s.cached = static_cast<int64_t>(impl_->touched - impl_->in_use);
  s.segments = static_cast<int64_t>(impl_->segments.size());
  s.reused = impl_->reused;
  s.mapped_segments = impl_->mapped_segments;
  s.released_segments = impl_->released_segments;
  return s;
}

void CpuBlockCache::lock() { impl_->mutex.lock(); }
void CpuBlockCache::unlock() { impl_->mutex.unlock(); }

namespace {

// Every block handed out starts with this header, 64 bytes so that the data keeps c10's 64-byte alignment; the data
// pointer is also the deleter's context, as raw_allocate() requires.
struct Header {
  size_t requested;  // bytes asked for
  bool cached;       // from the block cache, not from malloc
};
constexpr size_t kHeader = 64;
static_assert(sizeof(Header) <= kHeader);

Header& header_of(char* base) { return *reinterpret_cast<Header*>(base); }

class CachingCpuAllocator final : public c10::Allocator {
 public:
  explicit CachingCpuAllocator(bool cache_large) : cache_large_(cache_large) {}

  c10::DataPtr allocate(size_t n) override {
    const bool cached = n >= static_cast<size_t>(CpuAllocator::kLargeBlock) && cache_large_;
    auto* base = cached ? cache_.allocate(n + kHeader) : static_cast<char*>(c10::alloc_cpu(n + kHeader));
    header_of(base) = Header{n, cached};
    count(static_cast<int64_t>(n));
    void* data = base + kHeader;
    return {data, data, &release, c10::Device(c10::DeviceType::CPU)};
  }
  void copy_data(void* dest, const void* src, std::size_t count) const override { default_copy_data(dest, src, count); }
  c10::DeleterFnPtr raw_deleter() const override { return &release; }

  CpuAllocatorStats stats() const {
    CpuAllocatorStats s = cache_.stats();
    s.allocated = allocated_.load();
    s.peak_allocated = peak_.load();
    return s;
  }
  int64_t allocated() const { return allocated_.load(); }
  int64_t peak() const { return peak_.load(); }
  void reset_peak() { peak_.store(allocated_.load()); }
  CpuBlockCache& cache() { return cache_; }

  static std::atomic<CachingCpuAllocator*> instance;

 private:
  void count(int64_t bytes) {
    const int64_t now = allocated_.fetch_add(bytes) + bytes;
    int64_t seen = peak_.load();
    while (now > seen && !peak_.compare_exchange_weak(seen, now)) {
    }
  }

  static void release(void* data) {
    if (!data) return;
    char* base = static_cast<char*>(data) - kHeader;
    CachingCpuAllocator* self = instance.load();
    const Header header = header_of(base);
    self->allocated_.fetch_sub(static_cast<int64_t>(header.requested));
    if (header.cached)
      self->cache_.free(base);
    else
      c10::free_cpu(base);
  }

  const bool cache_large_;
  std::atomic<int64_t> allocated_{0}, peak_{0};
  CpuBlockCache cache_;
};

std::atomic<CachingCpuAllocator*> CachingCpuAllocator::instance{nullptr};
std::once_flag g_install_once;

}  // namespace

void CpuAllocator::install() {
  std::call_once(g_install_once, [] {
    // REVKIT_CPU_CACHE=0 leaves large blocks to malloc, as LibTorch's own allocator does (for comparisons).
    const char* env = std::getenv("REVKIT_CPU_CACHE");
    // Never destroyed: blocks handed out must be able to come back until the process ends.
    auto* a = new CachingCpuAllocator(!(env && std::string(env) == "0"));
    CachingCpuAllocator::instance.store(a);
    // A child forked while another thread held the cache's lock would wait on it forever.
    pthread_atfork([] { CachingCpuAllocator::instance.load()->cache().lock(); },
                   [] { CachingCpuAllocator::instance.load()->cache().unlock(); },
                   [] { CachingCpuAllocator::instance.load()->cache().unlock(); });
    c10::SetCPUAllocator(a, /*priority=*/100);
  });
}

bool CpuAllocator::installed() { return CachingCpuAllocator::instance.load() != nullptr; }

CpuAllocatorStats CpuAllocator::stats() {
  return installed() ? CachingCpuAllocator::instance.load()->stats() : CpuAllocatorStats{};
}

// The counters are atomics: no lock, unlike the cache's statistics.
int64_t CpuAllocator::current_bytes() {
  const auto* a = CachingCpuAllocator::instance.load();
  return a ? a->allocated() : 0;
}
int64_t CpuAllocator::peak_bytes() {
  const auto* a = CachingCpuAllocator::instance.load();
  return a ? a->peak() : 0;
}

void CpuAllocator::reset_peak() {
  if (installed()) CachingCpuAllocator::instance.load()->reset_peak();
}

void CpuAllocator::release_cached() {
  if (installed()) CachingCpuAllocator::instance.load()->cache().release_idle();
}

}  // namespace revkit
