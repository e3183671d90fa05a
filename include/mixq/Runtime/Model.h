//===- Model.h - a LLaMA-family decoder with adapters, on the CPU -*- C++ -*-===//
//
// The executable form of a compiled variant: frozen (possibly quantized)
// base weights, trainable adapters on the configured linears, and the
// forward / backward passes of the whole decoder. Tokens of a batch are
// packed (no padding): linears see all rows at once, attention runs per
// sequence with its own positions. Every buffer is accounted by a
// MemoryTracker.
//
//===----------------------------------------------------------------------===//

#ifndef MIXQ_RUNTIME_MODEL_H
#define MIXQ_RUNTIME_MODEL_H

#include "mixq/Config/VariantConfig.h"
#include "mixq/Import/ModelConfig.h"
#include "mixq/Kernels/FusedLinear.h"
#include "mixq/Kernels/Quant.h"
#include "mixq/Runtime/Memory.h"
#include "mixq/Runtime/Random.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/Support/Error.h"

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace mixq {
namespace runtime {

/// Gets a tensor (f32, HF name, HF layout) for the model being built.
using WeightFn =
    llvm::function_ref<llvm::Expected<std::vector<float>>(llvm::StringRef)>;
/// Optionally provides a pre-initialised adapter tensor by PEFT name; returns
/// an empty vector when absent.
using AdapterFn =
    llvm::function_ref<llvm::Expected<std::vector<float>>(llvm::StringRef)>;

/// One projection: frozen base (dense f32 or a QuantizedTensor) plus an
/// optional trainable adapter.
struct LinearLayer {
  std::string weightName; ///< HF name of the base weight
  int64_t layer = -1;     ///< -1 = lm_head
  std::string role;
  int64_t in = 0, out = 0;
  LinearSpec spec;

  /// Dense f32 base (format f32 with no adapter or LoRA); else `quant`.
  Buffer<float> dense;
  std::unique_ptr<kernels::QuantizedTensor> quant;
  Reservation quantBytes;

  kernels::AdapterView view; ///< data pointers into A/B/H
  Buffer<float> A, B, H;     ///< adapter parameters (Adapters)
  Buffer<float> dA, dB, dH;  ///< their gradients (Gradients)
  /// Gradient sink of the frozen base weight [out, in] (Gradients): empty
  /// unless importance measurement allocates it; when set, backward adds
  /// dY^T X to it (Importance.h).
  Buffer<float> dW;

  /// AdaLoRA (A = Q, B = P, E = lambda [r]; AdaLoRA.h): the view runs as
  /// LoRA with B = bEff = P diag(E); rankMask [r] (1 = triplet kept) is set
  /// by the rank allocator. bEff and rankMask are Workspace.
  Buffer<float> E, dE, bEff, rankMask;

  bool hasAdapter() const { return spec.adapter.kind != AdapterKind::None; }
  bool isAdaLoRA() const { return spec.adapter.kind == AdapterKind::AdaLoRA; }
  bool isDense() const { return !dense.empty(); }
  /// The trainable (param, grad) pairs of this linear.
  std::vector<std::pair<Buffer<float> *, Buffer<float> *>> parameters();
  /// Base weight as dense f32 [out, in] (dequantized if quantized).
  std::vector<float> baseWeight() const;
};

/// Per-linear state saved between forward and backward.
struct LinearCache {
  Buffer<uint8_t> mask; ///< adapter dropout keep-mask [n, in]
  Buffer<float> xa;     ///< dense LoRA path: Xa * A^T [n, r]
};

/// Options that shape a model at load time.
struct ModelOptions {
  bool trainNorms = false; ///< RMSNorm weights trainable too
  uint64_t seed = 0;       ///< adapter initialisation
  kernels::KernelOptions kernel;
  /// Build adapters and their gradients (false: inference-only model).
  bool training = true;
  /// Packed base of a quantized linear (weight name, out, in, its format)
  /// made ahead of time, or null to quantize the checkpoint's f32 weight at
  /// load (Variant: the compiler's materialised weights). Empty: none.
  std::function<llvm::Expected<std::unique_ptr<kernels::QuantizedTensor>>(
      llvm::StringRef, int64_t, int64_t, const QuantSpec &)>
      prequantized;
};

struct DecoderLayer {
  LayerShape shape;
  Buffer<float> norm1, norm2;   ///< Weights (Adapters when trainable)
  Buffer<float> dNorm1, dNorm2; ///< Gradients when trainable
  LinearLayer proj[kNumProjectionRoles];
  LinearLayer &q() { return proj[0]; }
  LinearLayer &k() { return proj[1]; }
  LinearLayer &v() { return proj[2]; }
  LinearLayer &o() { return proj[3]; }
  LinearLayer &gate() { return proj[4]; }
  LinearLayer &up() { return proj[5]; }
  LinearLayer &down() { return proj[6]; }
};

/// A batch of packed sequences: tokens [n], targets [n] (-1 = no loss),
/// sequence boundaries seqStart [numSeqs + 1].
struct Batch {
  std::vector<int> tokens;
  std::vector<int> targets;
  std::vector<int64_t> seqStart{0};
  void addSequence(llvm::ArrayRef<int> toks, llvm::ArrayRef<int> tgts);
  int64_t numTokens() const { return int64_t(tokens.size()); }
  int64_t numSequences() const { return int64_t(seqStart.size()) - 1; }
  int64_t numTargets() const;
  int64_t maxLength() const;
};

class DeviceExecutor;
class DeviceKVCache;

/// Keys and values of a prefix, for incremental inference.
struct KVCache {
  int64_t capacity = 0;
  int64_t length = 0; ///< positions filled
  std::vector<Buffer<float>> k, v; ///< per layer [capacity, g * hd]
  /// Set (and k, v empty) when the cache lives on an attached device.
  std::shared_ptr<DeviceKVCache> device;
};

class Model {
public:
  /// Builds the model: base weights from `weights`, per-linear specs from
  /// `config` (null: f32 base, no adapters), adapters from `adapters` when it
  /// has them, else initialised from the spec with `opts.seed`.
  static llvm::Expected<std::unique_ptr<Model>>
  build(const ModelConfig &config, const VariantConfig *variant,
        WeightFn weights, AdapterFn adapters, MemoryTracker &mem,
        const ModelOptions &opts);

  const ModelConfig &config() const { return config_; }
  MemoryTracker &memory() { return mem_; }
  std::vector<DecoderLayer> &layers() { return layers_; }
  LinearLayer *lmHead() { return lmHead_.get(); }
  const float *embedding() const { return embed_.data(); }
  const float *finalNorm() const { return finalNorm_.data(); }

  /// All linears (layer order, then lm_head if separate).
  std::vector<LinearLayer *> linears();
  /// All trainable (param, grad) pairs, in a fixed order.
  std::vector<std::pair<Buffer<float> *, Buffer<float> *>> parameters();
  int64_t numTrainable();
  void zeroGrads();

  /// Training step part: forward and backward of `batch`, adding
  /// gradScale * d(sum of token losses) to the gradients. Returns the summed
  /// loss over target tokens. `rng` drives adapter dropout (null: none).
  double forwardBackward(const Batch &batch, float gradScale, Rng *rng);
  /// Forward only: summed loss over target tokens (no dropout).
  double loss(const Batch &batch);

  /// From now on forwardBackward and loss run on `exec` (Device.h; null:
  /// back to the CPU). Dropout masks are still drawn here, with the CPU
  /// path's Rng calls, and the gradients land in this model's buffers.
  void attachDevice(std::shared_ptr<DeviceExecutor> exec) {
    device_ = std::move(exec);
  }
  DeviceExecutor *device() const { return device_.get(); }

  /// A KV cache for up to `capacity` positions (Activations). With an
  /// attached device (and no layer observer) it lives on the device and
  /// forwardInfer runs there.
  KVCache makeCache(int64_t capacity);
  /// Runs tokens at positions cache.length .. +n through the model, appending
  /// their keys/values, and writes logits [rows, vocab] of the rows listed in
  /// `logitRows` (indices into tokens) into `logits`.
  void forwardInfer(llvm::ArrayRef<int> tokens, KVCache &cache,
                    llvm::ArrayRef<int64_t> logitRows, float *logits);

  kernels::KernelOptions kernelOptions() const { return opts_.kernel; }

  /// Called by forwardInfer with the residual stream [n, hidden] after the
  /// embedding (index 0) and after each decoder layer l (index l + 1); used
  /// by the logit-lens importance (Importance.h). Empty: not called.
  using LayerObserver =
      std::function<void(int64_t index, const float *x, int64_t n)>;
  void setLayerObserver(LayerObserver fn) { observer_ = std::move(fn); }
  /// Final norm and LM head on `n` rows of residual stream `x`: logits
  /// [n, vocab] (the logit lens).
  void decodeHidden(const float *x, int64_t n, float *logits);

private:
  Model(const ModelConfig &c, MemoryTracker &m, const ModelOptions &o)
      : config_(c), mem_(m), opts_(o) {}
  llvm::Error buildLinear(LinearLayer &lin, const LinearSpec &spec,
                          WeightFn weights, AdapterFn adapters);
  void linearForward(LinearLayer &lin, const float *x, int64_t n, float *y,
                     LinearCache *cache, Rng *rng);
  void linearBackward(LinearLayer &lin, const float *x, const float *dy,
                      int64_t n, float *dx, LinearCache *cache);
  void lmHeadForward(const float *x, int64_t n, float *logits);
  void lmHeadBackward(const float *dLogits, int64_t n, float *dx);
  double deviceForwardBackward(const Batch &batch, float gradScale, Rng *rng);

  ModelConfig config_;
  MemoryTracker &mem_;
  ModelOptions opts_;
  Buffer<float> embed_;     ///< [vocab, hidden]
  Buffer<float> finalNorm_; ///< [hidden]
  std::vector<DecoderLayer> layers_;
  std::unique_ptr<LinearLayer> lmHead_; ///< null when tied
  LayerObserver observer_;
  std::shared_ptr<DeviceExecutor> device_;
};

/// PEFT tensor-name prefix of a linear: base_model.model.model.layers.{i}.
/// self_attn.q_proj (lm_head: base_model.model.lm_head).
std::string peftModuleName(int64_t layer, llvm::StringRef role);
/// HF weight name of (layer, role): model.layers.{i}.mlp.up_proj.weight.
std::string hfWeightName(int64_t layer, llvm::StringRef role);

} // namespace runtime
} // namespace mixq

#endif // MIXQ_RUNTIME_MODEL_H
