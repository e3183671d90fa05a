// RUN: rm -rf %t && mkdir -p %t
// RUN: mixq-import %mixq_data/models/stories260K-hf -o %t/model.mlir
// RUN: mixq-opt %t/model.mlir --mixq-lq-lora-bits="budget=4.2 out=%t/b42.json" | FileCheck %s
// RUN: mixq-opt %t/model.mlir --mixq-lq-lora-bits="budget=3.5 out=%t/b35.json rank=0" -o /dev/null
// RUN: mixq-opt %t/model.mlir --mixq-lq-lora-bits="budget=6 out=%t/b6.json" -o /dev/null
// RUN: python3 %S/Inputs/check-lq.py %t/b35.json %t/b42.json %t/b6.json | FileCheck %s --check-prefix=ALLOC
// The generated config is a valid config for the rest of the pipeline.
// RUN: mixq-opt %t/model.mlir --mixq-assign-config=config=%t/b42.json --mixq-estimate-memory=print=false | FileCheck %s --check-prefix=ASSIGN
// RUN: not mixq-opt %t/model.mlir --mixq-lq-lora-bits="budget=2 out=%t/x.json" 2>&1 | FileCheck %s --check-prefix=LOW
// RUN: not mixq-opt %t/model.mlir --mixq-lq-lora-bits 2>&1 | FileCheck %s --check-prefix=NOOUT

// CHECK: module attributes {mixq.lq_bits_per_param = {{4\.(0|1|2)[0-9]*}}
// CHECK: mixq.linear {{.*}}@ckpt::@model.layers.0.self_attn.q_proj.weight {layer = 0 : i64, mixq.lq_format = "{{int2|int3|nf4|int8}}"

// More budget never costs accuracy: the total squared error falls as the
// budget grows, and every allocation stays within its budget.
// ALLOC: 35 linears, budget 3.5, used {{3\.[0-5][0-9]*}}, within
// ALLOC-NEXT: 35 linears, budget 4.2, used {{[34]\.[0-9]*}}, within
// ALLOC-NEXT: 35 linears, budget 6.0, used {{[45]\.[0-9]*}}, within
// ALLOC-NEXT: error decreasing with budget

// ASSIGN: mixq.linear {{.*}}adapter = #mixq.lora<rank = 8, alpha = 1.600000e+01>

// LOW: error: mixq-lq-lora-bits: budget 2.000000e+00 bits/param is below the cheapest allocation
// NOOUT: error: mixq-lq-lora-bits needs out=FILE
