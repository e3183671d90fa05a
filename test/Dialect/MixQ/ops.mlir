// RUN: mixq-opt %s | mixq-opt | FileCheck %s
// RUN: mixq-opt %s --mlir-print-op-generic | mixq-opt | FileCheck %s

// Every op and attribute of the mixq dialect, on a two-layer model whose
// layers have different shapes (layer 1 is pruned: 2 heads, MLP width 32).

// CHECK-LABEL: mixq.checkpoint @ckpt path "model-dir" format "hf-safetensors" {
// CHECK: mixq.tensor @model.embed_tokens.weight : tensor<128x32xf32>
// CHECK: mixq.tensor @model.layers.0.self_attn.k_proj.weight : tensor<16x32xbf16>
mixq.checkpoint @ckpt path "model-dir" format "hf-safetensors" {
  mixq.tensor @"model.embed_tokens.weight" : tensor<128x32xf32>
  mixq.tensor @"model.layers.0.input_layernorm.weight" : tensor<32xf32>
  mixq.tensor @"model.layers.0.self_attn.q_proj.weight" : tensor<32x32xf32>
  mixq.tensor @"model.layers.0.self_attn.k_proj.weight" : tensor<16x32xbf16>
  mixq.tensor @"model.layers.0.self_attn.v_proj.weight" : tensor<16x32xf16>
  mixq.tensor @"model.layers.0.self_attn.o_proj.weight" : tensor<32x32xf32>
  mixq.tensor @"model.layers.0.post_attention_layernorm.weight" : tensor<32xf32>
  mixq.tensor @"model.layers.0.mlp.gate_proj.weight" : tensor<64x32xf32>
  mixq.tensor @"model.layers.0.mlp.up_proj.weight" : tensor<64x32xf32>
  mixq.tensor @"model.layers.0.mlp.down_proj.weight" : tensor<32x64xf32>
  mixq.tensor @"model.layers.1.self_attn.q_proj.weight" : tensor<16x32xf32>
  mixq.tensor @"model.layers.1.mlp.gate_proj.weight" : tensor<32x32xf32>
  mixq.tensor @"model.norm.weight" : tensor<32xf32>
  mixq.tensor @"lm_head.weight" : tensor<128x32xf32>
}

