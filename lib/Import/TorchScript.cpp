//===- TorchScript.cpp - TorchScript checkpoint reader ----------*- C++ -*-===//
//
// Reads the parameters of a TorchScript module through LibTorch when MixQ is
// built with it (MIXQ_HAVE_TORCH); otherwise reports that the import is
// disabled.
//
//===----------------------------------------------------------------------===//

#include "ImportInternal.h"

using namespace mixq;
using namespace mixq::detail;
using llvm::Expected;
using llvm::StringRef;

#ifndef MIXQ_HAVE_TORCH

bool detail::haveTorchScript() { return false; }

Expected<std::unique_ptr<Checkpoint>> detail::openTorchScript(StringRef path) {
  return importError(path, "TorchScript import disabled: MixQ was built "
                           "without LibTorch");
}

#endif // MIXQ_HAVE_TORCH
