//===- mixq-search.cpp - the MixQ search driver ------------------*- C++ -*-===//
//
//   mixq-search run --study sqlite:///tmp/s.db --space space.json \
//       --objective-cmd "python3 objective.py" --strategy qr-adaptor \
//       --trials 50
//   mixq-search report --study sqlite:///tmp/s.db --json
//
//===----------------------------------------------------------------------===//

#include "mixq/Search/BuiltinTrial.h"
#include "mixq/Search/Driver.h"
#include "mixq/Search/Report.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/WithColor.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdio>
#include <unistd.h>

using namespace mixq::search;
namespace cl = llvm::cl;

static cl::SubCommand runCmd("run", "Run (or resume) a search study as one "
                                    "worker");
static cl::SubCommand reportCmd("report", "Report on a study: Pareto front, "
                                          "hypervolume, plot, chosen config");
static cl::OptionCategory cat("mixq-search options");

// Shared.
static cl::opt<std::string> studyURL("study", cl::desc("Study database: "
                                     "sqlite:///path.db or postgresql://..."),
                                     cl::sub(runCmd), cl::sub(reportCmd),
                                     cl::Required, cl::cat(cat));
static cl::opt<std::string> studyName("name", cl::desc("Study name"),
                                      cl::init("default"), cl::sub(runCmd),
                                      cl::sub(reportCmd), cl::cat(cat));
static cl::opt<int> busyTimeout("busy-timeout",
                                cl::desc("Milliseconds to wait for a locked "
                                         "SQLite database"),
                                cl::init(10000), cl::sub(runCmd),
                                cl::sub(reportCmd), cl::cat(cat));
static cl::opt<double> lambdaOpt("lambda",
                                 cl::desc("AutoMixQ trade-off: argmin M - "
                                          "lambda P (normalised)"),
                                 cl::init(1.0), cl::sub(runCmd),
                                 cl::sub(reportCmd), cl::cat(cat));
static cl::opt<double> alphaOpt("alpha",
                                cl::desc("QR-Adaptor weight of z(P) in alpha "
                                         "z(P) - (1 - alpha) z(M)"),
                                cl::init(0.5), cl::sub(runCmd),
                                cl::sub(reportCmd), cl::cat(cat));

// run.
static cl::opt<std::string> spaceFile("space", cl::desc("Search space JSON"),
                                      cl::sub(runCmd), cl::cat(cat));
static cl::opt<std::string> modelDir("model",
                                     cl::desc("Hugging Face model directory "
                                              "(its layers form the space)"),
                                     cl::sub(runCmd), cl::cat(cat));
static cl::list<int64_t> bitsOpt("bits", cl::desc("Bit-widths with --model"),
                                 cl::CommaSeparated, cl::sub(runCmd),
                                 cl::cat(cat));
static cl::list<int64_t> ranksOpt("ranks", cl::desc("Ranks with --model"),
                                  cl::CommaSeparated, cl::sub(runCmd),
                                  cl::cat(cat));
static cl::opt<std::string> objectiveCmd(
    "objective-cmd",
    cl::desc("External objective: run as CMD <config.json>, prints metrics "
             "JSON"),
    cl::sub(runCmd), cl::cat(cat));
static cl::opt<std::string> strategyName(
    "strategy",
    cl::desc("uniform | random | exhaustive | automixq | qr-adaptor"),
    cl::init("random"), cl::sub(runCmd), cl::cat(cat));
static cl::opt<int64_t> trialsOpt("trials", cl::desc("Trial budget of the "
                                                     "study"),
                                  cl::init(50), cl::sub(runCmd), cl::cat(cat));
static cl::opt<uint64_t> seedOpt("seed", cl::desc("Random seed"), cl::init(0),
                                 cl::sub(runCmd), cl::cat(cat));
static cl::opt<double> timeoutOpt("timeout",
                                  cl::desc("Seconds before an objective is "
                                           "killed (0: never)"),
                                  cl::init(0), cl::sub(runCmd), cl::cat(cat));
static cl::opt<double> heartbeatOpt("heartbeat",
                                    cl::desc("Heartbeat period in seconds"),
                                    cl::init(2.0), cl::sub(runCmd),
                                    cl::cat(cat));
