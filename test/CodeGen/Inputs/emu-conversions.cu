//===- emu-conversions.cu - emulator bf16/fp16 conversions vs CUDA's ------===//
//
// Host program built by nvcc: compares the CPU emulator's conversions
// (cudaemu/include/mixq_cuda_emu_convert.h) with CUDA's __float2bfloat16_rn,
// __float2half_rn, __bfloat162float and __half2float (their host
// implementations) for every float bit pattern and every 16-bit code, bit
// for bit. `--flip-rounding` checks the check: it compares against a
// truncating float -> bf16 instead (on every 4099th pattern), which must be
// reported.
//
//===----------------------------------------------------------------------===//

#include <cuda_bf16.h>
#include <cuda_fp16.h>

// Included with -include: an -I of cudaemu/include would make the
// emulator's <cuda_bf16.h> shadow CUDA's.
#ifndef MIXQ_CUDA_EMU_CONVERT_H
#error "compile with -include <repo>/cudaemu/include/mixq_cuda_emu_convert.h"
#endif

#include <cstdint>
#include <cstdio>
#include <cstring>

int main(int argc, char **argv) {
  const bool flip = argc > 1 && std::strcmp(argv[1], "--flip-rounding") == 0;
  uint64_t bf16Bad = 0, halfBad = 0;
  // The self-check needs no exhaustive loop: every 4099th pattern.
  const uint64_t step = flip ? 4099 : 1;
  for (uint64_t i = 0; i <= 0xffffffffull; i += step) {
    const uint32_t u = static_cast<uint32_t>(i);
    float f;
    std::memcpy(&f, &u, 4);
    const __nv_bfloat16 b = __float2bfloat16_rn(f);
    unsigned short cudaB;
    std::memcpy(&cudaB, &b, 2);
    const unsigned short emuB = flip ? static_cast<unsigned short>(u >> 16)
                                     : mixq_emu::floatToBf16Bits(f);
    if (cudaB != emuB && bf16Bad++ < 3)
      std::printf("float %08x -> bf16: CUDA %04x, emulator %04x\n", u, cudaB,
                  emuB);
    const __half h = __float2half_rn(f);
    unsigned short cudaH;
    std::memcpy(&cudaH, &h, 2);
    if (cudaH != mixq_emu::floatToHalfBits(f) && halfBad++ < 3)
      std::printf("float %08x -> half: CUDA %04x, emulator %04x\n", u, cudaH,
                  mixq_emu::floatToHalfBits(f));
  }
  uint64_t fromBf16Bad = 0, fromHalfBad = 0;
  for (uint32_t v = 0; v < 65536; ++v) {
    const unsigned short s = static_cast<unsigned short>(v);
    __nv_bfloat16 b;
    __half h;
    std::memcpy(&b, &s, 2);
    std::memcpy(&h, &s, 2);
    float cuda = __bfloat162float(b), emu = mixq_emu::bf16BitsToFloat(s);
    fromBf16Bad += std::memcmp(&cuda, &emu, 4) != 0;
    cuda = __half2float(h);
    emu = mixq_emu::halfBitsToFloat(s);
    fromHalfBad += std::memcmp(&cuda, &emu, 4) != 0;
  }
  std::printf("float->bf16 %llu, float->half %llu, bf16->float %llu, "
              "half->float %llu mismatches\n",
              static_cast<unsigned long long>(bf16Bad),
              static_cast<unsigned long long>(halfBad),
              static_cast<unsigned long long>(fromBf16Bad),
              static_cast<unsigned long long>(fromHalfBad));
  return bf16Bad + halfBad + fromBf16Bad + fromHalfBad ? 1 : 0;
}
