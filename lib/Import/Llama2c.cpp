//===- Llama2c.cpp - llama2.c v0 checkpoint reader --------------*- C++ -*-===//
//
// Reads Karpathy's llama2.c "v0" checkpoints: a header of 7 int32 (dim,
// hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len; a negative
// vocab_size means a separate classifier), then fp32 weights in the order of
// run.c's memory_map_weights. Tensors are exposed under Hugging Face names;
// q/k rows are flagged for the interleaved -> rotate_half permutation so that
// readF32 returns exactly what the Hugging Face export holds.
//
//===----------------------------------------------------------------------===//

#include "ImportInternal.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"

#include <cstring>
#include <optional>

using namespace mixq;
using namespace mixq::detail;
using llvm::Error;
using llvm::Expected;
using llvm::StringRef;
using llvm::Twine;

namespace {

struct Llama2cHeader {
  int32_t dim, hiddenDim, numLayers, numHeads, numKVHeads, vocabSize, seqLen;
};

Llama2cHeader decodeHeader(StringRef bytes) {
  int32_t v[7];
  for (int i = 0; i < 7; ++i) {
    uint32_t u = 0;
    for (int b = 3; b >= 0; --b)
      u = (u << 8) | static_cast<uint8_t>(bytes[4 * i + b]);
    std::memcpy(&v[i], &u, 4);
  }
  return {v[0], v[1], v[2], v[3], v[4], v[5], v[6]};
}

Error checkHeader(StringRef file, const Llama2cHeader &h) {
  struct {
    const char *name;
    int32_t value;
  } fields[] = {{"dim", h.dim},
                {"hidden_dim", h.hiddenDim},
                {"n_layers", h.numLayers},
                {"n_heads", h.numHeads},
                {"n_kv_heads", h.numKVHeads},
                {"seq_len", h.seqLen}};
  for (const auto &f : fields)
    if (f.value <= 0)
      return importError(file, Twine("bad llama2.c header: ") + f.name +
                                   " must be positive, got " + Twine(f.value));
  if (h.vocabSize == 0 || h.vocabSize == INT32_MIN)
    return importError(file, "bad llama2.c header: vocab_size is " +
                                 Twine(h.vocabSize));
  if (h.numLayers > 65536)
    return importError(file, "bad llama2.c header: n_layers " +
                                 Twine(h.numLayers) + " is implausible");
  if (h.dim % h.numHeads != 0)
    return importError(file, "bad llama2.c header: dim " + Twine(h.dim) +
                                 " is not a multiple of n_heads " +
                                 Twine(h.numHeads));
  if (h.numKVHeads > h.numHeads || h.numHeads % h.numKVHeads != 0)
    return importError(
        file, "bad llama2.c header: n_heads " + Twine(h.numHeads) +
                  " is not a multiple of n_kv_heads " + Twine(h.numKVHeads));
  if ((h.dim / h.numHeads) % 2 != 0)
    return importError(file, "bad llama2.c header: head size " +
                                 Twine(h.dim / h.numHeads) +
                                 " is odd (rotary embedding needs pairs)");
  return Error::success();
}

/// Appends tensors to a layout while tracking the running byte offset with
/// overflow checks.
class LayoutBuilder {
public:
  explicit LayoutBuilder(StringRef file) : file(file) {}

  void add(std::string name, std::vector<int64_t> shape,
           int64_t ropeHeads = 0) {
    uint64_t numel = 1;
    for (int64_t d : shape)
      overflow |= mulOverflow(numel, static_cast<uint64_t>(d), numel);
    TensorInfo t;
    t.name = std::move(name);
    t.shape = std::move(shape);
    t.file = file.str();
    t.offset = offset;
    overflow |= mulOverflow(numel, 4, t.nbytes);
    overflow |= __builtin_add_overflow(offset, t.nbytes, &offset);
    t.interleavedRopeHeads = ropeHeads;
    if (!t.name.empty())
      tensors.push_back(std::move(t));
  }
  /// Skips `numel` fp32 values that MixQ does not expose.
  void skip(uint64_t numel) {
    uint64_t bytes;
    overflow |= mulOverflow(numel, 4, bytes);
    overflow |= __builtin_add_overflow(offset, bytes, &offset);
  }

