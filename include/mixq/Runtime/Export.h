//===- Export.h - adapters in the PEFT layout, merged HF models ---*- C++ -*-===//
//
// writePeftAdapters: adapter_config.json (peft_type LORA, r, lora_alpha,
// target_modules, rank_pattern, alpha_pattern, lora_dropout) and
// adapter_model.safetensors with base_model.model.model.layers.{i}.
// self_attn.q_proj.lora_A.weight [r, in] / lora_B.weight [out, r]. Q-BLoRA
// adapters are written as the equivalent LoRA of rank lambda*r (A's columns
// repeated / lambda, B's rows repeated), which PEFT loads as is. QA-BLoRA has
// no PEFT form: its linears are left out of the PEFT file and listed in
// `leftOut` (merge them instead: the merged model folds them).
//
// writeNativeAdapters: every adapter tensor in the runtime's own shapes
// (`<PEFT module>.lora_A.weight`, `lora_B`, `lora_H`), what `--adapters
// RUN_DIR` and a variant's weights file load back (a run directory's
// adapters.safetensors).
//
// writeMergedModel: an HF directory (config.json + model.safetensors, F32)
// whose linears are dequant(W) + s * DeltaW.
//
//===----------------------------------------------------------------------===//

#ifndef MIXQ_RUNTIME_EXPORT_H
#define MIXQ_RUNTIME_EXPORT_H

#include "mixq/Runtime/Model.h"

#include "llvm/Support/Error.h"

#include <string>
#include <vector>

namespace mixq {
namespace runtime {

/// Writes the PEFT form of the adapters that have one. Linears without one
/// (QA-BLoRA) are skipped and their module names (model.layers.{i}.mlp.
/// up_proj) stored in `leftOut` when given; an error when no adapter has a
/// PEFT form.
llvm::Error writePeftAdapters(Model &model, llvm::StringRef dir,
                              llvm::StringRef baseModelPath,
                              std::vector<std::string> *leftOut = nullptr);

/// Writes every adapter's tensors, in the runtime's shapes, to `path` (a
/// safetensors file). Nothing for AdaLoRA models, whose PEFT file is their
/// native form.
llvm::Error writeNativeAdapters(Model &model, llvm::StringRef path);

llvm::Error writeMergedModel(Model &model, llvm::StringRef dir);

} // namespace runtime
} // namespace mixq

#endif // MIXQ_RUNTIME_EXPORT_H
