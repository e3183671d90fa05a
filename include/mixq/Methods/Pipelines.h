//===- Pipelines.h - the --mixq-compile pipeline ------------------*- C++ -*-===//
//
// From an imported module to a variant directory:
//   mixq-assign-config{config} -> mixq-materialize-quant{out} ->
//   mixq-init-adapters{out, seed} -> mixq-estimate-memory{report =
//   out/memory.json} -> mixq-emit-variant{out} ->
//   mixq-fuse-linear-adapter{out}
// The fusion comes last because --mixq-estimate-memory and
// --mixq-emit-variant read the decisions from mixq.linear ops; it rewrites
// out/variant.mlir with the fused module.
//
//===----------------------------------------------------------------------===//

#ifndef MIXQ_METHODS_PIPELINES_H
#define MIXQ_METHODS_PIPELINES_H

#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassOptions.h"

#include <string>

namespace mixq {

struct MixQCompilePipelineOptions
    : public mlir::PassPipelineOptions<MixQCompilePipelineOptions> {
  Option<std::string> config{*this, "config",
                             llvm::cl::desc("path of the config JSON")};
  Option<std::string> out{*this, "out",
                          llvm::cl::desc("the variant directory")};
  Option<uint64_t> seed{*this, "seed",
                        llvm::cl::desc("seed of the adapter initialisation"),
                        llvm::cl::init(0)};
};

/// Adds the passes of the pipeline to `pm` (a builtin.module pass manager).
void buildMixQCompilePipeline(mlir::OpPassManager &pm,
                              const MixQCompilePipelineOptions &options);

/// Registers the pipeline as `--mixq-compile-pipeline` (mixq-opt exposes the
/// same pipeline as the pass `--mixq-compile`).
void registerMixQCompilePipeline();

} // namespace mixq

#endif // MIXQ_METHODS_PIPELINES_H
