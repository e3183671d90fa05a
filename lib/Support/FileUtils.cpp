//===- FileUtils.cpp - small file helpers shared by the tools -----*- C++ -*-===//

#include "mixq/Support/FileUtils.h"

#include "llvm/Support/FileSystem.h"

using namespace llvm;

namespace mixq {

Error writeFileAtomically(StringRef path,
                          function_ref<void(raw_ostream &)> write) {
  std::string tmp = (path + ".tmp").str();
  {
    std::error_code ec;
    raw_fd_ostream os(tmp, ec, sys::fs::OF_Text);
    if (ec)
      return createStringError(ec, "cannot write " + tmp + ": " +
                                       ec.message());
    write(os);
    os.close();
    if (os.has_error()) {
      std::error_code err = os.error();
      os.clear_error();
      sys::fs::remove(tmp);
      return createStringError(err, "cannot write " + tmp + ": " +
                                        err.message());
    }
  }
  if (std::error_code ec = sys::fs::rename(tmp, path)) {
    sys::fs::remove(tmp);
    return createStringError(ec, "cannot rename " + tmp + " to " + path +
                                     ": " + ec.message());
  }
  return Error::success();
}

} // namespace mixq
