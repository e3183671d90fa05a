//===- EmitKernels.cpp - one CUDA kernel per linear specialisation -------===//
//
// Collects the KernelKey of every configured mixq.linear, writes the shared
// kernels once each (OUT/kernels/NAME.cu), the launcher header, the registry
// and manifest.json, and tags each linear with `mixq.kernel = "NAME"`.
//
//===----------------------------------------------------------------------===//

#include "CudaSource.h"

#include "mixq/CodeGen/Passes.h"
#include "mixq/Support/FileUtils.h"
#include "mixq/Transforms/ModelInfo.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <map>

using namespace mlir;

namespace mixq {
#define GEN_PASS_DEF_MIXQEMITKERNELSPASS
#include "mixq/CodeGen/Passes.h.inc"
} // namespace mixq

using namespace mixq;
using codegen::KernelKey;

namespace {

/// A kernel and the linears that use it.
struct KernelUse {
  KernelKey key;
  llvm::json::Array linears;
};

struct EmitKernelsPass
    : public mixq::impl::MixQEmitKernelsPassBase<EmitKernelsPass> {
  using MixQEmitKernelsPassBase::MixQEmitKernelsPassBase;
  void runOnOperation() override;

private:
  LogicalResult collect(std::map<std::string, KernelUse> &kernels);
  LogicalResult writeFile(StringRef dir, StringRef name,
                          llvm::function_ref<void(raw_ostream &)> write);
};

} // namespace

/// True if the linear has something to fuse (a quantized base or an
/// adapter); an f32 linear without adapter is a plain GEMM for cuBLAS.
static bool isConfigured(LinearOp op) {
  return op.getQuantAttr() || op.getAdapterAttr();
}

/// The key-relevant part of a LinearSpec from a fused_linear's attributes
/// (as linearSpecOf does for mixq.linear).
static LinearSpec specOf(FusedLinearOp op) {
  LinearSpec s;
  QuantAttr q = op.getQuantAttr();
  s.quant.format = *parseQuantFormat(stringifyQuantFormatKind(q.getFormat()));
  s.quant.block = q.getBlock();
  s.quant.doubleQuant = q.getDoubleQuant();
  if (q.isIntTile()) {
    s.quant.tileRows = q.getTile()[0];
    s.quant.tileCols = q.getTile()[1];
  }
  AdapterSpec &ad = s.adapter;
  Attribute a = op.getAdapterAttr();
  if (auto lora = dyn_cast_or_null<LoRAAttr>(a)) {
    ad.kind = AdapterKind::LoRA;
    ad.rank = lora.getRank();
  } else if (auto qb = dyn_cast_or_null<QBLoRAAttr>(a)) {
    ad.kind = AdapterKind::QBLoRA;
    ad.rank = qb.getRank();
    ad.lambda = qb.getLambda();
  } else if (auto qa = dyn_cast_or_null<QABLoRAAttr>(a)) {
    ad.kind = AdapterKind::QABLoRA;
    ad.lambdaRows = qa.getLambda()[0];
    ad.lambdaCols = qa.getLambda()[1];
  }
  return s;
}

/// The linear as the manifest lists it: layer, role and weight name.
template <typename OpT>
static llvm::json::Object describeLinear(OpT op) {
  llvm::json::Object o{{"role", op.getRole()},
                       {"weight", op.getWeight().getLeafReference().str()}};
  if (op.getRole() != "lm_head")
    o["layer"] = int64_t(op.getLayer());
  return o;
}

