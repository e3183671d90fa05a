// RUN: mixq-import %mixq_src/test/Transforms/Inputs/tiny/config.json | mixq-opt --mixq-assign-config=config=%mixq_src/test/Transforms/Inputs/per-layer.json --mixq-fuse-linear-adapter | FileCheck %s
// RUN: mixq-import %mixq_src/test/Transforms/Inputs/tiny/config.json | mixq-opt --mixq-assign-config=config=%mixq_src/test/Transforms/Inputs/per-layer.json --mixq-fuse-linear-adapter | mixq-opt | FileCheck %s
// Linears without a quant attribute (no config entry) stay mixq.linear.
// RUN: mixq-import %mixq_src/test/Transforms/Inputs/tiny/config.json | mixq-opt --mixq-fuse-linear-adapter | FileCheck %s --check-prefix=NONE
// RUN: rm -rf %t && mkdir -p %t
// RUN: mixq-import %mixq_src/test/Transforms/Inputs/tiny/config.json | mixq-opt --mixq-assign-config=config=%mixq_src/test/Transforms/Inputs/per-layer.json --mixq-fuse-linear-adapter=out=%t -o /dev/null
// RUN: FileCheck %s < %t/variant.mlir
// RUN: not mixq-opt %s --mixq-fuse-linear-adapter=out=%t/variant.mlir/sub 2>&1 | FileCheck %s --check-prefix=BADOUT

// The tiny model (hidden 64, MLP 128, 4 heads, 2 KV heads) with per-layer.json:
// every projection fused, the kernel naming format, block or tile, adapter,
// rank, lambda and shape.

// CHECK-LABEL: func.func @model
// CHECK: %[[Q:.*]] = mixq.fused_linear %[[X:.*]], @ckpt::@model.layers.0.self_attn.q_proj.weight {adapter = #mixq.lora<rank = 4, alpha = 8.000000e+00>, kernel = "nf4_b64_lora_r4_64x64", layer = 0 : i64, quant = #mixq.quant<format = nf4>, role = "q_proj"} : tensor<?x?x64xf32> -> tensor<?x?x64xf32>
// CHECK: mixq.fused_linear %[[X]], @ckpt::@model.layers.0.self_attn.k_proj.weight {{{.*}}kernel = "nf4_b64_lora_r4_32x64"
// CHECK: mixq.fused_linear %[[X]], @ckpt::@model.layers.0.self_attn.v_proj.weight {kernel = "bf16_32x64", layer = 0 : i64, quant = #mixq.quant<format = bf16>, role = "v_proj"}
// CHECK: mixq.rope %[[Q]]
// CHECK: mixq.fused_linear {{.*}}gate_proj.weight {adapter = #mixq.qblora<rank = 2, lambda = 2, alpha = 4.000000e+00>, kernel = "nf4_b64_qblora_r2_l2_128x64"
// CHECK: mixq.fused_linear {{.*}}down_proj.weight {{{.*}}kernel = "nf4_b64_lora_r4_64x128"
// CHECK: mixq.fused_linear {{.*}}layers.1.self_attn.q_proj.weight {{{.*}}kernel = "int8_b64_lora_r2_64x64"
// CHECK: mixq.fused_linear {{.*}}layers.1.mlp.down_proj.weight {adapter = #mixq.qablora<lambda = [8, 8], alpha = 4.000000e+00>, kernel = "int4_t8x8_qablora_l8x8_64x128"
// CHECK: mixq.fused_linear {{.*}}@ckpt::@lm_head.weight {kernel = "int8_b64_128x64", layer = -1 : i64
// CHECK-NOT: mixq.linear

// NONE-COUNT-15: mixq.linear
// NONE-NOT: mixq.fused_linear

// BADOUT: error: cannot write {{.*}}variant.mlir/sub/variant.mlir

module {
}
