// smolgrad kernel: {{name}} (row kernel: {{layout}})
// {{detail}}
// Reductions along each row, in turn, then elementwise work that reads their results.
// The LANES adjacent threads of a segment share one row (ROWS_PER_GROUP rows per
// workgroup); lane l holds the row's elements l, l + LANES, ... ({{per_lane}} at most, the
// loops over them unrolled). The operands read by more than one step are loaded once
// into registers (x*), as are the values a later step needs again (y*: softmax's
// exp(x - max)), so the row is read from memory once; values that are the same along
// the row (h*: its mean, 1 / sqrt(var + eps)) are computed once per row. Each reduction is combined across the row's lanes (by: {{combine_how}})
// and every lane gets the result; lane 0 stores it. Then each lane writes its elements
// of the outputs.

{{bindings}}

{{helpers}}

const LANES = {{lanes}}u;
const ROWS_PER_GROUP = {{per_group}}u;
const ROWS = {{rows}}i;
const N = {{n}}i;

{{shared}}

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,{{builtins}}
) {
    let group = wid.y * groups.x + wid.x;
    let lane = lid % LANES;
    let first = lid - lane;  // the segment's lane 0
    let live = i32(group * ROWS_PER_GROUP + lid / LANES) < ROWS;  // not an early return: barriers below
    let row = min(i32(group * ROWS_PER_GROUP + lid / LANES), ROWS - 1);  // (dead lanes store nothing)
{{body}}
}
