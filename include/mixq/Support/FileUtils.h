//===- FileUtils.h - small file helpers shared by the tools --------*- C++ -*-===//

#ifndef MIXQ_SUPPORT_FILEUTILS_H
#define MIXQ_SUPPORT_FILEUTILS_H

#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/raw_ostream.h"

namespace mixq {

/// Writes `path` through `path`.tmp and a rename, so a reader never sees a
/// half-written file and a failure leaves an existing file intact. Errors
/// name the file.
llvm::Error writeFileAtomically(llvm::StringRef path,
                                llvm::function_ref<void(llvm::raw_ostream &)>
                                    write);

} // namespace mixq

#endif // MIXQ_SUPPORT_FILEUTILS_H
