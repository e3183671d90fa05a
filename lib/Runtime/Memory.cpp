//===- Memory.cpp - byte-accurate memory accounting by category ---*- C++ -*-===//

#include "mixq/Runtime/Memory.h"

namespace mixq {
namespace runtime {

const char *memCategoryName(MemCategory c) {
  switch (c) {
  case MemCategory::Weights:
    return "weights";
  case MemCategory::Adapters:
    return "adapters";
  case MemCategory::Optimizer:
    return "optimizer";
  case MemCategory::Gradients:
    return "gradients";
  case MemCategory::Activations:
    return "activations";
  case MemCategory::Workspace:
    return "workspace";
  }
  return "unknown";
}

void MemoryTracker::allocate(MemCategory c, int64_t bytes) {
  live_[int(c)] += bytes;
  liveTotal_ += bytes;
  if (liveTotal_ > peakTotal_) {
    peakTotal_ = liveTotal_;
    atPeak_ = live_;
  }
}

void MemoryTracker::release(MemCategory c, int64_t bytes) {
  live_[int(c)] -= bytes;
  liveTotal_ -= bytes;
}

void MemoryTracker::resetPeak() {
  peakTotal_ = liveTotal_;
  atPeak_ = live_;
}

llvm::json::Object MemoryTracker::peakJSON() const {
  llvm::json::Object o;
  o["total"] = peakTotal_;
  for (int i = 0; i < kNumMemCategories; ++i)
    o[memCategoryName(MemCategory(i))] = atPeak_[i];
  return o;
}

} // namespace runtime
} // namespace mixq
