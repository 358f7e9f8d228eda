// smolgrad kernel: {{name}} (one thread per output)
// {{detail}}
// Used when there are many outputs and each reduces a short extent.
// input_value(o, r) is element r of the values reduced into output o (the fused
// prologue); epilogue(acc, o) is the fused work after the reduction.

{{bindings}}

{{helpers}}

{{functions}}

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let o = i32((wid.y * groups.x + wid.x) * 256u + lid);
    if (o >= {{outputs}}) {
        return;
    }
    var acc = {{identity}};
    for (var r = 0i; r < {{extent}}; r++) {
        let value = input_value(o, r);
        acc = {{combine}};
    }
    out[o] = epilogue(acc, o);
}
