// RUN: mixq-import %S/Inputs/tiny/config.json -o %t.mlir
// RUN: mixq-opt %t.mlir --mixq-assign-config=config=%S/Inputs/uniform-nf4-r8.json | FileCheck %s --check-prefix=UNIFORM
// RUN: mixq-opt %t.mlir --mixq-assign-config=config=%S/Inputs/per-layer.json | FileCheck %s --check-prefix=LAYER
// RUN: not mixq-opt %t.mlir --mixq-assign-config=config=%S/Inputs/bad-layer.json 2>&1 | FileCheck %s --check-prefix=BADLAYER
// RUN: not mixq-opt %t.mlir --mixq-assign-config=config=%S/Inputs/bad-rank.json 2>&1 | FileCheck %s --check-prefix=BADRANK
// RUN: not mixq-opt %t.mlir --mixq-assign-config=config=%S/Inputs/bad-block.json 2>&1 | FileCheck %s --check-prefix=BADBLOCK
// RUN: not mixq-opt %t.mlir --mixq-assign-config=config=%S/Inputs/bad-bits.json 2>&1 | FileCheck %s --check-prefix=BADBITS
// RUN: not mixq-opt %t.mlir --mixq-assign-config=config=%S/Inputs/bad-qablora.json 2>&1 | FileCheck %s --check-prefix=BADQA
// RUN: not mixq-opt %t.mlir --mixq-assign-config=config=%S/Inputs/bad-key.json 2>&1 | FileCheck %s --check-prefix=BADKEY
// RUN: not mixq-opt %t.mlir --mixq-assign-config=config=%S/Inputs/bad-json.json 2>&1 | FileCheck %s --check-prefix=BADJSON
// RUN: not mixq-opt %t.mlir --mixq-assign-config=config=%S/Inputs/bad-version.json 2>&1 | FileCheck %s --check-prefix=BADVER
// RUN: not mixq-opt %t.mlir --mixq-assign-config=config=%S/Inputs/missing.json 2>&1 | FileCheck %s --check-prefix=MISSING
// RUN: not mixq-opt %t.mlir --mixq-assign-config 2>&1 | FileCheck %s --check-prefix=NOCFG
// RUN: mixq-import %mixq_data/models/stories260K-hf | not mixq-opt --mixq-assign-config=config=%S/Inputs/per-layer.json 2>&1 | FileCheck %s --check-prefix=TIED

// The imported tiny model (2 layers, hidden 64, MLP 128, 4 heads, 2 KV heads,
// untied lm_head) gets the decisions of a config JSON.

// UNIFORM: module attributes {mixq.config = "{{.*}}uniform-nf4-r8.json"
// UNIFORM-LABEL: func.func @model
// UNIFORM-COUNT-14: mixq.linear {{.*}}adapter = #mixq.lora<rank = 8, alpha = 1.600000e+01, dropout = 5.000000e-02>, layer = {{[01]}} : i64, quant = #mixq.quant<format = nf4, double_quant = true>
// UNIFORM-NOT: adapter
// UNIFORM: mixq.linear {{.*}}@ckpt::@lm_head.weight {layer = -1 : i64, role = "lm_head"}

// LAYER-LABEL: func.func @model
// LAYER: @ckpt::@model.layers.0.self_attn.q_proj.weight {adapter = #mixq.lora<rank = 4, alpha = 8.000000e+00>, layer = 0 : i64, quant = #mixq.quant<format = nf4>, role = "q_proj"}
// LAYER: @ckpt::@model.layers.0.self_attn.k_proj.weight {adapter = #mixq.lora<rank = 4, alpha = 8.000000e+00>, layer = 0 : i64, quant = #mixq.quant<format = nf4>, role = "k_proj"}
// LAYER: @ckpt::@model.layers.0.self_attn.v_proj.weight {layer = 0 : i64, quant = #mixq.quant<format = bf16>, role = "v_proj"}
// LAYER: @ckpt::@model.layers.0.mlp.gate_proj.weight {adapter = #mixq.qblora<rank = 2, lambda = 2, alpha = 4.000000e+00>, layer = 0 : i64, quant = #mixq.quant<format = nf4>, role = "gate_proj"}
// LAYER: @ckpt::@model.layers.1.self_attn.q_proj.weight {adapter = #mixq.lora<rank = 2, alpha = 4.000000e+00>, layer = 1 : i64, quant = #mixq.quant<format = int8>, role = "q_proj"}
// LAYER: @ckpt::@model.layers.1.mlp.down_proj.weight {adapter = #mixq.qablora<lambda = [8, 8], alpha = 4.000000e+00>, layer = 1 : i64, quant = #mixq.quant<format = int4, tile = [8, 8]>, role = "down_proj"}
// LAYER: @ckpt::@lm_head.weight {layer = -1 : i64, quant = #mixq.quant<format = int8>, role = "lm_head"}

// BADLAYER: error: config {{.*}}bad-layer.json: 'layers'[0] names layer 7 but the model has 2 layers
// BADRANK: error: 'mixq.linear' op expects rank <= min(out, in) = 64, got 128
// BADRANK: error: config {{.*}}bad-rank.json: layer 0 q_proj cannot take this configuration
// BADBLOCK: error: expects block to be a power of two in [16, 4096], got 48
// BADBLOCK: error: config {{.*}}bad-block.json: layer 0 q_proj cannot take this configuration
// BADBITS: error: {{.*}}bad-bits.json: layer 0 q_proj: bits 5 not allowed; expected 2, 3, 4, 8, 16 or 32
// BADQA: error: 'mixq.linear' op expects the qablora lambda [4, 8] to equal the quant tile [8, 8]
// BADQA: error: config {{.*}}bad-qablora.json: layer 0 q_proj cannot take this configuration
// BADKEY: error: {{.*}}bad-key.json: unknown key 'rnak' in 'default'
// BADJSON: error: {{.*}}bad-json.json: malformed JSON
// BADVER: error: {{.*}}bad-version.json: unsupported config version 2 (this MixQ reads version 1)
// MISSING: error: {{.*}}missing.json: cannot read config
// NOCFG: error: mixq-assign-config needs config=FILE
// TIED: error: config {{.*}}per-layer.json: 'layers'[4] configures lm_head but the model's head is tied to the embedding
