// smolgrad kernel: SCATTER_ADD
// {{detail}}
// Runs after a fill of `out` with zeros in the same command encoder. One thread per
// index element; float adds use a compare-exchange loop on the bit pattern, because
// float atomics are not portable.

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
