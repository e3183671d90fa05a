//===- TorchPluginAPI.h - LibTorch plugin C API -----------------*- C++ -*-===//
//
// MixQImport reads TorchScript files through a small plugin,
// libMixQTorchPlugin.so, loaded with dlopen only when a .pt file is opened:
// LibTorch drags in hundreds of shared libraries, which would otherwise be
// loaded at the start of every MixQ process. Only plain C types cross this
// boundary (no LLVM, no LibTorch, no exceptions). Not installed.
//
//===----------------------------------------------------------------------===//

#ifndef MIXQ_LIB_IMPORT_TORCHPLUGINAPI_H
#define MIXQ_LIB_IMPORT_TORCHPLUGINAPI_H

#include <cstdint>

extern "C" {

/// Bumped whenever the table below changes.
#define MIXQ_TORCH_PLUGIN_ABI 1

typedef struct MixQTorchModule MixQTorchModule;

struct MixQTorchPluginAPI {
  int abiVersion;
  /// Loads a TorchScript file; on failure returns null and stores a message
  /// in `*error` (release it with freeString).
  MixQTorchModule *(*load)(const char *path, char **error);
  void (*release)(MixQTorchModule *module);
  void (*freeString)(char *s);
  /// Parameters then buffers, recursively, under their dotted module names.
  int64_t (*numTensors)(const MixQTorchModule *module);
  const char *(*tensorName)(const MixQTorchModule *module, int64_t i);
  /// LibTorch's scalar type name: "Float", "Half", "BFloat16", "Long", ...
  const char *(*tensorDType)(const MixQTorchModule *module, int64_t i);
  int64_t (*tensorRank)(const MixQTorchModule *module, int64_t i);
  int64_t (*tensorDim)(const MixQTorchModule *module, int64_t i, int64_t d);
  /// Copies the row-major bytes of tensor `i` into `out` (exactly `nbytes`).
  /// Returns 0 on success, else stores a message in `*error`.
  int (*readTensor)(const MixQTorchModule *module, int64_t i, void *out,
                    uint64_t nbytes, char **error);
  /// The first int (double) attribute called `name` on the module or any
  /// submodule; returns 1 and sets `*out` when found.
  int (*intAttr)(const MixQTorchModule *module, const char *name, int64_t *out);
  int (*doubleAttr)(const MixQTorchModule *module, const char *name,
                    double *out);
};

/// The plugin's one exported symbol.
const MixQTorchPluginAPI *mixqTorchPluginAPI(void);

} // extern "C"

#endif // MIXQ_LIB_IMPORT_TORCHPLUGINAPI_H
