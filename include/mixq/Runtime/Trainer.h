//===- Trainer.h - adapter fine-tuning: AdamW, schedule, resume ---*- C++ -*-===//
//
// Fine-tunes the trainable parameters of a Model (adapters, optionally RMSNorm
// weights) on a list of Examples: shuffled epochs (a permutation seeded by
// seed and epoch), batches of packed sequences, gradient accumulation over
// micro-batches, AdamW with decoupled weight decay, warm-up then constant /
// linear / cosine learning rate, adapter dropout from a seeded generator.
// The loss of a step is the mean over the batch's target tokens.
//
// Checkpoints (<out>/checkpoint/state.json + state.safetensors) hold the
// parameters, AdamW moments, step, dropout RNG state and loss curve; the data
// position follows from the step. A resumed run repeats the uninterrupted
// run's arithmetic exactly, so the loss curves are identical.
//
//===----------------------------------------------------------------------===//

#ifndef MIXQ_RUNTIME_TRAINER_H
#define MIXQ_RUNTIME_TRAINER_H

#include "mixq/Runtime/Data.h"
#include "mixq/Runtime/Model.h"

#include "llvm/Support/Error.h"

#include <string>
#include <vector>

namespace mixq {
namespace runtime {

enum class LRSchedule { Constant, Linear, Cosine };
llvm::Expected<LRSchedule> parseLRSchedule(llvm::StringRef s);

struct TrainOptions {
  int64_t epochs = 1;
  int64_t batch = 16;    ///< sequences per optimizer step
  int64_t gradAccum = 1; ///< micro-batches per step (batch is split)
  double lr = 3e-3;
  double weightDecay = 0.0;
  double beta1 = 0.9, beta2 = 0.999, adamEps = 1e-8;
  int64_t warmupSteps = 0;
  LRSchedule schedule = LRSchedule::Linear;
  uint64_t seed = 0;
  bool shuffle = true;
  /// Stop (after checkpointing) once this many steps are done; the schedule
  /// still spans the whole run. -1: run to the end.
  int64_t stopAfter = -1;
  int64_t saveEvery = 0; ///< checkpoint every N steps (0: only at the end)
  std::string outDir;    ///< "" = no checkpoints
  bool resume = false;
  bool progress = true; ///< progress lines on stderr
};

struct TrainResult {
  std::vector<double> losses; ///< mean loss per step, from step 1
  int64_t firstStep = 0;      ///< step this invocation started at (resume)
  int64_t steps = 0;          ///< steps done (including resumed ones)
  int64_t totalSteps = 0;
  int64_t tokens = 0;   ///< tokens processed in this invocation
  double wallS = 0.0;   ///< seconds spent in this invocation
  bool finished = false;
};

/// Learning rate of step `step` (0-based) of `total`.
double learningRate(const TrainOptions &opts, int64_t step, int64_t total);

/// The shape of one micro-batch: the lengths of its (packed) sequences and
/// its number of loss tokens.
struct MicroBatchShape {
  std::vector<int64_t> seqLens;
  int64_t lossTokens = 0;
};

/// The micro-batches train() runs for steps [firstStep, endStep), in order
/// (the same epoch permutations and splits), for the memory estimate.
std::vector<MicroBatchShape>
plannedMicroBatches(const std::vector<Example> &data, const TrainOptions &opts,
                    int64_t firstStep, int64_t endStep);

/// Runs (or resumes) the fine-tune.
llvm::Expected<TrainResult> train(Model &model,
                                  const std::vector<Example> &data,
                                  const TrainOptions &opts);

} // namespace runtime
} // namespace mixq

#endif // MIXQ_RUNTIME_TRAINER_H