static cl::opt<double> staleOpt("stale-after",
                                cl::desc("Seconds without heartbeat before a "
                                         "running trial is retried"),
                                cl::init(60.0), cl::sub(runCmd), cl::cat(cat));
static cl::opt<double> pollOpt("poll",
                               cl::desc("Seconds between checks while other "
                                        "workers' trials run"),
                               cl::init(0.25), cl::sub(runCmd), cl::cat(cat));
static cl::opt<std::string> workerId("worker-id", cl::desc("Worker id "
                                                           "(default "
                                                           "host:pid)"),
                                     cl::sub(runCmd), cl::cat(cat));
static cl::opt<std::string> configDir("config-dir",
                                      cl::desc("Where the trials' config "
                                               "JSON files are written"),
                                      cl::sub(runCmd), cl::cat(cat));
static cl::opt<int64_t> workerTrials("worker-trials",
                                     cl::desc("Stop this worker after N "
                                              "trials (-1: no limit)"),
                                     cl::init(-1), cl::sub(runCmd),
                                     cl::cat(cat));
static cl::opt<bool> quiet("quiet", cl::desc("No progress lines"),
                           cl::sub(runCmd), cl::cat(cat));
static cl::list<std::string> enqueueFiles(
    "enqueue", cl::desc("Config JSON to evaluate first (repeatable)"),
    cl::sub(runCmd), cl::cat(cat));
static cl::opt<int> initOpt("init", cl::desc("AutoMixQ: initial random "
                                             "configurations"),
                            cl::init(10), cl::sub(runCmd), cl::cat(cat));
static cl::opt<int> patienceOpt("patience",
                                cl::desc("AutoMixQ: stop when the front is "
                                         "unchanged this many steps"),
                                cl::init(5), cl::sub(runCmd), cl::cat(cat));
static cl::opt<int> candidatesOpt("candidates",
                                  cl::desc("AutoMixQ: candidates per step"),
                                  cl::init(2000), cl::sub(runCmd),
                                  cl::cat(cat));
static cl::opt<double> kappaOpt("kappa",
                                cl::desc("AutoMixQ: P scored as mean + kappa "
                                         "sigma"),
                                cl::init(1.0), cl::sub(runCmd), cl::cat(cat));
static cl::list<int> stagesOpt("stages",
                               cl::desc("QR-Adaptor stages, e.g. 1,2,3 or 2,3"),
                               cl::CommaSeparated, cl::sub(runCmd),
                               cl::cat(cat));
static cl::opt<int> populationOpt("population",
                                  cl::desc("QR-Adaptor PRGA population"),
                                  cl::init(5), cl::sub(runCmd), cl::cat(cat));
static cl::opt<int> generationsOpt("generations",
                                   cl::desc("QR-Adaptor PRGA generations"),
                                   cl::init(5), cl::sub(runCmd), cl::cat(cat));
static cl::opt<int> offspringOpt("offspring",
                                 cl::desc("QR-Adaptor children per "
                                          "generation"),
                                 cl::init(5), cl::sub(runCmd), cl::cat(cat));
static cl::opt<int> localOpt("local-candidates",
                             cl::desc("QR-Adaptor BO local-search "
                                      "candidates"),
                             cl::init(500), cl::sub(runCmd), cl::cat(cat));
static cl::opt<int> boInitOpt("bo-init",
                              cl::desc("QR-Adaptor BO random starts when "
                                       "stage 2 is off"),
                              cl::init(3), cl::sub(runCmd), cl::cat(cat));
static cl::opt<std::string> importanceFile(
    "importance",
    cl::desc("QR-Adaptor per-layer importance: a JSON file, or 'auto' to "
             "measure it (built-in trial); default uniform"),
    cl::sub(runCmd), cl::cat(cat));
static cl::opt<int64_t> importanceSamples(
    "importance-samples",
    cl::desc("Training examples the importance is measured on"),
    cl::init(64), cl::sub(runCmd), cl::cat(cat));

// The built-in trial's recipe (used when --objective-cmd is absent).
static cl::OptionCategory trialCat("built-in trial options (without "
                                   "--objective-cmd)");
