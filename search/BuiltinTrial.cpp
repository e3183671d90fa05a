//===- BuiltinTrial.cpp - compile, fine-tune and evaluate a trial in process -*- C++ -*-===//

#include "mixq/Search/BuiltinTrial.h"

#include "mixq/CodeGen/Passes.h"
#include "mixq/Import/Checkpoint.h"
#include "mixq/Import/ImportMLIR.h"
#include "mixq/Runtime/Data.h"
#include "mixq/Runtime/Device.h"
#include "mixq/Runtime/Eval.h"
#include "mixq/Runtime/Export.h"
#include "mixq/Runtime/Trainer.h"
#include "mixq/Runtime/Variant.h"
#include "mixq/Support/FileUtils.h"
#include "mixq/Transforms/Passes.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Pass/PassManager.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

using namespace mixq::search;
using llvm::json::Array;
using llvm::json::Object;
using llvm::json::Value;

namespace {

llvm::Error trialError(const llvm::Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), msg.str());
}

std::string readTail(llvm::StringRef path, size_t maxBytes) {
  auto buf = llvm::MemoryBuffer::getFile(path, /*IsText=*/true);
  if (!buf)
    return "";
  llvm::StringRef t = (*buf)->getBuffer().rtrim();
  if (t.size() > maxBytes)
    t = t.take_back(maxBytes);
  return t.str();
}

std::string joinPath(llvm::StringRef a, llvm::StringRef b) {
  llvm::SmallString<256> p(a);
  llvm::sys::path::append(p, b);
  return p.str().str();
}

} // namespace

//===----------------------------------------------------------------------===//
// ForkedObjective
//===----------------------------------------------------------------------===//

llvm::Expected<std::string> ForkedObjective::runForked(
    llvm::StringRef dir, llvm::StringRef resultName,
    llvm::function_ref<llvm::Expected<std::string>()> work,
    KeepAlive keepAlive) {
  std::string logPath = joinPath(dir, "trial.log");
  std::string resultPath = joinPath(dir, resultName);
  // Nothing buffered may be written twice (once by each process).
  llvm::outs().flush();
  llvm::errs().flush();
  std::fflush(nullptr);
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0)
    return trialError(llvm::Twine("cannot fork the trial process: ") +
                      std::strerror(errno));
  if (pid == 0) {
    // The child: its own process group (the parent kills the group), dies
    // with the parent (also on kill -9), stdout and stderr to the log.
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
      _exit(125);
    int log = open(logPath.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int in = open("/dev/null", O_RDONLY);
    if (log < 0 || in < 0)
      _exit(126);
    dup2(in, 0);
    dup2(log, 1);
    dup2(log, 2);
    int code = 0;
    llvm::Expected<std::string> result = work();
    if (!result) {
      llvm::errs() << "error: " << llvm::toString(result.takeError()) << "\n";
      code = 1;
    } else if (llvm::Error e = mixq::writeFileAtomically(
                   resultPath,
                   [&](llvm::raw_ostream &os) { os << *result << "\n"; })) {
      llvm::errs() << "error: " << llvm::toString(std::move(e)) << "\n";
      code = 1;
    }
    llvm::outs().flush();
    llvm::errs().flush();
    _exit(code);
  }
  setpgid(pid, pid); // also done by the child; whichever runs first
  auto killChild = [&] {
    kill(-pid, SIGKILL);
    kill(pid, SIGKILL);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
  };
  double start = nowSeconds();
  int status = 0;
  auto pause = std::chrono::milliseconds(2);
  while (true) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid)
      break;
    if (r < 0 && errno != EINTR)
      return trialError(llvm::Twine("lost the trial process: ") +
                        std::strerror(errno));
    if (timeout > 0 && nowSeconds() - start > timeout) {
      killChild();
      return trialError(llvm::formatv("trial timed out after {0:f1}s "
                                      "(killed); log: {1}",
                                      timeout, readTail(logPath, 2000)));
    }
    if (!keepAlive()) {
      killChild();
      return trialError("abandoned: the trial was taken from this worker");
    }
    std::this_thread::sleep_for(pause);
    if (pause < std::chrono::milliseconds(100))
      pause *= 2;
  }
  kill(-pid, SIGKILL); // anything the child left in its group
  if (WIFSIGNALED(status))
    return trialError(llvm::formatv("trial process killed by signal {0} "
                                    "({1}); log: {2}",
                                    WTERMSIG(status),
                                    strsignal(WTERMSIG(status)),
                                    readTail(logPath, 2000)));
  if (WEXITSTATUS(status) != 0)
    return trialError(llvm::formatv("trial process exited with status {0}; "
                                    "log: {1}",
                                    WEXITSTATUS(status),
                                    readTail(logPath, 2000)));
  auto buf = llvm::MemoryBuffer::getFile(resultPath, /*IsText=*/true);
  if (!buf)
    return trialError("the trial process succeeded but wrote no " +
                      resultPath + ": " + buf.getError().message());
  return (*buf)->getBuffer().str();
}

