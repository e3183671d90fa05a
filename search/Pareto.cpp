//===- Pareto.cpp - dominance, Pareto rank, crowding, hypervolume -*- C++ -*-===//

#include "mixq/Search/Pareto.h"

#include <algorithm>
#include <limits>
#include <numeric>

using namespace mixq::search;

bool mixq::search::dominates(const ObjectiveVector &a,
                             const ObjectiveVector &b) {
  bool better = false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i] > b[i])
      return false;
    if (a[i] < b[i])
      better = true;
  }
  return better;
}

std::vector<int>
mixq::search::paretoRanks(const std::vector<ObjectiveVector> &objs) {
  int n = static_cast<int>(objs.size());
  std::vector<int> dominatedCount(n, 0), rank(n, 0);
  std::vector<std::vector<int>> dominatedSet(n);
  for (int p = 0; p < n; ++p)
    for (int q = 0; q < n; ++q) {
      if (p == q)
        continue;
      if (dominates(objs[p], objs[q]))
        dominatedSet[p].push_back(q);
      else if (dominates(objs[q], objs[p]))
        ++dominatedCount[p];
    }
  std::vector<int> current;
  for (int p = 0; p < n; ++p)
    if (dominatedCount[p] == 0) {
      rank[p] = 1;
      current.push_back(p);
    }
  for (int r = 1; !current.empty(); ++r) {
    std::vector<int> next;
    for (int p : current)
      for (int q : dominatedSet[p])
        if (--dominatedCount[q] == 0) {
          rank[q] = r + 1;
          next.push_back(q);
        }
    current = std::move(next);
  }
  return rank;
}

std::vector<double>
mixq::search::crowdingDistance(const std::vector<ObjectiveVector> &objs,
                               const std::vector<int> &front) {
  const double inf = std::numeric_limits<double>::infinity();
  size_t n = front.size();
  std::vector<double> d(n, 0.0);
  if (n == 0)
    return d;
  size_t m = objs[front[0]].size();
  std::vector<size_t> order(n);
  for (size_t k = 0; k < m; ++k) {
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      return objs[front[a]][k] < objs[front[b]][k];
    });
    double lo = objs[front[order.front()]][k];
    double hi = objs[front[order.back()]][k];
    d[order.front()] = inf;
    d[order.back()] = inf;
    if (hi - lo <= 0)
      continue;
    for (size_t i = 1; i + 1 < n; ++i)
      d[order[i]] += (objs[front[order[i + 1]]][k] -
                      objs[front[order[i - 1]]][k]) /
                     (hi - lo);
  }
  return d;
}

std::vector<int>
mixq::search::elitistSelect(const std::vector<ObjectiveVector> &objs,
                            int capacity) {
  std::vector<int> rank = paretoRanks(objs);
  int maxRank = rank.empty() ? 0 : *std::max_element(rank.begin(), rank.end());
  std::vector<int> chosen;
  for (int r = 1; r <= maxRank && int(chosen.size()) < capacity; ++r) {
    std::vector<int> layer;
    for (int i = 0; i < int(objs.size()); ++i)
      if (rank[i] == r)
        layer.push_back(i);
    if (int(chosen.size() + layer.size()) <= capacity) {
      chosen.insert(chosen.end(), layer.begin(), layer.end());
      continue;
    }
    // The layer that does not fit: most isolated first.
    std::vector<double> dist = crowdingDistance(objs, layer);
    std::vector<size_t> order(layer.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return dist[a] > dist[b]; });
    for (size_t i = 0; int(chosen.size()) < capacity; ++i)
      chosen.push_back(layer[order[i]]);
  }
  return chosen;
}

std::vector<int> mixq::search::paretoFront(const std::vector<MPPoint> &pts) {
  std::vector<ObjectiveVector> objs;
  objs.reserve(pts.size());
  for (const MPPoint &p : pts)
    objs.push_back({p.memory, -p.performance});
  std::vector<int> rank = paretoRanks(objs);
  std::vector<int> front;
  for (int i = 0; i < int(pts.size()); ++i)
    if (rank[i] == 1)
      front.push_back(i);
  std::stable_sort(front.begin(), front.end(), [&](int a, int b) {
    return pts[a].memory < pts[b].memory;
  });
  return front;
}

double mixq::search::hypervolume2D(const std::vector<MPPoint> &pts,
                                   MPPoint ref) {
  // Clip to the reference box, then sweep by memory ascending: each point
  // adds the strip between its memory and the next better-performing step.
  std::vector<MPPoint> in;
  for (const MPPoint &p : pts)
    if (p.memory < ref.memory && p.performance > ref.performance)
      in.push_back(p);
  std::sort(in.begin(), in.end(), [](const MPPoint &a, const MPPoint &b) {
    if (a.memory != b.memory)
      return a.memory < b.memory;
    return a.performance > b.performance;
  });
  double area = 0;
  double bestPerf = ref.performance;
  // Walk from the largest memory down: the staircase height at memory m is
  // the best performance among points with memory <= m.
  std::vector<MPPoint> stair;
  for (const MPPoint &p : in)
    if (p.performance > bestPerf) {
      stair.push_back(p);
      bestPerf = p.performance;
    }
  for (size_t i = 0; i < stair.size(); ++i) {
    double right = i + 1 < stair.size() ? stair[i + 1].memory : ref.memory;
    area += (right - stair[i].memory) * (stair[i].performance - ref.performance);
  }
  return area;
}
