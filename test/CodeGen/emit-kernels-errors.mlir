// RUN: not mixq-opt --split-input-file --mixq-emit-kernels %s 2>&1 | FileCheck %s --check-prefix=NOOUT
// RUN: rm -rf %t.file %t.dir && touch %t.file
// RUN: not mixq-opt --split-input-file --mixq-emit-kernels=out=%t.file/sub %s 2>&1 | FileCheck %s --check-prefix=BADOUT
// RUN: not mixq-opt --split-input-file --mixq-emit-kernels=out=%t.dir %s 2>&1 | FileCheck %s --check-prefix=HUGE

// NOOUT: error: mixq-emit-kernels needs out=DIR
// BADOUT: error: cannot create {{.*}}.file/sub/kernels: Not a directory

mixq.checkpoint @ckpt path "none" format "config-only" {
  mixq.tensor @w : tensor<16x32xf32>
}
func.func @f(%x: tensor<?x?x32xf32>) -> tensor<?x?x16xf32> {
  %y = mixq.linear %x, @ckpt::@w {layer = 0 : i64, role = "up_proj",
         quant = #mixq.quant<format = int8>}
         : tensor<?x?x32xf32> -> tensor<?x?x16xf32>
  return %y : tensor<?x?x16xf32>
}

// -----

// HUGE: error: mixq-emit-kernels: cuda kernel: weight [8, 2147483648] outside 1..2^30
mixq.checkpoint @ckpt path "none" format "config-only" {
  mixq.tensor @w : tensor<8x2147483648xf32>
}
func.func @f(%x: tensor<?x?x2147483648xf32>) -> tensor<?x?x8xf32> {
  %y = mixq.linear %x, @ckpt::@w {layer = 0 : i64, role = "up_proj",
         quant = #mixq.quant<format = int8>}
         : tensor<?x?x2147483648xf32> -> tensor<?x?x8xf32>
  return %y : tensor<?x?x8xf32>
}
