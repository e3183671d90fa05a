// RUN: mixq-opt %s -split-input-file -verify-diagnostics

// One case per verifier error of the mixq dialect.

// expected-error @+1 {{expects block to be a power of two in [16, 4096], got 48}}
func.func private @f() attributes {x = #mixq.quant<format = nf4, block = 48>}

// -----

// expected-error @+1 {{expects block to be a power of two in [16, 4096], got 8192}}
func.func private @f() attributes {x = #mixq.quant<format = int8, block = 8192>}

// -----

// expected-error @+1 {{double_quant applies only to nf4 and fp4, not int8}}
func.func private @f() attributes {x = #mixq.quant<format = int8, double_quant = true>}

// -----

// expected-error @+1 {{expects a 2-D tile = [rows, cols] for int4}}
func.func private @f() attributes {x = #mixq.quant<format = int4>}

// -----

// expected-error @+1 {{expects positive tile sizes, got [8, 0]}}
func.func private @f() attributes {x = #mixq.quant<format = int3, tile = [8, 0]>}

// -----

// expected-error @+1 {{expects a tile of at least 2 elements}}
func.func private @f() attributes {x = #mixq.quant<format = int2, tile = [1, 1]>}

// -----

// expected-error @+1 {{tile applies only to int4, int3 and int2, not nf4}}
func.func private @f() attributes {x = #mixq.quant<format = nf4, tile = [8, 8]>}

// -----

// expected-error @+2 {{expected ::mixq::QuantFormatKind to be one of: f32, bf16, nf4, fp4, int8, int4, int3, int2}}
// expected-error @+1 {{failed to parse MixQ_QuantAttr parameter 'format' which is to be a `::mixq::QuantFormatKind`}}
func.func private @f() attributes {x = #mixq.quant<format = int5>}

// -----

// expected-error @+1 {{expects a positive rank, got 0}}
func.func private @f() attributes {x = #mixq.lora<rank = 0>}

// -----

// expected-error @+1 {{expects init_iters >= 1, got 0}}
func.func private @f() attributes {x = #mixq.lora<rank = 4, init = loftq, init_iters = 0>}

// -----

// expected-error @+1 {{init_iters applies only to loftq initialisation}}
func.func private @f() attributes {x = #mixq.lora<rank = 4, init_iters = 3>}

// -----

// expected-error @+1 {{expects a non-negative alpha, got -1.000000e+00}}
func.func private @f() attributes {x = #mixq.lora<rank = 4, alpha = -1.0>}

// -----

// expected-error @+1 {{expects dropout in [0, 1), got 1.000000e+00}}
func.func private @f() attributes {x = #mixq.lora<rank = 4, dropout = 1.0>}

// -----

// expected-error @+1 {{expects a positive rank, got -2}}
func.func private @f() attributes {x = #mixq.qblora<rank = -2, lambda = 2>}

// -----

// expected-error @+1 {{expects lambda to be a power of two, got 3}}
func.func private @f() attributes {x = #mixq.qblora<rank = 2, lambda = 3>}

// -----

// expected-error @+1 {{expects lambda = [rows, cols], got 1 values}}
func.func private @f() attributes {x = #mixq.qablora<lambda = [8]>}

// -----

// expected-error @+1 {{expects positive lambda values}}
func.func private @f() attributes {x = #mixq.qablora<lambda = [0, 8]>}

// -----

// expected-error @+1 {{expects dropout in [0, 1), got -5.000000e-01}}
func.func private @f() attributes {x = #mixq.qablora<lambda = [8, 8], dropout = -0.5>}

// -----

// expected-error @+1 {{expects format to be one of hf-safetensors, llama2c, torchscript, config-only, got 'gguf'}}
mixq.checkpoint @ckpt path "x" format "gguf" {
}

// -----

mixq.checkpoint @ckpt path "x" format "llama2c" {
  // expected-error @+1 {{is not allowed inside a mixq.checkpoint}}
  func.func private @g()
}

// -----

mixq.checkpoint @ckpt path "x" format "llama2c" {
  // expected-error @+1 {{'mixq.tensor' op expects a static shape, got 'tensor<?x4xf32>'}}
  mixq.tensor @w : tensor<?x4xf32>
}

// -----

mixq.checkpoint @ckpt path "x" format "llama2c" {
  // expected-error @+1 {{'mixq.tensor' op expects element type f32, f16, bf16, i8, i32 or i64, got 'f64'}}
  mixq.tensor @w : tensor<4x4xf64>
}

// -----

// expected-error @+1 {{'mixq.tensor' op expects parent op 'mixq.checkpoint'}}
mixq.tensor @w : tensor<4x4xf32>

// -----

mixq.checkpoint @ckpt path "x" format "hf-safetensors" {
  mixq.tensor @emb : tensor<128x32xf32>
  mixq.tensor @norm : tensor<32xf32>
  mixq.tensor @w : tensor<64x32xf32>
  mixq.tensor @wsq : tensor<32x32xf32>
}
func.func @f(%x: tensor<4x?x32xf32>, %ids: tensor<4x?xi32>) {
  // expected-error @+1 {{'mixq.embedding' op expects result extents [B, T] to match the ids}}
  %h = mixq.embedding %ids, @ckpt::@emb : tensor<4x?xi32> -> tensor<2x?x32xf32>
  return
}

// -----

mixq.checkpoint @ckpt path "x" format "hf-safetensors" {
  mixq.tensor @emb : tensor<128x32xf32>
  mixq.tensor @norm : tensor<32xf32>
  mixq.tensor @w : tensor<64x32xf32>
  mixq.tensor @wsq : tensor<32x32xf32>
}
func.func @f(%x: tensor<?x?x32xf32>, %ids: tensor<?x?xi32>) {
  // expected-error @+1 {{'mixq.embedding' op expects a static hidden size}}
  %h = mixq.embedding %ids, @ckpt::@emb : tensor<?x?xi32> -> tensor<?x?x?xf32>
  return
}

// -----

mixq.checkpoint @ckpt path "x" format "hf-safetensors" {
  mixq.tensor @emb : tensor<128x32xf32>
  mixq.tensor @norm : tensor<32xf32>
  mixq.tensor @w : tensor<64x32xf32>
  mixq.tensor @wsq : tensor<32x32xf32>
}
func.func @f(%x: tensor<?x?x32xf32>, %ids: tensor<?x?xi32>) {
  // expected-error @+1 {{'mixq.embedding' op references unknown checkpoint tensor @ckpt::@nope}}
  %h = mixq.embedding %ids, @ckpt::@nope : tensor<?x?xi32> -> tensor<?x?x32xf32>
  return
}

// -----

mixq.checkpoint @ckpt path "x" format "hf-safetensors" {
  mixq.tensor @emb : tensor<128x32xf32>
  mixq.tensor @norm : tensor<32xf32>
  mixq.tensor @w : tensor<64x32xf32>
  mixq.tensor @wsq : tensor<32x32xf32>
}
func.func @f(%x: tensor<?x?x32xf32>, %ids: tensor<?x?xi32>) {
  // expected-error @+1 {{'mixq.embedding' op expects weight "emb" of shape [?, 16], got 'tensor<128x32xf32>'}}
  %h = mixq.embedding %ids, @ckpt::@emb : tensor<?x?xi32> -> tensor<?x?x16xf32>
  return
}

// -----

mixq.checkpoint @ckpt path "x" format "hf-safetensors" {
  mixq.tensor @emb : tensor<128x32xf32>
  mixq.tensor @norm : tensor<32xf32>
  mixq.tensor @w : tensor<64x32xf32>
  mixq.tensor @wsq : tensor<32x32xf32>
}
func.func @f(%x: tensor<?x?x32xf32>, %ids: tensor<?x?xi32>) {
  // expected-error @+1 {{'mixq.rms_norm' op expects the result type to equal the input type}}
  %n = mixq.rms_norm %x, @ckpt::@norm {eps = 1.0e-05 : f64} : tensor<?x?x32xf32> -> tensor<?x?x32xbf16>
  return
}

// -----

mixq.checkpoint @ckpt path "x" format "hf-safetensors" {
  mixq.tensor @emb : tensor<128x32xf32>
  mixq.tensor @norm : tensor<32xf32>
  mixq.tensor @w : tensor<64x32xf32>
  mixq.tensor @wsq : tensor<32x32xf32>
}
func.func @f(%x: tensor<?x?x32xf32>, %ids: tensor<?x?xi32>) {
  // expected-error @+1 {{'mixq.rms_norm' op expects a positive eps}}
  %n = mixq.rms_norm %x, @ckpt::@norm {eps = 0.0 : f64} : tensor<?x?x32xf32> -> tensor<?x?x32xf32>
  return
}

// -----

mixq.checkpoint @ckpt path "x" format "hf-safetensors" {
  mixq.tensor @emb : tensor<128x32xf32>
  mixq.tensor @norm : tensor<32xf32>
  mixq.tensor @w : tensor<64x32xf32>
  mixq.tensor @wsq : tensor<32x32xf32>
}
func.func @f(%x: tensor<?x?x16xf32>, %ids: tensor<?x?xi32>) {
  // expected-error @+1 {{'mixq.rms_norm' op expects weight "norm" of shape [16], got 'tensor<32xf32>'}}
  %n = mixq.rms_norm %x, @ckpt::@norm {eps = 1.0e-05 : f64} : tensor<?x?x16xf32> -> tensor<?x?x16xf32>
  return
}

// -----

mixq.checkpoint @ckpt path "x" format "hf-safetensors" {
  mixq.tensor @emb : tensor<128x32xf32>
  mixq.tensor @norm : tensor<32xf32>
  mixq.tensor @w : tensor<64x32xf32>
  mixq.tensor @wsq : tensor<32x32xf32>
}
func.func @f(%x: tensor<2x?x32xf32>, %ids: tensor<?x?xi32>) {
  // expected-error @+1 {{'mixq.tied_lm_head' op expects matching batch and sequence extents, got 'tensor<2x?x32xf32>' and 'tensor<3x?x128xf32>'}}
  %l = mixq.tied_lm_head %x, @ckpt::@emb : tensor<2x?x32xf32> -> tensor<3x?x128xf32>
  return
}

// -----

mixq.checkpoint @ckpt path "x" format "hf-safetensors" {
  mixq.tensor @emb : tensor<128x32xf32>
  mixq.tensor @norm : tensor<32xf32>
  mixq.tensor @w : tensor<64x32xf32>
  mixq.tensor @wsq : tensor<32x32xf32>
}
func.func @f(%x: tensor<?x?x32xf32>, %ids: tensor<?x?xi32>) {
  // expected-error @+1 {{'mixq.tied_lm_head' op expects weight "emb" of shape [64, 32], got 'tensor<128x32xf32>'}}
  %l = mixq.tied_lm_head %x, @ckpt::@emb : tensor<?x?x32xf32> -> tensor<?x?x64xf32>
  return
}

// -----

mixq.checkpoint @ckpt path "x" format "hf-safetensors" {
  mixq.tensor @emb : tensor<128x32xf32>
  mixq.tensor @norm : tensor<32xf32>
  mixq.tensor @w : tensor<64x32xf32>
  mixq.tensor @wsq : tensor<32x32xf32>
}
func.func @f(%x: tensor<?x?x32xf32>, %ids: tensor<?x?xi32>) {
  // expected-error @+1 {{'mixq.linear' op expects role to be one of q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, lm_head, got 'w_proj'}}
  %y = mixq.linear %x, @ckpt::@w {layer = 0 : i64, role = "w_proj"} : tensor<?x?x32xf32> -> tensor<?x?x64xf32>
  return
}

// -----

mixq.checkpoint @ckpt path "x" format "hf-safetensors" {
  mixq.tensor @emb : tensor<128x32xf32>
  mixq.tensor @norm : tensor<32xf32>
  mixq.tensor @w : tensor<64x32xf32>
  mixq.tensor @wsq : tensor<32x32xf32>
}
func.func @f(%x: tensor<?x?x32xf32>, %ids: tensor<?x?xi32>) {
  // expected-error @+1 {{'mixq.linear' op expects layer >= 0 for a projection, got -3}}
  %y = mixq.linear %x, @ckpt::@w {layer = -3 : i64, role = "up_proj"} : tensor<?x?x32xf32> -> tensor<?x?x64xf32>
  return
}

// -----

mixq.checkpoint @ckpt path "x" format "hf-safetensors" {
  mixq.tensor @emb : tensor<128x32xf32>
  mixq.tensor @norm : tensor<32xf32>
  mixq.tensor @w : tensor<64x32xf32>
  mixq.tensor @wsq : tensor<32x32xf32>
}
func.func @f(%x: tensor<?x?x32xf32>, %ids: tensor<?x?xi32>) {
  // expected-error @+1 {{'mixq.linear' op expects layer -1 for lm_head, got 0}}
  %y = mixq.linear %x, @ckpt::@w {layer = 0 : i64, role = "lm_head"} : tensor<?x?x32xf32> -> tensor<?x?x64xf32>
  return
}

// -----

mixq.checkpoint @ckpt path "x" format "hf-safetensors" {
  mixq.tensor @emb : tensor<128x32xf32>
  mixq.tensor @norm : tensor<32xf32>
  mixq.tensor @w : tensor<64x32xf32>
  mixq.tensor @wsq : tensor<32x32xf32>
}
func.func @f(%x: tensor<?x?x32xf32>, %ids: tensor<?x?xi32>) {
  // expected-error @+1 {{'mixq.linear' op expects static input and output features}}
  %y = mixq.linear %x, @ckpt::@w {layer = 0 : i64, role = "up_proj"} : tensor<?x?x32xf32> -> tensor<?x?x?xf32>
  return
}

// -----

mixq.checkpoint @ckpt path "x" format "hf-safetensors" {
  mixq.tensor @emb : tensor<128x32xf32>
  mixq.tensor @norm : tensor<32xf32>
  mixq.tensor @w : tensor<64x32xf32>
  mixq.tensor @wsq : tensor<32x32xf32>
}
func.func @f(%x: tensor<2x?x32xf32>, %ids: tensor<?x?xi32>) {
  // expected-error @+1 {{'mixq.linear' op expects matching batch and sequence extents}}
  %y = mixq.linear %x, @ckpt::@w {layer = 0 : i64, role = "up_proj"} : tensor<2x?x32xf32> -> tensor<3x?x64xf32>
  return
}

// -----

mixq.checkpoint @ckpt path "x" format "hf-safetensors" {
  mixq.tensor @emb : tensor<128x32xf32>
  mixq.tensor @norm : tensor<32xf32>
  mixq.tensor @w : tensor<64x32xf32>
  mixq.tensor @wsq : tensor<32x32xf32>
}
func.func @f(%x: tensor<?x?x16xf32>, %ids: tensor<?x?xi32>) {
  // expected-error @+1 {{'mixq.linear' op expects weight "w" of shape [64, 16], got 'tensor<64x32xf32>'}}
  %y = mixq.linear %x, @ckpt::@w {layer = 0 : i64, role = "up_proj"} : tensor<?x?x16xf32> -> tensor<?x?x64xf32>
  return
}

// -----

mixq.checkpoint @ckpt path "x" format "hf-safetensors" {
  mixq.tensor @emb : tensor<128x32xf32>
  mixq.tensor @norm : tensor<32xf32>
  mixq.tensor @w : tensor<64x32xf32>
  mixq.tensor @wsq : tensor<32x32xf32>
}
func.func @f(%x: tensor<?x?x32xf32>, %ids: tensor<?x?xi32>) {
  // expected-error @+1 {{'mixq.linear' op expects the quant tile [3, 8] to divide the weight [64, 32]}}
  %y = mixq.linear %x, @ckpt::@w {layer = 0 : i64, role = "up_proj", quant = #mixq.quant<format = int4, tile = [3, 8]>} : tensor<?x?x32xf32> -> tensor<?x?x64xf32>
  return
}

// -----

mixq.checkpoint @ckpt path "x" format "hf-safetensors" {
  mixq.tensor @emb : tensor<128x32xf32>
  mixq.tensor @norm : tensor<32xf32>
  mixq.tensor @w : tensor<64x32xf32>
  mixq.tensor @wsq : tensor<32x32xf32>
}
func.func @f(%x: tensor<?x?x32xf32>, %ids: tensor<?x?xi32>) {
  // expected-error @+1 {{'mixq.linear' op expects rank <= min(out, in) = 32, got 64}}
  %y = mixq.linear %x, @ckpt::@w {layer = 0 : i64, role = "up_proj", adapter = #mixq.lora<rank = 64>} : tensor<?x?x32xf32> -> tensor<?x?x64xf32>
  return
}

// -----

mixq.checkpoint @ckpt path "x" format "hf-safetensors" {
  mixq.tensor @emb : tensor<128x32xf32>
  mixq.tensor @norm : tensor<32xf32>
  mixq.tensor @w : tensor<64x32xf32>
  mixq.tensor @wsq : tensor<32x32xf32>
}
func.func @f(%x: tensor<?x?x32xf32>, %ids: tensor<?x?xi32>) {
  // expected-error @+1 {{'mixq.linear' op expects lambda 64 to divide the weight [64, 32]}}
  %y = mixq.linear %x, @ckpt::@w {layer = 0 : i64, role = "up_proj", adapter = #mixq.qblora<rank = 1, lambda = 64>} : tensor<?x?x32xf32> -> tensor<?x?x64xf32>
  return
}

// -----

mixq.checkpoint @ckpt path "x" format "hf-safetensors" {
  mixq.tensor @emb : tensor<128x32xf32>
  mixq.tensor @norm : tensor<32xf32>
  mixq.tensor @w : tensor<64x32xf32>
  mixq.tensor @wsq : tensor<32x32xf32>
}
func.func @f(%x: tensor<?x?x32xf32>, %ids: tensor<?x?xi32>) {
  // expected-error @+1 {{'mixq.linear' op expects rank * lambda <= min(out, in) / lambda = 8, got 16}}
  %y = mixq.linear %x, @ckpt::@w {layer = 0 : i64, role = "up_proj", adapter = #mixq.qblora<rank = 4, lambda = 4>} : tensor<?x?x32xf32> -> tensor<?x?x64xf32>
  return
}

// -----

mixq.checkpoint @ckpt path "x" format "hf-safetensors" {
  mixq.tensor @emb : tensor<128x32xf32>
  mixq.tensor @norm : tensor<32xf32>
  mixq.tensor @w : tensor<64x32xf32>
  mixq.tensor @wsq : tensor<32x32xf32>
}
func.func @f(%x: tensor<?x?x32xf32>, %ids: tensor<?x?xi32>) {
  // expected-error @+1 {{'mixq.linear' op expects qablora on an int4/int3/int2 weight, got nf4}}
  %y = mixq.linear %x, @ckpt::@w {layer = 0 : i64, role = "up_proj", quant = #mixq.quant<format = nf4, block = 32>, adapter = #mixq.qablora<lambda = [8, 8]>} : tensor<?x?x32xf32> -> tensor<?x?x64xf32>
  return
}

// -----

mixq.checkpoint @ckpt path "x" format "hf-safetensors" {
  mixq.tensor @emb : tensor<128x32xf32>
  mixq.tensor @norm : tensor<32xf32>
  mixq.tensor @w : tensor<64x32xf32>
  mixq.tensor @wsq : tensor<32x32xf32>
}
func.func @f(%x: tensor<?x?x32xf32>, %ids: tensor<?x?xi32>) {
  // expected-error @+1 {{'mixq.linear' op expects qablora on an int4/int3/int2 weight, got no quant}}
  %y = mixq.linear %x, @ckpt::@w {layer = 0 : i64, role = "up_proj", adapter = #mixq.qablora<lambda = [8, 8]>} : tensor<?x?x32xf32> -> tensor<?x?x64xf32>
  return
}

// -----

mixq.checkpoint @ckpt path "x" format "hf-safetensors" {
  mixq.tensor @emb : tensor<128x32xf32>
  mixq.tensor @norm : tensor<32xf32>
  mixq.tensor @w : tensor<64x32xf32>
  mixq.tensor @wsq : tensor<32x32xf32>
}
func.func @f(%x: tensor<?x?x32xf32>, %ids: tensor<?x?xi32>) {
  // expected-error @+1 {{'mixq.linear' op expects the qablora lambda [8, 4] to equal the quant tile [8, 8]}}
  %y = mixq.linear %x, @ckpt::@w {layer = 0 : i64, role = "up_proj", quant = #mixq.quant<format = int4, tile = [8, 8]>, adapter = #mixq.qablora<lambda = [8, 4]>} : tensor<?x?x32xf32> -> tensor<?x?x64xf32>
  return
}

// -----

mixq.checkpoint @ckpt path "x" format "hf-safetensors" {
  mixq.tensor @emb : tensor<128x32xf32>
  mixq.tensor @norm : tensor<32xf32>
  mixq.tensor @w : tensor<64x32xf32>
  mixq.tensor @wsq : tensor<32x32xf32>
}
func.func @f(%x: tensor<?x?x32xf32>, %ids: tensor<?x?xi32>) {
  // expected-error @+1 {{'mixq.rope' op expects positive num_heads and an even head_dim, got num_heads = 4, head_dim = 7}}
  %r = mixq.rope %x {num_heads = 4 : i64, head_dim = 7 : i64, theta = 1.0e+04 : f64} : tensor<?x?x32xf32>
  return
}

// -----

mixq.checkpoint @ckpt path "x" format "hf-safetensors" {
  mixq.tensor @emb : tensor<128x32xf32>
  mixq.tensor @norm : tensor<32xf32>
  mixq.tensor @w : tensor<64x32xf32>
  mixq.tensor @wsq : tensor<32x32xf32>
}
func.func @f(%x: tensor<?x?x32xf32>, %ids: tensor<?x?xi32>) {
  // expected-error @+1 {{'mixq.rope' op expects the last extent to be num_heads * head_dim = 16, got 32}}
  %r = mixq.rope %x {num_heads = 2 : i64, head_dim = 8 : i64, theta = 1.0e+04 : f64} : tensor<?x?x32xf32>
  return
}

// -----

mixq.checkpoint @ckpt path "x" format "hf-safetensors" {
  mixq.tensor @emb : tensor<128x32xf32>
  mixq.tensor @norm : tensor<32xf32>
  mixq.tensor @w : tensor<64x32xf32>
  mixq.tensor @wsq : tensor<32x32xf32>
}
func.func @f(%x: tensor<?x?x32xf32>, %ids: tensor<?x?xi32>) {
  // expected-error @+1 {{'mixq.rope' op expects a positive theta}}
  %r = mixq.rope %x {num_heads = 4 : i64, head_dim = 8 : i64, theta = -1.0 : f64} : tensor<?x?x32xf32>
  return
}

// -----

mixq.checkpoint @ckpt path "x" format "hf-safetensors" {
  mixq.tensor @emb : tensor<128x32xf32>
  mixq.tensor @norm : tensor<32xf32>
  mixq.tensor @w : tensor<64x32xf32>
  mixq.tensor @wsq : tensor<32x32xf32>
}
func.func @f(%x: tensor<?x?x32xf32>, %ids: tensor<?x?xi32>) {
  // expected-error @+1 {{'mixq.attention' op expects positive num_heads, num_kv_heads, head_dim}}
  %a = mixq.attention %x, %x, %x {num_heads = 4 : i64, num_kv_heads = 0 : i64, head_dim = 8 : i64, causal} : tensor<?x?x32xf32>, tensor<?x?x32xf32>, tensor<?x?x32xf32> -> tensor<?x?x32xf32>
  return
}

// -----

mixq.checkpoint @ckpt path "x" format "hf-safetensors" {
  mixq.tensor @emb : tensor<128x32xf32>
  mixq.tensor @norm : tensor<32xf32>
  mixq.tensor @w : tensor<64x32xf32>
  mixq.tensor @wsq : tensor<32x32xf32>
}
func.func @f(%x: tensor<?x?x32xf32>, %ids: tensor<?x?xi32>) {
  // expected-error @+1 {{'mixq.attention' op expects num_heads to be a multiple of num_kv_heads, got 4 and 3}}
  %a = mixq.attention %x, %x, %x {num_heads = 4 : i64, num_kv_heads = 3 : i64, head_dim = 8 : i64, causal} : tensor<?x?x32xf32>, tensor<?x?x32xf32>, tensor<?x?x32xf32> -> tensor<?x?x32xf32>
  return
}

// -----

mixq.checkpoint @ckpt path "x" format "hf-safetensors" {
  mixq.tensor @emb : tensor<128x32xf32>
  mixq.tensor @norm : tensor<32xf32>
  mixq.tensor @w : tensor<64x32xf32>
  mixq.tensor @wsq : tensor<32x32xf32>
}
func.func @f(%x: tensor<?x?x32xf32>, %ids: tensor<?x?xi32>) {
  // expected-error @+1 {{'mixq.attention' op expects q and result last extent num_heads * head_dim = 16}}
  %a = mixq.attention %x, %x, %x {num_heads = 2 : i64, num_kv_heads = 2 : i64, head_dim = 8 : i64, causal} : tensor<?x?x32xf32>, tensor<?x?x32xf32>, tensor<?x?x32xf32> -> tensor<?x?x32xf32>
  return
}

// -----

mixq.checkpoint @ckpt path "x" format "hf-safetensors" {
  mixq.tensor @emb : tensor<128x32xf32>
  mixq.tensor @norm : tensor<32xf32>
  mixq.tensor @w : tensor<64x32xf32>
  mixq.tensor @wsq : tensor<32x32xf32>
}
func.func @f(%x: tensor<?x?x32xf32>, %ids: tensor<?x?xi32>) {
  // expected-error @+1 {{'mixq.attention' op expects k and v last extent num_kv_heads * head_dim = 16}}
  %a = mixq.attention %x, %x, %x {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 8 : i64, causal} : tensor<?x?x32xf32>, tensor<?x?x32xf32>, tensor<?x?x32xf32> -> tensor<?x?x32xf32>
  return
}

// -----

mixq.checkpoint @ckpt path "x" format "hf-safetensors" {
  mixq.tensor @emb : tensor<128x32xf32>
  mixq.tensor @norm : tensor<32xf32>
  mixq.tensor @w : tensor<64x32xf32>
  mixq.tensor @wsq : tensor<32x32xf32>
}
func.func @f(%x: tensor<2x?x32xf32>, %y: tensor<3x?x32xf32>, %ids: tensor<?x?xi32>) {
  // expected-error @+1 {{'mixq.attention' op expects matching batch and sequence extents}}
  %a = mixq.attention %x, %y, %y {num_heads = 4 : i64, num_kv_heads = 4 : i64, head_dim = 8 : i64, causal} : tensor<2x?x32xf32>, tensor<3x?x32xf32>, tensor<3x?x32xf32> -> tensor<2x?x32xf32>
  return
}

// -----

mixq.checkpoint @ckpt path "x" format "hf-safetensors" {
  mixq.tensor @emb : tensor<128x32xf32>
  mixq.tensor @norm : tensor<32xf32>
  mixq.tensor @w : tensor<64x32xf32>
  mixq.tensor @wsq : tensor<32x32xf32>
}
func.func @f(%x: tensor<2x?x32xf32>, %lab: tensor<3x?xi32>, %ids: tensor<?x?xi32>) {
  // expected-error @+1 {{'mixq.cross_entropy' op expects labels [B, T] to match the logits}}
  %l = mixq.cross_entropy %x, %lab : tensor<2x?x32xf32>, tensor<3x?xi32> -> tensor<f32>
  return
}

// -----

mixq.checkpoint @ckpt path "x" format "hf-safetensors" {
  mixq.tensor @emb : tensor<128x32xf32>
  mixq.tensor @norm : tensor<32xf32>
  mixq.tensor @w : tensor<64x32xf32>
  mixq.tensor @wsq : tensor<32x32xf32>
}
func.func @f(%x: tensor<?x?x32xf32>, %y: tensor<?x?x16xf32>, %ids: tensor<?x?xi32>) {
  // expected-error @+1 {{'mixq.swiglu' op requires the same type for all operands and results}}
  %s = "mixq.swiglu"(%x, %y) : (tensor<?x?x32xf32>, tensor<?x?x16xf32>) -> tensor<?x?x32xf32>
  return
}

// -----

mixq.checkpoint @ckpt path "x" format "hf-safetensors" {
  mixq.tensor @w : tensor<64x32xf32>
}
func.func @f(%x: tensor<?x?x32xf32>) {
  // expected-error @+1 {{'mixq.fused_linear' op expects kernel "nf4_b64_lora_r8_64x32", got "nf4_b64_r8_64x32"}}
  %y = mixq.fused_linear %x, @ckpt::@w {kernel = "nf4_b64_r8_64x32", layer = 0 : i64, role = "q_proj", quant = #mixq.quant<format = nf4>, adapter = #mixq.lora<rank = 8, alpha = 16.0>} : tensor<?x?x32xf32> -> tensor<?x?x64xf32>
  return
}

// -----

mixq.checkpoint @ckpt path "x" format "hf-safetensors" {
  mixq.tensor @w : tensor<64x32xf32>
}
func.func @f(%x: tensor<?x?x32xf32>) {
  // expected-error @+1 {{'mixq.fused_linear' op expects role to be one of q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, lm_head, got 'x_proj'}}
  %y = mixq.fused_linear %x, @ckpt::@w {kernel = "nf4_b64_64x32", layer = 0 : i64, role = "x_proj", quant = #mixq.quant<format = nf4>} : tensor<?x?x32xf32> -> tensor<?x?x64xf32>
  return
}

// -----

mixq.checkpoint @ckpt path "x" format "hf-safetensors" {
  mixq.tensor @w : tensor<64x32xf32>
}
func.func @f(%x: tensor<?x?x32xf32>) {
  // expected-error @+1 {{'mixq.fused_linear' op expects static input and output features}}
  %y = mixq.fused_linear %x, @ckpt::@w {kernel = "nf4_b64_64x32", layer = 0 : i64, role = "q_proj", quant = #mixq.quant<format = nf4>} : tensor<?x?x32xf32> -> tensor<?x?x?xf32>
  return
}

// -----

mixq.checkpoint @ckpt path "x" format "hf-safetensors" {
  mixq.tensor @w : tensor<64x32xf32>
}
func.func @f(%x: tensor<?x?x32xf32>) {
  // expected-error @+1 {{'mixq.fused_linear' op expects the qablora lambda to equal an int quant tile}}
  %y = mixq.fused_linear %x, @ckpt::@w {kernel = "int4_t8x8_qablora_l4x8_64x32", layer = 0 : i64, role = "q_proj", quant = #mixq.quant<format = int4, tile = [8, 8]>, adapter = #mixq.qablora<lambda = [4, 8]>} : tensor<?x?x32xf32> -> tensor<?x?x64xf32>
  return
}

// -----

mixq.checkpoint @ckpt path "x" format "hf-safetensors" {
  mixq.tensor @w : tensor<64x36xf32>
}
func.func @f(%x: tensor<?x?x36xf32>) {
  // expected-error @+1 {{'mixq.fused_linear' op expects the quant tile to divide the weight [64, 36]}}
  %y = mixq.fused_linear %x, @ckpt::@w {kernel = "int4_t8x8_64x36", layer = 0 : i64, role = "q_proj", quant = #mixq.quant<format = int4, tile = [8, 8]>} : tensor<?x?x36xf32> -> tensor<?x?x64xf32>
  return
}

// -----

mixq.checkpoint @ckpt path "x" format "hf-safetensors" {
  mixq.tensor @w : tensor<32x32xf32>
}
func.func @f(%x: tensor<?x?x32xf32>) {
  // expected-error @+1 {{'mixq.fused_linear' op expects weight "w" of shape [64, 32], got 'tensor<32x32xf32>'}}
  %y = mixq.fused_linear %x, @ckpt::@w {kernel = "f32_64x32", layer = 0 : i64, role = "q_proj", quant = #mixq.quant<format = f32>} : tensor<?x?x32xf32> -> tensor<?x?x64xf32>
  return
}
