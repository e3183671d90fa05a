//===- AdapterInitTest.cpp - gaussian / LoftQ / PiSSA numerics ----*- C++ -*-===//

#include "TestUtils.h"

#include "mixq/Import/Checkpoint.h"
#include "mixq/Kernels/FusedLinear.h"
#include "mixq/Methods/AdapterInit.h"

#include <Eigen/Dense>

#include <cmath>

using namespace mixq;
using namespace mixq::methods;
using mixq::test::randomMatrix;
using mixq::test::unwrap;

namespace {

LinearSpec nf4Lora(int64_t rank, AdapterInit init, int64_t iters = 1) {
  LinearSpec s;
  s.quant.format = QuantFormat::NF4;
  s.quant.block = 64;
  s.quant.doubleQuant = true;
  s.adapter.kind = AdapterKind::LoRA;
  s.adapter.rank = rank;
  s.adapter.alpha = 2.0 * rank;
  s.adapter.init = init;
  s.adapter.initIters = iters;
  return s;
}

/// ||W - dequant(Q) - s * DeltaW||_F recomputed from the result with the
/// kernels' merge (independent of the library's own error).
double recomputeError(const std::vector<float> &w, int64_t out, int64_t in,
                      const LinearSpec &spec, const AdapterInitResult &r) {
  std::vector<float> merged(out * in);
  kernels::dequantize(r.quant, merged.data());
  kernels::AdapterView v = kernels::adapterViewFromSpec(spec.adapter);
  v.A = r.A.data();
  v.B = r.B.data();
  EXPECT_FALSE(bool(kernels::mergeAdapterDense(v, merged.data(), out, in)));
  return frobeniusDistance(w.data(), merged.data(), out * in);
}

const char *const kRoles[] = {"self_attn.q_proj", "self_attn.k_proj",
                              "self_attn.v_proj", "self_attn.o_proj",
                              "mlp.gate_proj",    "mlp.up_proj",
                              "mlp.down_proj"};

} // namespace

/// The acceptance test: on every linear of stories260K at NF4, LoftQ
/// with one iteration and PiSSA both reconstruct W better than QLoRA's plain
/// quantization.
TEST(AdapterInit, LoftQAndPiSSABeatQLoRAOnStories260K) {
  auto ckpt = unwrap(Checkpoint::open(std::string(MIXQ_DATA_DIR) +
                                      "/models/stories260K-hf"));
  ASSERT_TRUE(ckpt);
  int64_t layers = ckpt->config().numLayers;
  ASSERT_EQ(layers, 5);
  for (int64_t l = 0; l < layers; ++l)
    for (const char *role : kRoles) {
      std::string name =
          "model.layers." + std::to_string(l) + "." + role + ".weight";
      SCOPED_TRACE(name);
      const TensorInfo *info = ckpt->find(name);
      ASSERT_TRUE(info);
      int64_t out = info->shape[0], in = info->shape[1];
      std::vector<float> w = unwrap(ckpt->readF32(name));
      for (AdapterInit init : {AdapterInit::LoftQ, AdapterInit::PiSSA}) {
        LinearSpec spec = nf4Lora(8, init);
        AdapterInitResult r =
            unwrap(initAdapter(w.data(), out, in, spec, /*seed=*/1));
        EXPECT_LT(r.error, r.qloraError) << adapterInitName(init).str();
        EXPECT_GT(r.error, 0.0);
        EXPECT_NEAR(r.error, recomputeError(w, out, in, spec, r),
                    1e-4 * r.qloraError);
      }
    }
}

/// Gaussian: B = 0 (the layer starts as its quantized base), A ~ N(0, 1/r),
/// reproducible by seed, different across seeds; kaiming stays in its bound.
TEST(AdapterInit, GaussianIsSeededAndStartsAtTheBase) {
  const int64_t out = 64, in = 128, r = 8;
  std::vector<float> w = randomMatrix(out * in, 5);
  LinearSpec spec = nf4Lora(r, AdapterInit::Gaussian);
  AdapterInitResult a = unwrap(initAdapter(w.data(), out, in, spec, 7));
  AdapterInitResult b = unwrap(initAdapter(w.data(), out, in, spec, 7));
  AdapterInitResult c = unwrap(initAdapter(w.data(), out, in, spec, 8));
  ASSERT_EQ(a.A.size(), size_t(r * in));
  ASSERT_EQ(a.B.size(), size_t(out * r));
  EXPECT_EQ(a.A, b.A);
  EXPECT_NE(a.A, c.A);
  for (float x : a.B)
    EXPECT_EQ(x, 0.0f);
  EXPECT_EQ(a.error, a.qloraError);
  EXPECT_EQ(a.base, w);
  double sum = 0, sq = 0;
  for (float x : a.A)
    sum += x, sq += double(x) * x;
  double n = double(a.A.size());
  EXPECT_NEAR(sum / n, 0.0, 0.01);
  EXPECT_NEAR(std::sqrt(sq / n - (sum / n) * (sum / n)), 1.0 / r, 0.01);

  AdapterInitResult k = unwrap(
      initAdapter(w.data(), out, in, spec, 7, GaussianKind::Kaiming));
  float bound = 1.0f / std::sqrt(float(in)), maxAbs = 0.0f;
  for (float x : k.A)
    maxAbs = std::max(maxAbs, std::abs(x));
  EXPECT_LE(maxAbs, bound);
  EXPECT_GT(maxAbs, 0.9f * bound);
}

