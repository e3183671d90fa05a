// RUN: rm -rf %t.variant
// RUN: mixq-import %S/Inputs/tiny/config.json | mixq-opt --mixq-assign-config=config=%S/Inputs/per-layer.json --mixq-emit-variant=out=%t.variant -o %t.out.mlir
// RUN: FileCheck %s < %t.variant/manifest.json
// RUN: FileCheck %s --check-prefix=IR < %t.variant/variant.mlir
// The emitted config pins every linear: assigning it again gives the same IR.
// RUN: python3 -c "import json,sys; json.dump(json.load(open(sys.argv[1]))['config'], open(sys.argv[2], 'w'))" %t.variant/manifest.json %t.pinned.json
// RUN: mixq-import %S/Inputs/tiny/config.json | mixq-opt --mixq-assign-config=config=%t.pinned.json | grep "mixq.linear" > %t.again
// RUN: grep "mixq.linear" %t.out.mlir > %t.first
// RUN: diff %t.first %t.again
// RUN: mixq-import %S/Inputs/tiny/config.json | not mixq-opt --mixq-emit-variant 2>&1 | FileCheck %s --check-prefix=NOOUT
// RUN: touch %t.file
// RUN: mixq-import %S/Inputs/tiny/config.json | not mixq-opt --mixq-emit-variant=out=%t.file/sub 2>&1 | FileCheck %s --check-prefix=BADOUT

// CHECK: "checkpoint": "{{.*}}tiny/config.json",
// CHECK: "checkpoint_format": "config-only",
// CHECK: "config": {
// CHECK: "adapter": "lora",
// CHECK-NEXT: "alpha": 8,
// CHECK-NEXT: "block": 64,
// CHECK-NEXT: "dropout": 0,
// CHECK-NEXT: "format": "nf4",
// CHECK-NEXT: "init": "gaussian",
// CHECK-NEXT: "layer": 0,
// CHECK-NEXT: "rank": 4,
// CHECK-NEXT: "role": "q_proj"
// CHECK: "adapter": "none",
// CHECK-NEXT: "format": "bf16",
// CHECK-NEXT: "layer": 0,
// CHECK-NEXT: "role": "v_proj"
// CHECK: "adapter": "qablora",
// CHECK-NEXT: "alpha": 4,
// CHECK-NEXT: "dropout": 0,
// CHECK-NEXT: "format": "int4",
// CHECK-NEXT: "lambda": [
// CHECK: "layer": 1,
// CHECK-NEXT: "role": "down_proj",
// CHECK-NEXT: "tile": [
// CHECK: "adapter": "none",
// CHECK-NEXT: "block": 64,
// CHECK-NEXT: "format": "int8",
// CHECK-NEXT: "role": "lm_head"
// CHECK: "version": 1
// CHECK: "model": {
// CHECK: "hidden_size": 64,
// CHECK: "num_hidden_layers": 2,
// CHECK: "version": 1

// IR: mixq.checkpoint @ckpt path "{{.*}}tiny/config.json" format "config-only"
// IR: quant = #mixq.quant<format = int4, tile = [8, 8]>

// NOOUT: error: mixq-emit-variant needs out=DIR
// BADOUT: error: cannot create {{.*}}.file/sub