TrialOutcome ForkedObjective::evaluate(const TrialRequest &req,
                                       KeepAlive keepAlive) {
  TrialOutcome out;
  std::string dir =
      joinPath(workDir, llvm::sys::path::stem(req.configPath));
  // A retried or re-run trial starts from an empty directory.
  if (std::error_code ec = llvm::sys::fs::remove_directories(dir);
      ec && ec != std::errc::no_such_file_or_directory) {
    out.error = "cannot clear the trial directory " + dir + ": " + ec.message();
    return out;
  }
  if (std::error_code ec = llvm::sys::fs::create_directories(dir)) {
    out.error = "cannot create the trial directory " + dir + ": " +
                ec.message();
    return out;
  }
  auto text = runForked(
      dir, "metrics.json", [&] { return runTrial(req, dir); }, keepAlive);
  if (!text) {
    out.error = llvm::toString(text.takeError());
    return out;
  }
  return outcomeFromMetrics(*text, "metrics of trial " +
                                       std::to_string(req.number) + " (" +
                                       joinPath(dir, "metrics.json") + ")");
}

//===----------------------------------------------------------------------===//
// TrialRecipe
//===----------------------------------------------------------------------===//

Value TrialRecipe::toJSON() const {
  Array t;
  for (const std::string &s : tasks)
    t.push_back(s);
  Object o{{"checkpoint", checkpoint},
            {"tokenizer", tokenizer},
            {"data_dir", dataDir},
            {"tasks", std::move(t)},
            {"train_data", trainData},
            {"epochs", epochs},
            {"batch", batch},
            {"lr", lr},
            {"seed", static_cast<int64_t>(seed)},
            {"train_limit", trainLimit},
            {"eval_limit", evalLimit},
            {"seq_len", seqLen},
            {"threads", threads}};
  // "cpu" is left out, so the recipes of studies made before the option
  // compare equal.
  if (device != "cpu")
    o["device"] = device;
  return o;
}

llvm::Expected<TrialRecipe> TrialRecipe::fromJSON(const Value &v,
                                                  llvm::StringRef origin) {
  TrialRecipe r;
  llvm::json::Path::Root root;
  llvm::json::ObjectMapper m(v, root);
  int64_t seed = 0;
  bool ok = m && m.map("checkpoint", r.checkpoint) &&
            m.mapOptional("tokenizer", r.tokenizer) &&
            m.mapOptional("data_dir", r.dataDir) &&
            m.map("tasks", r.tasks) &&
            m.mapOptional("train_data", r.trainData) &&
            m.mapOptional("epochs", r.epochs) &&
            m.mapOptional("batch", r.batch) && m.mapOptional("lr", r.lr) &&
            m.mapOptional("seed", seed) &&
            m.mapOptional("train_limit", r.trainLimit) &&
            m.mapOptional("eval_limit", r.evalLimit) &&
            m.mapOptional("seq_len", r.seqLen) &&
            m.mapOptional("threads", r.threads) &&
            m.mapOptional("device", r.device);
  if (!ok)
    return trialError(origin + ": bad trial recipe: " +
                      llvm::toString(root.getError()));
  if (auto kind = mixq::runtime::parseDeviceKind(r.device); !kind)
    return trialError(origin + ": bad trial recipe: " +
                      llvm::toString(kind.takeError()));
  r.seed = static_cast<uint64_t>(seed);
  return r;
}

