//===- Passes.td - MixQ code generation passes -------------*- tablegen -*-===//

#ifndef MIXQ_CODEGEN_PASSES_TD
#define MIXQ_CODEGEN_PASSES_TD

include "mlir/Pass/PassBase.td"

def MixQEmitKernelsPass : Pass<"mixq-emit-kernels", "mlir::ModuleOp"> {
  let summary = "generate a fused CUDA kernel per linear specialisation";
  let description = [{
    For every `mixq.linear` that carries a `quant` or an `adapter`, derives
    its specialisation key (format, block, double_quant, tile, out, in,
    adapter kind, rank, lambda), writes one CUDA C++ file per distinct key to
    `out`/kernels/NAME.cu (identical specialisations are shared), the
    launcher header `out`/kernels/mixq_kernels.h, a registry of all kernels
    `out`/kernels/registry.cu and `out`/kernels/manifest.json (name -> key,
    file, and the linears that use it), and attaches the kernel name to each
    linear as `mixq.kernel = "NAME"`. Linears without quant and adapter (f32
    base, nothing fused) are left to cuBLAS and get no kernel. A
    `mixq.fused_linear` already names its kernel: the name must be the one
    its attributes specialise to (else an error), and that kernel is
    generated. The unity file `out`/kernels/all.cu includes every kernel and
    the registry for a single nvcc invocation.

    Each kernel reads the packed layout of include/mixq/Kernels/Quant.h (the
    same bytes the CPU kernels read) and computes the forward and backward of
    include/mixq/Kernels/FusedLinear.h. See docs/cuda.md.

    ```
    mixq-opt --mixq-assign-config=config=cfg.json \
             --mixq-emit-kernels=out=variants/v1 model.mlir
    ```
  }];
  let options = [
    Option<"out", "out", "std::string", /*default=*/"\"\"",
           "the variant directory (kernels go to OUT/kernels)">,
  ];
}

#endif // MIXQ_CODEGEN_PASSES_TD