static cl::list<std::string> taskOpt(
    "task", cl::desc("Tasks to evaluate, comma-separated (default babi:qa1)"),
    cl::CommaSeparated, cl::sub(runCmd), cl::cat(trialCat));
static cl::opt<std::string> trainDataOpt(
    "train-data",
    cl::desc("Fine-tuning data: babi:qaN | alpaca:FILE | text:FILE (default: "
             "the first task)"),
    cl::sub(runCmd), cl::cat(trialCat));
static cl::opt<int64_t> epochsOpt("epochs", cl::desc("Fine-tuning epochs"),
                                  cl::init(1), cl::sub(runCmd),
                                  cl::cat(trialCat));
static cl::opt<int64_t> batchOpt("batch", cl::desc("Sequences per step"),
                                 cl::init(16), cl::sub(runCmd),
                                 cl::cat(trialCat));
static cl::opt<double> lrOpt("lr", cl::desc("Learning rate"), cl::init(3e-3),
                             cl::sub(runCmd), cl::cat(trialCat));
static cl::opt<uint64_t> trainSeedOpt(
    "train-seed", cl::desc("Seed of adapter init, shuffling and dropout"),
    cl::init(0), cl::sub(runCmd), cl::cat(trialCat));
static cl::opt<int64_t> trainLimitOpt(
    "train-limit", cl::desc("First N training examples (-1: all)"),
    cl::init(-1), cl::sub(runCmd), cl::cat(trialCat));
static cl::opt<int64_t> evalLimitOpt(
    "limit", cl::desc("First N evaluation items per task (-1: all)"),
    cl::init(100), cl::sub(runCmd), cl::cat(trialCat));
static cl::opt<int64_t> seqLenOpt("seq-len",
                                  cl::desc("Packing / truncation length"),
                                  cl::init(256), cl::sub(runCmd),
                                  cl::cat(trialCat));
static cl::opt<int> threadsOpt("threads",
                               cl::desc("Kernel threads per trial (0: "
                                        "runtime default)"),
                               cl::init(0), cl::sub(runCmd),
                               cl::cat(trialCat));
static cl::opt<std::string> deviceOpt(
    "device",
    cl::desc("Where each built-in trial fine-tunes and evaluates: cpu | cuda "
             "| cuda-emu (the CUDA executor on the CPU emulator, a slow test "
             "device); the trial also generates the variant's kernels"),
    cl::init("cpu"), cl::sub(runCmd), cl::cat(trialCat));
static cl::opt<std::string> tokenizerOpt("tokenizer",
                                         cl::desc("Tokenizer file"),
                                         cl::sub(runCmd), cl::cat(trialCat));
static cl::opt<std::string> dataDirOpt("data-dir",
                                       cl::desc("Shared data directory"),
                                       cl::init(MIXQ_DATA_DIR),
                                       cl::sub(runCmd), cl::cat(trialCat));
static cl::opt<std::string> workDirOpt(
    "work-dir",
    cl::desc("Trial directories (variant, adapter, metrics, log); default "
             "<study.db>.work/<name> for SQLite"),
    cl::sub(runCmd), cl::cat(trialCat));

// report.
static cl::opt<bool> jsonOut("json", cl::desc("Print the report as JSON"),
                             cl::sub(reportCmd), cl::cat(cat));
static cl::opt<bool> csvOut("csv", cl::desc("Print the front as CSV"),
                            cl::sub(reportCmd), cl::cat(cat));
static cl::opt<std::string> frontJSONFile("front-json",
                                          cl::desc("Write the report JSON"),
                                          cl::sub(reportCmd), cl::cat(cat));
static cl::opt<std::string> frontCSVFile("front-csv",
                                         cl::desc("Write the front CSV"),
                                         cl::sub(reportCmd), cl::cat(cat));
static cl::opt<std::string> trialsCSVFile("trials-csv",
                                          cl::desc("Write every trial as CSV"),
                                          cl::sub(reportCmd), cl::cat(cat));
static cl::opt<std::string> svgFile("svg", cl::desc("Write the SVG scatter"),
                                    cl::sub(reportCmd), cl::cat(cat));
static cl::opt<std::string> configOut(
    "config-out",
    cl::desc("Write the config JSON chosen for --lambda or --alpha"),
    cl::sub(reportCmd), cl::cat(cat));