LogicalResult
EmitKernelsPass::collect(std::map<std::string, KernelUse> &kernels) {
  Builder b(&getContext());
  WalkResult r = getOperation().walk([&](LinearOp op) -> WalkResult {
    if (!isConfigured(op)) {
      op->removeAttr("mixq.kernel");
      return WalkResult::advance();
    }
    llvm::Expected<KernelKey> key = KernelKey::fromSpec(
        linearSpecOf(op), op.getOutFeatures(), op.getInFeatures());
    if (!key) {
      op.emitError("mixq-emit-kernels: ") << llvm::toString(key.takeError());
      return WalkResult::interrupt();
    }
    std::string name = key->name();
    KernelUse &use = kernels[name];
    use.key = *key;
    use.linears.push_back(describeLinear(op));
    op->setAttr("mixq.kernel", b.getStringAttr(name));
    return WalkResult::advance();
  });
  if (r.wasInterrupted())
    return failure();
  // Linears already fused (--mixq-fuse-linear-adapter) name their kernel.
  r = getOperation().walk([&](FusedLinearOp op) -> WalkResult {
    llvm::Expected<KernelKey> key =
        KernelKey::fromSpec(specOf(op), op.getOutFeatures(),
                            op.getInFeatures());
    if (!key) {
      op.emitError("mixq-emit-kernels: ") << llvm::toString(key.takeError());
      return WalkResult::interrupt();
    }
    std::string name = key->name();
    if (op.getKernel() != name) {
      op.emitError("mixq-emit-kernels: kernel \"")
          << op.getKernel() << "\" does not match the specialisation of its "
          << "attributes, \"" << name << "\"";
      return WalkResult::interrupt();
    }
    KernelUse &use = kernels[name];
    use.key = *key;
    use.linears.push_back(describeLinear(op));
    return WalkResult::advance();
  });
  return failure(r.wasInterrupted());
}

/// Writes `dir`/`name` atomically (mixq::writeFileAtomically).
LogicalResult
EmitKernelsPass::writeFile(StringRef dir, StringRef name,
                           llvm::function_ref<void(raw_ostream &)> write) {
  SmallString<256> path(dir);
  llvm::sys::path::append(path, name);
  if (llvm::Error e = writeFileAtomically(path, write))
    return getOperation().emitError(llvm::toString(std::move(e)));
  return success();
}

void EmitKernelsPass::runOnOperation() {
  ModuleOp module = getOperation();
  if (out.empty()) {
    module.emitError("mixq-emit-kernels needs out=DIR");
    return signalPassFailure();
  }
  std::map<std::string, KernelUse> kernels;
  if (failed(collect(kernels)))
    return signalPassFailure();

  SmallString<256> dir(out);
  llvm::sys::path::append(dir, "kernels");
  if (std::error_code ec = llvm::sys::fs::create_directories(dir)) {
    module.emitError("cannot create ") << dir << ": " << ec.message();
    return signalPassFailure();
  }

  SmallVector<KernelKey> keys;
  llvm::json::Object entries;
  for (auto &[name, use] : kernels) {
    keys.push_back(use.key);
    llvm::json::Object e = use.key.toJSON();
    e["file"] = name + ".cu";
    e["linears"] = std::move(use.linears);
    entries[name] = std::move(e);
    if (failed(writeFile(dir, name + ".cu", [&](raw_ostream &os) {
          codegen::writeKernelSource(use.key, os);
        })))
      return signalPassFailure();
  }
  llvm::json::Object manifest{
      {"version", 1},
      {"header", "mixq_kernels.h"},
      {"registry", "registry.cu"},
      {"unity", "all.cu"},
      {"arch", llvm::json::Array{"sm_80", "sm_90"}},
      {"nvcc", "nvcc -std=c++17 -gencode arch=compute_80,code=sm_80 "
               "-gencode arch=compute_90,code=sm_90"},
      {"kernels", std::move(entries)}};
  if (failed(writeFile(dir, "mixq_kernels.h",
                       [&](raw_ostream &os) {
                         codegen::writeKernelHeader(keys, os);
                       })) ||
      failed(writeFile(dir, "registry.cu",
                       [&](raw_ostream &os) {
                         codegen::writeKernelRegistry(keys, os);
                       })) ||
      failed(writeFile(dir, "all.cu",
                       [&](raw_ostream &os) {
                         codegen::writeKernelUnity(keys, os);
                       })) ||
      failed(writeFile(dir, "manifest.json", [&](raw_ostream &os) {
        os << llvm::formatv("{0:2}", llvm::json::Value(std::move(manifest)))
           << "\n";
      })))
    return signalPassFailure();
}
