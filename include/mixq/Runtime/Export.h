//===- Export.h - adapters in the PEFT layout, merged HF models ---*- C++ -*-===//
//
// writePeftAdapters: adapter_config.json (peft_type LORA, r, lora_alpha,
// target_modules, rank_pattern, alpha_pattern, lora_dropout) and
// adapter_model.safetensors with base_model.model.model.layers.{i}.
// self_attn.q_proj.lora_A.weight [r, in] / lora_B.weight [out, r]. Q-BLoRA
// adapters are written as the equivalent LoRA of rank lambda*r (A's columns
// repeated / lambda, B's rows repeated), which PEFT loads as is. QA-BLoRA has
// no PEFT form: merge it instead.
//
// writeMergedModel: an HF directory (config.json + model.safetensors, F32)
// whose linears are dequant(W) + s * DeltaW.
//
//===----------------------------------------------------------------------===//

#ifndef MIXQ_RUNTIME_EXPORT_H
#define MIXQ_RUNTIME_EXPORT_H

#include "mixq/Runtime/Model.h"

#include "llvm/Support/Error.h"

namespace mixq {
namespace runtime {

llvm::Error writePeftAdapters(Model &model, llvm::StringRef dir,
                              llvm::StringRef baseModelPath);

llvm::Error writeMergedModel(Model &model, llvm::StringRef dir);

} // namespace runtime
} // namespace mixq

#endif // MIXQ_RUNTIME_EXPORT_H