// CHECK-LABEL: func.func @model
func.func @model(%ids: tensor<?x?xi32>, %labels: tensor<?x?xi32>)
    -> (tensor<?x?x128xf32>, tensor<f32>) {
  // CHECK: %[[H:.*]] = mixq.embedding %{{.*}}, @ckpt::@model.embed_tokens.weight : tensor<?x?xi32> -> tensor<?x?x32xf32>
  %h = mixq.embedding %ids, @ckpt::@"model.embed_tokens.weight"
         : tensor<?x?xi32> -> tensor<?x?x32xf32>
  // CHECK: mixq.rms_norm %[[H]], @ckpt::@model.layers.0.input_layernorm.weight {eps = 1.000000e-05 : f64, layer = 0 : i64}
  %n = mixq.rms_norm %h, @ckpt::@"model.layers.0.input_layernorm.weight"
         {eps = 1.0e-05 : f64, layer = 0 : i64}
         : tensor<?x?x32xf32> -> tensor<?x?x32xf32>
  // CHECK: mixq.linear {{.*}}adapter = #mixq.lora<rank = 8, alpha = 1.600000e+01, dropout = 5.000000e-02>, layer = 0 : i64, quant = #mixq.quant<format = nf4, block = 32, double_quant = true>, role = "q_proj"
  %q = mixq.linear %n, @ckpt::@"model.layers.0.self_attn.q_proj.weight"
         {layer = 0 : i64, role = "q_proj",
          quant = #mixq.quant<format = nf4, block = 32, double_quant = true>,
          adapter = #mixq.lora<rank = 8, alpha = 16.0, dropout = 0.05>}
         : tensor<?x?x32xf32> -> tensor<?x?x32xf32>
  // CHECK: adapter = #mixq.lora<rank = 4, alpha = 8.000000e+00, init = loftq, init_iters = 5>, layer = 0 : i64, quant = #mixq.quant<format = int8, block = 32>
  %k = mixq.linear %n, @ckpt::@"model.layers.0.self_attn.k_proj.weight"
         {layer = 0 : i64, role = "k_proj",
          quant = #mixq.quant<format = int8, block = 32>,
          adapter = #mixq.lora<rank = 4, alpha = 8.0, init = loftq, init_iters = 5>}
         : tensor<?x?x32xf32> -> tensor<?x?x16xf32>
  // CHECK: adapter = #mixq.lora<rank = 2, init = pissa>, layer = 0 : i64, quant = #mixq.quant<format = fp4, block = 16>
  %v = mixq.linear %n, @ckpt::@"model.layers.0.self_attn.v_proj.weight"
         {layer = 0 : i64, role = "v_proj",
          quant = #mixq.quant<format = fp4, block = 16>,
          adapter = #mixq.lora<rank = 2, init = pissa>}
         : tensor<?x?x32xf32> -> tensor<?x?x16xf32>
  // CHECK: mixq.rope %{{.*}} {head_dim = 8 : i64, layer = 0 : i64, num_heads = 4 : i64, theta = 1.000000e+04 : f64} : tensor<?x?x32xf32>
  %qr = mixq.rope %q {num_heads = 4 : i64, head_dim = 8 : i64,
                      theta = 1.0e+04 : f64, layer = 0 : i64}
          : tensor<?x?x32xf32>
  %kr = mixq.rope %k {num_heads = 2 : i64, head_dim = 8 : i64,
                      theta = 1.0e+04 : f64, layer = 0 : i64}
          : tensor<?x?x16xf32>
  // CHECK: mixq.attention %{{.*}}, %{{.*}}, %{{.*}} {causal, head_dim = 8 : i64, layer = 0 : i64, num_heads = 4 : i64, num_kv_heads = 2 : i64}
  %a = mixq.attention %qr, %kr, %v {num_heads = 4 : i64, num_kv_heads = 2 : i64,
                                    head_dim = 8 : i64, causal, layer = 0 : i64}
         : tensor<?x?x32xf32>, tensor<?x?x16xf32>, tensor<?x?x16xf32>
           -> tensor<?x?x32xf32>
  // CHECK: adapter = #mixq.qablora<lambda = [8, 8], alpha = 1.000000e+00>, layer = 0 : i64, quant = #mixq.quant<format = int4, tile = [8, 8]>
  %o = mixq.linear %a, @ckpt::@"model.layers.0.self_attn.o_proj.weight"
         {layer = 0 : i64, role = "o_proj",
          quant = #mixq.quant<format = int4, tile = [8, 8]>,
          adapter = #mixq.qablora<lambda = [8, 8], alpha = 1.0>}
         : tensor<?x?x32xf32> -> tensor<?x?x32xf32>
  // CHECK: mixq.add
  %h1 = mixq.add %h, %o {layer = 0 : i64} : tensor<?x?x32xf32>
  %n2 = mixq.rms_norm %h1, @ckpt::@"model.layers.0.post_attention_layernorm.weight"
          {eps = 1.0e-05 : f64, layer = 0 : i64}
          : tensor<?x?x32xf32> -> tensor<?x?x32xf32>
  // CHECK: adapter = #mixq.qblora<rank = 2, lambda = 2, alpha = 4.000000e+00>, layer = 0 : i64, quant = #mixq.quant<format = bf16>
  %g = mixq.linear %n2, @ckpt::@"model.layers.0.mlp.gate_proj.weight"
         {layer = 0 : i64, role = "gate_proj",
          quant = #mixq.quant<format = bf16>,
          adapter = #mixq.qblora<rank = 2, lambda = 2, alpha = 4.0>}
         : tensor<?x?x32xf32> -> tensor<?x?x64xf32>
  // CHECK: quant = #mixq.quant<format = int3, tile = [1, 32]>
  %u = mixq.linear %n2, @ckpt::@"model.layers.0.mlp.up_proj.weight"
         {layer = 0 : i64, role = "up_proj",
          quant = #mixq.quant<format = int3, tile = [1, 32]>}
         : tensor<?x?x32xf32> -> tensor<?x?x64xf32>
  // CHECK: mixq.swiglu
  %s = mixq.swiglu %g, %u {layer = 0 : i64} : tensor<?x?x64xf32>
  // CHECK: quant = #mixq.quant<format = int2, tile = [2, 16]>
  %d = mixq.linear %s, @ckpt::@"model.layers.0.mlp.down_proj.weight"
         {layer = 0 : i64, role = "down_proj",
          quant = #mixq.quant<format = int2, tile = [2, 16]>}
         : tensor<?x?x64xf32> -> tensor<?x?x32xf32>
  %h2 = mixq.add %h1, %d {layer = 0 : i64} : tensor<?x?x32xf32>
  // Layer 1 is pruned: a narrower q_proj and MLP.
  // CHECK: quant = #mixq.quant<format = f32>
  %q1 = mixq.linear %h2, @ckpt::@"model.layers.1.self_attn.q_proj.weight"
          {layer = 1 : i64, role = "q_proj", quant = #mixq.quant<format = f32>}
          : tensor<?x?x32xf32> -> tensor<?x?x16xf32>
  %g1 = mixq.linear %h2, @ckpt::@"model.layers.1.mlp.gate_proj.weight"
          {layer = 1 : i64, role = "gate_proj"}
          : tensor<?x?x32xf32> -> tensor<?x?x32xf32>
  %f = mixq.rms_norm %h2, @ckpt::@"model.norm.weight" {eps = 1.0e-05 : f64}
         : tensor<?x?x32xf32> -> tensor<?x?x32xf32>
  // CHECK: mixq.linear %{{.*}}, @ckpt::@lm_head.weight {layer = -1 : i64, role = "lm_head"}
  %logits = mixq.linear %f, @ckpt::@"lm_head.weight" {layer = -1 : i64, role = "lm_head"}
              : tensor<?x?x32xf32> -> tensor<?x?x128xf32>
  // CHECK: mixq.tied_lm_head %{{.*}}, @ckpt::@model.embed_tokens.weight : tensor<?x?x32xf32> -> tensor<?x?x128xf32>
  %tied = mixq.tied_lm_head %f, @ckpt::@"model.embed_tokens.weight"
            : tensor<?x?x32xf32> -> tensor<?x?x128xf32>
  // CHECK: mixq.cross_entropy %{{.*}}, %{{.*}} {ignore_index = -1 : i64} : tensor<?x?x128xf32>, tensor<?x?xi32> -> tensor<f32>
  %loss = mixq.cross_entropy %logits, %labels {ignore_index = -1 : i64}
            : tensor<?x?x128xf32>, tensor<?x?xi32> -> tensor<f32>
  // CHECK: mixq.cross_entropy %{{.*}}, %{{.*}} : tensor<?x?x128xf32>
  %loss2 = mixq.cross_entropy %tied, %labels
            : tensor<?x?x128xf32>, tensor<?x?xi32> -> tensor<f32>
  return %logits, %loss : tensor<?x?x128xf32>, tensor<f32>
}

// mixq.fused_linear (--mixq-fuse-linear-adapter): the kernel name follows
// from the quant format, the adapter and the [out, in] shape.
// CHECK-LABEL: func.func @fused
func.func @fused(%x: tensor<?x?x32xf32>, %m: tensor<?x?x64xf32>)
    -> (tensor<?x?x64xf32>, tensor<?x?x32xf32>) {
  // CHECK: mixq.fused_linear %{{.*}}, @ckpt::@model.layers.0.mlp.gate_proj.weight {adapter = #mixq.qblora<rank = 2, lambda = 2, alpha = 4.000000e+00>, kernel = "nf4_b64_dq_qblora_r2_l2_64x32", layer = 0 : i64, quant = #mixq.quant<format = nf4, double_quant = true>, role = "gate_proj"} : tensor<?x?x32xf32> -> tensor<?x?x64xf32>
  %g = mixq.fused_linear %x, @ckpt::@"model.layers.0.mlp.gate_proj.weight"
         {kernel = "nf4_b64_dq_qblora_r2_l2_64x32", layer = 0 : i64,
          role = "gate_proj",
          quant = #mixq.quant<format = nf4, double_quant = true>,
          adapter = #mixq.qblora<rank = 2, lambda = 2, alpha = 4.0>}
         : tensor<?x?x32xf32> -> tensor<?x?x64xf32>
  // CHECK: kernel = "int4_t8x8_qablora_l8x8_32x64"
  %d = mixq.fused_linear %m, @ckpt::@"model.layers.0.mlp.down_proj.weight"
         {kernel = "int4_t8x8_qablora_l8x8_32x64", layer = 0 : i64,
          role = "down_proj", quant = #mixq.quant<format = int4, tile = [8, 8]>,
          adapter = #mixq.qablora<lambda = [8, 8], alpha = 1.0>}
         : tensor<?x?x64xf32> -> tensor<?x?x32xf32>
  return %g, %d : tensor<?x?x64xf32>, tensor<?x?x32xf32>
}
