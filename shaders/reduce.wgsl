// smolgrad kernel: {{name}} (cooperative reduction, {{layout}})
// {{detail}}
// A segment is one output's values (or, with chunks > 1, one slice of them: the kernel
// then writes partials, chunk-minor, that a second pass reduces). A workgroup holds
// SEGMENTS_PER_GROUP segments; the LANES threads of a segment stride over it, then
// combine their values. Rows: the lanes of a segment are adjacent threads (they read
// adjacent elements of a row). Columns: adjacent threads belong to adjacent segments
// (they read adjacent elements when the outputs are the fast dim).
// Lanes combine by: {{combine_how}}.
// input_value(o, r, s) is element r of the values reduced into output o (the fused
// prologue), given s = segment_values(o), its parts that are the same for every r;
// epilogue(acc, o) is the fused work after the reduction.

{{bindings}}

{{helpers}}

{{functions}}

const LANES = {{lanes}}u;
const SEGMENTS_PER_GROUP = {{per_group}}u;

fn combine(acc: {{T}}, value: {{T}}) -> {{T}} {
    return {{combine}};
}

{{shared}}

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,{{builtins}}
) {
    let group = wid.y * groups.x + wid.x;
    let slot = {{slot}};
    let lane = {{lane}};
    let segment = i32(group * SEGMENTS_PER_GROUP + slot);
    let live = segment < {{segments}};  // not an early return: barriers below

    var acc = {{identity}};
    if (live) {
        let o = segment / {{chunks}};
        let start = (segment % {{chunks}}) * {{chunk_len}};
        let stop = min(start + {{chunk_len}}, {{extent}});
        let s = segment_values(o);
        for (var r = start + i32(lane); r < stop; r += i32(LANES)) {
            acc = combine(acc, input_value(o, r, s));
        }
    }
{{combine_lanes}}
    if (live && lane == 0u) {
        {{store}}
    }
}
