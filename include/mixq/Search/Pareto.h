//===- Pareto.h - dominance, Pareto rank, crowding, hypervolume --*- C++ -*-===//
//
// Pareto rank is QR-Adaptor's Algorithm 1 (NSGA-II's fast non-dominated
// sort), crowding distance its Algorithm 2. Objective vectors are minimised;
// for (memory, accuracy) use (M, -P).
//
//===----------------------------------------------------------------------===//

#ifndef MIXQ_SEARCH_PARETO_H
#define MIXQ_SEARCH_PARETO_H

#include <vector>

namespace mixq::search {

using ObjectiveVector = std::vector<double>; ///< minimised component-wise

/// a dominates b: no worse everywhere, better somewhere.
bool dominates(const ObjectiveVector &a, const ObjectiveVector &b);

/// Algorithm 1: rank 1 for non-dominated points, 2 for those dominated only
/// by rank-1 points, and so on.
std::vector<int> paretoRanks(const std::vector<ObjectiveVector> &objs);

/// Algorithm 2: crowding distance of each member of `front` (indices into
/// `objs`), in the order of `front`. Boundary points get +infinity.
std::vector<double> crowdingDistance(const std::vector<ObjectiveVector> &objs,
                                     const std::vector<int> &front);

/// Elitist selection: the `capacity` best indices by (rank, -crowding).
std::vector<int> elitistSelect(const std::vector<ObjectiveVector> &objs,
                               int capacity);

/// A (memory, performance) point: memory minimised, performance maximised.
struct MPPoint {
  double memory;
  double performance;
};

/// Indices of the non-dominated points (duplicates all kept), by memory.
std::vector<int> paretoFront(const std::vector<MPPoint> &pts);

/// Exact 2-D hypervolume: the area of {(m, p) : m <= refMemory, p >=
/// refPerformance, dominated by some point}. Points outside the reference
/// box contribute only their part inside it.
double hypervolume2D(const std::vector<MPPoint> &pts, MPPoint ref);

} // namespace mixq::search

#endif // MIXQ_SEARCH_PARETO_H