static cl::opt<std::string> rankPatternOut(
    "rank-pattern-out",
    cl::desc("Write the chosen config as PEFT rank_pattern/alpha_pattern"),
    cl::sub(reportCmd), cl::cat(cat));
static cl::opt<double> refMemory("ref-memory",
                                 cl::desc("Hypervolume reference peak bytes"),
                                 cl::sub(reportCmd), cl::cat(cat));
static cl::opt<double> refAccuracy("ref-accuracy",
                                   cl::desc("Hypervolume reference accuracy"),
                                   cl::sub(reportCmd), cl::cat(cat));

namespace {

int fail(llvm::Error err) {
  llvm::WithColor::error(llvm::errs(), "mixq-search")
      << llvm::toString(std::move(err)) << "\n";
  return 1;
}

int fail(const llvm::Twine &msg) {
  return fail(llvm::createStringError(llvm::inconvertibleErrorCode(),
                                      msg.str()));
}

llvm::Error writeFile(llvm::StringRef path, llvm::StringRef text) {
  std::error_code ec;
  llvm::raw_fd_ostream os(path, ec);
  if (ec)
    return llvm::createStringError(ec, "cannot write %s: %s",
                                   path.str().c_str(), ec.message().c_str());
  os << text;
  return llvm::Error::success();
}

llvm::Expected<SearchSpace> spaceFromOptions() {
  if (!spaceFile.empty() && !modelDir.empty())
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "give --space or --model, not both");
  if (!spaceFile.empty())
    return SearchSpace::fromFile(spaceFile);
  std::vector<int64_t> bits(bitsOpt.begin(), bitsOpt.end());
  std::vector<int64_t> ranks(ranksOpt.begin(), ranksOpt.end());
  if (bits.empty())
    bits = {4, 8};
  if (ranks.empty())
    ranks = {2, 4, 8, 16};
  return SearchSpace::fromModelDir(modelDir, bits, ranks);
}

StrategySettings settingsFromOptions() {
  StrategySettings s;
  s.name = strategyName;
  s.seed = seedOpt;
  s.initial = initOpt;
  s.lambda = lambdaOpt;
  s.patience = patienceOpt;
  s.candidates = candidatesOpt;
  s.kappa = kappaOpt;
  if (!stagesOpt.empty())
    s.stages.assign(stagesOpt.begin(), stagesOpt.end());
  s.population = populationOpt;
  s.generations = generationsOpt;
  s.offspring = offspringOpt;
  s.alpha = alphaOpt;
  s.localCandidates = localOpt;
  s.boInit = boInitOpt;
  return s;
}

/// Sets the recipe fields whose options were given (all of them with
/// `all`, for a new study).
void applyRecipeOptions(TrialRecipe &r, bool all) {
  auto given = [&](const cl::Option &o) {
    return all || o.getNumOccurrences() > 0;
  };
  if (!modelDir.empty())
    r.checkpoint = modelDir;
  if (given(taskOpt) && !taskOpt.empty())
    r.tasks.assign(taskOpt.begin(), taskOpt.end());
  if (given(trainDataOpt))
    r.trainData = trainDataOpt;
  if (given(epochsOpt))
    r.epochs = epochsOpt;
  if (given(batchOpt))
    r.batch = batchOpt;
  if (given(lrOpt))
    r.lr = lrOpt;
  if (given(trainSeedOpt))
    r.seed = trainSeedOpt;
  if (given(trainLimitOpt))
    r.trainLimit = trainLimitOpt;
  if (given(evalLimitOpt))
    r.evalLimit = evalLimitOpt;
  if (given(seqLenOpt))
    r.seqLen = seqLenOpt;
  if (given(threadsOpt))
    r.threads = threadsOpt;
  if (given(deviceOpt))
    r.device = deviceOpt;
  if (given(tokenizerOpt))
    r.tokenizer = tokenizerOpt;
  if (given(dataDirOpt))
    r.dataDir = dataDirOpt;
}

