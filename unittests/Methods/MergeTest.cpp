//===- MergeTest.cpp - merged / folded layers equal adapter layers -*- C++ -*-===//
//
// The reference is the kernels' fused forward of the adapter layer
// (dequant(Q) x + s * adapter(x)); the merged layer runs the plain quantized
// matmul with no adapter.
//
//===----------------------------------------------------------------------===//

#include "TestUtils.h"

#include "mixq/Methods/Merge.h"

using namespace mixq;
using namespace mixq::methods;
using mixq::test::maxAbsDiff;
using mixq::test::randomMatrix;
using mixq::test::unwrap;

namespace {

struct Case {
  QuantSpec quant;
  AdapterSpec adapter;
};

QuantSpec quantSpec(QuantFormat f, int64_t tr = 1, int64_t tc = 64) {
  QuantSpec s;
  s.format = f;
  s.doubleQuant = f == QuantFormat::NF4;
  s.tileRows = tr;
  s.tileCols = tc;
  return s;
}

AdapterSpec adapterSpec(AdapterKind k, int64_t rank, int64_t l1 = 1,
                        int64_t l2 = 1) {
  AdapterSpec a;
  a.kind = k;
  a.rank = rank;
  a.alpha = 2.0 * std::max<int64_t>(rank, 1);
  a.lambda = l1;
  a.lambdaRows = k == AdapterKind::QABLoRA ? l2 : l1;
  a.lambdaCols = l1;
  return a;
}

/// Trained-looking adapter matrices for `view` on [out, in].
void fillAdapter(kernels::AdapterView &view, int64_t out, int64_t in,
                 std::vector<float> &A, std::vector<float> &B,
                 std::vector<float> &H) {
  kernels::AdapterShapes s = unwrap(kernels::adapterShapes(view, in, out));
  A = randomMatrix(s.aRows * s.aCols, 21, 0.1f);
  B = randomMatrix(s.bRows * s.bCols, 22, 0.1f);
  H = randomMatrix(s.hRows * s.hCols, 23, 0.1f);
  view.A = A.empty() ? nullptr : A.data();
  view.B = B.empty() ? nullptr : B.data();
  view.H = H.empty() ? nullptr : H.data();
}

/// max |fused(Q, adapter)(X) - matmul(merged)(X)| relative to max |Y|.
struct Outputs {
  std::vector<float> ref, merged;
};

Outputs run(const kernels::QuantizedTensor &q, const kernels::AdapterView &v,
            const kernels::QuantizedTensor &merged, int64_t m) {
  std::vector<float> x = randomMatrix(m * q.cols, 31, 1.0f);
  Outputs o;
  o.ref.resize(m * q.rows);
  o.merged.resize(m * q.rows);
  kernels::KernelOptions scalar;
  scalar.isa = kernels::KernelISA::Scalar;
  EXPECT_FALSE(bool(kernels::fusedLinearForward(q, v, x.data(), m,
                                                o.ref.data(), scalar)));
  EXPECT_FALSE(bool(kernels::quantMatmul(merged, x.data(), m,
                                         o.merged.data(), false, scalar)));
  return o;
}

} // namespace

/// LoRA and Q-BLoRA merged into an f32 W give the adapter layer's outputs
/// to <= 1e-5 (f32 and nf4 bases).
TEST(Merge, LoRAAndQBLoRAIntoDenseAreLossless) {
  const int64_t out = 64, in = 172, m = 16;
  std::vector<float> w = randomMatrix(out * in, 41);
  QuantSpec f32 = quantSpec(QuantFormat::F32);
  std::vector<Case> cases = {
      {quantSpec(QuantFormat::F32), adapterSpec(AdapterKind::LoRA, 8)},
      {quantSpec(QuantFormat::NF4), adapterSpec(AdapterKind::LoRA, 8)},
      {quantSpec(QuantFormat::F32), adapterSpec(AdapterKind::QBLoRA, 4, 2)},
      {quantSpec(QuantFormat::NF4), adapterSpec(AdapterKind::QBLoRA, 2, 4)},
      {quantSpec(QuantFormat::Int8), adapterSpec(AdapterKind::QBLoRA, 2, 2)}};
  for (const Case &c : cases) {
    SCOPED_TRACE(quantFormatName(c.quant.format).str() + " " +
                 adapterKindName(c.adapter.kind).str() + " l" +
                 std::to_string(c.adapter.lambda));
    kernels::QuantizedTensor q =
        unwrap(kernels::quantize(w.data(), out, in, c.quant));
    kernels::AdapterView v = kernels::adapterViewFromSpec(c.adapter);
    std::vector<float> A, B, H;
    fillAdapter(v, out, in, A, B, H);
    std::vector<float> dense = unwrap(mergeAdapterToDense(q, v));
    kernels::QuantizedTensor merged =
        unwrap(kernels::quantize(dense.data(), out, in, f32));
    Outputs o = run(q, v, merged, m);
    float diff = maxAbsDiff(o.ref, o.merged);
    EXPECT_LE(diff, 1e-5f);
    // The adapter matters: without it the outputs differ clearly.
    kernels::QuantizedTensor base = q;
    EXPECT_GT(maxAbsDiff(o.ref, run(q, v, base, m).merged), 1e-3f);
  }
}

