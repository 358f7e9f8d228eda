// smolgrad kernel: {{name}}
// {{detail}}
// One thread per element (gid); the grid may be folded into 2-D (x * y workgroups).

{{bindings}}

{{helpers}}

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let gid = i32((wid.y * groups.x + wid.x) * 256u + lid);
    if (gid >= {{numel}}) {
        return;
    }
{{body}}
}
