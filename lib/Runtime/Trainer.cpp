//===- Trainer.cpp - adapter fine-tuning: AdamW, schedule, resume -*- C++ -*-===//

#include "mixq/Runtime/Trainer.h"
#include "mixq/Runtime/AdaLoRA.h"
#include "mixq/Runtime/Device.h"

#include "mixq/Import/Checkpoint.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <chrono>
#include <cmath>
#include <cstring>
#include <numeric>

using namespace llvm;

namespace mixq {
namespace runtime {

static Error trainError(const Twine &msg) {
  return createStringError(inconvertibleErrorCode(), msg);
}

Expected<LRSchedule> parseLRSchedule(StringRef s) {
  if (s == "constant")
    return LRSchedule::Constant;
  if (s == "linear")
    return LRSchedule::Linear;
  if (s == "cosine")
    return LRSchedule::Cosine;
  return trainError("unknown LR schedule '" + s +
                    "' (constant, linear, cosine)");
}

double learningRate(const TrainOptions &o, int64_t step, int64_t total) {
  if (o.warmupSteps > 0 && step < o.warmupSteps)
    return o.lr * double(step + 1) / double(o.warmupSteps);
  int64_t span = std::max<int64_t>(1, total - o.warmupSteps);
  double t = double(step - o.warmupSteps) / double(span);
  switch (o.schedule) {
  case LRSchedule::Constant:
    return o.lr;
  case LRSchedule::Linear:
    return o.lr * (1.0 - t);
  case LRSchedule::Cosine:
    return o.lr * 0.5 * (1.0 + std::cos(M_PI * t));
  }
  return o.lr;
}

namespace {

/// AdamW state for every trainable parameter.
struct AdamW {
  std::vector<std::pair<Buffer<float> *, Buffer<float> *>> params;
  std::vector<Buffer<float>> m, v;

  AdamW(Model &model) : params(model.parameters()) {
    for (auto &p : params) {
      m.emplace_back(model.memory(), MemCategory::Optimizer, p.first->size());
      v.emplace_back(model.memory(), MemCategory::Optimizer, p.first->size());
    }
  }

  /// With a device attached (Device.h): parameters, gradients and moments
  /// live there between toDevice and fromDevice; the host copies are synced
  /// for checkpoints and at the end.
  DeviceExecutor *dev = nullptr;
  std::vector<float *> mp, vp;

  Error toDevice(DeviceExecutor *d) {
    std::vector<const float *> cm, cv;
    std::vector<float *> ps;
    for (size_t i = 0; i < params.size(); ++i) {
      ps.push_back(params[i].first->data());
      mp.push_back(m[i].data());
      vp.push_back(v[i].data());
      cm.push_back(m[i].data());
      cv.push_back(v[i].data());
    }
    if (Error e = d->optimizerBegin(ps, cm, cv))
      return e;
    dev = d;
    return Error::success();
  }
  Error sync() { return dev ? dev->optimizerSync(mp, vp) : Error::success(); }
  Error fromDevice() {
    DeviceExecutor *d = dev;
    dev = nullptr;
    return d ? d->optimizerEnd(mp, vp) : Error::success();
  }

