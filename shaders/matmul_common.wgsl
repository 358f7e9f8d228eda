// smolgrad: the part every MATMUL kernel shares (bindings, helpers, the operands' batch
// offsets, the epilogue and the sizes), spliced into each matmul*.wgsl where it says "common".

{{bindings}}

{{helpers}}

// Element offset of each operand's batch z (a stride of 0 broadcasts the batch dim).
{{a_fns}}

{{b_fns}}

// The fused elementwise work after the product (just `return acc;` when there is none).
{{epilogue_fn}}

const M = {{M}};
const N = {{N}};
const K = {{K}};