/// PiSSA's adapter is the top-r SVD of W: s*||BA||_F^2 = sum of the r
/// largest squared singular values, and on an f32 base the layer is W.
TEST(AdapterInit, PiSSAIsThePrincipalSubspace) {
  const int64_t out = 48, in = 80, r = 6;
  std::vector<float> w = randomMatrix(out * in, 11);
  LinearSpec spec = nf4Lora(r, AdapterInit::PiSSA);
  spec.quant.format = QuantFormat::F32;
  spec.quant.doubleQuant = false;
  AdapterInitResult res = unwrap(initAdapter(w.data(), out, in, spec, 0));
  EXPECT_LT(res.error, 1e-5);

  Eigen::MatrixXd wm(out, in), a(r, in), b(out, r);
  for (int64_t i = 0; i < out * in; ++i)
    wm(i / in, i % in) = w[i];
  for (int64_t i = 0; i < r * in; ++i)
    a(i / in, i % in) = res.A[i];
  for (int64_t i = 0; i < out * r; ++i)
    b(i / r, i % r) = res.B[i];
  double scale = spec.adapter.alpha / double(r);
  Eigen::VectorXd s = Eigen::JacobiSVD<Eigen::MatrixXd>(wm).singularValues();
  double top = s.head(r).squaredNorm();
  EXPECT_NEAR((scale * b * a).squaredNorm(), top, 1e-4 * top);
  // The residual is what gets quantized.
  Eigen::MatrixXd base(out, in);
  for (int64_t i = 0; i < out * in; ++i)
    base(i / in, i % in) = res.base[i];
  EXPECT_NEAR((base - (wm - scale * b * a)).norm(), 0.0, 1e-5);
}

/// More LoftQ iterations keep beating QLoRA, the base is W - s*AB of the
/// previous iteration and quantizing it reproduces the stored Q.
TEST(AdapterInit, LoftQIterations) {
  const int64_t out = 64, in = 192;
  std::vector<float> w = randomMatrix(out * in, 13);
  double first = 0;
  for (int64_t iters : {1, 2, 5}) {
    SCOPED_TRACE(iters);
    LinearSpec spec = nf4Lora(16, AdapterInit::LoftQ, iters);
    AdapterInitResult r = unwrap(initAdapter(w.data(), out, in, spec, 0));
    EXPECT_LT(r.error, r.qloraError);
    if (iters == 1) {
      first = r.error;
      EXPECT_EQ(r.base, w);
    } else {
      EXPECT_NE(r.base, w);
      EXPECT_LT(r.error, 1.05 * first);
    }
    kernels::QuantizedTensor again =
        unwrap(kernels::quantize(r.base.data(), out, in, spec.quant));
    EXPECT_EQ(again.codes, r.quant.codes);
    EXPECT_EQ(again.scaleCodes, r.quant.scaleCodes);
  }
}

/// Q-BLoRA: LoftQ and PiSSA in the block-constant adapter space also beat
/// QLoRA, with A [lambda*r, in/lambda] and B [out/lambda, lambda*r].
TEST(AdapterInit, QBLoRALoftQAndPiSSA) {
  const int64_t out = 64, in = 128, r = 2, lambda = 2;
  std::vector<float> w = randomMatrix(out * in, 17);
  // A smooth component that block averaging can capture.
  for (int64_t i = 0; i < out; ++i)
    for (int64_t j = 0; j < in; ++j)
      w[i * in + j] += 0.1f * std::sin(0.05f * i) * std::cos(0.03f * j);
  for (AdapterInit init : {AdapterInit::LoftQ, AdapterInit::PiSSA}) {
    LinearSpec spec = nf4Lora(r, init);
    spec.adapter.kind = AdapterKind::QBLoRA;
    spec.adapter.lambda = spec.adapter.lambdaRows = lambda;
    spec.adapter.lambdaCols = lambda;
    AdapterInitResult res = unwrap(initAdapter(w.data(), out, in, spec, 0));
    EXPECT_EQ(res.aRows, lambda * r);
    EXPECT_EQ(res.aCols, in / lambda);
    EXPECT_EQ(res.bRows, out / lambda);
    EXPECT_LT(res.error, res.qloraError) << adapterInitName(init).str();
    EXPECT_NEAR(res.error, recomputeError(w, out, in, spec, res),
                1e-4 * res.qloraError);
  }
}

/// Bad specs are errors, not crashes.
TEST(AdapterInit, Errors) {
  std::vector<float> w = randomMatrix(64 * 64, 19);
  LinearSpec spec = nf4Lora(8, AdapterInit::LoftQ);
  spec.adapter.alpha = 0.0;
  auto r = initAdapter(w.data(), 64, 64, spec, 0);
  ASSERT_FALSE(bool(r));
  EXPECT_NE(llvm::toString(r.takeError()).find("needs alpha > 0"),
            std::string::npos);
  spec = nf4Lora(8, AdapterInit::LoftQ, 0);
  r = initAdapter(w.data(), 64, 64, spec, 0);
  ASSERT_FALSE(bool(r));
  EXPECT_NE(llvm::toString(r.takeError()).find("init_iters >= 1"),
            std::string::npos);
  w[5] = NAN;
  r = initAdapter(w.data(), 64, 64, nf4Lora(8, AdapterInit::PiSSA), 0);
  EXPECT_FALSE(bool(r));
  llvm::consumeError(r.takeError());
}