  StringRef file;
  uint64_t offset = kLlama2cHeaderBytes;
  bool overflow = false;
  std::vector<TensorInfo> tensors;
};

std::string layerName(int64_t layer, StringRef suffix) {
  return "model.layers." + std::to_string(layer) + "." + suffix.str();
}

/// Lays out `count` per-layer tensors stored contiguously.
void addPerLayer(LayoutBuilder &b, int64_t layers, StringRef suffix,
                 std::vector<int64_t> shape, int64_t ropeHeads = 0) {
  for (int64_t l = 0; l < layers; ++l)
    b.add(layerName(l, suffix), shape, ropeHeads);
}

ModelConfig configFromHeader(const Llama2cHeader &h) {
  ModelConfig cfg;
  cfg.hiddenSize = h.dim;
  cfg.intermediateSize = h.hiddenDim;
  cfg.numLayers = h.numLayers;
  cfg.numHeads = h.numHeads;
  cfg.numKVHeads = h.numKVHeads;
  cfg.headDim = h.dim / h.numHeads;
  cfg.vocabSize = h.vocabSize < 0 ? -int64_t(h.vocabSize) : h.vocabSize;
  cfg.maxSeqLen = h.seqLen;
  cfg.rmsNormEps = 1e-5; // run.c's rmsnorm
  cfg.ropeTheta = 10000.0;
  cfg.tiedEmbeddings = h.vocabSize > 0;
  return cfg;
}

/// Bytes a file with this shape must have, or nullopt on overflow. Uses the
/// global sizes only, before anything per layer is built, so that absurd
/// headers are rejected cheaply.
std::optional<uint64_t> expectedFileSize(const ModelConfig &c) {
  uint64_t dim = c.hiddenSize, hidden = c.intermediateSize;
  uint64_t q = c.numHeads * c.headDim, kv = c.numKVHeads * c.headDim;
  uint64_t perLayer = 0, total = 0, t;
  bool overflow = false;
  auto mulAdd = [&](uint64_t &acc, uint64_t a, uint64_t b) {
    overflow |= mulOverflow(a, b, t) || __builtin_add_overflow(acc, t, &acc);
  };
  mulAdd(perLayer, 2, dim);          // rms_att, rms_ffn
  mulAdd(perLayer, 2 * q, dim);      // wq, wo
  mulAdd(perLayer, 2 * kv, dim);     // wk, wv
  mulAdd(perLayer, 3 * hidden, dim); // w1, w2, w3
  mulAdd(total, c.numLayers, perLayer);
  mulAdd(total, c.tiedEmbeddings ? 1 : 2, c.vocabSize * dim);
  mulAdd(total, 1, dim);                           // rms_final
  mulAdd(total, c.maxSeqLen, (c.headDim / 2) * 2); // freq_cis
  uint64_t bytes = kLlama2cHeaderBytes;
  mulAdd(bytes, total, 4);
  if (overflow)
    return std::nullopt;
  return bytes;
}

} // namespace

