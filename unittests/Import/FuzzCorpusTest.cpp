//===- FuzzCorpusTest.cpp - fuzz bodies on corpus ---------------*- C++ -*-===//
//
// Runs the bodies of the libFuzzer targets (fuzz/FuzzTargets.cpp) over the
// committed seed corpora, so the g++ build exercises them too.
//
//===----------------------------------------------------------------------===//

#include "TestUtil.h"

#include "FuzzTargets.h"

using namespace mixq;
using namespace mixq::test;

namespace {

/// The files of fuzz/corpus/<kind>.
std::vector<std::string> corpus(llvm::StringRef kind) {
  std::vector<std::string> files;
  std::error_code ec;
  std::string dir = (MIXQ_SOURCE_DIR "/fuzz/corpus/" + kind).str();
  for (llvm::sys::fs::directory_iterator it(dir, ec), end; it != end && !ec;
       it.increment(ec))
    files.push_back(it->path());
  EXPECT_FALSE(ec) << dir << ": " << ec.message();
  return files;
}

TEST(FuzzCorpus, Safetensors) {
  std::vector<std::string> files = corpus("safetensors");
  ASSERT_GE(files.size(), 5u);
  int accepted = 0;
  for (const std::string &f : files) {
    std::string bytes = readFile(f);
    EXPECT_TRUE(fuzz::runSafetensors(bytes)) << f;
    auto header = detail::parseSafetensorsBuffer(f, bytes);
    accepted += bool(header);
    if (!header)
      llvm::consumeError(header.takeError());
    // Every prefix is handled too (truncation at each byte).
    for (size_t n = 0; n < bytes.size(); ++n)
      EXPECT_TRUE(fuzz::runSafetensors(llvm::StringRef(bytes).take_front(n)))
          << f << " cut at " << n;
  }
  // The corpus holds both valid files and near-misses.
  EXPECT_GT(accepted, 0);
  EXPECT_LT(accepted, static_cast<int>(files.size()));
}

TEST(FuzzCorpus, Llama2c) {
  std::vector<std::string> files = corpus("llama2c");
  ASSERT_GE(files.size(), 4u);
  int accepted = 0;
  for (const std::string &f : files) {
    std::string bytes = readFile(f);
    EXPECT_TRUE(fuzz::runLlama2c(bytes)) << f;
    auto layout = detail::parseLlama2cHeader(f, bytes, bytes.size());
    accepted += bool(layout);
    if (!layout)
      llvm::consumeError(layout.takeError());
  }
  EXPECT_GT(accepted, 0);
  EXPECT_LT(accepted, static_cast<int>(files.size()));
}

} // namespace
