//===- TokenizerTest.cpp - llama2.c and SentencePiece tokenizers -----------===//

#include "mixq/Runtime/Tokenizer.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/raw_ostream.h"

#include "gtest/gtest.h"

using namespace mixq::runtime;

namespace {

const std::string kData = MIXQ_DATA_DIR;
const std::string kTok512 = kData + "/models/stories260K/tok512.bin";
const std::string kLlamaBin = kData + "/models/llama2-tokenizer/tokenizer.bin";
const std::string kLlamaModel =
    kData + "/models/llama2-tokenizer/tokenizer.model";

std::unique_ptr<Tokenizer> openOrFail(const std::string &path) {
  auto t = Tokenizer::open(path);
  if (!t) {
    ADD_FAILURE() << llvm::toString(t.takeError());
    return nullptr;
  }
  return std::move(*t);
}

TEST(Tokenizer, Tok512StructureAndRoundTrip) {
  auto tok = openOrFail(kTok512);
  ASSERT_TRUE(tok);
  EXPECT_EQ(tok->vocabSize(), 512);
  EXPECT_EQ(tok->piece(3), "<0x00>");
  EXPECT_EQ(tok->piece(3 + 'A'), "<0x41>");
  for (const char *s : {"Once upon a time, there was a little girl named Lily.",
                        "Where is Mary?\nAnswer: bathroom", "a  b\tc",
                        "caf\xC3\xA9 \xE2\x82\xAC 42"}) {
    std::vector<int> ids = tok->encode(s, /*bos=*/true);
    ASSERT_FALSE(ids.empty());
    EXPECT_EQ(ids[0], 1);
    EXPECT_EQ(tok->decode(ids), s);
  }
}

TEST(Tokenizer, Tok512MergesUntilNoPairIsAPiece) {
  auto tok = openOrFail(kTok512);
  ASSERT_TRUE(tok);
  auto *l2c = static_cast<Llama2cTokenizer *>(tok.get());
  std::vector<int> ids = tok->encode("The little dog was happy to play.");
  // A dummy space is prepended: the first piece starts with a space.
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(tok->piece(ids[0])[0], ' ');
  // Far fewer tokens than characters: merges happened.
  EXPECT_LT(ids.size(), 20u);
  // Greedy BPE stops only when no adjacent pair is a piece.
  for (size_t i = 0; i + 1 < ids.size(); ++i) {
    std::string cat = tok->piece(ids[i]) + tok->piece(ids[i + 1]);
    for (int id = 0; id < tok->vocabSize(); ++id)
      EXPECT_NE(tok->piece(id), cat) << "unmerged pair at " << i;
  }
  (void)l2c;
}

TEST(Tokenizer, ByteFallbackForUnknownCodePoints) {
  auto tok = openOrFail(kTok512);
  ASSERT_TRUE(tok);
  // U+4E2D is not a piece of tok512: its three UTF-8 bytes become byte pieces.
  std::vector<int> ids = tok->encode("\xE4\xB8\xAD");
  ASSERT_EQ(ids.size(), 4u);
  EXPECT_EQ(ids[1], 0xE4 + 3);
  EXPECT_EQ(ids[2], 0xB8 + 3);
  EXPECT_EQ(ids[3], 0xAD + 3);
}

TEST(Tokenizer, SentencePieceModelMatchesItsLlama2cExport) {
  auto sp = openOrFail(kLlamaModel);
  auto bin = openOrFail(kLlamaBin);
  ASSERT_TRUE(sp && bin);
  EXPECT_EQ(sp->vocabSize(), 32000);
  EXPECT_EQ(bin->vocabSize(), 32000);
  for (const char *s :
       {"Hello world", "The quick brown fox jumps over the lazy dog.",
        "Question: Which piece of safety equipment is used?\nAnswer:",
        "Sarah was a much better surgeon than Maria", "tokenization 12345",
        "caf\xC3\xA9"}) {
    std::vector<int> a = sp->encode(s, true), b = bin->encode(s, true);
    EXPECT_EQ(a, b) << "on '" << s << "'";
    EXPECT_EQ(sp->decode(a), s);
  }
  // Known LLaMA-2 ids.
  std::vector<int> hello = sp->encode("Hello", true);
  EXPECT_EQ(hello, (std::vector<int>{1, 15043}));
}

TEST(Tokenizer, ErrorsNameTheFile) {
  llvm::SmallString<128> path;
  ASSERT_FALSE(llvm::sys::fs::createTemporaryFile("bad-tok", "bin", path));
  {
    std::error_code ec;
    llvm::raw_fd_ostream os(path, ec);
    int32_t maxLen = 8;
    os.write(reinterpret_cast<const char *>(&maxLen), 4);
    float score = 0.0f;
    int32_t len = 100; // longer than max_token_length
    os.write(reinterpret_cast<const char *>(&score), 4);
    os.write(reinterpret_cast<const char *>(&len), 4);
  }
  auto t = Tokenizer::open(path);
  ASSERT_FALSE(bool(t));
  std::string msg = llvm::toString(t.takeError());
  EXPECT_NE(msg.find(path.str().str()), std::string::npos) << msg;
  EXPECT_NE(msg.find("invalid length"), std::string::npos) << msg;
  llvm::sys::fs::remove(path);

  auto missing = Tokenizer::open("/nonexistent/tokenizer.bin");
  ASSERT_FALSE(bool(missing));
  EXPECT_NE(llvm::toString(missing.takeError()).find("/nonexistent"),
            std::string::npos);
}

} // namespace