/// QA-BLoRA folded into beta is again an int tile tensor whose plain matmul
/// equals the adapter layer to float rounding.
TEST(Merge, QABLoRAFoldsIntoZeroPoints) {
  const int64_t out = 64, in = 128, m = 16;
  std::vector<float> w = randomMatrix(out * in, 43);
  for (auto [f, tr, tc] : {std::tuple{QuantFormat::Int4, 8, 8},
                           std::tuple{QuantFormat::Int3, 4, 16},
                           std::tuple{QuantFormat::Int2, 1, 32}}) {
    SCOPED_TRACE(quantFormatName(f).str());
    kernels::QuantizedTensor q =
        unwrap(kernels::quantize(w.data(), out, in, quantSpec(f, tr, tc)));
    kernels::AdapterView v =
        kernels::adapterViewFromSpec(adapterSpec(AdapterKind::QABLoRA, 0, tc,
                                                 tr));
    v.scale = 0.5f;
    std::vector<float> A, B, H;
    fillAdapter(v, out, in, A, B, H);
    kernels::QuantizedTensor folded = unwrap(foldQABLoRA(q, v));
    EXPECT_EQ(folded.spec.format, f);
    EXPECT_EQ(folded.codes, q.codes);   // codes untouched,
    EXPECT_EQ(folded.scales, q.scales); // alpha untouched,
    EXPECT_NE(folded.zeros, q.zeros);   // only beta moves
    Outputs o = run(q, v, folded, m);
    float scale = 0.0f;
    for (float y : o.ref)
      scale = std::max(scale, std::abs(y));
    EXPECT_LE(maxAbsDiff(o.ref, o.merged), 1e-5f * std::max(1.0f, scale));
  }
}

TEST(Merge, FoldErrors) {
  std::vector<float> w = randomMatrix(64 * 64, 47);
  kernels::QuantizedTensor nf4 =
      unwrap(kernels::quantize(w.data(), 64, 64, quantSpec(QuantFormat::NF4)));
  kernels::QuantizedTensor int4 = unwrap(
      kernels::quantize(w.data(), 64, 64, quantSpec(QuantFormat::Int4, 8, 8)));
  kernels::AdapterView qa =
      kernels::adapterViewFromSpec(adapterSpec(AdapterKind::QABLoRA, 0, 8, 8));
  auto expectError = [](auto result, llvm::StringRef what) {
    ASSERT_FALSE(bool(result));
    std::string msg = llvm::toString(result.takeError());
    EXPECT_NE(msg.find(what.str()), std::string::npos) << msg;
  };
  expectError(foldQABLoRA(nf4, qa), "folds into int4/int3/int2 tiles");
  kernels::AdapterView lora =
      kernels::adapterViewFromSpec(adapterSpec(AdapterKind::LoRA, 4));
  expectError(foldQABLoRA(int4, lora), "only a qablora adapter");
  kernels::AdapterView other =
      kernels::adapterViewFromSpec(adapterSpec(AdapterKind::QABLoRA, 0, 16, 8));
  expectError(foldQABLoRA(int4, other), "differs from the quant tile");
}

/// QA-BLoRA has no rank: its scale is alpha (not alpha / rank = 0).
TEST(Merge, QABLoRAScaleIsAlpha) {
  AdapterSpec a = adapterSpec(AdapterKind::QABLoRA, 0, 8, 4);
  a.alpha = 3.0;
  kernels::AdapterView v = adapterViewOf(a);
  EXPECT_EQ(v.scale, 3.0f);
  EXPECT_EQ(v.poolIn, 8);
  EXPECT_EQ(v.repeatOut, 4);
  EXPECT_EQ(adapterViewOf(adapterSpec(AdapterKind::LoRA, 4)).scale, 2.0f);
}