Expected<Llama2cLayout> detail::parseLlama2cHeader(StringRef file,
                                                   StringRef header,
                                                   uint64_t fileSize) {
  if (fileSize < kLlama2cHeaderBytes || header.size() < kLlama2cHeaderBytes)
    return importError(file,
                       "truncated llama2.c checkpoint: " + Twine(fileSize) +
                           " bytes, shorter than the 28-byte header");
  Llama2cHeader h = decodeHeader(header);
  if (Error err = checkHeader(file, h))
    return std::move(err);
  Llama2cLayout out;
  out.config = configFromHeader(h);
  const ModelConfig &c = out.config;
  std::optional<uint64_t> want = expectedFileSize(c);
  if (!want)
    return importError(file, "bad llama2.c header: the sizes overflow");
  if (fileSize < *want)
    return importError(file,
                       "truncated llama2.c checkpoint: " + Twine(fileSize) +
                           " bytes, the header implies " + Twine(*want));
  if (fileSize > *want)
    return importError(
        file, "oversized llama2.c checkpoint: " + Twine(fileSize) +
                  " bytes, the header implies " + Twine(*want) + " (" +
                  Twine(fileSize - *want) + " trailing bytes; wrong header?)");
  // Only now (the file is as large as the header says) fill the per-layer
  // shapes.
  if (Error err = out.config.validate(file))
    return std::move(err);
  int64_t dim = c.hiddenSize, hidden = c.intermediateSize, L = c.numLayers;
  int64_t q = c.numHeads * c.headDim, kv = c.numKVHeads * c.headDim;
  LayoutBuilder b(file);
  b.add("model.embed_tokens.weight", {c.vocabSize, dim});
  addPerLayer(b, L, "input_layernorm.weight", {dim});
  addPerLayer(b, L, "self_attn.q_proj.weight", {q, dim}, c.numHeads);
  addPerLayer(b, L, "self_attn.k_proj.weight", {kv, dim}, c.numKVHeads);
  addPerLayer(b, L, "self_attn.v_proj.weight", {kv, dim});
  addPerLayer(b, L, "self_attn.o_proj.weight", {dim, q});
  addPerLayer(b, L, "post_attention_layernorm.weight", {dim});
  addPerLayer(b, L, "mlp.gate_proj.weight", {hidden, dim}); // w1
  addPerLayer(b, L, "mlp.down_proj.weight", {dim, hidden}); // w2
  addPerLayer(b, L, "mlp.up_proj.weight", {hidden, dim});   // w3
  b.add("model.norm.weight", {dim});
  b.skip(static_cast<uint64_t>(c.maxSeqLen) * (c.headDim / 2) * 2); // freq_cis
  if (!c.tiedEmbeddings)
    b.add("lm_head.weight", {c.vocabSize, dim});
  // The layout must end exactly where the size computation says.
  if (b.overflow || b.offset != *want)
    return importError(file, "internal error: llama2.c layout of " +
                                 Twine(b.offset) + " bytes, expected " +
                                 Twine(*want));
  out.tensors = std::move(b.tensors);
  if (Error err = checkTensorsAgainstConfig(file, c, out.tensors))
    return std::move(err);
  return out;
}

namespace {

class Llama2cCheckpoint : public Checkpoint {
public:
  Llama2cCheckpoint(std::string path, Llama2cLayout layout) {
    path_ = std::move(path);
    config_ = std::move(layout.config);
    tensors_ = std::move(layout.tensors);
  }
  StringRef format() const override { return "llama2c"; }
};

} // namespace

Expected<std::unique_ptr<Checkpoint>> detail::openLlama2c(StringRef path) {
  uint64_t size = 0;
  if (std::error_code ec = llvm::sys::fs::file_size(path, size))
    return importError(path, "cannot open: " + ec.message());
  std::string header;
  if (size >= kLlama2cHeaderBytes) {
    llvm::ErrorOr<std::unique_ptr<llvm::MemoryBuffer>> buf =
        llvm::MemoryBuffer::getFileSlice(path, kLlama2cHeaderBytes, 0);
    if (!buf)
      return importError(path, "cannot read: " + buf.getError().message());
    header = (*buf)->getBuffer().str();
  }
  Expected<Llama2cLayout> layout = parseLlama2cHeader(path, header, size);
  if (!layout)
    return layout.takeError();
  return std::make_unique<Llama2cCheckpoint>(path.str(), std::move(*layout));
}
