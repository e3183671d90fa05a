// RUN: rm -rf %t && mkdir -p %t
// RUN: mixq-import %mixq_data/models/stories260K-hf -o %t/model.mlir
// RUN: mixq-opt %t/model.mlir --mixq-assign-config=config=%S/Inputs/mixed.json --mixq-materialize-quant=out=%t/v | FileCheck %s
// RUN: python3 %S/Inputs/st-header.py %t/v/weights.safetensors | FileCheck %s --check-prefix=FILE
// Running it again keeps the file consistent (tensors replaced, not doubled).
// RUN: mixq-opt %t/model.mlir --mixq-assign-config=config=%S/Inputs/mixed.json --mixq-materialize-quant=out=%t/v -o /dev/null
// RUN: python3 %S/Inputs/st-header.py %t/v/weights.safetensors | grep -c "qcodes" | FileCheck %s --check-prefix=COUNT
// Bad input: no out, a config-only checkpoint, an unwritable directory.
// RUN: not mixq-opt %t/model.mlir --mixq-materialize-quant 2>&1 | FileCheck %s --check-prefix=NOOUT
// RUN: mixq-import %mixq_src/test/Transforms/Inputs/tiny/config.json | not mixq-opt --mixq-assign-config=config=%S/Inputs/nf4-loftq.json --mixq-materialize-quant=out=%t/w 2>&1 | FileCheck %s --check-prefix=NOWEIGHTS
// RUN: touch %t/file
// RUN: not mixq-opt %t/model.mlir --mixq-materialize-quant=out=%t/file/sub 2>&1 | FileCheck %s --check-prefix=BADOUT

// Every configured linear (all 35 projections of stories260K) is quantized
// into weights.safetensors; the module records where.

// CHECK: module attributes {{{.*}}mixq.weights = "{{.*}}/v/weights.safetensors"
// CHECK: mixq.linear {{.*}}@ckpt::@model.layers.0.self_attn.q_proj.weight {{{.*}}mixq.materialized, quant = #mixq.quant<format = nf4, double_quant = true>
// CHECK: mixq.linear {{.*}}@ckpt::@model.layers.1.mlp.down_proj.weight {{{.*}}mixq.materialized, quant = #mixq.quant<format = int4, tile = [4, 4]>
// CHECK: mixq.linear {{.*}}@ckpt::@model.layers.3.self_attn.v_proj.weight {{{.*}}mixq.materialized, quant = #mixq.quant<format = bf16>
// CHECK: mixq.linear {{.*}}@ckpt::@model.layers.4.self_attn.k_proj.weight {{{.*}}mixq.materialized, quant = #mixq.quant<format = f32>
// CHECK: mixq.tied_lm_head

// nf4 + double quant (64 x 64: 64 blocks of 64, one 256-block of absmax codes).
// FILE: model.layers.0.self_attn.q_proj.weight.qcodes U8 [64, 32]
// FILE-NEXT: model.layers.0.self_attn.q_proj.weight.qscale_absmax F32 [1]
// FILE-NEXT: model.layers.0.self_attn.q_proj.weight.qscale_codes U8 [64]
// FILE-NEXT: model.layers.0.self_attn.q_proj.weight.qscale_offset F32 [1]
// int4 tiles [4, 4] of the 64 x 172 down_proj: alpha and beta per tile.
// FILE: model.layers.1.mlp.down_proj.weight.qcodes U8 [64, 86]
// FILE-NEXT: model.layers.1.mlp.down_proj.weight.qscales F32 [16, 43]
// FILE-NEXT: model.layers.1.mlp.down_proj.weight.qzeros F32 [16, 43]
// int8 (layer 2): absmax per block of 64, 172 columns -> 3 blocks per row.
// FILE: model.layers.2.mlp.down_proj.weight.qcodes U8 [64, 172]
// FILE-NEXT: model.layers.2.mlp.down_proj.weight.qscales F32 [64, 3]
// FILE-NEXT: model.layers.2.mlp.gate_proj.weight.qcodes U8 [172, 64]
// FILE-NEXT: model.layers.2.mlp.gate_proj.weight.qscales F32 [172, 1]
// bf16 and f32 payloads.
// FILE: model.layers.3.self_attn.v_proj.weight.qcodes U8 [32, 128]
// FILE: model.layers.4.self_attn.k_proj.weight.qcodes U8 [32, 256]
// FILE: meta format = mixq-weights
// FILE-NEXT: meta model.layers.0.mlp.down_proj.weight = {"block":64,"cols":172,"double_quant":true,"format":"nf4","row_bytes":86,"rows":64,"tile":[1,64]}
// FILE: meta model.layers.1.mlp.down_proj.weight = {"block":64,"cols":172,"double_quant":false,"format":"int4","row_bytes":86,"rows":64,"tile":[4,4]}
// FILE: meta version = 1

// COUNT: 35

// NOOUT: error: mixq-materialize-quant needs out=DIR
// NOWEIGHTS: error: mixq-materialize-quant needs weights, but checkpoint {{.*}}tiny/config.json is config-only
// BADOUT: error: cannot create {{.*}}/file/sub
