//===- TestUtil.h - helpers for the MixQImport unit tests -------*- C++ -*-===//
//
// Temporary directories, file writers and error matchers shared by the
// import tests.
//
//===----------------------------------------------------------------------===//

#ifndef MIXQ_UNITTESTS_IMPORT_TESTUTIL_H
#define MIXQ_UNITTESTS_IMPORT_TESTUTIL_H

#include "ImportInternal.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include "gtest/gtest.h"

#include <cstring>
#include <string>

namespace mixq::test {

/// A fresh directory removed with its contents at the end of the test.
class TempDir {
public:
  TempDir() {
    std::error_code ec =
        llvm::sys::fs::createUniqueDirectory("mixq-import-test", dir);
    EXPECT_FALSE(ec) << ec.message();
  }
  ~TempDir() { llvm::sys::fs::remove_directories(dir); }
  std::string path(llvm::StringRef name = "") const {
    llvm::SmallString<256> p(dir);
    if (!name.empty())
      llvm::sys::path::append(p, name);
    return std::string(p);
  }

private:
  llvm::SmallString<256> dir;
};

inline void writeFile(llvm::StringRef path, llvm::StringRef bytes) {
  std::error_code ec;
  llvm::raw_fd_ostream os(path, ec);
  ASSERT_FALSE(ec) << ec.message();
  os << bytes;
}

inline std::string readFile(llvm::StringRef path) {
  auto buf = llvm::MemoryBuffer::getFile(path);
  return buf ? (*buf)->getBuffer().str() : std::string();
}

/// The message of `e` ("" on success, which then fails the test).
template <typename T> std::string errorOf(llvm::Expected<T> e) {
  if (e) {
    ADD_FAILURE() << "expected an error";
    return "";
  }
  return llvm::toString(e.takeError());
}

inline std::string errorOf(llvm::Error e) {
  if (!e) {
    ADD_FAILURE() << "expected an error";
    return "";
  }
  return llvm::toString(std::move(e));
}

/// Little-endian bytes of a 64-bit value.
inline std::string le64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i)
    s[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  return s;
}

/// A safetensors file with the JSON header `json` and `dataBytes` zero bytes.
inline std::string safetensorsBytes(llvm::StringRef json, size_t dataBytes) {
  return le64(json.size()) + json.str() + std::string(dataBytes, '\0');
}

/// A small GQA config used by the synthetic tests (2 layers, 4 heads, 2 KV).
inline ModelConfig tinyConfig(bool tied = true) {
  ModelConfig c;
  c.hiddenSize = 16;
  c.intermediateSize = 24;
  c.numLayers = 2;
  c.numHeads = 4;
  c.numKVHeads = 2;
  c.vocabSize = 32;
  c.maxSeqLen = 64;
  c.tiedEmbeddings = tied;
  llvm::cantFail(c.validate("tinyConfig"));
  return c;
}

inline std::vector<uint8_t> f32Bytes(const std::vector<float> &v) {
  std::vector<uint8_t> b(v.size() * 4);
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

} // namespace mixq::test

#endif // MIXQ_UNITTESTS_IMPORT_TESTUTIL_H
