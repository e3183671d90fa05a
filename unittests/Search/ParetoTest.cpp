//===- ParetoTest.cpp - Pareto rank, crowding, hypervolume -------*- C++ -*-===//

#include "mixq/Search/Pareto.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

using namespace mixq::search;

namespace {

TEST(Pareto, Dominance) {
  EXPECT_TRUE(dominates({1, 1}, {2, 2}));
  EXPECT_TRUE(dominates({1, 2}, {1, 3}));
  EXPECT_FALSE(dominates({1, 2}, {1, 2}));
  EXPECT_FALSE(dominates({1, 3}, {2, 2}));
}

TEST(Pareto, RanksOfLayeredFronts) {
  // Front 1: (1,4) (2,2) (4,1); front 2: (3,3) (2,5); front 3: (4,6).
  std::vector<ObjectiveVector> o = {{3, 3}, {1, 4}, {2, 2}, {4, 6},
                                    {4, 1}, {2, 5}};
  std::vector<int> r = paretoRanks(o);
  EXPECT_EQ(r, (std::vector<int>{2, 1, 1, 3, 1, 2}));
}

TEST(Pareto, RanksMatchBruteForce) {
  std::mt19937_64 rng(1);
  std::uniform_int_distribution<int> u(0, 9);
  std::vector<ObjectiveVector> o;
  for (int i = 0; i < 60; ++i)
    o.push_back({double(u(rng)), double(u(rng)), double(u(rng))});
  std::vector<int> r = paretoRanks(o);
  // Peel fronts one by one.
  std::vector<int> expected(o.size(), 0);
  for (int rank = 1, left = int(o.size()); left > 0; ++rank) {
    std::vector<int> layer;
    for (size_t i = 0; i < o.size(); ++i) {
      if (expected[i])
        continue;
      bool dominated = false;
      for (size_t j = 0; j < o.size(); ++j)
        if (!expected[j] && dominates(o[j], o[i]))
          dominated = true;
      if (!dominated)
        layer.push_back(int(i));
    }
    for (int i : layer)
      expected[i] = rank;
    left -= int(layer.size());
  }
  EXPECT_EQ(r, expected);
}

TEST(Pareto, CrowdingDistanceByHand) {
  std::vector<ObjectiveVector> o = {{0, 4}, {1, 2}, {3, 1}, {4, 0}};
  std::vector<double> d = crowdingDistance(o, {0, 1, 2, 3});
  const double inf = std::numeric_limits<double>::infinity();
  EXPECT_EQ(d[0], inf);
  EXPECT_EQ(d[3], inf);
  // Point 1: (3 - 0) / 4 + (4 - 1) / 4; point 2: (4 - 1) / 4 + (2 - 0) / 4.
  EXPECT_DOUBLE_EQ(d[1], 0.75 + 0.75);
  EXPECT_DOUBLE_EQ(d[2], 0.75 + 0.5);
}

TEST(Pareto, ElitistSelectionFillsByRankThenCrowding) {
  // Front 1 has 4 points; capacity 3 keeps both ends and the more isolated
  // middle point.
  std::vector<ObjectiveVector> o = {{0, 4}, {1, 2}, {3, 1}, {4, 0}, {5, 5}};
  std::vector<int> chosen = elitistSelect(o, 3);
  std::sort(chosen.begin(), chosen.end());
  EXPECT_EQ(chosen, (std::vector<int>{0, 1, 3}));
  chosen = elitistSelect(o, 5);
  EXPECT_EQ(chosen.size(), 5u);
}

TEST(Hypervolume, ExactAreaOfAStaircase) {
  // Memory minimised, performance maximised; reference (10, 0).
  std::vector<MPPoint> pts = {{2, 5}, {4, 7}, {8, 9}, {6, 6} /* dominated */};
  // Strips: [2,4)x5 + [4,8)x7 + [8,10)x9 = 10 + 28 + 18.
  EXPECT_DOUBLE_EQ(hypervolume2D(pts, {10, 0}), 56.0);
  EXPECT_DOUBLE_EQ(hypervolume2D({}, {10, 0}), 0.0);
  // Points outside the box add nothing; on its edge nothing either.
  EXPECT_DOUBLE_EQ(hypervolume2D({{12, 9}, {10, 5}, {3, -1}}, {10, 0}), 0.0);
  // Reference performance shifts heights.
  EXPECT_DOUBLE_EQ(hypervolume2D(pts, {10, 5}), 0 + 8 + 8);
}

TEST(Hypervolume, MatchesMonteCarloOnRandomSets) {
  std::mt19937_64 rng(9);
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<MPPoint> pts;
  for (int i = 0; i < 15; ++i)
    pts.push_back({u(rng), u(rng)});
  double exact = hypervolume2D(pts, {1, 0});
  int inside = 0, n = 200000;
  for (int k = 0; k < n; ++k) {
    double m = u(rng), p = u(rng);
    for (const MPPoint &q : pts)
      if (q.memory <= m && q.performance >= p) {
        ++inside;
        break;
      }
  }
  EXPECT_NEAR(exact, double(inside) / n, 0.005);
}

TEST(Pareto, FrontIsSortedByMemory) {
  std::vector<MPPoint> pts = {{5, 0.9}, {1, 0.5}, {3, 0.7}, {4, 0.6}};
  EXPECT_EQ(paretoFront(pts), (std::vector<int>{1, 2, 0}));
}

} // namespace
