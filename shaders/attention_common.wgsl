// smolgrad: the part every ATTENTION kernel shares (bindings, helpers, operand reads,
// vector functions and the sizes), spliced into each attention_*.wgsl where it says "common".

{{bindings}}

{{helpers}}

{{operand_fns}}

{{vector_fns}}

const L = {{L}};
const S = {{S}};
const D = {{D}};
const DV = {{DV}};
const BR = {{BR}};
const BC = {{BC}};
const W = {{W}}i;  // floats per {{V}}: 4 when D and DV are multiples of 4
const D4 = D / W;
const DV4 = DV / W;
