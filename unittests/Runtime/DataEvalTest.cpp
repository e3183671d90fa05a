//===- DataEvalTest.cpp - data readers, harness tokenisation, schedules ----===//

#include "mixq/Runtime/Data.h"
#include "mixq/Runtime/Eval.h"
#include "mixq/Runtime/Trainer.h"

#include "gtest/gtest.h"

#include <cmath>

using namespace mixq::runtime;

namespace {

const std::string kData = MIXQ_DATA_DIR;

std::unique_ptr<Tokenizer> tok512() {
  auto t = Tokenizer::open(kData + "/models/stories260K/tok512.bin");
  EXPECT_TRUE(bool(t));
  return t ? std::move(*t) : nullptr;
}

TEST(Data, BabiPromptAndAnswer) {
  auto path = babiPath(kData + "/tasks/babi", "qa1", "train");
  ASSERT_TRUE(bool(path)) << llvm::toString(path.takeError());
  auto qs = loadBabi(*path);
  ASSERT_TRUE(bool(qs)) << llvm::toString(qs.takeError());
  EXPECT_EQ(qs->size(), 1000u);
  EXPECT_EQ((*qs)[0].prompt, "Mary moved to the bathroom. John went to the "
                             "hallway.\nQuestion: Where is Mary?\nAnswer:");
  EXPECT_EQ((*qs)[0].answer, "bathroom");
  // The second question's story has all four sentences before it.
  EXPECT_EQ((*qs)[1].prompt,
            "Mary moved to the bathroom. John went to the hallway. Daniel "
            "went back to the hallway. Sandra moved to the garden.\n"
            "Question: Where is Daniel?\nAnswer:");
}

TEST(Data, HarnessContinuationSplit) {
  auto tok = tok512();
  ASSERT_TRUE(tok);
  std::vector<int> ctx, cont;
  // A trailing space of the context moves into the continuation.
  encodePair(*tok, "Answer: ", "bathroom", true, ctx, cont);
  std::vector<int> whole = tok->encode("Answer: bathroom", true);
  EXPECT_EQ(ctx, tok->encode("Answer:", true));
  ASSERT_LE(ctx.size(), whole.size());
  EXPECT_EQ(cont, std::vector<int>(whole.begin() + ctx.size(), whole.end()));
  EXPECT_FALSE(cont.empty());
  Example ex = makeCompletionExample(ctx, cont, 512);
  ASSERT_EQ(ex.tokens.size(), ctx.size() + cont.size() - 1);
  // Only the continuation is a target, shifted by one.
  for (size_t i = 0; i + 1 < ctx.size(); ++i)
    EXPECT_EQ(ex.targets[i], -1);
  for (size_t j = 0; j < cont.size(); ++j)
    EXPECT_EQ(ex.targets[ctx.size() - 1 + j], cont[j]);
  // Left truncation keeps the continuation.
  Example cut = makeCompletionExample(ctx, cont, 3);
  EXPECT_EQ(cut.tokens.size(), 3u);
  EXPECT_EQ(cut.targets.back(), cont.back());
}

TEST(Data, MalformedFilesNameTheProblem) {
  auto tok = tok512();
  ASSERT_TRUE(tok);
  DataOptions o;
  auto r = loadTrainingSet("alpaca:/nonexistent.json", kData, *tok, o);
  ASSERT_FALSE(bool(r));
  EXPECT_NE(llvm::toString(r.takeError()).find("/nonexistent.json"),
            std::string::npos);
  auto k = loadTrainingSet("csv:foo", kData, *tok, o);
  ASSERT_FALSE(bool(k));
  EXPECT_NE(llvm::toString(k.takeError()).find("unknown data kind"),
            std::string::npos);
}

TEST(Data, TextIsPackedIntoFullWindows) {
  auto tok = tok512();
  ASSERT_TRUE(tok);
  DataOptions o;
  o.seqLen = 64;
  auto r = loadTrainingSet("text:" + kData + "/finetune/wiki_demo.txt", kData,
                           *tok, o);
  ASSERT_TRUE(bool(r)) << llvm::toString(r.takeError());
  ASSERT_GT(r->size(), 2u);
  for (const Example &e : *r) {
    ASSERT_EQ(e.tokens.size(), 64u);
    // Targets are the inputs shifted by one.
    for (size_t i = 0; i + 1 < e.tokens.size(); ++i)
      EXPECT_EQ(e.targets[i], e.tokens[i + 1]);
  }
}

TEST(Eval, TaskLayouts) {
  auto arc = loadTask("arc_easy", kData, 2);
  ASSERT_TRUE(bool(arc)) << llvm::toString(arc.takeError());
  ASSERT_EQ(arc->size(), 2u);
  const MCItem &a = (*arc)[0];
  EXPECT_EQ(a.requests[0].first,
            "Question: Which statement best explains why photosynthesis is "
            "the foundation of most food webs?\nAnswer:");
  EXPECT_EQ(a.requests[0].second,
            " Sunlight is the source of energy for nearly all ecosystems.");
  EXPECT_EQ(a.choiceChars[0], 59.0);
  EXPECT_EQ(a.gold, 0);

  auto wg = loadTask("winogrande", kData, 1);
  ASSERT_TRUE(bool(wg));
  const MCItem &w = (*wg)[0];
  EXPECT_NE(w.requests[0].first, w.requests[1].first);
  EXPECT_EQ(w.requests[0].second, " always got the easier cases.");
  EXPECT_EQ(w.gold, 1);

  auto hs = loadTask("hellaswag", kData, 1);
  ASSERT_TRUE(bool(hs));
  EXPECT_EQ((*hs)[0].requests.size(), 4u);
  EXPECT_EQ((*hs)[0].gold, 3);
  EXPECT_EQ((*hs)[0].requests[3].second,
            " starts pulling up roofing on a roof.");

  auto mmlu = loadTask("mmlu", kData, 1);
  ASSERT_TRUE(bool(mmlu));
  EXPECT_EQ(mmlu->size(), 57u);
  const std::string &ctx = (*mmlu)[0].requests[0].first;
  EXPECT_EQ(ctx.rfind("The following are multiple choice questions (with "
                      "answers) about abstract algebra.\n\n",
                      0),
            0u);
  EXPECT_EQ(ctx.substr(ctx.size() - 8), "\nAnswer:");
  EXPECT_EQ((*mmlu)[0].requests[2].second, " C");

  auto babi = loadTask("babi:qa1", kData, 3);
  ASSERT_TRUE(bool(babi));
  EXPECT_EQ((*babi)[0].requests.size(), 6u); // six locations in train
}

TEST(Trainer, LearningRateSchedules) {
  TrainOptions o;
  o.lr = 1.0;
  o.warmupSteps = 4;
  o.schedule = LRSchedule::Linear;
  EXPECT_DOUBLE_EQ(learningRate(o, 0, 14), 0.25);
  EXPECT_DOUBLE_EQ(learningRate(o, 3, 14), 1.0);
  EXPECT_DOUBLE_EQ(learningRate(o, 4, 14), 1.0);
  EXPECT_DOUBLE_EQ(learningRate(o, 9, 14), 0.5);
  o.schedule = LRSchedule::Cosine;
  EXPECT_NEAR(learningRate(o, 9, 14), 0.5, 1e-12);
  EXPECT_NEAR(learningRate(o, 4, 14), 1.0, 1e-12);
  o.schedule = LRSchedule::Constant;
  EXPECT_DOUBLE_EQ(learningRate(o, 13, 14), 1.0);
  auto bad = parseLRSchedule("nope");
  EXPECT_FALSE(bool(bad));
  llvm::consumeError(bad.takeError());
}

} // namespace