/// The built-in trial's work directory: --work-dir, else next to a SQLite
/// study (<file>.work/<name>), else a fresh temporary directory.
llvm::Expected<std::string> trialWorkDir(llvm::StringRef name) {
  if (!workDirOpt.empty())
    return workDirOpt;
  llvm::StringRef url(studyURL);
  if (url.consume_front("sqlite://")) {
    url = url.split('?').first;
    return (url + ".work/" + name).str();
  }
  llvm::SmallString<256> dir;
  if (std::error_code ec =
          llvm::sys::fs::createUniqueDirectory("mixq-search-work", dir))
    return llvm::createStringError(ec, "cannot create a work directory: %s",
                                   ec.message().c_str());
  return dir.str().str();
}

/// Opens the study: creates it from the options, or resumes it with its
/// stored space and settings. `recipe` is set for the built-in trial (from
/// the options, or stored with the study).
llvm::Error openStudy(StudyStore &store, StudyInfo &study, SearchSpace &space,
                      StrategySettings &settings, int64_t &budget,
                      std::optional<TrialRecipe> &recipe) {
  if (!objectiveCmd.empty() && deviceOpt.getNumOccurrences())
    return llvm::createStringError(
        llvm::inconvertibleErrorCode(),
        "--device is for the built-in trial; an --objective-cmd chooses its "
        "own device (e.g. mixq-run finetune --device ...)");
  auto existing = store.loadStudy(studyName);
  if (existing) {
    study = *existing;
    auto sv = llvm::json::parse(study.space);
    if (!sv)
      return sv.takeError();
    auto sp = SearchSpace::fromJSON(*sv, "stored space of '" + study.name + "'");
    if (!sp)
      return sp.takeError();
    space = std::move(*sp);
    auto st = llvm::json::parse(study.settings);
    if (!st)
      return st.takeError();
    auto ss = StrategySettings::fromJSON(*st, "stored settings of '" +
                                                  study.name + "'");
    if (!ss)
      return ss.takeError();
    settings = std::move(*ss);
    if (strategyName.getNumOccurrences() && strategyName != settings.name)
      return llvm::createStringError(
          llvm::inconvertibleErrorCode(),
          "study '%s' uses strategy '%s', not '%s'; use another --name",
          study.name.c_str(), settings.name.c_str(), strategyName.c_str());
    if (!spaceFile.empty() || !modelDir.empty()) {
      auto given = spaceFromOptions();
      if (!given)
        return given.takeError();
      if (llvm::json::Value(given->toJSON()) != space.toJSON())
        return llvm::createStringError(
            llvm::inconvertibleErrorCode(),
            "study '%s' was created with another search space; use another "
            "--name",
            study.name.c_str());
    }
    if (!trialsOpt.getNumOccurrences())
      budget = st->getAsObject()->getInteger("budget").value_or(budget);
    if (objectiveCmd.empty()) {
      const llvm::json::Value *stored = st->getAsObject()->get("objective");
      if (!stored)
        return llvm::createStringError(
            llvm::inconvertibleErrorCode(),
            "study '%s' was created with an external objective; give "
            "--objective-cmd again",
            study.name.c_str());
      auto r = TrialRecipe::fromJSON(*stored, "stored recipe of '" +
                                                  study.name + "'");
      if (!r)
        return r.takeError();
      TrialRecipe given = *r;
      applyRecipeOptions(given, /*all=*/false);
      if (given.toJSON() != r->toJSON())
        return llvm::createStringError(
            llvm::inconvertibleErrorCode(),
            "study '%s' was created with another trial recipe (%s); use "
            "another --name",
            study.name.c_str(),
            llvm::formatv("{0}", r->toJSON()).str().c_str());
      recipe = std::move(*r);
    }
    return llvm::Error::success();
  }
  llvm::consumeError(existing.takeError());
  if (spaceFile.empty() && modelDir.empty())
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "a new study needs --space or --model");
  auto sp = spaceFromOptions();
  if (!sp)
    return sp.takeError();
  space = std::move(*sp);
  settings = settingsFromOptions();
  if (importanceFile == "auto") {
    if (!objectiveCmd.empty())
      return llvm::createStringError(
          llvm::inconvertibleErrorCode(),
          "--importance auto needs the built-in trial (it measures the model "
          "with the runtime); with --objective-cmd give a file (e.g. from "
          "mixq-run importance --method entropy)");
    settings.importanceAuto = true;
  } else if (!importanceFile.empty()) {
    if (auto err = readImportance(importanceFile, space.numLayers, settings))
      return err;
  }
  if (auto check = createStrategy(settings); !check)
    return check.takeError();
  llvm::json::Value settingsJSON = settings.toJSON();
  settingsJSON.getAsObject()->insert({"budget", budget});
  if (objectiveCmd.empty()) {
    if (modelDir.empty())
      return llvm::createStringError(
          llvm::inconvertibleErrorCode(),
          "the built-in trial needs the checkpoint: give --model DIR (or an "
          "external objective with --objective-cmd)");
    TrialRecipe r;
    applyRecipeOptions(r, /*all=*/true);
    settingsJSON.getAsObject()->insert({"objective", r.toJSON()});
    recipe = std::move(r);
  }
  StudyInfo wanted;
  wanted.name = studyName;
  wanted.space = llvm::formatv("{0}", space.toJSON()).str();
  wanted.strategy = settings.name;
  wanted.settings = llvm::formatv("{0}", settingsJSON).str();
  wanted.objectives =
      llvm::formatv("{0}",
                    llvm::json::Value(llvm::json::Object{
                        {"performance", "accuracy: mean acc over tasks, "
                                        "maximised"},
                        {"memory", "peak_bytes (total), minimised"}}))
          .str();
  auto created = store.createOrLoadStudy(wanted);
  if (!created)
    return created.takeError();
  study = *created;
  return llvm::Error::success();
}

