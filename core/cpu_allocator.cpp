#include "core/cpu_allocator.h"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>
#include <c10/util/Exception.h>
#include <pthread.h>
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>

namespace revkit {
namespace {

// Every block starts with this header, 64 bytes so that the data keeps c10's 64-byte alignment; the data pointer
// is also the deleter's context, as raw_allocate() requires.
struct Header {
  size_t requested;  // bytes asked for
  size_t mapped;     // length of the mapping (large blocks), 0 for a block from malloc
  uint64_t freed_at; // position in the cache's age order while cached
};
constexpr size_t kHeader = 64;
static_assert(sizeof(Header) <= kHeader);
constexpr size_t kPage = 4096;

Header& header_of(char* base) { return *reinterpret_cast<Header*>(base); }

class CachingCpuAllocator final : public c10::Allocator {
 public:
  explicit CachingCpuAllocator(bool cache_large) : cache_large_(cache_large) {}

  c10::DataPtr allocate(size_t n) override {
    char* base = n >= static_cast<size_t>(CpuAllocator::kLargeBlock) && cache_large_ ? take_large(n) : take_small(n);
    count(static_cast<int64_t>(n));
    void* data = base + kHeader;
    return {data, data, &release, c10::Device(c10::DeviceType::CPU)};
  }
  void copy_data(void* dest, const void* src, std::size_t count) const override { default_copy_data(dest, src, count); }
  c10::DeleterFnPtr raw_deleter() const override { return &release; }

  CpuAllocatorStats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    CpuAllocatorStats s;
    s.allocated = allocated_.load();
    s.peak_allocated = peak_.load();
    s.mapped = static_cast<int64_t>(in_use_ + cached_);
    s.cached = static_cast<int64_t>(cached_);
    s.reused = reused_;
    s.fresh = fresh_;
    s.resized = resized_;
    return s;
  }
  int64_t allocated() const { return allocated_.load(); }
  int64_t peak() const { return peak_.load(); }
  void reset_peak() { peak_.store(allocated_.load()); }
  void release_cached() {
    std::lock_guard<std::mutex> lock(mutex_);
    while (!by_age_.empty()) evict_oldest();
    high_water_ = in_use_;
  }
  std::mutex& mutex() { return mutex_; }

  static std::atomic<CachingCpuAllocator*> instance;

 private:
  static char* take_small(size_t n) {
    auto* base = static_cast<char*>(c10::alloc_cpu(n + kHeader));
    header_of(base) = Header{n, 0, 0};
    return base;
  }

  char* take_large(size_t n) {
    const size_t want = (n + kHeader + kPage - 1) / kPage * kPage;
    std::lock_guard<std::mutex> lock(mutex_);
    // The smallest cached block that fits, unless it wastes more than an eighth.
    const auto fit = by_size_.lower_bound(want);
    if (fit != by_size_.end() && fit->first <= want + want / 8) {
      char* base = fit->second;
      by_age_.erase(header_of(base).freed_at);
      by_size_.erase(fit);
      cached_ -= header_of(base).mapped;
      in_use_ += header_of(base).mapped;
      high_water_ = std::max(high_water_, in_use_);
      header_of(base).requested = n;
      ++reused_;
      return base;
    }
    high_water_ = std::max(high_water_, in_use_ + want);
    const size_t limit = high_water_ + high_water_ / 8;
    void* p = MAP_FAILED;
    if (cached_ > 0 && in_use_ + cached_ + want > limit) {
      // Over the bound: rather than unmap a cached block and fault in a fresh one, resize the one nearest in size;
      // the pages it keeps stay resident, so only growth costs page faults.
      char* closest = detach_closest(want);
      const size_t length = header_of(closest).mapped;
      p = ::mremap(closest, length, want, MREMAP_MAYMOVE);
      if (p == MAP_FAILED) ::munmap(closest, length);
    }
    const bool resized = p != MAP_FAILED;
    while (cached_ > 0 && in_use_ + cached_ + want > limit) evict_oldest();
    if (p == MAP_FAILED) p = ::mmap(nullptr, want, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      // Cached blocks of other sizes may be what stands in the way.
      while (!by_age_.empty()) evict_oldest();
      p = ::mmap(nullptr, want, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    }
    TORCH_CHECK_WITH(OutOfMemoryError, p != MAP_FAILED, "CPU allocator: not enough memory: you tried to allocate ",
                     n, " bytes (", std::strerror(errno), ")");
    auto* base = static_cast<char*>(p);
    header_of(base) = Header{n, want, 0};
    in_use_ += want;
    ++(resized ? resized_ : fresh_);
    return base;
  }

  void give_back_large(char* base) {
    std::lock_guard<std::mutex> lock(mutex_);
    Header& h = header_of(base);
    h.freed_at = next_age_++;
    by_age_.emplace(h.freed_at, base);
    by_size_.emplace(h.mapped, base);
    in_use_ -= h.mapped;
    cached_ += h.mapped;
  }

  // Caller holds the mutex. Takes the block freed longest ago out of the cache.
  char* detach_oldest() {
    char* base = by_age_.begin()->second;
    by_age_.erase(by_age_.begin());
    const size_t mapped = header_of(base).mapped;
    auto [first, last] = by_size_.equal_range(mapped);
    by_size_.erase(std::find_if(first, last, [base](const auto& e) { return e.second == base; }));
    cached_ -= mapped;
    return base;
  }
  // Caller holds the mutex. Takes the cached block nearest in size to `want` out of the cache.
  char* detach_closest(size_t want) {
    auto it = by_size_.lower_bound(want);
    if (it == by_size_.end() || (it != by_size_.begin() && want - std::prev(it)->first < it->first - want)) --it;
    char* base = it->second;
    by_age_.erase(header_of(base).freed_at);
    by_size_.erase(it);
    cached_ -= header_of(base).mapped;
    return base;
  }
  void evict_oldest() {
    char* base = detach_oldest();
    ::munmap(base, header_of(base).mapped);
  }

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
    self->allocated_.fetch_sub(static_cast<int64_t>(header_of(base).requested));
    if (header_of(base).mapped == 0)
      c10::free_cpu(base);
    else
      self->give_back_large(base);
  }

  const bool cache_large_;
  std::atomic<int64_t> allocated_{0}, peak_{0};
  std::mutex mutex_;  // guards everything below
  std::multimap<size_t, char*> by_size_;
  std::map<uint64_t, char*> by_age_;
  uint64_t next_age_ = 0;
  size_t in_use_ = 0, cached_ = 0, high_water_ = 0;
  int64_t reused_ = 0, fresh_ = 0, resized_ = 0;
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
    pthread_atfork([] { CachingCpuAllocator::instance.load()->mutex().lock(); },
                   [] { CachingCpuAllocator::instance.load()->mutex().unlock(); },
                   [] { CachingCpuAllocator::instance.load()->mutex().unlock(); });
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
  if (installed()) CachingCpuAllocator::instance.load()->release_cached();
}

}  // namespace revkit