  /// One update at 1-based step t.
  Error step(const TrainOptions &o, double lr, int64_t t) {
    const float b1 = float(o.beta1), b2 = float(o.beta2);
    const double c1 = 1.0 - std::pow(o.beta1, double(t)),
                 c2 = 1.0 - std::pow(o.beta2, double(t));
    const float stepSize = float(lr / c1), decay = float(1.0 - lr * o.weightDecay);
    const float invSqrtC2 = float(1.0 / std::sqrt(c2)), eps = float(o.adamEps);
    if (dev)
      return dev->adamStep({b1, b2, stepSize, decay, invSqrtC2, eps});
    for (size_t i = 0; i < params.size(); ++i) {
      float *w = params[i].first->data();
      const float *g = params[i].second->data();
      float *mi = m[i].data(), *vi = v[i].data();
      for (int64_t j = 0, n = params[i].first->size(); j < n; ++j) {
        mi[j] = b1 * mi[j] + (1.0f - b1) * g[j];
        vi[j] = b2 * vi[j] + (1.0f - b2) * g[j] * g[j];
        w[j] *= decay;
        w[j] -= stepSize * mi[j] / (std::sqrt(vi[j]) * invSqrtC2 + eps);
      }
    }
    return Error::success();
  }
};

std::string checkpointDir(const TrainOptions &o) {
  SmallString<256> p(o.outDir);
  sys::path::append(p, "checkpoint");
  return std::string(p);
}

TensorData floatTensor(std::string name, const float *data, int64_t n) {
  TensorData t;
  t.name = std::move(name);
  t.dtype = DType::F32;
  t.shape = {n};
  t.bytes.resize(size_t(n) * 4);
  std::memcpy(t.bytes.data(), data, t.bytes.size());
  return t;
}

Error saveCheckpoint(const TrainOptions &o, AdamW &opt, int64_t step,
                     const Rng &rng, const std::vector<double> &losses,
                     const std::vector<StateTensor> &extra) {
  std::string dir = checkpointDir(o);
  if (std::error_code ec = sys::fs::create_directories(dir))
    return trainError("cannot create '" + dir + "': " + ec.message());
  std::vector<TensorData> ts;
  for (size_t i = 0; i < opt.params.size(); ++i) {
    int64_t n = opt.params[i].first->size();
    ts.push_back(floatTensor(formatv("param.{0}", i).str(),
                             opt.params[i].first->data(), n));
    ts.push_back(floatTensor(formatv("adam_m.{0}", i).str(), opt.m[i].data(),
                             n));
    ts.push_back(floatTensor(formatv("adam_v.{0}", i).str(), opt.v[i].data(),
                             n));
  }
  for (const StateTensor &t : extra)
    ts.push_back(floatTensor(t.name, t.data, t.size));
  SmallString<256> tpath(dir), jpath(dir);
  sys::path::append(tpath, "state.safetensors");
  sys::path::append(jpath, "state.json");
  if (Error e = writeSafetensors(tpath, ts))
    return e;
  json::Array rngState, lossArr;
  for (uint64_t w : rng.state())
    rngState.push_back(std::to_string(w));
  for (double l : losses)
    lossArr.push_back(l);
  json::Object st{{"version", 1},
                  {"step", step},
                  {"num_params", int64_t(opt.params.size())},
                  {"dropout_rng", std::move(rngState)},
                  {"losses", std::move(lossArr)}};
  std::error_code ec;
  raw_fd_ostream os(jpath, ec);
  if (ec)
    return trainError("cannot write '" + jpath + "': " + ec.message());
  os << formatv("{0:2}", json::Value(std::move(st))) << "\n";
  return Error::success();
}

Error loadCheckpoint(const TrainOptions &o, AdamW &opt, int64_t &step,
                     Rng &rng, std::vector<double> &losses,
                     const std::vector<StateTensor> &extra) {
  std::string dir = checkpointDir(o);
  SmallString<256> tpath(dir), jpath(dir);
  sys::path::append(tpath, "state.safetensors");
  sys::path::append(jpath, "state.json");
  auto buf = MemoryBuffer::getFile(jpath, /*IsText=*/true);
  if (!buf)
    return trainError("--resume: cannot read '" + jpath +
                      "': " + buf.getError().message());
  auto v = json::parse((*buf)->getBuffer());
  if (!v)
    return trainError("'" + jpath + "': malformed JSON: " +
                      toString(v.takeError()));
  const json::Object *st = v->getAsObject();
  const json::Array *rs = st ? st->getArray("dropout_rng") : nullptr;
  const json::Array *ls = st ? st->getArray("losses") : nullptr;
  auto s = st ? st->getInteger("step") : std::nullopt;
  auto np = st ? st->getInteger("num_params") : std::nullopt;
  if (!rs || rs->size() != 4 || !ls || !s || !np)
    return trainError("'" + jpath + "': missing step, num_params, "
                                    "dropout_rng[4] or losses");
  if (*np != int64_t(opt.params.size()))
    return trainError(formatv("'{0}': checkpoint has {1} parameters, the "
                              "model {2} (a different variant?)",
                              jpath, *np, opt.params.size()));
  std::array<uint64_t, 4> state;
  for (int i = 0; i < 4; ++i) {
    auto str = (*rs)[i].getAsString();
    if (!str || str->getAsInteger(10, state[i]))
      return trainError("'" + jpath + "': bad dropout_rng entry");
  }
  rng.setState(state);
  step = *s;
  losses.clear();
  for (const json::Value &l : *ls)
    losses.push_back(l.getAsNumber().value_or(0.0));
  auto ck = Checkpoint::openTensorFile(tpath);
  if (!ck)
    return ck.takeError();
  auto readInto = [&](const std::string &name, float *dst,
                      int64_t n) -> Error {
    auto t = (*ck)->readF32(name);
    if (!t)
      return t.takeError();
    if (int64_t(t->size()) != n)
      return trainError(formatv("'{0}': tensor '{1}' has {2} values, "
                                "expected {3}",
                                tpath, name, t->size(), n));
    std::memcpy(dst, t->data(), sizeof(float) * n);
    return Error::success();
  };
  for (size_t i = 0; i < opt.params.size(); ++i) {
    int64_t n = opt.params[i].first->size();
    if (Error e = readInto(formatv("param.{0}", i).str(),
                           opt.params[i].first->data(), n))
      return e;
    if (Error e = readInto(formatv("adam_m.{0}", i).str(), opt.m[i].data(), n))
      return e;
    if (Error e = readInto(formatv("adam_v.{0}", i).str(), opt.v[i].data(), n))
      return e;
  }
  for (const StateTensor &t : extra)
    if (Error e = readInto(t.name, t.data, t.size))
      return e;
  return Error::success();
}

/// The example order of an epoch.
std::vector<int64_t> epochOrder(const TrainOptions &o, int64_t epoch,
                                int64_t n) {
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  if (!o.shuffle)
    return order;
  Rng rng(o.seed * 1000003ull + uint64_t(epoch) + 17);
  for (int64_t i = n - 1; i > 0; --i)
    std::swap(order[i], order[rng.below(uint64_t(i + 1))]);
  return order;
}

/// Examples [begin, end) of the epoch order of `step`, and the micro-batch
/// size it is split into.
struct StepRange {
  int64_t epoch, begin, end, micro;
};
StepRange stepRange(const TrainOptions &o, int64_t step, int64_t n) {
  const int64_t perEpoch = (n + o.batch - 1) / o.batch;
  int64_t inEpoch = step % perEpoch;
  int64_t b0 = inEpoch * o.batch, b1 = std::min(n, b0 + o.batch);
  return {step / perEpoch, b0, b1, (b1 - b0 + o.gradAccum - 1) / o.gradAccum};
}

} // namespace

std::vector<MicroBatchShape>
plannedMicroBatches(const std::vector<Example> &data, const TrainOptions &o,
                    int64_t firstStep, int64_t endStep) {
  std::vector<MicroBatchShape> shapes;
  const int64_t n = int64_t(data.size());
  if (n == 0 || o.batch <= 0 || o.gradAccum <= 0)
    return shapes;
  std::vector<int64_t> order;
  int64_t orderEpoch = -1;
  for (int64_t step = firstStep; step < endStep; ++step) {
    StepRange r = stepRange(o, step, n);
    if (r.epoch != orderEpoch) {
      order = epochOrder(o, r.epoch, n);
      orderEpoch = r.epoch;
    }
    for (int64_t m0 = r.begin; m0 < r.end; m0 += r.micro) {
      MicroBatchShape s;
      for (int64_t i = m0; i < std::min(r.end, m0 + r.micro); ++i) {
        const Example &ex = data[order[i]];
        s.seqLens.push_back(int64_t(ex.tokens.size()));
        for (int t : ex.targets)
          s.lossTokens += t >= 0;
      }
      shapes.push_back(std::move(s));
    }
  }
  return shapes;
}

Expected<TrainResult> train(Model &model, const std::vector<Example> &data,
                            const TrainOptions &o) {
  if (data.empty())
    return trainError("no training examples");
  if (o.batch <= 0 || o.gradAccum <= 0 || o.batch % o.gradAccum != 0)
    return trainError(formatv("--batch ({0}) must be a positive multiple of "
                              "--grad-accum ({1})",
                              o.batch, o.gradAccum));
  if (model.numTrainable() == 0)
    return trainError("the variant has no trainable parameters (no "
                      "adapters configured)");
  const int64_t n = int64_t(data.size());
  const int64_t perEpoch = (n + o.batch - 1) / o.batch;
  TrainResult res;
  res.totalSteps = perEpoch * o.epochs;
  AdamW opt(model);
  // AdaLoRA's rank allocator (null without adalora linears).
  auto ada = AdaLoRAAllocator::create(model, res.totalSteps);
  if (!ada)
    return ada.takeError();
  std::vector<StateTensor> extra;
  if (*ada)
    extra = (*ada)->state();
  Rng dropRng(o.seed ^ 0xD50F00Dull);
  int64_t step = 0;
  if (o.resume) {
    if (Error e = loadCheckpoint(o, opt, step, dropRng, res.losses, extra))
      return std::move(e);
    if (*ada)
      (*ada)->restored();
  }
  // AdamW on the attached device (no per-step parameter / gradient copies).
  if (DeviceExecutor *dev = model.device())
    if (Error e = opt.toDevice(dev))
      return std::move(e);
  const int64_t firstStep = step;
  res.firstStep = firstStep;
  auto start = std::chrono::steady_clock::now();
  int64_t reportEvery = std::max<int64_t>(1, res.totalSteps / 40);
  std::vector<int64_t> order;
  int64_t orderEpoch = -1;
  while (step < res.totalSteps) {
    if (o.stopAfter >= 0 && step >= o.stopAfter)
      break;
    StepRange range = stepRange(o, step, n);
    if (range.epoch != orderEpoch) {
      order = epochOrder(o, range.epoch, n);
      orderEpoch = range.epoch;
    }
    const int64_t b0 = range.begin, b1 = range.end, micro = range.micro;
    int64_t targets = 0;
    for (int64_t i = b0; i < b1; ++i)
      for (int t : data[order[i]].targets)
        targets += t >= 0;
    float scale = targets ? 1.0f / float(targets) : 0.0f;
    if (opt.dev) {
      if (Error e = opt.dev->zeroGradients())
        return std::move(e);
    } else {
      model.zeroGrads();
    }
    double lossSum = 0.0;
    for (int64_t m0 = b0; m0 < b1; m0 += micro) {
      Batch batch;
      for (int64_t i = m0; i < std::min(b1, m0 + micro); ++i)
        batch.addSequence(data[order[i]].tokens, data[order[i]].targets);
      res.tokens += batch.numTokens();
      lossSum += model.forwardBackward(batch, scale, &dropRng);
    }
    if (*ada)
      (*ada)->addRegularizer();
    double lr = learningRate(o, step, res.totalSteps);
    if (Error e = opt.step(o, lr, step + 1))
      return std::move(e);
    if (*ada)
      (*ada)->update(step + 1);
    ++step;
    res.losses.push_back(targets ? lossSum / double(targets) : 0.0);
    double secs = std::chrono::duration<double>(
                      std::chrono::steady_clock::now() - start)
                      .count();
    if (o.progress && (step % reportEvery == 0 || step == res.totalSteps)) {
      double eta = secs / double(step - firstStep) *
                   double(res.totalSteps - step);
      errs() << formatv("step {0}/{1} loss {2:F4} lr {3:E2} {4:F0} tok/s "
                        "ETA {5:F1}s\n",
                        step, res.totalSteps, res.losses.back(), lr,
                        double(res.tokens) / std::max(secs, 1e-9), eta);
    }
    if (!o.outDir.empty() && o.saveEvery > 0 && step % o.saveEvery == 0) {
      if (Error e = opt.sync())
        return std::move(e);
      if (Error e =
              saveCheckpoint(o, opt, step, dropRng, res.losses, extra))
        return std::move(e);
    }
  }
  res.wallS = std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                            start)
                  .count();
  res.steps = step;
  res.finished = step == res.totalSteps;
  // The host copies are current again (export, evaluation, checkpoint).
  if (Error e = opt.fromDevice())
    return std::move(e);
  if (!o.outDir.empty())
    if (Error e = saveCheckpoint(o, opt, step, dropRng, res.losses, extra))
      return std::move(e);
  return res;
}

} // namespace runtime
} // namespace mixq
