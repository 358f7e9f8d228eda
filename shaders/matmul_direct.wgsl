// smolgrad kernel: MATMUL (direct: no workgroup memory, no barriers)
// {{detail}}
// Thread (x, y) of workgroup (x, y, z) computes {{RM}} rows x {{RN}} column(s) of batch z:
// rows RM * (WY * wid.y + local.y) + i, columns RN * (WX * wid.x + local.x) + j, reading
// A and B straight from memory (neighbouring threads read neighbouring columns of B and
// the same elements of A). Loads are clamped into range; stores are bounds-checked.

{{common}}

@compute @workgroup_size({{WX}}, {{WY}})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) local: vec3<u32>) {
    let z = i32(wid.z);
    let a_base = a_batch(z);
    let b_base = b_batch(z);
    let row0 = (i32(wid.y) * {{WY}}i + i32(local.y)) * {{RM}}i;
    let col0 = (i32(wid.x) * {{WX}}i + i32(local.x)) * {{RN}}i;
{{setup}}
    for (var k = 0i; k < K; k += {{k_step}}) {
{{step}}
    }
    let out_base = z * M * N;
{{store}}
}
