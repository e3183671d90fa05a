//===- SpaceTest.cpp - search space and config JSON --------------*- C++ -*-===//

#include "mixq/Search/Space.h"

#include <gtest/gtest.h>

using namespace mixq::search;

namespace {

llvm::Expected<SearchSpace> parse(llvm::StringRef text) {
  auto v = llvm::json::parse(text);
  if (!v)
    return v.takeError();
  return SearchSpace::fromJSON(*v, "space.json");
}

std::string errorOf(llvm::StringRef text) {
  auto s = parse(text);
  if (s)
    return "";
  return llvm::toString(s.takeError());
}

TEST(Space, ParsesAndCountsGenes) {
  auto s = parse(R"({"layers": 3, "bits": [8, 4], "ranks": [16, 2, 4],
                    "adapters": ["lora", "qblora"], "task": "t"})");
  ASSERT_TRUE(bool(s)) << llvm::toString(s.takeError());
  EXPECT_EQ(s->bits, (std::vector<int64_t>{4, 8}));
  EXPECT_EQ(s->ranks, (std::vector<int64_t>{2, 4, 16}));
  EXPECT_EQ(s->genesPerLayer(), 3);
  EXPECT_EQ(s->numGenes(), 9);
  EXPECT_EQ(s->optionCount(1), 3);
  EXPECT_NEAR(s->log10Size(), 3 * std::log10(12.0), 1e-12);
}

TEST(Space, BadSpacesNameTheFileAndTheProblem) {
  EXPECT_NE(errorOf("[1]").find("space.json: a search space must be a JSON "
                                "object"),
            std::string::npos);
  EXPECT_NE(errorOf(R"({"bits": [4], "ranks": [2]})").find("'layers'"),
            std::string::npos);
  EXPECT_NE(errorOf(R"({"layers": 2, "bits": [], "ranks": [2]})")
                .find("'bits' must not be empty"),
            std::string::npos);
  EXPECT_NE(errorOf(R"({"layers": 2, "bits": [5], "ranks": [2]})")
                .find("not a MixQ bit-width"),
            std::string::npos);
  EXPECT_NE(errorOf(R"({"layers": 2, "bits": [4, 4], "ranks": [2]})")
                .find("twice"),
            std::string::npos);
  EXPECT_NE(errorOf(R"({"layers": 2, "bits": [4], "ranks": [-2]})")
                .find("positive integers"),
            std::string::npos);
  EXPECT_NE(errorOf(R"({"layers": 2, "bits": [4], "ranks": [2], "rnks": 1})")
                .find("unknown key 'rnks'"),
            std::string::npos);
  EXPECT_NE(errorOf(R"({"layers": 2, "bits": [4], "ranks": [2],
                        "adapters": ["dora"]})")
                .find("unknown adapter"),
            std::string::npos);
}

TEST(Space, ConfigJSONFollowsTheContractAndRoundTrips) {
  auto s = parse(R"({"layers": 2, "bits": [4, 8], "ranks": [2, 8],
                    "model": "m", "task": "t"})");
  ASSERT_TRUE(bool(s));
  Configuration c{{1, 0, 0, 1}};
  llvm::json::Value v = toConfigJSON(*s, c);
  const llvm::json::Object *o = v.getAsObject();
  EXPECT_EQ(o->getInteger("version"), 1);
  EXPECT_EQ(o->getString("model"), llvm::StringRef("m"));
  EXPECT_EQ(o->getString("task"), llvm::StringRef("t"));
  const llvm::json::Array *layers = o->getArray("layers");
  ASSERT_EQ(layers->size(), 2u);
  const llvm::json::Object *l0 = (*layers)[0].getAsObject();
  EXPECT_EQ(l0->getInteger("layer"), 0);
  EXPECT_EQ(l0->getInteger("bits"), 8);
  EXPECT_EQ(l0->getInteger("rank"), 2);
  EXPECT_FALSE(l0->get("role")); // applies to all seven projections
  EXPECT_EQ((*layers)[1].getAsObject()->getInteger("rank"), 8);
  auto back = configFromJSON(*s, v, "cfg");
  ASSERT_TRUE(bool(back)) << llvm::toString(back.takeError());
  EXPECT_EQ(*back, c);
}

