// RUN: rm -rf %t && mkdir -p %t
// RUN: mixq-import %mixq_data/models/stories260K-hf | mixq-opt --mixq-compile="config=%S/Inputs/mixed.json out=%t/v seed=1" -o %t/out.mlir
// RUN: FileCheck %s --check-prefix=MANIFEST < %t/v/manifest.json
// RUN: FileCheck %s --check-prefix=IR < %t/v/variant.mlir
// RUN: diff -B %t/out.mlir %t/v/variant.mlir
// RUN: python3 %S/Inputs/check-report.py %t/v/init_report.json compile | FileCheck %s --check-prefix=REPORT
// RUN: FileCheck %s --check-prefix=MEMORY < %t/v/memory.json
// RUN: python3 %S/Inputs/st-header.py %t/v/weights.safetensors | grep -c qcodes | FileCheck %s --check-prefix=PACKED
// Deterministic: compiling again with the same seed gives the same weights.
// RUN: mixq-import %mixq_data/models/stories260K-hf | mixq-opt --mixq-compile="config=%S/Inputs/mixed.json out=%t/w seed=1" -o /dev/null
// RUN: cmp %t/v/weights.safetensors %t/w/weights.safetensors
// RUN: mixq-import %mixq_data/models/stories260K-hf | not mixq-opt --mixq-compile=out=%t/x 2>&1 | FileCheck %s --check-prefix=NOCFG

// MANIFEST: "checkpoint": "{{.*}}stories260K-hf{{.*}}",
// MANIFEST: "config": {
// MANIFEST: "init": "loftq",
// MANIFEST: "weights": "weights.safetensors"

// IR: module attributes {{{.*}}mixq.memory_estimate{{.*}}mixq.weights = "{{.*}}/v/weights.safetensors"
// IR: mixq.fused_linear {{.*}}@ckpt::@model.layers.0.self_attn.q_proj.weight {{{.*}}kernel = "nf4_b64_dq_lora_r8_64x64"{{.*}}mixq.init_error
// IR: mixq.fused_linear {{.*}}@ckpt::@model.layers.0.mlp.gate_proj.weight {{{.*}}kernel = "nf4_b64_dq_qblora_r2_l2_172x64"
// IR: mixq.fused_linear {{.*}}@ckpt::@model.layers.1.mlp.down_proj.weight {{{.*}}kernel = "int4_t4x4_qablora_l4x4_64x172"
// IR: mixq.fused_linear {{.*}}@ckpt::@model.layers.2.mlp.down_proj.weight {{{.*}}kernel = "int8_b64_lora_r8_64x172"
// IR: mixq.fused_linear {{.*}}@ckpt::@model.layers.4.self_attn.k_proj.weight {kernel = "f32_32x64"
// IR-NOT: mixq.linear

// REPORT: 33 linears, compile
// REPORT: model.layers.2.self_attn.q_proj.weight lora loftq below

// MEMORY: "total":

// PACKED: 35

// NOCFG: error: mixq-compile needs config=FILE and out=DIR