/// --importance auto (QR-Adaptor with the built-in trial, stage 1): measures
/// I(l) on the original model, compiles the stage-1 bits (higher importance,
/// higher bits) into a quantized model and measures again for the ranks.
/// Both vectors go into the strategy state, so a resumed study (or another
/// worker) does not measure again.
llvm::Error measureImportanceIfNeeded(StudyStore &store,
                                      const StudyInfo &study,
                                      const SearchSpace &space,
                                      const StrategySettings &settings,
                                      BuiltinTrial &trial) {
  if (!settings.importanceAuto || settings.name != "qr-adaptor" ||
      !llvm::is_contained(settings.stages, 1))
    return llvm::Error::success();
  auto state = store.strategyState(study.id);
  if (!state)
    return state.takeError();
  if (state->getObject(kMeasuredImportanceKey))
    return llvm::Error::success();
  auto log = [&](const llvm::Twine &msg) {
    if (!quiet)
      llvm::errs() << "[mixq-search] " << msg << "\n";
  };
  auto keep = [] { return true; };
  log("measuring layer importance (entropy, " +
      llvm::Twine(importanceSamples) + " samples) on the original model");
  double t0 = nowSeconds();
  auto original = trial.measureImportance("", study.name + "-importance",
                                          importanceSamples, keep);
  if (!original)
    return original.takeError();
  if (int64_t(original->scores.size()) != space.numLayers)
    return llvm::createStringError(
        llvm::inconvertibleErrorCode(),
        "measured importance has %d layers; the space has %d",
        int(original->scores.size()), int(space.numLayers));
  // The quantized model: stage 1's bits, the middle rank (adapters start
  // at zero, so the rank does not change the measurement).
  std::vector<int> bits =
      optionsByImportance(original->scores, int(space.bits.size()));
  Configuration c = uniformConfig(space, 0, int(space.ranks.size()) / 2, 0);
  for (int l = 0; l < space.numLayers; ++l)
    c.genes[l * space.genesPerLayer()] = bits[l];
  llvm::SmallString<256> cfgPath(trial.workDirectory());
  llvm::sys::path::append(cfgPath, study.name + "-importance-quantized.json");
  if (auto err = writeFile(cfgPath, llvm::formatv("{0:2}\n",
                                                  toConfigJSON(space, c))
                                        .str()))
    return err;
  log("measuring layer importance on the stage-1 quantized model (bits " +
      llvm::join(llvm::map_range(bits, [&](int b) {
                   return std::to_string(space.bits[b]);
                 }),
                 " ") +
      ")");
  auto quantized = trial.measureImportance(
      cfgPath, study.name + "-importance-quantized", importanceSamples, keep);
  if (!quantized)
    return quantized.takeError();
  auto toArray = [](const std::vector<double> &v) {
    llvm::json::Array a;
    for (double x : v)
      a.push_back(x);
    return a;
  };
  llvm::json::Object measured{
      {"method", "entropy"},
      {"samples", int64_t(importanceSamples)},
      {"importance", toArray(original->scores)},
      {"importance_quantized", toArray(quantized->scores)},
      {"original", original->json},
      {"quantized", quantized->json},
      {"quantized_config", toConfigJSON(space, c)},
      {"seconds", nowSeconds() - t0}};
  log(llvm::formatv("importance measured in {0:f1}s: original [{1}], "
                    "quantized [{2}]",
                    nowSeconds() - t0,
                    llvm::join(llvm::map_range(original->scores,
                                               [](double x) {
                                                 return llvm::formatv(
                                                            "{0:f3}", x)
                                                     .str();
                                               }),
                               " "),
                    llvm::join(llvm::map_range(quantized->scores,
                                               [](double x) {
                                                 return llvm::formatv(
                                                            "{0:f3}", x)
                                                     .str();
                                               }),
                               " "))
          .str());
  return store.updateStateLocked(
      study.id, [&](llvm::json::Object &st) -> llvm::Error {
        if (!st.getObject(kMeasuredImportanceKey)) // another worker's wins
          st[kMeasuredImportanceKey] = std::move(measured);
        return llvm::Error::success();
      });
}

