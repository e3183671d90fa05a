//===- TorchPlugin.cpp - LibTorch side of the reader ------------*- C++ -*-===//
//
// Built as libMixQTorchPlugin.so and loaded on demand by TorchScript.cpp.
// Every LibTorch exception is caught here and turned into an error string.
//
//===----------------------------------------------------------------------===//

#include "TorchPluginAPI.h"

#include <torch/script.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

struct MixQTorchModule {
  torch::jit::Module module;
  std::vector<std::string> names;
  std::vector<at::Tensor> tensors;
  std::vector<std::string> dtypes;
};

namespace {

void setError(char **error, const std::string &msg) {
  if (error)
    *error = strdup(msg.c_str());
}

MixQTorchModule *load(const char *path, char **error) {
  try {
    auto m = std::make_unique<MixQTorchModule>();
    m->module = torch::jit::load(path, torch::kCPU);
    for (const auto &p : m->module.named_parameters(/*recurse=*/true)) {
      m->names.push_back(p.name);
      m->tensors.push_back(p.value);
    }
    for (const auto &b : m->module.named_buffers(/*recurse=*/true)) {
      m->names.push_back(b.name);
      m->tensors.push_back(b.value);
    }
    for (const at::Tensor &t : m->tensors)
      m->dtypes.push_back(c10::toString(t.scalar_type()));
    return m.release();
  } catch (const c10::Error &e) {
    setError(error, e.what_without_backtrace());
  } catch (const std::exception &e) {
    setError(error, e.what());
  }
  return nullptr;
}

void release(MixQTorchModule *m) { delete m; }

void freeString(char *s) { std::free(s); }

int64_t numTensors(const MixQTorchModule *m) { return m->tensors.size(); }

const char *tensorName(const MixQTorchModule *m, int64_t i) {
  return m->names[i].c_str();
}

const char *tensorDType(const MixQTorchModule *m, int64_t i) {
  return m->dtypes[i].c_str();
}

int64_t tensorRank(const MixQTorchModule *m, int64_t i) {
  return m->tensors[i].dim();
}

int64_t tensorDim(const MixQTorchModule *m, int64_t i, int64_t d) {
  return m->tensors[i].size(d);
}

int readTensor(const MixQTorchModule *m, int64_t i, void *out, uint64_t nbytes,
               char **error) {
  try {
    at::Tensor t = m->tensors[i].detach().to(torch::kCPU).contiguous();
    uint64_t have = static_cast<uint64_t>(t.numel()) * t.element_size();
    if (have != nbytes) {
      setError(error, "tensor holds " + std::to_string(have) +
                          " bytes, expected " + std::to_string(nbytes));
      return 1;
    }
    if (nbytes)
      std::memcpy(out, t.data_ptr(), nbytes);
    return 0;
  } catch (const c10::Error &e) {
    setError(error, e.what_without_backtrace());
  } catch (const std::exception &e) {
    setError(error, e.what());
  }
  return 1;
}

template <typename T, typename IsFn, typename ToFn>
int findAttr(const MixQTorchModule *m, const char *name, T *out, IsFn is,
             ToFn to) {
  try {
    for (const auto &sub : m->module.named_modules()) {
      if (!sub.value.hasattr(name))
        continue;
      c10::IValue v = sub.value.attr(name);
      if ((v.*is)()) {
        *out = (v.*to)();
        return 1;
      }
    }
  } catch (const std::exception &) {
  }
  return 0;
}

int intAttr(const MixQTorchModule *m, const char *name, int64_t *out) {
  return findAttr(m, name, out, &c10::IValue::isInt, &c10::IValue::toInt);
}

int doubleAttr(const MixQTorchModule *m, const char *name, double *out) {
  return findAttr(m, name, out, &c10::IValue::isDouble, &c10::IValue::toDouble);
}

const MixQTorchPluginAPI kAPI = {MIXQ_TORCH_PLUGIN_ABI,
                                 load,
                                 release,
                                 freeString,
                                 numTensors,
                                 tensorName,
                                 tensorDType,
                                 tensorRank,
                                 tensorDim,
                                 readTensor,
                                 intAttr,
                                 doubleAttr};

} // namespace

extern "C" __attribute__((visibility("default"))) const MixQTorchPluginAPI *
mixqTorchPluginAPI(void) {
  return &kAPI;
}
