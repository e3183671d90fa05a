//===- CudaSource.h - CUDA C++ text of the fused linear kernels -*- C++ -*-===//
//
// The specialisation key of a fused linear kernel and the writers of the
// generated files (one .cu per key, the launcher header, the registry).
// Internal to lib/CodeGen; see docs/cuda.md for the generated code.
//
//===----------------------------------------------------------------------===//

#ifndef MIXQ_LIB_CODEGEN_CUDASOURCE_H
#define MIXQ_LIB_CODEGEN_CUDASOURCE_H

#include "mixq/Config/VariantConfig.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdint>
#include <string>

namespace mixq {
namespace codegen {

/// Everything a generated kernel is specialised on. Fields a format or an
/// adapter kind does not use are normalised (block = 0 for bf16/f32, no tile
/// outside int4/3/2, rank = 0 for QA-BLoRA, ...), so two linears that
/// compute the same thing share one key and one kernel. The adapter's alpha
/// and dropout are not part of the key: the scale is a launch argument and
/// dropout is applied by the caller (the adapter input `xa`).
struct KernelKey {
  QuantFormat format = QuantFormat::F32;
  int64_t block = 0;       ///< nf4/fp4/int8 absmax block
  bool doubleQuant = false; ///< nf4/fp4
  int64_t tileRows = 0;    ///< int4/3/2
  int64_t tileCols = 0;
  int64_t out = 0; ///< W rows (output features)
  int64_t in = 0;  ///< W cols (input features)
  AdapterKind adapter = AdapterKind::None;
  int64_t rank = 0;       ///< LoRA / Q-BLoRA rank as in the IR
  int64_t lambda = 0;     ///< Q-BLoRA pooling factor
  int64_t lambdaRows = 0; ///< QA-BLoRA l2 (outputs)
  int64_t lambdaCols = 0; ///< QA-BLoRA l1 (inputs)

  /// The normalised key of a linear [out, in] with `spec`; an error names
  /// what the kernels cannot take (shapes not divisible by the pooling, a
  /// non-positive rank or block, sizes beyond 2^30).
  static llvm::Expected<KernelKey> fromSpec(const LinearSpec &spec,
                                            int64_t out, int64_t in);

  /// A C identifier that encodes the whole key, e.g.
  /// "nf4_b64_dq_lora_r8_64x64", "int4_t4x4_qablora_l4x4_64x172",
  /// "bf16_48x96" (the spelling of FusedLinearOp::getKernelName).
  std::string name() const;

  /// Inner dimension of A/B as stored (r, or lambda * r for Q-BLoRA).
  int64_t storedRank() const;
  int64_t poolIn() const;    ///< AvgPool factor on the adapter input
  int64_t repeatOut() const; ///< repeat_interleave factor on its output

  /// The key as the manifest's JSON object.
  llvm::json::Object toJSON() const;
};

/// Writes the CUDA C++ translation unit of `key` (kernels and extern "C"
/// launchers mixq_NAME_forward / _backward / _workspace_bytes).
void writeKernelSource(const KernelKey &key, llvm::raw_ostream &os);

/// Writes mixq_kernels.h: the ABI structs and the launchers of `keys`.
void writeKernelHeader(llvm::ArrayRef<KernelKey> keys, llvm::raw_ostream &os);

/// Writes registry.cu: the table of `keys` with their launchers and
/// mixq_cuda_find_kernel().
void writeKernelRegistry(llvm::ArrayRef<KernelKey> keys,
                         llvm::raw_ostream &os);

/// Writes all.cu: every kernel of `keys` and the registry in one
/// translation unit, so that one nvcc invocation compiles the variant.
void writeKernelUnity(llvm::ArrayRef<KernelKey> keys, llvm::raw_ostream &os);

} // namespace codegen
} // namespace mixq

#endif // MIXQ_LIB_CODEGEN_CUDASOURCE_H
