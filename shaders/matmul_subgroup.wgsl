// smolgrad kernel: MATMUL (subgroup: operand A shared by broadcasts, no workgroup memory)
// {{detail}}
// Each subgroup of 8 invocations (a CPU's SIMD lanes) computes {{RM}} rows x {{COLS}} columns
// of batch z: lane l owns columns {{RN}} l .. {{RN}} l + {{RN}} - 1 of the block for all its
// rows, and loads only rows l, l + 8, ... of A, which subgroupBroadcast hands to the other
// lanes (a software adapter loads memory lane by lane, so each A value is loaded once, not 8
// times). Loads are clamped into range; stores are bounds-checked.

{{common}}

@compute @workgroup_size({{WG}})
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_invocation_id) sg_lane: u32,
) {
    let z = i32(wid.z);
    let a_base = a_batch(z);
    let b_base = b_batch(z);
    let lane = i32(sg_lane);
    let row0 = (i32(wid.y) * {{SUBGROUPS}}i + i32(lid) / 8i) * {{RM}}i;
    let col0 = i32(wid.x) * {{COLS}}i + lane * {{RN}}i;
{{setup}}
    var k = 0i;
    for (; k + {{k_step}} <= K; k += {{k_step}}) {
{{step}}
    }
    for (; k < K; k++) {
{{tail}}
    }
    let out_base = z * M * N;
{{store}}
}
