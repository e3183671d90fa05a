// RUN: mixq-import %S/Inputs/tiny/config.json | mixq-opt --mixq-assign-config=config=%S/Inputs/uniform-nf4-r8.json --mixq-estimate-memory="batch=2 seq-len=16 per-linear=true report=%t.json" 2>%t.err | FileCheck %s
// RUN: FileCheck %s --check-prefix=TABLE < %t.err
// RUN: FileCheck %s --check-prefix=JSON < %t.json
// RUN: mixq-import %S/../Inputs/llama2-7b/config.json | mixq-opt --mixq-assign-config=config=%S/Inputs/uniform-nf4-r8.json --mixq-estimate-memory="batch=4 seq-len=256" -o /dev/null 2>&1 | FileCheck %s --check-prefix=L7B
// RUN: mixq-import %S/Inputs/tiny/config.json | mixq-opt --mixq-assign-config=config=%S/Inputs/uniform-nf4-r8.json --mixq-estimate-memory="seq-lens=5,9,2 loss-tokens=3 report=%t.packed.json" -o /dev/null 2>&1 | FileCheck %s --check-prefix=PACKED
// RUN: FileCheck %s --check-prefix=PACKEDJSON < %t.packed.json
// RUN: mixq-import %S/Inputs/tiny/config.json | not mixq-opt --mixq-estimate-memory="batch=0" 2>&1 | FileCheck %s --check-prefix=BADOPT
// RUN: mixq-import %S/Inputs/tiny/config.json | not mixq-opt --mixq-estimate-memory="seq-lens=4,0" 2>&1 | FileCheck %s --check-prefix=BADLENS

// Tiny model, uniform NF4 (block 64, double quant) + LoRA r8 on the 14
// projections, lm_head left in f32. Derived by hand (docs/memory-model.md):
//  q/o  [64, 64]:  2048 codes + 64 block codes + 4 (one 256-block absmax) + 4 (mean) = 2120
//  k/v  [32, 64]:  1024 + 32 + 4 + 4 = 1064
//  gate/up [128, 64], down [64, 128]: 4096 + 128 + 4 + 4 = 4232
//  per layer 2*2120 + 2*1064 + 3*4232 + 2 norms * 256 = 19576; two layers 39152
//  + embedding 128*64*4 = 32768 + final norm 256 + f32 lm_head 32768 = 104944
//  adapters: r8 * sum(in + out) = 8 * 1024 per layer -> 16384 params = 65536 B
//  AdamW: 2 * 65536; gradients: 65536.
//
// Activations and workspace (d 64, h 4, g 2, hd 16, f 128, V 128; NF4 runs
// through the fused kernels, which save nothing but the u8 dropout masks).
// batch 2 x 16: N = 32 tokens, sum len^2 = 512, max len 16, 32 loss rows.
//  per layer saved f32 values: N*d 2048 + (N*d + N) 2080 + N*(h+2g)*hd 4096
//   + h*sum len^2 2048 + N*h*hd 2048 + N*d 2048 + (N*d + N) 2080 + 3*N*f
//   12288 = 28736 -> 114944 B; masks N*in: 6 linears with in 64, down 128:
//   32*(6*64 + 128) = 16384 B; per layer 131328, two layers 262656.
//  LM-head moment: 262656 + 4*(N*d + Nl*d + Nl + Nl*V = 8224) = 295552,
//   workspace 4*(N*d + Nl*d) = 16384: 311936.
//  Layer-1 backward: 262656 + workspace 4*(N*d + 4*N*128 + 16*16 = 18688)
//   + down_proj's dropped input and its gradient 8*N*128 = 32768 -> 107520:
//   370176, the peak. Total 104944 + 65536 + 131072 + 65536 + 262656 +
//   107520 = 737264.

// CHECK: module attributes {{{.*}}mixq.memory_estimate = {activations = 262656 : i64, adapters = 65536 : i64, batch = 2 : i64, gradients = 65536 : i64, optimizer = 131072 : i64, seq_len = 16 : i64, total = 737264 : i64, weights = 104944 : i64, workspace = 107520 : i64}
// CHECK-LABEL: func.func @model
// CHECK: @ckpt::@model.layers.0.self_attn.q_proj.weight {adapter = {{.*}}, mixq.weight_bytes = 2120 : i64
// CHECK: @ckpt::@model.layers.0.self_attn.k_proj.weight {adapter = {{.*}}, mixq.weight_bytes = 1064 : i64
// CHECK: @ckpt::@model.layers.0.mlp.down_proj.weight {adapter = {{.*}}, mixq.weight_bytes = 4232 : i64
// CHECK: @ckpt::@lm_head.weight {layer = -1 : i64, mixq.weight_bytes = 32768 : i64

// TABLE: layer role        out x in    fmt   bits/p  weight bytes adapter        params
// TABLE-NEXT: 0 q_proj         64x64     nf4    4.141         2120 lora r=8           1024
// TABLE: -1 lm_head       128x64     f32   32.000        32768 none                  0
// TABLE: mixq memory estimate: 2 layers, batch 2 x 16 tokens
// TABLE-NEXT: weights                104944 B
// TABLE-NEXT: adapters                65536 B
// TABLE-NEXT: optimizer              131072 B
// TABLE-NEXT: gradients               65536 B
// TABLE-NEXT: activations            262656 B
// TABLE-NEXT: workspace              107520 B
// TABLE-NEXT: total                  737264 B

// JSON: "adapters": 65536,
// JSON: "batch": 2,
// JSON: "weights": 104944,

// LLaMA-2-7B from its config.json alone. 19,988,480 LoRA r8 parameters on all
// seven projections (PEFT's count for this model); the NF4 base with its
// double-quant metadata at 4.127 bits plus f32 embedding and lm_head.
// L7B: mixq memory estimate: 32 layers, batch 4 x 256 tokens
// L7B-NEXT: weights            4390413184 B
// L7B-NEXT: adapters             79953920 B
// L7B-NEXT: optimizer           159907840 B
// L7B-NEXT: gradients            79953920 B
// L7B-NEXT: activations
// L7B-NEXT: workspace
// L7B-NEXT: total

// The real packed micro-batch: sequences of 5, 9 and 2 tokens, 3 loss rows.
// N = 16, sum len^2 = 110, max len 9.
//  per layer: values 1024 + 1040 + 2048 + 4*110 + 1024 + 1024 + 1040 + 6144
//   = 13784 -> 55136 B; masks 16*512 = 8192; two layers 126656.
//  LM-head moment: 126656 + 4*(1024 + 3*64 + 3 + 3*128) + 4*(1024 + 3*64)
//   = 137932; layer-1 backward: 126656 + 4*(1024 + 4*16*128 + 81) +
//   8*16*128 = 126656 + 53572 = 180228, the peak.
// PACKED: mixq memory estimate: 2 layers, packed micro-batch of 3 sequences, 16 tokens
// PACKED: activations            126656 B
// PACKED-NEXT: workspace               53572 B
// PACKED-NEXT: total                  547316 B
// PACKEDJSON: "activations": 126656,
// PACKEDJSON: "loss_tokens": 3,
// PACKEDJSON: "seq_lens": [
// PACKEDJSON-NEXT: 5,
// PACKEDJSON-NEXT: 9,
// PACKEDJSON-NEXT: 2
// PACKEDJSON: "total": 547316,

// BADOPT: error: mixq-estimate-memory expects positive batch and seq-len
// BADLENS: error: mixq-estimate-memory expects positive seq-lens
