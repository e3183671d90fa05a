//===- Compile.cpp - the --mixq-compile pipeline ------------------*- C++ -*-===//

#include "mixq/Methods/Passes.h"
#include "mixq/Methods/Pipelines.h"
#include "mixq/Transforms/Passes.h"

#include "mlir/Pass/PassRegistry.h"
#include "llvm/Support/Path.h"

using namespace mlir;

namespace mixq {
#define GEN_PASS_DEF_MIXQCOMPILEPASS
#include "mixq/Methods/Passes.h.inc"
} // namespace mixq

using namespace mixq;

void mixq::buildMixQCompilePipeline(OpPassManager &pm,
                                    const MixQCompilePipelineOptions &options) {
  std::string out = options.out;
  SmallString<256> report(out);
  llvm::sys::path::append(report, "memory.json");
  pm.addPass(createMixQAssignConfigPass({options.config}));
  pm.addPass(createMixQMaterializeQuantPass({out}));
  MixQInitAdaptersPassOptions init;
  init.out = out;
  init.seed = options.seed;
  pm.addPass(createMixQInitAdaptersPass(init));
  MixQEstimateMemoryPassOptions memory;
  memory.print = false;
  memory.report = std::string(report);
  pm.addPass(createMixQEstimateMemoryPass(memory));
  pm.addPass(createMixQEmitVariantPass({out}));
  pm.addPass(createMixQFuseLinearAdapterPass({out}));
}

void mixq::registerMixQCompilePipeline() {
  PassPipelineRegistration<MixQCompilePipelineOptions>(
      "mixq-compile-pipeline",
      "from an imported module to a variant directory (as --mixq-compile)",
      buildMixQCompilePipeline);
}

namespace {

/// Runs the pipeline as one pass, so that mixq-opt, which registers only the
/// generated passes of this library, offers it as --mixq-compile.
struct CompilePass : public mixq::impl::MixQCompilePassBase<CompilePass> {
  using MixQCompilePassBase::MixQCompilePassBase;
  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (config.empty() || out.empty()) {
      module.emitError("mixq-compile needs config=FILE and out=DIR");
      return signalPassFailure();
    }
    MixQCompilePipelineOptions options;
    options.config = config;
    options.out = out;
    options.seed = seed;
    OpPassManager pm(ModuleOp::getOperationName());
    buildMixQCompilePipeline(pm, options);
    if (failed(runPipeline(pm, module)))
      return signalPassFailure();
  }
};

} // namespace
