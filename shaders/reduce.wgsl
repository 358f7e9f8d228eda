// smolgrad kernel: {{name}} (workgroup tree reduction)
// {{detail}}
// Workgroup g reduces slice (g % chunks) of the reduced extent for output g / chunks
// and writes partial g; with chunks > 1 a second pass reduces the partials.
// input_value(o, r) is element r of the values reduced into output o (the fused
// prologue); epilogue(acc, o) is the fused work after the reduction.

{{bindings}}

{{helpers}}

{{functions}}

var<workgroup> partial: array<{{T}}, 256>;

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let group = i32(wid.y * groups.x + wid.x);
    if (group >= {{outputs}} * {{chunks}}) {
        return;  // uniform: the whole workgroup leaves
    }
    let o = group / {{chunks}};
    let chunk = group % {{chunks}};
    let start = chunk * {{chunk_len}};
    let stop = min(start + {{chunk_len}}, {{extent}});

    var acc = {{identity}};
    for (var r = start + i32(lid); r < stop; r += 256i) {
        let value = input_value(o, r);
        acc = {{combine}};
    }
    partial[lid] = acc;
    workgroupBarrier();

    for (var step = 128u; step > 0u; step = step >> 1u) {
        if (lid < step) {
            partial[lid] = {{tree_combine}};
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        {{store}}
    }
}
