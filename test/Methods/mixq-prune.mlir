// REQUIRES: data
// --mixq-prune end to end (issue #7): stories260K pruned by 30% of the KV
// groups and MLP channels of layers 1-3 with taylor1 scores; the pruned model
// imports (an HF checkpoint in out/pruned), compiles (--mixq-compile),
// fine-tunes (4 steps on a 25-question qa1 subset) and evaluates (20 qa1
// test questions) with mixq-run. taylor2 selects different channels.
//
// RUN: rm -rf %t && mkdir -p %t
// RUN: mixq-run importance %mixq_data/models/stories260K-hf \
// RUN:   --tokenizer %mixq_data/models/stories260K/tok512.bin --data babi:qa1 \
// RUN:   --samples 4 --method taylor1 --out %t/t1.json --quiet
// RUN: mixq-import %mixq_data/models/stories260K-hf | mixq-opt \
// RUN:   --mixq-prune="ratio=0.3 layers=1-3 importance=%t/t1.json method=taylor1 out=%t/v" \
// RUN:   -o %t/pruned.mlir 2> %t/report.txt
// RUN: FileCheck %s --check-prefix=REPORT < %t/report.txt
// RUN: FileCheck %s --check-prefix=IR < %t/pruned.mlir
// RUN: mixq-import %t/v/pruned | FileCheck %s --check-prefix=IMPORT
// RUN: mixq-opt %t/pruned.mlir --mixq-compile="config=%S/../Tools/Inputs/baselines/gaussian.json out=%t/v seed=0" -o %t/compiled.mlir
// RUN: FileCheck %s --check-prefix=COMPILED < %t/compiled.mlir
// RUN: FileCheck %s --check-prefix=MANIFEST < %t/v/manifest.json
// RUN: mixq-run finetune %t/v --tokenizer %mixq_data/models/stories260K/tok512.bin \
// RUN:   --data babi:%S/../Tools/Inputs/mixq-run/babi_small_train.txt --epochs 1 \
// RUN:   --batch 8 --lr 3e-3 --out %t/run --eval babi:qa1 --limit 20 --quiet
// RUN: %python %S/../Tools/Inputs/baselines/check-metrics.py %t/run/metrics.json | FileCheck %s --check-prefix=TUNE
// RUN: %python -c "import json, sys; m = json.load(open(sys.argv[1])); print('estimate within 3%%' if abs(m['peak_over_estimate'] - 1) <= 0.03 else 'estimate off: %%r' %% m['peak_over_estimate'])" %t/run/metrics.json | FileCheck %s --check-prefix=EST
//
// The pruned model computes what the unpruned one does with the removed
// heads' o_proj columns and channels' down_proj columns zeroed, and differs
// from the unpruned model.
// RUN: %python %S/Inputs/mask-pruned.py %mixq_data/models/stories260K-hf %t/v/prune_report.json %t/masked
// RUN: mixq-run eval %t/v/pruned --tokenizer %mixq_data/models/stories260K/tok512.bin \
// RUN:   --task ppl:%S/../Tools/Inputs/mixq-run/babi_small_train.txt --quiet --metrics %t/ppl-pruned.json
// RUN: mixq-run eval %t/masked --tokenizer %mixq_data/models/stories260K/tok512.bin \
// RUN:   --task ppl:%S/../Tools/Inputs/mixq-run/babi_small_train.txt --quiet --metrics %t/ppl-masked.json
// RUN: mixq-run eval %mixq_data/models/stories260K-hf --tokenizer %mixq_data/models/stories260K/tok512.bin \
// RUN:   --task ppl:%S/../Tools/Inputs/mixq-run/babi_small_train.txt --quiet --metrics %t/ppl-full.json
// RUN: %python %S/Inputs/compare-ppl.py %t/ppl-pruned.json %t/ppl-masked.json | FileCheck %s --check-prefix=SAME
// RUN: %python %S/Inputs/compare-ppl.py %t/ppl-pruned.json %t/ppl-full.json | FileCheck %s --check-prefix=DIFF
//
// taylor2 is selectable; the file's method must match method=.
// RUN: mixq-run importance %mixq_data/models/stories260K-hf \
// RUN:   --tokenizer %mixq_data/models/stories260K/tok512.bin --data babi:qa1 \
// RUN:   --samples 4 --method taylor2 --out %t/t2.json --quiet
// RUN: mixq-import %mixq_data/models/stories260K-hf | mixq-opt \
// RUN:   --mixq-prune="ratio=0.3 layers=1-3 importance=%t/t2.json method=taylor2 out=%t/v2" \
// RUN:   -o /dev/null 2> %t/report2.txt
// RUN: FileCheck %s --check-prefix=REPORT < %t/report2.txt
// RUN: not cmp %t/v/prune_report.json %t/v2/prune_report.json
// RUN: mixq-import %mixq_data/models/stories260K-hf | not mixq-opt \
// RUN:   --mixq-prune="importance=%t/t2.json method=taylor1 out=%t/x" 2>&1 \
// RUN:   | FileCheck %s --check-prefix=MISMATCH
//
// Errors.
// RUN: mixq-run importance %mixq_data/models/stories260K-hf \
// RUN:   --tokenizer %mixq_data/models/stories260K/tok512.bin --data babi:qa1 \
// RUN:   --samples 2 --method entropy --out %t/e.json --quiet
// RUN: mixq-import %mixq_data/models/stories260K-hf | not mixq-opt \
// RUN:   --mixq-prune="importance=%t/e.json out=%t/x" 2>&1 | FileCheck %s --check-prefix=ENTROPY
// RUN: mixq-import %mixq_data/models/stories260K-hf | not mixq-opt \
// RUN:   --mixq-prune="layers=2-7 importance=%t/t1.json out=%t/x" 2>&1 | FileCheck %s --check-prefix=LAYERS
// RUN: mixq-import %mixq_data/models/stories260K-hf | not mixq-opt \
// RUN:   --mixq-prune="out=%t/x" 2>&1 | FileCheck %s --check-prefix=NOIMP
// RUN: not mixq-opt %t/pruned.mlir --mixq-prune="importance=%t/t1.json out=%t/x" 2>&1 \
// RUN:   | FileCheck %s --check-prefix=SHAPE

