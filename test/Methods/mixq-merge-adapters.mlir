// RUN: rm -rf %t && mkdir -p %t
// RUN: mixq-import %mixq_data/models/stories260K-hf -o %t/model.mlir
// LoRA (PiSSA-initialised, so A and B are non-zero) merged into f32 bases:
// merged W - W has exactly the norm of the init error ||W - Q - s*AB||_F.
// RUN: mixq-opt %t/model.mlir --mixq-assign-config=config=%S/Inputs/nf4-pissa.json --mixq-init-adapters=out=%t/init -o %t/init.mlir
// RUN: mixq-opt %t/init.mlir --mixq-merge-adapters="adapters=%t/init/weights.safetensors out=%t/merged" | FileCheck %s
// RUN: python3 %S/Inputs/check-merge.py dense %t/merged/weights.safetensors %mixq_data/models/stories260K-hf/model.safetensors %t/init/init_report.json | FileCheck %s --check-prefix=DENSE
// QA-BLoRA: a trained H folded into the zero points of the int4 tiles.
// RUN: mixq-opt %t/model.mlir --mixq-assign-config=config=%S/Inputs/qablora.json --mixq-materialize-quant=out=%t/q -o %t/q.mlir
// RUN: python3 %S/Inputs/make-h.py %t/h.safetensors base_model.model.model.layers.1.mlp.down_proj.lora_H.weight 16 43
// RUN: mixq-opt %t/q.mlir --mixq-merge-adapters="adapters=%t/h.safetensors out=%t/folded" | FileCheck %s --check-prefix=FOLD
// RUN: python3 %S/Inputs/check-merge.py fold %t/folded/weights.safetensors %t/q/weights.safetensors %t/h.safetensors model.layers.1.mlp.down_proj.weight 2.0 4 | FileCheck %s --check-prefix=FOLD-NUM
// Bad input.
// RUN: not mixq-opt %t/init.mlir --mixq-merge-adapters=out=%t/x 2>&1 | FileCheck %s --check-prefix=NOADAPTERS
// RUN: not mixq-opt %t/init.mlir --mixq-merge-adapters="adapters=%t/h.safetensors out=%t/x" 2>&1 | FileCheck %s --check-prefix=MISSING
// RUN: python3 %S/Inputs/make-h.py %t/bad.safetensors base_model.model.model.layers.1.mlp.down_proj.lora_H.weight 4 4
// RUN: not mixq-opt %t/q.mlir --mixq-merge-adapters="adapters=%t/bad.safetensors out=%t/x" 2>&1 | FileCheck %s --check-prefix=BADSHAPE

// CHECK: mixq.linear {{.*}}@ckpt::@model.layers.0.self_attn.q_proj.weight {layer = 0 : i64, mixq.init_error = {{.*}}, mixq.merged, mixq.qlora_error = {{.*}}, quant = #mixq.quant<format = f32>, role = "q_proj"}
// CHECK-NOT: adapter =

// DENSE: 35 merged, all match

// FOLD: mixq.linear {{.*}}@ckpt::@model.layers.1.mlp.down_proj.weight {layer = 1 : i64, mixq.materialized, mixq.merged, quant = #mixq.quant<format = int4, tile = [4, 4]>, role = "down_proj"}
// FOLD-NUM: fold model.layers.1.mlp.down_proj.weight: beta moved yes, error ok, codes same

// NOADAPTERS: error: mixq-merge-adapters needs adapters=FILE
// MISSING: error: {{.*}}h.safetensors: no tensor named 'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight'
// BADSHAPE: error: {{.*}}bad.safetensors: adapter tensor 'base_model.model.model.layers.1.mlp.down_proj.lora_H.weight' has 16 values, expected [16, 43]
