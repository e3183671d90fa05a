//===- TinyModel.h - the runtime unit tests' tiny random model ---*- C++ -*-===//
//
// A random 2-layer GQA checkpoint (16 hidden, 24 MLP, 4 heads, 2 KV heads,
// vocabulary 32) written to a temporary directory, opened as a variant with
// an optional config JSON and built into a Model. Shared by the Model,
// AdaLoRA and Importance tests.
//
//===----------------------------------------------------------------------===//

#ifndef MIXQ_UNITTESTS_RUNTIME_TINYMODEL_H
#define MIXQ_UNITTESTS_RUNTIME_TINYMODEL_H

#include "mixq/Import/Checkpoint.h"
#include "mixq/Runtime/Memory.h"
#include "mixq/Runtime/Model.h"
#include "mixq/Runtime/Variant.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include "gtest/gtest.h"

#include <memory>
#include <string>

namespace mixq::runtime::tinytest {

template <typename T> T unwrap(llvm::Expected<T> e) {
  if (!e) {
    ADD_FAILURE() << llvm::toString(e.takeError());
    return T();
  }
  return std::move(*e);
}

struct TinyModelOptions {
  const char *dirPrefix = "mixq-tiny";
  uint64_t checkpointSeed = 7;
  ModelOptions model;
};

/// The model is null (and a failure recorded) when anything fails.
struct TinyRandomModel {
  llvm::SmallString<128> dir;
  std::unique_ptr<Variant> variant;
  MemoryTracker mem;
  std::unique_ptr<Model> model;

  /// `configJSON` empty: no variant config (f32, no adapters).
  explicit TinyRandomModel(const std::string &configJSON,
                           const TinyModelOptions &o = {}) {
    EXPECT_FALSE(llvm::sys::fs::createUniqueDirectory(o.dirPrefix, dir));
    ModelConfig c;
    c.hiddenSize = 16;
    c.intermediateSize = 24;
    c.numLayers = 2;
    c.numHeads = 4;
    c.numKVHeads = 2;
    c.headDim = 4;
    c.vocabSize = 32;
    c.maxSeqLen = 32;
    c.tiedEmbeddings = true;
    EXPECT_FALSE(bool(c.validate("tiny")));
    if (llvm::Error e = writeRandomCheckpoint(c, dir, o.checkpointSeed)) {
      ADD_FAILURE() << llvm::toString(std::move(e));
      return;
    }
    llvm::SmallString<128> cfg;
    if (!configJSON.empty()) {
      cfg = dir;
      llvm::sys::path::append(cfg, "variant.json");
      std::error_code ec;
      llvm::raw_fd_ostream os(cfg, ec);
      os << configJSON;
    }
    variant = unwrap(Variant::open(dir, cfg, ""));
    if (!variant)
      return;
    model = unwrap(variant->buildModel(mem, o.model));
  }
  ~TinyRandomModel() { llvm::sys::fs::remove_directories(dir); }
};

} // namespace mixq::runtime::tinytest

#endif // MIXQ_UNITTESTS_RUNTIME_TINYMODEL_H
