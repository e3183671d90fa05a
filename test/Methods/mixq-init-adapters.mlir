// RUN: rm -rf %t && mkdir -p %t
// RUN: mixq-import %mixq_data/models/stories260K-hf -o %t/model.mlir
// LoftQ (1 iteration) at NF4 on every projection of stories260K.
// RUN: mixq-opt %t/model.mlir --mixq-assign-config=config=%S/Inputs/nf4-loftq.json --mixq-materialize-quant=out=%t/loftq --mixq-init-adapters=out=%t/loftq | FileCheck %s --check-prefix=LOFTQ
// RUN: python3 %S/Inputs/check-report.py %t/loftq/init_report.json loftq | FileCheck %s --check-prefix=LOFTQ-REPORT
// RUN: python3 %S/Inputs/st-header.py %t/loftq/weights.safetensors | FileCheck %s --check-prefix=LOFTQ-FILE
// PiSSA at NF4.
// RUN: mixq-opt %t/model.mlir --mixq-assign-config=config=%S/Inputs/nf4-pissa.json --mixq-init-adapters=out=%t/pissa -o /dev/null
// RUN: python3 %S/Inputs/check-report.py %t/pissa/init_report.json pissa | FileCheck %s --check-prefix=PISSA-REPORT
// Gaussian (the default init of mixed.json) on other formats and adapters;
// seeded: the same seed gives the same file, another seed another A.
// RUN: mixq-opt %t/model.mlir --mixq-assign-config=config=%S/Inputs/mixed.json --mixq-init-adapters="out=%t/g1 seed=3" | FileCheck %s --check-prefix=MIXED
// RUN: mixq-opt %t/model.mlir --mixq-assign-config=config=%S/Inputs/mixed.json --mixq-init-adapters="out=%t/g2 seed=3" -o /dev/null
// RUN: mixq-opt %t/model.mlir --mixq-assign-config=config=%S/Inputs/mixed.json --mixq-init-adapters="out=%t/g3 seed=4" -o /dev/null
// RUN: cmp %t/g1/weights.safetensors %t/g2/weights.safetensors
// RUN: not cmp -s %t/g1/weights.safetensors %t/g3/weights.safetensors
// RUN: python3 %S/Inputs/st-header.py %t/g1/weights.safetensors | FileCheck %s --check-prefix=MIXED-FILE
// RUN: python3 %S/Inputs/check-report.py %t/g1/init_report.json mixed | FileCheck %s --check-prefix=MIXED-REPORT
// RUN: not mixq-opt %t/model.mlir --mixq-init-adapters="out=%t/x gaussian=uniform" 2>&1 | FileCheck %s --check-prefix=BADKIND
// RUN: not mixq-opt %t/model.mlir --mixq-init-adapters 2>&1 | FileCheck %s --check-prefix=NOOUT

// LOFTQ: mixq.linear {{.*}}@ckpt::@model.layers.0.self_attn.q_proj.weight {adapter = #mixq.lora<rank = 8, alpha = 1.600000e+01, init = loftq>, layer = 0 : i64, mixq.init_error = [[E:[0-9.e+-]+]] : f64, mixq.materialized, mixq.qlora_error = [[Q:[0-9.e+-]+]] : f64
// LOFTQ-COUNT-34: mixq.init_error

// Every one of the 35 linears: ||W - Q - s*AB||_F < ||W - Q||_F.
// LOFTQ-REPORT: 35 linears, loftq, all below qlora
// LOFTQ-REPORT: model.layers.0.self_attn.q_proj.weight error

// The base of each LoftQ linear is overridden (f32) and re-packed, and the
// adapters are stored under PEFT names.
// LOFTQ-FILE: base_model.model.model.layers.0.mlp.down_proj.lora_A.weight F32 [8, 172]
// LOFTQ-FILE-NEXT: base_model.model.model.layers.0.mlp.down_proj.lora_B.weight F32 [64, 8]
// LOFTQ-FILE: base_model.model.model.layers.4.self_attn.v_proj.lora_B.weight F32 [32, 8]
// LOFTQ-FILE: model.layers.0.mlp.down_proj.weight F32 [64, 172]
// LOFTQ-FILE-NEXT: model.layers.0.mlp.down_proj.weight.qcodes U8 [64, 86]

// PISSA-REPORT: 35 linears, pissa, all below qlora

// MIXED: @ckpt::@model.layers.0.mlp.gate_proj.weight {adapter = #mixq.qblora<rank = 2, lambda = 2, alpha = 4.000000e+00>, {{.*}}mixq.init_error
// MIXED: @ckpt::@model.layers.1.mlp.down_proj.weight {adapter = #mixq.qablora<lambda = [4, 4], alpha = 1.000000e+00>, {{.*}}mixq.init_error
// MIXED: @ckpt::@model.layers.3.self_attn.v_proj.weight {layer = 3 : i64, quant = #mixq.quant<format = bf16>, role = "v_proj"}

// Q-BLoRA (lambda 2, rank 2): A [4, 32], B [86, 4]; QA-BLoRA: H [16, 43].
// MIXED-FILE: base_model.model.model.layers.0.mlp.gate_proj.lora_A.weight F32 [4, 32]
// MIXED-FILE-NEXT: base_model.model.model.layers.0.mlp.gate_proj.lora_B.weight F32 [86, 4]
// MIXED-FILE: base_model.model.model.layers.1.mlp.down_proj.lora_H.weight F32 [16, 43]
// MIXED-FILE-NOT: layers.3.self_attn.v_proj.lora_A

// Gaussian and QA-BLoRA start at the quantized base (error = QLoRA's);
// LoftQ (2 iterations, int8) goes below it.
// MIXED-REPORT: 33 linears, mixed
// MIXED-REPORT: model.layers.0.mlp.gate_proj.weight qblora gaussian equal
// MIXED-REPORT: model.layers.0.self_attn.q_proj.weight lora gaussian equal
// MIXED-REPORT: model.layers.1.mlp.down_proj.weight qablora gaussian equal
// MIXED-REPORT: model.layers.2.self_attn.q_proj.weight lora loftq below

// BADKIND: error: mixq-init-adapters: gaussian must be normal or kaiming, got 'uniform'
// NOOUT: error: mixq-init-adapters needs out=DIR
