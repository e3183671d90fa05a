//===- Merge.cpp - merging adapters into their base weights -------*- C++ -*-===//

#include "mixq/Methods/Merge.h"

#include "llvm/Support/FormatVariadic.h"

using namespace mixq;
using namespace mixq::methods;
using llvm::Expected;

static llvm::Error mergeError(const llvm::Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), msg);
}

kernels::AdapterView methods::adapterViewOf(const AdapterSpec &spec) {
  kernels::AdapterView v = kernels::adapterViewFromSpec(spec);
  if (spec.kind == AdapterKind::QABLoRA && spec.rank <= 0)
    v.scale = float(spec.alpha);
  return v;
}

Expected<std::vector<float>>
methods::mergeAdapterToDense(const kernels::QuantizedTensor &w,
                             const kernels::AdapterView &adapter) {
  if (llvm::Error e = w.verify())
    return std::move(e);
  std::vector<float> dense(w.rows * w.cols);
  kernels::dequantize(w, dense.data());
  if (adapter.kind == AdapterKind::None)
    return dense;
  if (llvm::Error e =
          kernels::mergeAdapterDense(adapter, dense.data(), w.rows, w.cols))
    return std::move(e);
  return dense;
}

Expected<kernels::QuantizedTensor>
methods::foldQABLoRA(const kernels::QuantizedTensor &w,
                     const kernels::AdapterView &adapter) {
  if (adapter.kind != AdapterKind::QABLoRA)
    return mergeError(llvm::formatv("only a qablora adapter folds into the "
                                    "zero points, got {0}",
                                    adapterKindName(adapter.kind)));
  if (!isIntTileFormat(w.spec.format))
    return mergeError(llvm::formatv("qablora folds into int4/int3/int2 "
                                    "tiles, the weight is {0}",
                                    quantFormatName(w.spec.format)));
  if (w.spec.tileRows != adapter.repeatOut ||
      w.spec.tileCols != adapter.poolIn)
    return mergeError(llvm::formatv(
        "qablora lambda [{0}, {1}] differs from the quant tile [{2}, {3}]",
        adapter.repeatOut, adapter.poolIn, w.spec.tileRows,
        w.spec.tileCols));
  kernels::QuantizedTensor folded = w;
  if (llvm::Error e = kernels::mergeQABLoRAIntoZeros(folded, adapter))
    return std::move(e);
  return folded;
}
