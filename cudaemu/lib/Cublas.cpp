//===- Cublas.cpp - the cuBLAS subset of the emulator ---------------------===//
//
// Column-major GEMM with cuBLAS's argument checks and semantics: op(A) is
// m x k, op(B) k x n, C m x n with leading dimension ldc; alpha and beta are
// host scalars; beta == 0 writes C without reading it (NaN in C does not
// propagate). f32 accumulation in k order; f16/bf16 outputs are rounded to
// nearest even once.
//
//===----------------------------------------------------------------------===//

#include "Internal.h"
#include "cublas_v2.h"
#include "cuda_bf16.h"
#include "cuda_fp16.h"

#include <mutex>
#include <set>
#include <vector>

struct cublasContext {
  cudaStream_t stream = nullptr;
  cublasMath_t math = CUBLAS_DEFAULT_MATH;
};

namespace {

std::mutex gMutex;
std::set<cublasHandle_t> gHandles;

bool validHandle(cublasHandle_t h) {
  std::lock_guard<std::mutex> lock(gMutex);
  return h && gHandles.count(h);
}

float load(const void *p, cudaDataType t, size_t i) {
  switch (t) {
  case CUDA_R_32F:
    return static_cast<const float *>(p)[i];
  case CUDA_R_16F:
    return mixq_emu::halfBitsToFloat(static_cast<const unsigned short *>(p)[i]);
  case CUDA_R_16BF:
    return mixq_emu::bf16BitsToFloat(static_cast<const unsigned short *>(p)[i]);
  }
  return 0.0f;
}

void store(void *p, cudaDataType t, size_t i, float v) {
  switch (t) {
  case CUDA_R_32F:
    static_cast<float *>(p)[i] = v;
    break;
  case CUDA_R_16F:
    static_cast<unsigned short *>(p)[i] = mixq_emu::floatToHalfBits(v);
    break;
  case CUDA_R_16BF:
    static_cast<unsigned short *>(p)[i] = mixq_emu::floatToBf16Bits(v);
    break;
  }
}

bool knownType(cudaDataType t) {
  return t == CUDA_R_32F || t == CUDA_R_16F || t == CUDA_R_16BF;
}

size_t elementBytes(cudaDataType t) { return t == CUDA_R_32F ? 4 : 2; }

/// The span in elements a column-major rows x cols matrix with leading
/// dimension ld covers.
size_t span(int rows, int cols, int ld) {
  if (rows == 0 || cols == 0)
    return 0;
  return static_cast<size_t>(cols - 1) * ld + rows;
}

cublasStatus_t gemm(cublasHandle_t handle, cublasOperation_t ta,
                    cublasOperation_t tb, int m, int n, int k,
                    const float *alpha, const void *A, cudaDataType at, int lda,
                    long long strideA, const void *B, cudaDataType bt, int ldb,
                    long long strideB, const float *beta, void *C,
                    cudaDataType ct, int ldc, long long strideC, int batch) {
  if (!validHandle(handle))
    return CUBLAS_STATUS_NOT_INITIALIZED;
  if (ta == CUBLAS_OP_C)
    ta = CUBLAS_OP_T; // real types: conjugate transpose is the transpose
  if (tb == CUBLAS_OP_C)
    tb = CUBLAS_OP_T;
  if ((ta != CUBLAS_OP_N && ta != CUBLAS_OP_T) ||
      (tb != CUBLAS_OP_N && tb != CUBLAS_OP_T))
    return CUBLAS_STATUS_INVALID_VALUE;
  const int aRows = ta == CUBLAS_OP_N ? m : k;
  const int aCols = ta == CUBLAS_OP_N ? k : m;
  const int bRows = tb == CUBLAS_OP_N ? k : n;
  const int bCols = tb == CUBLAS_OP_N ? n : k;
  if (m < 0 || n < 0 || k < 0 || batch < 0 || lda < std::max(1, aRows) ||
      ldb < std::max(1, bRows) || ldc < std::max(1, m) || !alpha || !beta)
    return CUBLAS_STATUS_INVALID_VALUE;
  if (m == 0 || n == 0 || batch == 0)
    return CUBLAS_STATUS_SUCCESS;
  if (!C || (k > 0 && (!A || !B)))
    return CUBLAS_STATUS_INVALID_VALUE;
  // Every operand must lie in device memory, as on a GPU (a host pointer
  // would fault there).
  for (int b = 0; b < batch; ++b) {
    const char *a = static_cast<const char *>(A) +
                    strideA * b * static_cast<long long>(elementBytes(at));
    const char *bb = static_cast<const char *>(B) +
                     strideB * b * static_cast<long long>(elementBytes(bt));
    char *c = static_cast<char *>(C) +
              strideC * b * static_cast<long long>(elementBytes(ct));
    if ((k > 0 && (!mixq_emu::isDeviceRange(a, span(aRows, aCols, lda) *
                                                   elementBytes(at)) ||
                   !mixq_emu::isDeviceRange(bb, span(bRows, bCols, ldb) *
                                                    elementBytes(bt)))) ||
        !mixq_emu::isDeviceRange(c, span(m, n, ldc) * elementBytes(ct)))
      return CUBLAS_STATUS_EXECUTION_FAILED;
  }
  const float al = *alpha, be = *beta;
  std::vector<float> opA(static_cast<size_t>(m) * k),
      opB(static_cast<size_t>(k) * n);
  for (int b = 0; b < batch; ++b) {
    const char *a = static_cast<const char *>(A) +
                    strideA * b * static_cast<long long>(elementBytes(at));
    const char *bb = static_cast<const char *>(B) +
                     strideB * b * static_cast<long long>(elementBytes(bt));
    char *c = static_cast<char *>(C) +
              strideC * b * static_cast<long long>(elementBytes(ct));
    // opA[i][p] = op(A)(i, p), opB[j][p] = op(B)(p, j): both k-contiguous.
    for (int i = 0; i < m; ++i)
      for (int p = 0; p < k; ++p)
        opA[static_cast<size_t>(i) * k + p] =
            ta == CUBLAS_OP_N ? load(a, at, static_cast<size_t>(p) * lda + i)
                              : load(a, at, static_cast<size_t>(i) * lda + p);
    for (int j = 0; j < n; ++j)
      for (int p = 0; p < k; ++p)
        opB[static_cast<size_t>(j) * k + p] =
            tb == CUBLAS_OP_N ? load(bb, bt, static_cast<size_t>(j) * ldb + p)
                              : load(bb, bt, static_cast<size_t>(p) * ldb + j);
    for (int j = 0; j < n; ++j)
      for (int i = 0; i < m; ++i) {
        const float *ra = &opA[static_cast<size_t>(i) * k];
        const float *rb = &opB[static_cast<size_t>(j) * k];
        float s = 0.0f;
        for (int p = 0; p < k; ++p)
          s += ra[p] * rb[p];
        const size_t ci = static_cast<size_t>(j) * ldc + i;
        float v = al * s;
        if (be != 0.0f)
          v += be * load(c, ct, ci);
        store(c, ct, ci, v);
      }
  }
  return CUBLAS_STATUS_SUCCESS;
}

} // namespace

