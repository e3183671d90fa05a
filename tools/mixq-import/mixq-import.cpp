//===- mixq-import.cpp - import a checkpoint into mixq IR ---------*- C++ -*-===//
//
//   mixq-import CHECKPOINT [-o out.mlir]       print the module
//   mixq-import CHECKPOINT --summary           what the importer found
//   mixq-import config.json --write-random DIR --seed N [--dtype bf16]
//                                              write a random-weight HF
//                                              checkpoint of that config to
//                                              DIR, then import it
// CHECKPOINT is an HF directory (config.json + safetensors, sharded or
// not), a llama2.c .bin, a TorchScript .pt, or a bare config.json.
//
//===----------------------------------------------------------------------===//

#include "mixq/Dialect/MixQ/IR/MixQ.h"
#include "mixq/Import/Checkpoint.h"
#include "mixq/Import/ImportMLIR.h"

#include "mlir/IR/MLIRContext.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/WithColor.h"

using namespace llvm;

static cl::opt<std::string> inputPath(cl::Positional, cl::Required,
                                      cl::desc("<checkpoint>"));
static cl::opt<std::string> outputPath("o", cl::desc("output file"),
                                       cl::value_desc("file"),
                                       cl::init("-"));
static cl::opt<bool> summary("summary",
                             cl::desc("print what was imported, not the IR"));
static cl::opt<std::string>
    writeRandom("write-random",
                cl::desc("write a random-weight checkpoint of the input "
                         "config.json into this directory, then import it"),
                cl::value_desc("dir"));
static cl::opt<uint64_t> seed("seed", cl::desc("seed for --write-random"),
                              cl::init(0));
static cl::opt<std::string> dtype("dtype",
                                  cl::desc("dtype for --write-random: f32, "
                                           "bf16 or f16"),
                                  cl::init("f32"));

static int fail(Error e) {
  WithColor::error(errs(), "mixq-import") << toString(std::move(e)) << "\n";
  return 1;
}

static void printSummary(raw_ostream &os, const mixq::Checkpoint &ckpt,
                         mlir::ModuleOp module) {
  const mixq::ModelConfig &c = ckpt.config();
  int64_t linears = 0, configurable = 0;
  module.walk([&](mixq::LinearOp op) {
    ++linears;
    configurable += op.getRole() != "lm_head";
  });
  os << "checkpoint: " << ckpt.path() << " (" << ckpt.format() << ")\n";
  os << "layers: " << c.numLayers << ", hidden: " << c.hiddenSize
     << ", heads: " << c.numHeads << ", kv heads: " << c.numKVHeads
     << ", head dim: " << c.headDim << ", vocab: " << c.vocabSize
     << ", tied embeddings: " << (c.tiedEmbeddings ? "yes" : "no") << "\n";
  for (int64_t l = 0; l < c.numLayers; ++l)
    os << "  layer " << l << ": heads " << c.layers[l].numHeads
       << ", kv heads " << c.layers[l].numKVHeads << ", mlp "
       << c.layers[l].intermediateSize << "\n";
  os << "tensors: " << ckpt.tensors().size()
     << (ckpt.hasWeights() ? "" : " (config only: no weights)") << "\n";
  os << "parameters: " << c.numParameters() << "\n";
  os << "configurable linears: " << configurable << " (" << c.numLayers
     << " layers x 7 projections)" << (linears > configurable
                                            ? " + lm_head"
                                            : "")
     << "\n";
}

int main(int argc, char **argv) {
  InitLLVM y(argc, argv);
  cl::ParseCommandLineOptions(argc, argv,
                              "MixQ checkpoint importer: writes mixq IR\n");

  std::string path = inputPath;
  if (!writeRandom.empty()) {
    Expected<mixq::ModelConfig> cfg =
        mixq::ModelConfig::fromHFConfigFile(inputPath);
    if (!cfg)
      return fail(cfg.takeError());
    Expected<mixq::DType> t = mixq::parseDType(StringRef(dtype).upper());
    if (!t)
      return fail(t.takeError());
    if (Error e = mixq::writeRandomCheckpoint(*cfg, writeRandom, seed, *t))
      return fail(std::move(e));
    path = writeRandom;
  }

  Expected<std::unique_ptr<mixq::Checkpoint>> ckpt =
      mixq::Checkpoint::open(path);
  if (!ckpt)
    return fail(ckpt.takeError());

  mlir::MLIRContext ctx;
  mlir::OwningOpRef<mlir::ModuleOp> module =
      mixq::importCheckpoint(ctx, **ckpt);
  if (!module) {
    WithColor::error(errs(), "mixq-import")
        << path << ": the imported module does not verify\n";
    return 1;
  }

  std::string err;
  std::unique_ptr<ToolOutputFile> out = mlir::openOutputFile(outputPath, &err);
  if (!out) {
    WithColor::error(errs(), "mixq-import") << err << "\n";
    return 1;
  }
  if (summary)
    printSummary(out->os(), **ckpt, *module);
  else
    module->print(out->os());
  out->keep();
  return 0;
}