int runMain() {
  auto store = StudyStore::open(studyURL, /*readOnly=*/false, busyTimeout);
  if (!store)
    return fail(store.takeError());
  StudyInfo study;
  SearchSpace space;
  StrategySettings settings;
  int64_t budget = trialsOpt;
  std::optional<TrialRecipe> recipe;
  if (auto err = openStudy(**store, study, space, settings, budget, recipe))
    return fail(std::move(err));
  if (budget < 0)
    return fail("--trials must be >= 0");
  std::vector<NewTrial> extra;
  for (const std::string &f : enqueueFiles) {
    auto c = configFromFile(space, f);
    if (!c)
      return fail(c.takeError());
    extra.push_back({"enqueued",
                     llvm::formatv("{0}", toConfigJSON(space, *c)).str(),
                     configKey(*c)});
  }
  if (!extra.empty())
    if (auto n = (*store)->enqueue(study.id, extra); !n)
      return fail(n.takeError());
  auto strategy = createStrategy(settings);
  if (!strategy)
    return fail(strategy.takeError());
  std::unique_ptr<Objective> objective;
  std::string trialDir;
  if (recipe) {
    auto dir = trialWorkDir(study.name);
    if (!dir)
      return fail(dir.takeError());
    auto builtin = BuiltinTrial::create(*recipe, *dir, timeoutOpt);
    if (!builtin)
      return fail(builtin.takeError());
    trialDir = *dir;
    objective = std::move(*builtin);
  } else {
    objective = std::make_unique<CommandObjective>(objectiveCmd, timeoutOpt,
                                                   heartbeatOpt);
  }
  if (!quiet)
    llvm::errs() << "[mixq-search] objective: " << objective->describe()
                 << "\n";
  if (recipe)
    if (auto err = measureImportanceIfNeeded(
            **store, study, space, settings,
            static_cast<BuiltinTrial &>(*objective)))
      return fail(std::move(err));
  RunOptions opts;
  opts.budget = budget;
  opts.worker = workerId;
  opts.heartbeatSeconds = heartbeatOpt;
  opts.staleAfterSeconds = staleOpt;
  opts.pollSeconds = pollOpt;
  opts.configDir = configDir.empty() ? trialDir : std::string(configDir);
  opts.maxTrialsThisWorker = workerTrials;
  opts.progress = quiet ? nullptr : &llvm::errs();
  Driver driver(**store, study, space, settings, **strategy, *objective,
                opts);
  auto summary = driver.run();
  if (!summary)
    return fail(summary.takeError());
  if (!quiet)
    llvm::errs() << llvm::formatv(
        "[mixq-search] worker done: {0} trials run ({1} complete, {2} "
        "failed, {3} pruned){4}\n",
        summary->evaluated, summary->complete, summary->failed,
        summary->pruned,
        summary->strategyFinished ? "; the strategy has finished" : "");
  return 0;
}