//===----------------------------------------------------------------------===//
// BuiltinTrial
//===----------------------------------------------------------------------===//

struct BuiltinTrial::Impl {
  // No thread pool: the worker forks with the context alive.
  mlir::MLIRContext ctx{mlir::MLIRContext::Threading::DISABLED};
  mlir::OwningOpRef<mlir::ModuleOp> module;
};

BuiltinTrial::BuiltinTrial(TrialRecipe recipe, std::string workDir,
                           double timeout, std::unique_ptr<Impl> impl)
    : ForkedObjective(std::move(workDir), timeout), recipe(std::move(recipe)),
      impl(std::move(impl)) {}

BuiltinTrial::~BuiltinTrial() = default;

std::string BuiltinTrial::describe() const {
  char lr[32];
  std::snprintf(lr, sizeof(lr), "%g", recipe.lr);
  return llvm::formatv("built-in trial: {0}, train {1} ({2} epochs, batch "
                       "{3}, lr {4}), evaluate {5}",
                       recipe.checkpoint,
                       recipe.trainData.empty() ? recipe.tasks.front()
                                                : recipe.trainData,
                       recipe.epochs, recipe.batch, lr,
                       llvm::join(recipe.tasks, ","))
      .str();
}

llvm::Expected<std::unique_ptr<BuiltinTrial>>
BuiltinTrial::create(TrialRecipe recipe, std::string workDir,
                     double timeoutSeconds) {
  if (recipe.tasks.empty())
    return trialError("the built-in trial needs at least one task");
  for (const std::string &t : recipe.tasks)
    if (llvm::StringRef(t).starts_with("ppl:"))
      return trialError("task '" + t + "' is a perplexity task; the search "
                        "needs accuracy (multiple-choice or bAbI tasks)");
  if (recipe.epochs < 1 || recipe.batch < 1 || !(recipe.lr > 0) ||
      recipe.seqLen < 2)
    return trialError("the trial recipe needs epochs >= 1, batch >= 1, "
                      "lr > 0 and seq-len >= 2");
  if (recipe.trainLimit == 0 || recipe.evalLimit == 0)
    return trialError("--train-limit and --limit must be positive (or -1 "
                      "for all)");
  if (auto kind = mixq::runtime::parseDeviceKind(recipe.device); !kind)
    return kind.takeError();
  auto ckpt = mixq::Checkpoint::open(recipe.checkpoint);
  if (!ckpt)
    return ckpt.takeError();
  auto impl = std::make_unique<Impl>();
  std::string diag;
  {
    mlir::ScopedDiagnosticHandler h(&impl->ctx, [&](mlir::Diagnostic &d) {
      diag += d.str() + "\n";
      return mlir::success();
    });
    impl->module = mixq::importCheckpoint(impl->ctx, **ckpt);
  }
  if (!impl->module)
    return trialError(recipe.checkpoint + ": the imported module does not "
                      "verify: " + diag);
  if (std::error_code ec = llvm::sys::fs::create_directories(workDir))
    return trialError("cannot create the work directory " + workDir + ": " +
                      ec.message());
  return std::unique_ptr<BuiltinTrial>(
      new BuiltinTrial(std::move(recipe), std::move(workDir), timeoutSeconds,
                       std::move(impl)));
}

llvm::Error BuiltinTrial::emitVariant(llvm::StringRef configPath,
                                      llvm::StringRef out) {
  mlir::OwningOpRef<mlir::ModuleOp> module = impl->module->clone();
  std::string diag;
  mlir::ScopedDiagnosticHandler h(&impl->ctx, [&](mlir::Diagnostic &d) {
    diag += d.str() + "\n";
    return mlir::success();
  });
  mlir::PassManager pm(&impl->ctx);
  mixq::MixQAssignConfigPassOptions assign;
  assign.config = configPath.str();
  pm.addPass(mixq::createMixQAssignConfigPass(assign));
  mixq::MixQEmitVariantPassOptions emit;
  emit.out = out.str();
  pm.addPass(mixq::createMixQEmitVariantPass(emit));
  if (recipe.device != "cpu") {
    // The CUDA executor runs the variant's generated kernels.
    mixq::MixQEmitKernelsPassOptions kernels;
    kernels.out = out.str();
    pm.addPass(mixq::createMixQEmitKernelsPass(kernels));
  }
  if (mlir::failed(pm.run(*module)))
    return trialError("compiling " + configPath + " failed: " +
                      llvm::StringRef(diag).rtrim());
  return llvm::Error::success();
}