TEST(Space, ConfigFromJSONWithDefaultsAndOverrides) {
  auto s = parse(R"({"layers": 3, "bits": [4, 8], "ranks": [2, 8]})");
  ASSERT_TRUE(bool(s));
  auto v = llvm::json::parse(R"({"version": 1,
      "default": {"bits": 4, "rank": 2, "format": "nf4"},
      "layers": [{"layer": 1, "bits": 8}, {"rank": 8}, {"layer": 2, "rank": 2}]})");
  auto c = configFromJSON(*s, *v, "cfg.json");
  ASSERT_TRUE(bool(c)) << llvm::toString(c.takeError());
  EXPECT_EQ(c->genes, (std::vector<int>{0, 1, 1, 1, 0, 0}));
}

TEST(Space, BadConfigsAreRefusedClearly) {
  auto s = parse(R"({"layers": 2, "bits": [4, 8], "ranks": [2, 8]})");
  ASSERT_TRUE(bool(s));
  auto err = [&](llvm::StringRef text) {
    auto v = llvm::json::parse(text);
    EXPECT_TRUE(bool(v));
    auto c = configFromJSON(*s, *v, "cfg.json");
    return c ? std::string() : llvm::toString(c.takeError());
  };
  EXPECT_NE(err(R"({"layers": []})").find("version"), std::string::npos);
  EXPECT_NE(err(R"({"version": 1, "default": {"bits": 4}})")
                .find("cfg.json: layer 0: no 'bits' or no 'rank'"),
            std::string::npos);
  EXPECT_NE(err(R"({"version": 1, "default": {"bits": 3, "rank": 2}})")
                .find("bits 3 is not an option"),
            std::string::npos);
  EXPECT_NE(err(R"({"version": 1, "default": {"bits": 4, "rank": 2},
                    "layers": [{"layer": 0, "role": "q_proj", "bits": 8}]})")
                .find("per-projection"),
            std::string::npos);
  EXPECT_NE(err(R"({"version": 1, "default": {"bits": 4, "rank": 2},
                    "layers": [{"layer": 7, "bits": 8}]})")
                .find("'layer' must be in [0, 2)"),
            std::string::npos);
  EXPECT_NE(err(R"({"version": 1, "default": {"bits": "4", "rank": 2}})")
                .find("'bits' must be an integer"),
            std::string::npos);
}

TEST(Space, PeftRankPatternListsEveryProjection) {
  auto s = parse(R"({"layers": 2, "bits": [4], "ranks": [4, 8, 16],
                    "alpha_ratio": 2})");
  ASSERT_TRUE(bool(s));
  Configuration c{{0, 2, 0, 0}};
  llvm::json::Value v = toPeftRankPattern(*s, c);
  const llvm::json::Object *o = v.getAsObject();
  const llvm::json::Object *rp = o->getObject("rank_pattern");
  ASSERT_TRUE(rp);
  EXPECT_EQ(rp->size(), 14u);
  EXPECT_EQ(rp->getInteger("model.layers.0.self_attn.q_proj"), 16);
  EXPECT_EQ(rp->getInteger("model.layers.1.mlp.down_proj"), 4);
  EXPECT_EQ(o->getObject("alpha_pattern")
                ->getNumber("model.layers.0.mlp.gate_proj"),
            32.0);
  EXPECT_EQ(o->getArray("target_modules")->size(), 7u);
}

TEST(Space, FeaturesAreNormalisedOptionIndices) {
  auto s = parse(R"({"layers": 1, "bits": [4, 8], "ranks": [2, 4, 8]})");
  ASSERT_TRUE(bool(s));
  Eigen::VectorXd f = features(*s, Configuration{{1, 1}});
  EXPECT_DOUBLE_EQ(f[0], 1.0);
  EXPECT_DOUBLE_EQ(f[1], 0.5);
  EXPECT_EQ(configKey(Configuration{{1, 12}}), "1.12");
}

} // namespace
