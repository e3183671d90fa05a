//===- Report.h - Pareto front, hypervolume, plots, chosen config -*- C++ -*-===//
//
// Everything `mixq-search report` prints, computed from the study store:
// the Pareto front of the complete trials (memory minimised, accuracy
// maximised) as JSON or CSV, the exact 2-D hypervolume after each finished
// trial against a stated reference point, an SVG scatter of all trials
// (front highlighted, one colour per strategy stage), and the configuration
// chosen for a given lambda (AutoMixQ: argmin M - lambda P over the front,
// both min-max normalised) or alpha (QR-Adaptor: argmax alpha z(P) -
// (1 - alpha) z(M) over the complete trials).
//
//===----------------------------------------------------------------------===//

#ifndef MIXQ_SEARCH_REPORT_H
#define MIXQ_SEARCH_REPORT_H

#include "mixq/Search/Pareto.h"
#include "mixq/Search/Space.h"
#include "mixq/Search/Store.h"

#include <optional>
#include <string>
#include <vector>

namespace mixq::search {

struct ReportOptions {
  std::optional<double> refMemory;      ///< default 1.1 x the largest M
  std::optional<double> refPerformance; ///< default min(0, smallest P)
};

struct HypervolumePoint {
  int64_t finished = 0; ///< trials finished so far
  int64_t trial = 0;    ///< the trial that finished
  double hypervolume = 0;
};

struct Report {
  StudyInfo study;
  SearchSpace space;
  std::vector<Trial> trials;
  std::vector<size_t> complete; ///< indices into trials with P and M
  std::vector<size_t> front;    ///< indices into trials, by memory
  MPPoint reference{0, 0};
  std::vector<HypervolumePoint> hypervolume; ///< in finishing order
  bool strategyFinished = false;

  double finalHypervolume() const {
    return hypervolume.empty() ? 0.0 : hypervolume.back().hypervolume;
  }
};

llvm::Expected<Report> buildReport(StudyStore &store, llvm::StringRef study,
                                   const ReportOptions &opts = {});

/// The summary JSON: counts, reference point, hypervolume (final and per
/// trial), and the front with each member's config.
llvm::json::Value reportJSON(const Report &r);
/// The front as CSV: trial,stage,accuracy,peak_bytes,bits,ranks.
std::string frontCSV(const Report &r);
/// Every trial as CSV, with an on_front column.
std::string trialsCSV(const Report &r);
/// All complete trials as an SVG scatter (memory vs accuracy).
std::string scatterSVG(const Report &r);

/// Index into r.trials of the choice for lambda / alpha (error if no trial
/// is complete).
llvm::Expected<size_t> chooseForLambda(const Report &r, double lambda);
llvm::Expected<size_t> chooseForAlpha(const Report &r, double alpha);

} // namespace mixq::search

#endif // MIXQ_SEARCH_REPORT_H