extern "C" {

cublasStatus_t cublasCreate(cublasHandle_t *handle) {
  if (!handle)
    return CUBLAS_STATUS_INVALID_VALUE;
  cublasHandle_t h = new cublasContext;
  std::lock_guard<std::mutex> lock(gMutex);
  gHandles.insert(h);
  *handle = h;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy(cublasHandle_t handle) {
  std::lock_guard<std::mutex> lock(gMutex);
  if (!handle || !gHandles.erase(handle))
    return CUBLAS_STATUS_NOT_INITIALIZED;
  delete handle;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream) {
  if (!validHandle(handle))
    return CUBLAS_STATUS_NOT_INITIALIZED;
  if (!mixq_emu::detail::validStream(stream))
    return CUBLAS_STATUS_INVALID_VALUE;
  handle->stream = stream;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGetStream(cublasHandle_t handle, cudaStream_t *stream) {
  if (!validHandle(handle))
    return CUBLAS_STATUS_NOT_INITIALIZED;
  if (!stream)
    return CUBLAS_STATUS_INVALID_VALUE;
  *stream = handle->stream;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
  if (!validHandle(handle))
    return CUBLAS_STATUS_NOT_INITIALIZED;
  handle->math = mode;
  return CUBLAS_STATUS_SUCCESS;
}

const char *cublasGetStatusName(cublasStatus_t s) {
  switch (s) {
  case CUBLAS_STATUS_SUCCESS:
    return "CUBLAS_STATUS_SUCCESS";
  case CUBLAS_STATUS_NOT_INITIALIZED:
    return "CUBLAS_STATUS_NOT_INITIALIZED";
  case CUBLAS_STATUS_ALLOC_FAILED:
    return "CUBLAS_STATUS_ALLOC_FAILED";
  case CUBLAS_STATUS_INVALID_VALUE:
    return "CUBLAS_STATUS_INVALID_VALUE";
  case CUBLAS_STATUS_ARCH_MISMATCH:
    return "CUBLAS_STATUS_ARCH_MISMATCH";
  case CUBLAS_STATUS_MAPPING_ERROR:
    return "CUBLAS_STATUS_MAPPING_ERROR";
  case CUBLAS_STATUS_EXECUTION_FAILED:
    return "CUBLAS_STATUS_EXECUTION_FAILED";
  case CUBLAS_STATUS_INTERNAL_ERROR:
    return "CUBLAS_STATUS_INTERNAL_ERROR";
  case CUBLAS_STATUS_NOT_SUPPORTED:
    return "CUBLAS_STATUS_NOT_SUPPORTED";
  }
  return "CUBLAS_STATUS_UNKNOWN";
}

const char *cublasGetStatusString(cublasStatus_t s) {
  return cublasGetStatusName(s);
}

cublasStatus_t cublasSgemm(cublasHandle_t handle, cublasOperation_t transa,
                           cublasOperation_t transb, int m, int n, int k,
                           const float *alpha, const float *A, int lda,
                           const float *B, int ldb, const float *beta, float *C,
                           int ldc) {
  return gemm(handle, transa, transb, m, n, k, alpha, A, CUDA_R_32F, lda, 0, B,
              CUDA_R_32F, ldb, 0, beta, C, CUDA_R_32F, ldc, 0, 1);
}

cublasStatus_t cublasSgemmStridedBatched(
    cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb,
    int m, int n, int k, const float *alpha, const float *A, int lda,
    long long strideA, const float *B, int ldb, long long strideB,
    const float *beta, float *C, int ldc, long long strideC, int batchCount) {
  return gemm(handle, transa, transb, m, n, k, alpha, A, CUDA_R_32F, lda,
              strideA, B, CUDA_R_32F, ldb, strideB, beta, C, CUDA_R_32F, ldc,
              strideC, batchCount);
}

cublasStatus_t cublasGemmStridedBatchedEx(
    cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb,
    int m, int n, int k, const void *alpha, const void *A, cudaDataType Atype,
    int lda, long long strideA, const void *B, cudaDataType Btype, int ldb,
    long long strideB, const void *beta, void *C, cudaDataType Ctype, int ldc,
    long long strideC, int batchCount, cublasComputeType_t computeType,
    cublasGemmAlgo_t algo) {
  (void)algo;
  if (!validHandle(handle))
    return CUBLAS_STATUS_NOT_INITIALIZED;
  if (computeType != CUBLAS_COMPUTE_32F &&
      computeType != CUBLAS_COMPUTE_32F_PEDANTIC)
    return CUBLAS_STATUS_NOT_SUPPORTED;
  if (!knownType(Atype) || !knownType(Btype) || !knownType(Ctype) ||
      Atype != Btype)
    return CUBLAS_STATUS_NOT_SUPPORTED;
  return gemm(handle, transa, transb, m, n, k,
              static_cast<const float *>(alpha), A, Atype, lda, strideA, B,
              Btype, ldb, strideB, static_cast<const float *>(beta), C, Ctype,
              ldc, strideC, batchCount);
}

cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa,
                            cublasOperation_t transb, int m, int n, int k,
                            const void *alpha, const void *A,
                            cudaDataType Atype, int lda, const void *B,
                            cudaDataType Btype, int ldb, const void *beta,
                            void *C, cudaDataType Ctype, int ldc,
                            cublasComputeType_t computeType,
                            cublasGemmAlgo_t algo) {
  return cublasGemmStridedBatchedEx(handle, transa, transb, m, n, k, alpha, A,
                                    Atype, lda, 0, B, Btype, ldb, 0, beta, C,
                                    Ctype, ldc, 0, 1, computeType, algo);
}

} // extern "C"
