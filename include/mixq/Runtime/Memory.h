//===- Memory.h - byte-accurate memory accounting by category ----*- C++ -*-===//
//
// Every buffer the runtime allocates goes through a MemoryTracker, tagged with
// one of six categories (weights, adapters, optimizer, gradients,
// activations, workspace). The tracker keeps the live bytes per category and
// the breakdown at the moment the total was highest; that peak is what the
// metrics JSON reports as `peak_bytes` next to the static estimate.
//
//===----------------------------------------------------------------------===//

#ifndef MIXQ_RUNTIME_MEMORY_H
#define MIXQ_RUNTIME_MEMORY_H

#include "llvm/Support/JSON.h"

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <utility>

namespace mixq {
namespace runtime {

enum class MemCategory {
  Weights,
  Adapters,
  Optimizer,
  Gradients,
  Activations,
  Workspace
};
constexpr int kNumMemCategories = 6;
const char *memCategoryName(MemCategory c);

/// Live and peak bytes per category.
class MemoryTracker {
public:
  void allocate(MemCategory c, int64_t bytes);
  void release(MemCategory c, int64_t bytes);

  int64_t live(MemCategory c) const { return live_[int(c)]; }
  int64_t liveTotal() const { return liveTotal_; }
  int64_t peakTotal() const { return peakTotal_; }
  /// Bytes of `c` live at the moment the total peaked.
  int64_t peakOf(MemCategory c) const { return atPeak_[int(c)]; }
  /// Forgets the peak (the next allocation starts a new one from the live
  /// bytes).
  void resetPeak();

  /// {total, weights, adapters, optimizer, gradients, activations,
  /// workspace} at the peak.
  llvm::json::Object peakJSON() const;

private:
  std::array<int64_t, kNumMemCategories> live_{};
  std::array<int64_t, kNumMemCategories> atPeak_{};
  int64_t liveTotal_ = 0;
  int64_t peakTotal_ = 0;
};

/// Tag for a Buffer whose contents the caller overwrites entirely.
struct Uninitialized {};

/// A tracked, 64-byte aligned array of T, zero-initialised unless constructed
/// with Uninitialized. Move-only.
template <typename T> class Buffer {
public:
  Buffer() = default;
  Buffer(MemoryTracker &tracker, MemCategory cat, int64_t count)
      : Buffer(tracker, cat, count, Uninitialized()) {
    zero();
  }
  Buffer(MemoryTracker &tracker, MemCategory cat, int64_t count,
         Uninitialized)
      : tracker_(&tracker), cat_(cat), size_(count) {
    if (count > 0) {
      size_t bytes = roundedBytes();
      data_ = static_cast<T *>(::operator new(bytes, std::align_val_t(64)));
      tracker_->allocate(cat_, int64_t(count * sizeof(T)));
    }
  }
  Buffer(const Buffer &) = delete;
  Buffer &operator=(const Buffer &) = delete;
  Buffer(Buffer &&o) noexcept { swap(o); }
  Buffer &operator=(Buffer &&o) noexcept {
    if (this != &o) {
      Buffer tmp(std::move(o));
      swap(tmp);
    }
    return *this;
  }
  ~Buffer() { reset(); }

  void reset() {
    if (data_) {
      tracker_->release(cat_, int64_t(size_ * sizeof(T)));
      ::operator delete(static_cast<void *>(data_), std::align_val_t(64));
    }
    data_ = nullptr;
    size_ = 0;
  }
  T *data() { return data_; }
  const T *data() const { return data_; }
  int64_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  T &operator[](int64_t i) { return data_[i]; }
  const T &operator[](int64_t i) const { return data_[i]; }
  void zero() {
    if (data_)
      std::memset(static_cast<void *>(data_), 0, size_ * sizeof(T));
  }
  MemCategory category() const { return cat_; }

private:
  size_t roundedBytes() const {
    return (size_t(size_) * sizeof(T) + 63) / 64 * 64;
  }
  void swap(Buffer &o) {
    std::swap(tracker_, o.tracker_);
    std::swap(cat_, o.cat_);
    std::swap(data_, o.data_);
    std::swap(size_, o.size_);
  }
  MemoryTracker *tracker_ = nullptr;
  MemCategory cat_ = MemCategory::Workspace;
  T *data_ = nullptr;
  int64_t size_ = 0;
};

/// Accounts bytes owned elsewhere (e.g. a quantized tensor's std::vectors)
/// for as long as it lives. Move-only.
class Reservation {
public:
  Reservation() = default;
  Reservation(MemoryTracker &tracker, MemCategory cat, int64_t bytes)
      : tracker_(&tracker), cat_(cat), bytes_(bytes) {
    tracker_->allocate(cat_, bytes_);
  }
  Reservation(const Reservation &) = delete;
  Reservation &operator=(const Reservation &) = delete;
  Reservation(Reservation &&o) noexcept { *this = std::move(o); }
  Reservation &operator=(Reservation &&o) noexcept {
    if (this != &o) {
      reset();
      std::swap(tracker_, o.tracker_);
      std::swap(cat_, o.cat_);
      std::swap(bytes_, o.bytes_);
    }
    return *this;
  }
  ~Reservation() { reset(); }
  void reset() {
    if (tracker_ && bytes_)
      tracker_->release(cat_, bytes_);
    tracker_ = nullptr;
    bytes_ = 0;
  }
  int64_t bytes() const { return bytes_; }

private:
  MemoryTracker *tracker_ = nullptr;
  MemCategory cat_ = MemCategory::Weights;
  int64_t bytes_ = 0;
};

} // namespace runtime
} // namespace mixq

#endif // MIXQ_RUNTIME_MEMORY_H