// REPORT: mixq-prune: {{.*}} scores, ratio 0.30, parameters 260032 -> 220864 (15.1% removed)
// REPORT-NEXT: layer  heads  kv_heads  intermediate
// REPORT-NEXT:     0   8 -> 8    4 -> 4    172 -> 172
// REPORT-NEXT:     1   8 -> 6    4 -> 3    172 -> 120
// REPORT-NEXT:     2   8 -> 6    4 -> 3    172 -> 120
// REPORT-NEXT:     3   8 -> 6    4 -> 3    172 -> 120
// REPORT-NEXT:     4   8 -> 8    4 -> 4    172 -> 172

// IR: mixq.checkpoint @ckpt path "{{.*}}/v/pruned/model.safetensors" format "hf-safetensors"
// IR: mixq.tensor @model.layers.1.self_attn.q_proj.weight : tensor<48x64xf32>
// IR: mixq.tensor @model.layers.1.self_attn.k_proj.weight : tensor<24x64xf32>
// IR: mixq.tensor @model.layers.1.self_attn.o_proj.weight : tensor<64x48xf32>
// IR: mixq.tensor @model.layers.1.mlp.gate_proj.weight : tensor<120x64xf32>
// IR: mixq.tensor @model.layers.1.mlp.down_proj.weight : tensor<64x120xf32>
// IR: mixq.tensor @model.layers.4.self_attn.q_proj.weight : tensor<64x64xf32>
// IR: mixq.attention {{.*}} {causal, head_dim = 8 : i64, layer = 0 : i64, num_heads = 8 : i64, num_kv_heads = 4 : i64}
// IR: mixq.rope {{.*}}layer = 1 : i64, num_heads = 6 : i64{{.*}} : tensor<?x?x48xf32>
// IR: mixq.rope {{.*}}layer = 1 : i64, num_heads = 3 : i64{{.*}} : tensor<?x?x24xf32>
// IR: mixq.attention {{.*}} {causal, head_dim = 8 : i64, layer = 1 : i64, mixq.kept_heads = array<i64: {{.*}}>, num_heads = 6 : i64, num_kv_heads = 3 : i64} : tensor<?x?x48xf32>, tensor<?x?x24xf32>, tensor<?x?x24xf32> -> tensor<?x?x48xf32>
// IR: mixq.linear {{.*}}o_proj.weight {layer = 1 : i64, role = "o_proj"} : tensor<?x?x48xf32> -> tensor<?x?x64xf32>
// IR: mixq.swiglu {{.*}} {layer = 1 : i64} : tensor<?x?x120xf32>
// IR: mixq.linear {{.*}}down_proj.weight {layer = 1 : i64, role = "down_proj"} : tensor<?x?x120xf32> -> tensor<?x?x64xf32>

// IMPORT: mixq.tensor @model.layers.2.self_attn.v_proj.weight : tensor<24x64xf32>
// IMPORT: mixq.tensor @model.layers.3.mlp.up_proj.weight : tensor<120x64xf32>
// IMPORT: mixq.attention {{.*}}layer = 3 : i64, num_heads = 6 : i64, num_kv_heads = 3 : i64

// COMPILED: mixq.fused_linear {{.*}}@ckpt::@model.layers.2.mlp.down_proj.weight {{{.*}}kernel = "nf4_b64_dq_lora_r8_64x120"

// MANIFEST: "checkpoint": "{{.*}}/v/pruned/model.safetensors"
// MANIFEST: "mixq_layers": [

// TUNE: babi:qa1 n=20 acc ok, peak ok, steps 4 finished, loss ok, trainable yes

// EST: estimate within 3%
// SAME: ppl equal (relative difference < 1e-4)
// DIFF: ppl DIFFERENT

// MISMATCH: error: mixq-prune: {{.*}}t2.json: method=taylor1 was asked for but the file holds taylor2 scores
// ENTROPY: error: mixq-prune: {{.*}}e.json: pruning needs taylor1 or taylor2 scores, the file has method 'entropy'
// LAYERS: error: mixq-prune: bad layers '2-7': expected ranges like 1-3 within 0-4
// NOIMP: error: mixq-prune needs importance=FILE and out=DIR
// SHAPE: error: mixq-prune: {{.*}}t1.json: layers[1].kv_heads must hold 3 numbers (the model's current shape)