llvm::Expected<std::string> BuiltinTrial::runTrial(const TrialRequest &req,
                                                   llvm::StringRef dir) {
  using namespace mixq::runtime;
  auto start = std::chrono::steady_clock::now();
  std::string variantDir = joinPath(dir, "variant");
  if (llvm::Error e = emitVariant(req.configPath, variantDir))
    return std::move(e);
  auto variant = Variant::open(variantDir, "", recipe.tokenizer);
  if (!variant)
    return variant.takeError();
  const Variant &v = **variant;
  auto tok = v.openTokenizer();
  if (!tok)
    return tok.takeError();
  if ((*tok)->vocabSize() != v.model().vocabSize)
    return trialError(llvm::formatv("tokenizer '{0}' has {1} pieces but the "
                                    "model's vocabulary is {2}",
                                    v.tokenizerPath(), (*tok)->vocabSize(),
                                    v.model().vocabSize));
  MemoryTracker mem;
  ModelOptions mo;
  mo.training = true;
  mo.seed = recipe.seed;
  mo.kernel.threads = recipe.threads;
  auto model = v.buildModel(mem, mo);
  if (!model)
    return model.takeError();
  // --device: fine-tune (forward / backward) and evaluation on the executor.
  auto kind = parseDeviceKind(recipe.device);
  if (!kind)
    return kind.takeError();
  std::shared_ptr<DeviceExecutor> device;
  if (*kind != DeviceKind::CPU) {
    DeviceOptions dopts;
    dopts.variantDir = variantDir;
    auto exec = loadDeviceExecutor(*kind, **model, dopts);
    if (!exec)
      return exec.takeError();
    device = std::move(*exec);
    (*model)->attachDevice(device);
  }
  DataOptions dopt;
  dopt.seqLen = std::min<int64_t>(recipe.seqLen, v.model().maxSeqLen);
  std::string trainSpec =
      recipe.trainData.empty() ? recipe.tasks.front() : recipe.trainData;
  auto data = loadTrainingSet(trainSpec, recipe.dataDir, **tok, dopt);
  if (!data)
    return data.takeError();
  if (recipe.trainLimit > 0 && int64_t(data->size()) > recipe.trainLimit)
    data->resize(recipe.trainLimit);
  if (data->empty())
    return trialError("no training examples in '" + trainSpec + "'");
  TrainOptions to;
  to.epochs = recipe.epochs;
  to.batch = recipe.batch;
  to.lr = recipe.lr;
  to.seed = recipe.seed;
  to.progress = false;
  mem.resetPeak();
  auto res = train(**model, *data, to);
  if (!res)
    return res.takeError();

  Object metrics;
  metrics["variant"] = variantDir;
  metrics["trial"] = req.number;
  metrics["trainable_params"] = (*model)->numTrainable();
  metrics["peak_bytes"] = mem.peakJSON();
  Array loss;
  for (double l : res->losses)
    loss.push_back(l);
  metrics["loss"] = std::move(loss);
  metrics["steps"] = res->steps;
  metrics["examples"] = int64_t(data->size());
  metrics["train_wall_s"] = res->wallS;
  metrics["tokens_per_s"] =
      res->wallS > 0 ? double(res->tokens) / res->wallS : 0.0;
  if (llvm::Error e =
          writePeftAdapters(**model, joinPath(dir, "adapter"), v.path()))
    return std::move(e);

  Object acc;
  EvalOptions eo;
  eo.limit = recipe.evalLimit;
  for (const std::string &task : recipe.tasks) {
    auto r = runTask(**model, **tok, task, recipe.dataDir, eo);
    if (!r)
      return r.takeError();
    acc[r->task] = r->toJSON();
  }
  metrics["accuracy"] = std::move(acc);
  if (device) {
    metrics["device"] = device->deviceName();
    metrics["device_peak_bytes"] = device->memory().peakJSON();
  }
  metrics["wall_s"] =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  return llvm::formatv("{0}", Value(std::move(metrics))).str();
}
