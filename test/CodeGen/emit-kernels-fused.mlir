// A mixq.fused_linear (after --mixq-fuse-linear-adapter) names its kernel;
// the pass generates that kernel and lists the linear in the manifest,
// alongside a still unfused mixq.linear with the same specialisation.
// RUN: rm -rf %t && mixq-opt --mixq-emit-kernels=out=%t %s | FileCheck %s
// RUN: FileCheck %s --check-prefix=MANIFEST < %t/kernels/manifest.json
// RUN: ls %t/kernels | FileCheck %s --check-prefix=FILES

// CHECK: mixq.fused_linear {{.*}}kernel = "nf4_b32_dq_qblora_r2_l2_16x32"
// CHECK-NOT: mixq.kernel
// CHECK: mixq.linear {{.*}}mixq.kernel = "nf4_b32_dq_qblora_r2_l2_16x32"

// MANIFEST:      "nf4_b32_dq_qblora_r2_l2_16x32": {
// MANIFEST:        "linears": [
// MANIFEST-NEXT:     {
// MANIFEST-NEXT:       "layer": 1,
// MANIFEST-NEXT:       "role": "up_proj",
// MANIFEST-NEXT:       "weight": "w1"
// MANIFEST-NEXT:     },
// MANIFEST-NEXT:     {
// MANIFEST-NEXT:       "layer": 0,
// MANIFEST-NEXT:       "role": "up_proj",
// MANIFEST-NEXT:       "weight": "w0"
// MANIFEST-NEXT:     }

// FILES: all.cu
// FILES-NEXT: manifest.json
// FILES-NEXT: mixq_kernels.h
// FILES-NEXT: nf4_b32_dq_qblora_r2_l2_16x32.cu
// FILES-NEXT: registry.cu

mixq.checkpoint @ckpt path "none" format "config-only" {
  mixq.tensor @w0 : tensor<16x32xf32>
  mixq.tensor @w1 : tensor<16x32xf32>
}
func.func @f(%x: tensor<?x?x32xf32>) -> (tensor<?x?x16xf32>, tensor<?x?x16xf32>) {
  %y0 = mixq.fused_linear %x, @ckpt::@w0 {kernel = "nf4_b32_dq_qblora_r2_l2_16x32",
          layer = 0 : i64, role = "up_proj",
          quant = #mixq.quant<format = nf4, block = 32, double_quant = true>,
          adapter = #mixq.qblora<rank = 2, lambda = 2, alpha = 4.0>}
          : tensor<?x?x32xf32> -> tensor<?x?x16xf32>
  %y1 = mixq.linear %x, @ckpt::@w1 {layer = 1 : i64, role = "up_proj",
          quant = #mixq.quant<format = nf4, block = 32, double_quant = true>,
          adapter = #mixq.qblora<rank = 2, lambda = 2, alpha = 4.0>}
          : tensor<?x?x32xf32> -> tensor<?x?x16xf32>
  return %y0, %y1 : tensor<?x?x16xf32>, tensor<?x?x16xf32>
}
