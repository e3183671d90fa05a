//===- Merge.h - merging adapters into their base weights ---------*- C++ -*-===//
//
// After fine-tuning, an adapter can disappear into its base:
//   - LoRA / Q-BLoRA into a dense f32 W' = dequant(Q) + s * DeltaW, with
//     Q-BLoRA's DeltaW = repeat_interleave(B A, lambda) / lambda on the input
//     groups (lossless: W' x equals the adapter model's output up to f32
//     rounding);
//   - QA-BLoRA into the zero points of its int tiles: beta' = beta +
//     s * H / l1 per tile, a pure low-bit tensor (QA-BLoRA's point).
// MLIR-free wrappers over the kernels' merging that check the shapes.
//
//===----------------------------------------------------------------------===//

#ifndef MIXQ_METHODS_MERGE_H
#define MIXQ_METHODS_MERGE_H

#include "mixq/Kernels/FusedLinear.h"

#include "llvm/Support/Error.h"

#include <vector>

namespace mixq {
namespace methods {

/// kernels::adapterViewFromSpec, except that QA-BLoRA (which has no rank)
/// gets the scale s = alpha: adapterViewFromSpec's alpha / rank is 0 there,
/// which would make H inert.
kernels::AdapterView adapterViewOf(const AdapterSpec &spec);

/// dequant(w) + s * DeltaW of `adapter` (any kind), [rows, cols] f32.
llvm::Expected<std::vector<float>>
mergeAdapterToDense(const kernels::QuantizedTensor &w,
                    const kernels::AdapterView &adapter);

/// A copy of the int4/3/2 tensor `w` with QA-BLoRA `adapter` folded into its
/// zero points. Errors if `w` is not an int tile tensor whose tile is the
/// adapter's lambda_rows x lambda_cols.
llvm::Expected<kernels::QuantizedTensor>
foldQABLoRA(const kernels::QuantizedTensor &w,
            const kernels::AdapterView &adapter);

} // namespace methods
} // namespace mixq

#endif // MIXQ_METHODS_MERGE_H
