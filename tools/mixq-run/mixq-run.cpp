//===- mixq-run.cpp - fine-tune, evaluate, generate, export on the CPU ----===//
//
//   mixq-run finetune VARIANT --data babi:qa1 --epochs E --batch B --lr LR
//                     --out DIR [--resume] [--eval babi:qa1 --limit 300]
//   mixq-run eval     VARIANT --task arc_easy[,boolq,...] [--limit N] --json
//   mixq-run generate VARIANT --prompt "..." --max-tokens N --temperature 0
//   mixq-run export   VARIANT RUN_DIR (--peft OUT | --merged OUT)
//   mixq-run importance VARIANT --method entropy|taylor1|taylor2
//                     --data babi:qa1 --samples N --out FILE
//
// VARIANT is a variant directory (manifest.json) or a checkpoint (HF dir or
// llama2.c .bin, optionally with --config). Every command writes the metrics
// JSON (docs/runtime.md) to --metrics FILE, and to stdout with --json.
//
//===----------------------------------------------------------------------===//

#include "mixq/Config/MemoryModel.h"
#include "mixq/Runtime/AdaLoRA.h"
#include "mixq/Runtime/Data.h"
#include "mixq/Runtime/Device.h"
#include "mixq/Runtime/Eval.h"
#include "mixq/Runtime/Export.h"
#include "mixq/Runtime/Generate.h"
#include "mixq/Runtime/Importance.h"
#include "mixq/Runtime/Trainer.h"
#include "mixq/Runtime/Variant.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/WithColor.h"
#include "llvm/Support/raw_ostream.h"

#include <chrono>
#include <malloc.h>

using namespace llvm;
using namespace mixq;
using namespace mixq::runtime;