void printText(const Report &r) {
  llvm::outs() << llvm::formatv(
      "study '{0}' ({1}{2}): {3} trials, {4} complete, front of {5}\n",
      r.study.name, r.study.strategy,
      r.strategyFinished ? ", finished" : "", r.trials.size(),
      r.complete.size(), r.front.size());
  char ref[64];
  std::snprintf(ref, sizeof(ref), "%g", r.reference.performance);
  llvm::outs() << llvm::formatv("hypervolume {0:e6} (reference: peak_bytes "
                                "{1:e6}, accuracy {2})\n",
                                r.finalHypervolume(), r.reference.memory, ref);
  for (size_t i : r.front)
    llvm::outs() << llvm::formatv("  trial {0,4} {1,-14} accuracy {2:f4}  "
                                  "peak_bytes {3:e4}\n",
                                  r.trials[i].number, r.trials[i].stage,
                                  *r.trials[i].performance,
                                  *r.trials[i].memory);
}

int reportMain() {
  auto store = StudyStore::open(studyURL, /*readOnly=*/true, busyTimeout);
  if (!store)
    return fail(store.takeError());
  ReportOptions ro;
  if (refMemory.getNumOccurrences())
    ro.refMemory = refMemory;
  if (refAccuracy.getNumOccurrences())
    ro.refPerformance = refAccuracy;
  auto report = buildReport(**store, studyName, ro);
  if (!report)
    return fail(report.takeError());
  llvm::json::Value json = reportJSON(*report);
  bool choose = !configOut.empty() || !rankPatternOut.empty();
  if (choose) {
    bool byAlpha = alphaOpt.getNumOccurrences() > 0;
    auto idx = byAlpha ? chooseForAlpha(*report, alphaOpt)
                       : chooseForLambda(*report, lambdaOpt);
    if (!idx)
      return fail(idx.takeError());
    const Trial &t = report->trials[*idx];
    auto cfg = configFromJSON(report->space, *llvm::json::parse(t.config),
                              "stored config of trial " +
                                  std::to_string(t.number));
    if (!cfg)
      return fail(cfg.takeError());
    json.getAsObject()->insert(
        {"chosen", llvm::json::Object{
                       {"trial", t.number},
                       {byAlpha ? "alpha" : "lambda",
                        byAlpha ? double(alphaOpt) : double(lambdaOpt)},
                       {"accuracy", *t.performance},
                       {"peak_bytes", *t.memory}}});
    if (!configOut.empty())
      if (auto err = writeFile(configOut,
                               llvm::formatv("{0:2}\n",
                                             toConfigJSON(report->space, *cfg))
                                   .str()))
        return fail(std::move(err));
    if (!rankPatternOut.empty())
      if (auto err = writeFile(
              rankPatternOut,
              llvm::formatv("{0:2}\n", toPeftRankPattern(report->space, *cfg))
                  .str()))
        return fail(std::move(err));
  }
  std::vector<std::pair<std::string, std::string>> files = {
      {frontJSONFile, llvm::formatv("{0:2}\n", json).str()},
      {frontCSVFile, frontCSV(*report)},
      {trialsCSVFile, trialsCSV(*report)},
      {svgFile, scatterSVG(*report)}};
  for (auto &[path, text] : files)
    if (!path.empty())
      if (auto err = writeFile(path, text))
        return fail(std::move(err));
  if (jsonOut)
    llvm::outs() << llvm::formatv("{0:2}\n", json);
  if (csvOut)
    llvm::outs() << frontCSV(*report);
  if (!jsonOut && !csvOut)
    printText(*report);
  return 0;
}

} // namespace

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  cl::HideUnrelatedOptions({&cat, &trialCat});
  cl::ParseCommandLineOptions(argc, argv,
                              "MixQ search driver: per-layer (bits, rank) "
                              "studies\n");
  if (runCmd)
    return runMain();
  if (reportCmd)
    return reportMain();
  llvm::errs() << "mixq-search: give a subcommand: run or report (see "
                  "--help)\n";
  return 1;
}
