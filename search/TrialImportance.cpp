//===- TrialImportance.cpp - QR-Adaptor importance with the built-in trial -*- C++ -*-===//
//
// BuiltinTrial::measureImportance: the runtime's entropy importance
// I(l) = H(Y) - H(Y | X_l) (mixq/Runtime/Importance.h) on the original
// checkpoint or on a compiled variant, in a forked child like a trial.
//
//===----------------------------------------------------------------------===//

#include "mixq/Search/BuiltinTrial.h"

#include "mixq/Runtime/Data.h"
#include "mixq/Runtime/Importance.h"
#include "mixq/Runtime/Variant.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/Path.h"

using namespace mixq::search;

namespace {

llvm::Error importanceError(const llvm::Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), msg.str());
}

} // namespace

llvm::Expected<ImportanceMeasurement>
BuiltinTrial::measureImportance(llvm::StringRef configPath,
                                llvm::StringRef name, int64_t samples,
                                KeepAlive keepAlive) {
  using namespace mixq::runtime;
  llvm::SmallString<256> dir(workDirectory());
  llvm::sys::path::append(dir, name);
  if (std::error_code ec = llvm::sys::fs::remove_directories(dir);
      ec && ec != std::errc::no_such_file_or_directory)
    return importanceError("cannot clear " + dir + ": " + ec.message());
  if (std::error_code ec = llvm::sys::fs::create_directories(dir))
    return importanceError("cannot create " + dir + ": " + ec.message());
  std::string variantDir = (dir + "/variant").str();
  auto work = [&]() -> llvm::Expected<std::string> {
    // The original model is the checkpoint itself (f32, no adapters); the
    // quantized one is the variant the config compiles to.
    std::string input = recipe.checkpoint;
    if (!configPath.empty()) {
      if (llvm::Error e = emitVariant(configPath, variantDir))
        return std::move(e);
      input = variantDir;
    }
    auto variant = Variant::open(input, "", recipe.tokenizer);
    if (!variant)
      return variant.takeError();
    auto tok = (*variant)->openTokenizer();
    if (!tok)
      return tok.takeError();
    MemoryTracker mem;
    ModelOptions mo;
    mo.training = false;
    mo.seed = recipe.seed;
    mo.kernel.threads = recipe.threads;
    auto model = (*variant)->buildModel(mem, mo);
    if (!model)
      return model.takeError();
    DataOptions dopt;
    dopt.seqLen =
        std::min<int64_t>(recipe.seqLen, (*variant)->model().maxSeqLen);
    std::string spec =
        recipe.trainData.empty() ? recipe.tasks.front() : recipe.trainData;
    auto data = loadTrainingSet(spec, recipe.dataDir, **tok, dopt);
    if (!data)
      return data.takeError();
    ImportanceOptions io;
    io.method = ImportanceMethod::Entropy;
    io.samples = samples;
    auto res = mixq::runtime::measureImportance(**model, *data, io);
    if (!res)
      return res.takeError();
    return llvm::formatv("{0}", res->toJSON()).str();
  };
  auto text = runForked(dir, "importance.json", work, keepAlive);
  if (!text)
    return importanceError("measuring importance (" + name +
                           ") failed: " + llvm::toString(text.takeError()));
  std::string path = (dir + "/importance.json").str();
  auto v = llvm::json::parse(*text);
  if (!v)
    return importanceError(path + ": " + llvm::toString(v.takeError()));
  const llvm::json::Object *o = v->getAsObject();
  const llvm::json::Array *arr = o ? o->getArray("importance") : nullptr;
  if (!arr)
    return importanceError(path + ": no 'importance' array");
  ImportanceMeasurement m;
  for (const llvm::json::Value &x : *arr) {
    std::optional<double> d = x.getAsNumber();
    if (!d)
      return importanceError(path + ": 'importance' holds a non-number");
    m.scores.push_back(*d);
  }
  m.json = std::move(*v);
  return m;
}