namespace {

cl::SubCommand finetuneCmd("finetune", "Fine-tune the variant's adapters");
cl::SubCommand evalCmd("eval", "Evaluate multiple-choice tasks / perplexity");
cl::SubCommand generateCmd("generate", "Generate text");
cl::SubCommand exportCmd("export", "Export adapters (PEFT) or a merged model");
cl::SubCommand importanceCmd("importance",
                             "Measure layer / head / channel importance");

cl::OptionCategory cat("mixq-run options");

#define ALL_SUBS                                                               \
  cl::sub(finetuneCmd), cl::sub(evalCmd), cl::sub(generateCmd),                \
      cl::sub(exportCmd), cl::sub(importanceCmd)

cl::list<std::string> positional(cl::Positional, cl::desc("VARIANT [RUN_DIR]"),
                                 ALL_SUBS, cl::cat(cat));
cl::opt<std::string> configPath("config",
                                cl::desc("Config JSON (checkpoint input only)"),
                                ALL_SUBS, cl::cat(cat));
cl::opt<std::string> tokenizerPath("tokenizer", cl::desc("Tokenizer file"),
                                   ALL_SUBS, cl::cat(cat));
cl::opt<std::string> dataDir("data-dir", cl::desc("Shared data directory"),
                             cl::init(MIXQ_DATA_DIR), ALL_SUBS, cl::cat(cat));
cl::opt<std::string> adaptersPath(
    "adapters", cl::desc("Load trained adapters (a run dir or PEFT file)"),
    cl::sub(evalCmd), cl::sub(generateCmd), cl::cat(cat));
cl::opt<std::string> metricsPath("metrics", cl::desc("Write metrics JSON here"),
                                 ALL_SUBS, cl::cat(cat));
cl::opt<bool> printJSON("json", cl::desc("Print the metrics JSON on stdout"),
                        ALL_SUBS, cl::cat(cat));
cl::opt<unsigned> seed("seed", cl::desc("Random seed"), cl::init(0), ALL_SUBS,
                       cl::cat(cat));
cl::opt<int> threads("threads", cl::desc("Kernel threads (0 = default)"),
                     cl::init(0), ALL_SUBS, cl::cat(cat));
cl::opt<bool> quiet("quiet", cl::desc("No progress lines"), ALL_SUBS,
                    cl::cat(cat));
cl::opt<std::string> deviceName(
    "device",
    cl::desc("cpu | cuda | cuda-emu (the CUDA executor on the CPU emulator: "
             "a slow test device); cuda* need a variant directory with "
             "generated kernels"),
    cl::init("cpu"), cl::sub(finetuneCmd), cl::sub(evalCmd),
    cl::sub(generateCmd), cl::cat(cat));

// finetune
cl::opt<std::string> dataSpec("data",
                              cl::desc("babi:qaN | alpaca:FILE | text:FILE"),
                              cl::sub(finetuneCmd), cl::sub(importanceCmd),
                              cl::cat(cat));
cl::opt<int> epochs("epochs", cl::init(1), cl::sub(finetuneCmd), cl::cat(cat));
cl::opt<int> batch("batch", cl::init(16), cl::sub(finetuneCmd), cl::cat(cat));
cl::opt<int> gradAccum("grad-accum", cl::init(1), cl::sub(finetuneCmd),
                       cl::cat(cat));
cl::opt<double> lr("lr", cl::init(3e-3), cl::sub(finetuneCmd), cl::cat(cat));
cl::opt<double> weightDecay("weight-decay", cl::init(0.0),
                            cl::sub(finetuneCmd), cl::cat(cat));
cl::opt<int> warmup("warmup", cl::desc("Warm-up steps"), cl::init(0),
                    cl::sub(finetuneCmd), cl::cat(cat));
cl::opt<std::string> schedule("schedule", cl::desc("constant|linear|cosine"),
                              cl::init("linear"), cl::sub(finetuneCmd),
                              cl::cat(cat));
cl::opt<int> seqLen("seq-len", cl::desc("Packing / truncation length"),
                    cl::init(256), cl::sub(finetuneCmd), cl::sub(importanceCmd),
                    cl::cat(cat));
cl::opt<bool> lossOnPrompt("loss-on-prompt",
                           cl::desc("bAbI/Alpaca: train on prompt tokens too"),
                           cl::sub(finetuneCmd), cl::sub(importanceCmd),
                           cl::cat(cat));
cl::opt<bool> trainNorms("train-norms", cl::desc("Also train RMSNorm weights"),
                         cl::sub(finetuneCmd), cl::cat(cat));
cl::opt<std::string> outDir("out",
                            cl::desc("Run directory (importance: JSON file)"),
                            cl::sub(finetuneCmd), cl::sub(importanceCmd),
                            cl::cat(cat));
cl::opt<bool> resume("resume", cl::desc("Resume from <out>/checkpoint"),
                     cl::sub(finetuneCmd), cl::cat(cat));
cl::opt<int> saveEvery("save-every", cl::desc("Checkpoint every N steps"),
                       cl::init(0), cl::sub(finetuneCmd), cl::cat(cat));
cl::opt<int> stopAfter("stop-after",
                       cl::desc("Stop after N steps (checkpointed), as if "
                                "killed"),
                       cl::init(-1), cl::sub(finetuneCmd), cl::cat(cat));
cl::opt<std::string> evalTasks("eval", cl::desc("Tasks to evaluate after"),
                               cl::sub(finetuneCmd), cl::cat(cat));

// eval
cl::opt<std::string> tasks("task", cl::desc("Comma-separated tasks"),
                           cl::sub(evalCmd), cl::cat(cat));
cl::opt<int> limit("limit", cl::desc("First N items per task"), cl::init(-1),
                   cl::sub(evalCmd), cl::sub(finetuneCmd), cl::cat(cat));
cl::opt<std::string> itemScoresPath(
    "item-scores",
    cl::desc("Write each multiple-choice item's per-choice log-likelihoods "
             "here (JSON: task -> [[ll, ...], ...])"),
    cl::sub(evalCmd), cl::cat(cat));
cl::opt<std::string> bosMode("bos", cl::desc("auto|true|false"),
                             cl::init("auto"), cl::sub(evalCmd),
                             cl::sub(finetuneCmd), cl::cat(cat));

// generate
cl::opt<std::string> prompt("prompt", cl::init(""), cl::sub(generateCmd),
                            cl::cat(cat));
cl::opt<int> maxTokens("max-tokens", cl::init(64), cl::sub(generateCmd),
                       cl::cat(cat));
cl::opt<float> temperature("temperature", cl::init(0.0f),
                           cl::sub(generateCmd), cl::cat(cat));

// export
cl::opt<std::string> peftOut("peft", cl::desc("Write PEFT adapters here"),
                             cl::sub(exportCmd), cl::cat(cat));
cl::opt<std::string> mergedOut("merged", cl::desc("Write a merged HF dir"),
                               cl::sub(exportCmd), cl::cat(cat));

// importance
cl::opt<std::string> importanceMethod("method",
                                      cl::desc("entropy|taylor1|taylor2"),
                                      cl::init("taylor1"),
                                      cl::sub(importanceCmd), cl::cat(cat));
cl::opt<int> samples("samples", cl::desc("Calibration examples (first N)"),
                     cl::init(16), cl::sub(importanceCmd), cl::cat(cat));

/// Shared state of a command.
struct Session {
  MemoryTracker mem;
  std::unique_ptr<Variant> variant;
  std::unique_ptr<Tokenizer> tok;
  std::unique_ptr<Model> model;
  std::shared_ptr<DeviceExecutor> device;
  json::Object metrics;
  std::chrono::steady_clock::time_point start =
      std::chrono::steady_clock::now();
};

/// --device: runs the model's forward / backward on the executor (Device.h).
Error attachDevice(Session &s) {
  auto kind = parseDeviceKind(deviceName);
  if (!kind)
    return kind.takeError();
  if (*kind == DeviceKind::CPU)
    return Error::success();
  if (!sys::fs::is_directory(positional[0]))
    return createStringError(
        inconvertibleErrorCode(),
        formatv("--device {0} needs a variant directory with generated "
                "kernels (mixq-opt --mixq-emit-variant=out=DIR "
                "--mixq-emit-kernels=out=DIR), not the checkpoint '{1}'",
                deviceName, positional[0])
            .str());
  DeviceOptions opts;
  opts.variantDir = positional[0];
  opts.verbose = !quiet;
  auto exec = loadDeviceExecutor(*kind, *s.model, opts);
  if (!exec)
    return exec.takeError();
  s.device = std::move(*exec);
  s.model->attachDevice(s.device);
  s.metrics["device"] = s.device->deviceName();
  return Error::success();
}

Error openSession(Session &s, bool training, StringRef adapters) {
  if (positional.empty())
    return createStringError(inconvertibleErrorCode(),
                             "missing VARIANT (a variant directory or a "
                             "checkpoint)");
  auto v = Variant::open(positional[0], configPath, tokenizerPath);
  if (!v)
    return v.takeError();
  s.variant = std::move(*v);
  if (!adapters.empty())
    if (Error e = s.variant->setAdapterFile(adapters))
      return e;
  auto tok = s.variant->openTokenizer();
  if (!tok)
    return tok.takeError();
  s.tok = std::move(*tok);
  if (s.tok->vocabSize() != s.variant->model().vocabSize)
    return createStringError(
        inconvertibleErrorCode(),
        formatv("tokenizer '{0}' has {1} pieces but the model's vocabulary "
                "is {2}",
                s.variant->tokenizerPath(), s.tok->vocabSize(),
                s.variant->model().vocabSize));
  ModelOptions mo;
  mo.training = training;
  mo.trainNorms = training && trainNorms;
  mo.seed = seed;
  mo.kernel.threads = threads;
  auto m = s.variant->buildModel(s.mem, mo);
  if (!m)
    return m.takeError();
  s.model = std::move(*m);
  if (Error e = attachDevice(s))
    return e;
  s.metrics["variant"] = positional[0];
  s.metrics["trainable_params"] = s.model->numTrainable();
  int64_t quantized = 0;
  for (LinearLayer *lin : s.model->linears())
    quantized += !lin->isDense();
  int64_t pre = s.variant->numPrequantized();
  // Where the quantized bases came from (no quantized linear: "f32").
  s.metrics["weights_source"] = quantized == 0    ? "f32"
                                : pre == 0         ? "quantized_at_load"
                                : pre == quantized ? "prequantized"
                                                   : "mixed";
  return Error::success();
}

std::optional<bool> parseBos() {
  if (bosMode == "true")
    return true;
  if (bosMode == "false")
    return false;
  return std::nullopt;
}

Error runEvalTasks(Session &s, StringRef list, json::Object &acc) {
  SmallVector<StringRef, 8> names;
  list.split(names, ',', -1, false);
  EvalOptions eo;
  eo.limit = limit;
  eo.bos = parseBos();
  eo.progress = !quiet;
  json::Object scores;
  for (StringRef t : names) {
    auto r = runTask(*s.model, *s.tok, t.trim(), dataDir, eo);
    if (!r)
      return r.takeError();
    acc[r->task] = r->toJSON();
    if (!r->isPerplexity) {
      json::Array items;
      for (const std::vector<double> &ll : r->itemScores)
        items.push_back(json::Array(ll));
      scores[r->task] = std::move(items);
    }
    if (!quiet)
      errs() << formatv("{0}: n={1} acc={2:F4} acc_norm={3:F4}\n", r->task,
                        r->count, r->acc, r->accNorm);
  }
  if (!itemScoresPath.empty()) {
    std::error_code ec;
    raw_fd_ostream os(itemScoresPath, ec);
    if (ec)
      return createStringError(ec, "cannot write '%s': %s",
                               itemScoresPath.c_str(), ec.message().c_str());
    os << formatv("{0:2}", json::Value(std::move(scores))) << "\n";
  }
  return Error::success();
}

Error finishMetrics(Session &s, StringRef defaultPath) {
  s.metrics["wall_s"] = std::chrono::duration<double>(
                            std::chrono::steady_clock::now() - s.start)
                            .count();
  if (!s.metrics.get("peak_bytes"))
    s.metrics["peak_bytes"] = s.mem.peakJSON();
  if (s.device)
    s.metrics["device_peak_bytes"] = s.device->memory().peakJSON();
  json::Value v(std::move(s.metrics));
  std::string path = metricsPath.empty() ? defaultPath.str() : metricsPath;
  if (!path.empty()) {
    std::error_code ec;
    raw_fd_ostream os(path, ec);
    if (ec)
      return createStringError(ec, "cannot write '%s': %s", path.c_str(),
                               ec.message().c_str());
    os << formatv("{0:2}", v) << "\n";
  }
  if (printJSON)
    outs() << formatv("{0:2}", v) << "\n";
  return Error::success();
}

/// The static estimate of the fine-tune's peak: the largest estimate over
/// the micro-batches the run executed (their real packed shapes). Sets
/// `shape` to the micro-batch it came from.
MemoryBreakdown estimateFor(Session &s, ArrayRef<MicroBatchShape> batches,
                            MicroBatchShape &shape) {
  const VariantConfig *vc = s.variant->config();
  auto spec = [&](int64_t layer, StringRef role) -> LinearSpec {
    if (!vc || (layer < 0 && !vc->configures(layer, role)))
      return LinearSpec{};
    auto r = vc->resolve(layer, role);
    if (!r) {
      consumeError(r.takeError());
      return LinearSpec{};
    }
    return *r;
  };
  MemoryBreakdown best;
  for (const MicroBatchShape &b : batches) {
    MemoryOptions mo;
    mo.seqLens = b.seqLens;
    mo.lossTokens = b.lossTokens;
    mo.trainNorms = trainNorms;
    MemoryBreakdown m = estimateFineTuneMemory(s.variant->model(), spec, mo);
    if (m.total() > best.total()) {
      best = m;
      shape = b;
    }
  }
  return best;
}

/// Writes the PEFT adapters; QA-BLoRA linears, which have no PEFT form, are
/// left out with a warning naming them and listed in the metrics'
/// "peft_left_out". With no PEFT-able adapter at all, an error if
/// `required`, else only the warning.
Error exportPeft(Session &s, StringRef dir, bool required) {
  std::vector<std::string> leftOut;
  Error e = writePeftAdapters(*s.model, dir, s.variant->path(), &leftOut);
  json::Array names;
  for (const std::string &n : leftOut)
    names.push_back(n);
  s.metrics["peft_left_out"] = std::move(names);
  if (!leftOut.empty())
    WithColor::warning(errs(), "mixq-run")
        << "QA-BLoRA has no PEFT form: " << leftOut.size()
        << " linear(s) left out of the PEFT adapters in '" << dir
        << "': " << join(leftOut, ", ")
        << " (the run directory's adapters.safetensors holds them; "
           "'mixq-run export --merged' folds them into the weights)\n";
  if (e && !required && !leftOut.empty()) {
    consumeError(std::move(e));
    return Error::success();
  }
  return e;
}

/// The --data set, tokenised for the session's model (--seq-len,
/// --loss-on-prompt).
Expected<std::vector<Example>> loadCliTrainingSet(Session &s) {
  DataOptions dopt;
  dopt.seqLen = std::min<int64_t>(seqLen, s.variant->model().maxSeqLen);
  dopt.lossOnPrompt = lossOnPrompt;
  return loadTrainingSet(dataSpec, dataDir, *s.tok, dopt);
}

Error runFinetune() {
  if (dataSpec.empty() || outDir.empty())
    return createStringError(inconvertibleErrorCode(),
                             "finetune needs --data and --out");
  Session s;
  if (Error e = openSession(s, /*training=*/true, ""))
    return e;
  auto data = loadCliTrainingSet(s);
  if (!data)
    return data.takeError();
  auto sched = parseLRSchedule(schedule);
  if (!sched)
    return sched.takeError();
  TrainOptions to;
  to.epochs = epochs;
  to.batch = batch;
  to.gradAccum = gradAccum;
  to.lr = lr;
  to.weightDecay = weightDecay;
  to.warmupSteps = warmup;
  to.schedule = *sched;
  to.seed = seed;
  to.stopAfter = stopAfter;
  to.saveEvery = saveEvery;
  to.outDir = outDir;
  to.resume = resume;
  to.progress = !quiet;
  s.mem.resetPeak();
  auto res = train(*s.model, *data, to);
  if (!res)
    return res.takeError();
  s.metrics["peak_bytes"] = s.mem.peakJSON();
  MicroBatchShape shape;
  MemoryBreakdown est = estimateFor(
      s, plannedMicroBatches(*data, to, res->firstStep, res->steps), shape);
  int64_t estTotal = est.total(), tokens = 0, longest = 0;
  for (int64_t len : shape.seqLens) {
    tokens += len;
    longest = std::max(longest, len);
  }
  s.metrics["estimated_peak_bytes"] = estTotal;
  s.metrics["estimated_peak_bytes_by_category"] = est.toJSON();
  s.metrics["estimate_batch"] =
      json::Object{{"sequences", int64_t(shape.seqLens.size())},
                   {"tokens", tokens},
                   {"max_len", longest},
                   {"loss_tokens", shape.lossTokens}};
  s.metrics["estimate_seq_len"] = longest;
  if (estTotal > 0)
    s.metrics["peak_over_estimate"] =
        double(s.mem.peakTotal()) / double(estTotal);
  json::Array loss;
  for (double l : res->losses)
    loss.push_back(l);
  s.metrics["loss"] = std::move(loss);
  s.metrics["steps"] = res->steps;
  s.metrics["total_steps"] = res->totalSteps;
  s.metrics["finished"] = res->finished;
  s.metrics["examples"] = int64_t(data->size());
  s.metrics["train_wall_s"] = res->wallS;
  s.metrics["tokens_per_s"] =
      res->wallS > 0 ? double(res->tokens) / res->wallS : 0.0;
  if (json::Object ada = adaloraMetrics(*s.model); !ada.empty())
    s.metrics["adalora"] = std::move(ada);
  SmallString<256> native(outDir);
  sys::path::append(native, "adapters.safetensors");
  if (Error e = writeNativeAdapters(*s.model, native))
    return e;
  if (Error e = exportPeft(s, outDir, /*required=*/false))
    return e;
  json::Object acc;
  if (!evalTasks.empty() && res->finished)
    if (Error e = runEvalTasks(s, evalTasks, acc))
      return e;
  s.metrics["accuracy"] = std::move(acc);
  SmallString<256> mp(outDir);
  sys::path::append(mp, "metrics.json");
  return finishMetrics(s, mp);
}

Error runEval() {
  if (tasks.empty())
    return createStringError(inconvertibleErrorCode(), "eval needs --task");
  Session s;
  if (Error e = openSession(s, /*training=*/false, adaptersPath))
    return e;
  json::Object acc;
  if (Error e = runEvalTasks(s, tasks, acc))
    return e;
  s.metrics["accuracy"] = std::move(acc);
  return finishMetrics(s, "");
}

Error runGenerate() {
  Session s;
  if (Error e = openSession(s, /*training=*/false, adaptersPath))
    return e;
  std::vector<int> ids = s.tok->encode(prompt, /*bos=*/true);
  if (prompt.empty())
    ids = {s.tok->bosId()};
  GenerateOptions go;
  go.maxTokens = maxTokens;
  go.temperature = temperature;
  Rng rng(seed);
  auto t0 = std::chrono::steady_clock::now();
  std::vector<int> out = generate(*s.model, ids, go, rng);
  double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
          .count();
  std::vector<int> all = ids;
  all.insert(all.end(), out.begin(), out.end());
  std::string text = s.tok->decode(all);
  if (!printJSON)
    outs() << text << "\n";
  s.metrics["text"] = text;
  s.metrics["generated_tokens"] = int64_t(out.size());
  s.metrics["tokens_per_s"] = secs > 0 ? double(out.size()) / secs : 0.0;
  return finishMetrics(s, "");
}

Error runExport() {
  if (positional.size() != 2 || (peftOut.empty() && mergedOut.empty()))
    return createStringError(inconvertibleErrorCode(),
                             "usage: mixq-run export VARIANT RUN_DIR "
                             "(--peft OUT | --merged OUT)");
  Session s;
  if (Error e = openSession(s, /*training=*/false, positional[1]))
    return e;
  if (!peftOut.empty())
    if (Error e = exportPeft(s, peftOut, /*required=*/true))
      return e;
  if (!mergedOut.empty())
    if (Error e = writeMergedModel(*s.model, mergedOut))
      return e;
  return finishMetrics(s, "");
}

Error runImportance() {
  if (dataSpec.empty() || outDir.empty())
    return createStringError(inconvertibleErrorCode(),
                             "importance needs --data and --out");
  auto method = parseImportanceMethod(importanceMethod);
  if (!method)
    return method.takeError();
  Session s;
  // Training mode: exact input gradients through any adapters.
  if (Error e = openSession(s, /*training=*/true, ""))
    return e;
  auto data = loadCliTrainingSet(s);
  if (!data)
    return data.takeError();
  ImportanceOptions io;
  io.method = *method;
  io.samples = samples;
  io.progress = !quiet;
  auto res = measureImportance(*s.model, *data, io);
  if (!res)
    return res.takeError();
  if (Error e = writeImportance(*res, outDir))
    return e;
  s.metrics["importance_method"] = importanceMethodName(res->method);
  s.metrics["samples"] = res->samples;
  s.metrics["tokens"] = res->tokens;
  json::Array imp;
  for (double x : res->importance())
    imp.push_back(x);
  s.metrics["importance"] = std::move(imp);
  return finishMetrics(s, "");
}

} // namespace

int main(int argc, char **argv) {
  InitLLVM x(argc, argv);
  // Step buffers are freed and reallocated every step: keep them in the heap
  // instead of fresh mmap'ed (page-faulting) memory each time.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
  cl::HideUnrelatedOptions(cat);
  cl::ParseCommandLineOptions(argc, argv,
                              "mixq-run: fine-tune, evaluate, generate and "
                              "export a MixQ variant on the CPU\n");
  Error err = Error::success();
  if (finetuneCmd)
    err = runFinetune();
  else if (evalCmd)
    err = runEval();
  else if (generateCmd)
    err = runGenerate();
  else if (exportCmd)
    err = runExport();
  else if (importanceCmd)
    err = runImportance();
  else {
    cl::PrintHelpMessage();
    return 1;
  }
  if (err) {
    WithColor::error(errs(), "mixq-run") << toString(std::move(err)) << "\n";
    return 1;
  }
  return 0;
}
