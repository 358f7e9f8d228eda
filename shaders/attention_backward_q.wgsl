// smolgrad kernel: ATTENTION backward, dq (flash attention)
// {{detail}}
// One thread per query row i (BR rows per workgroup), keys and values staged through
// workgroup memory BC rows at a time. The probabilities are recomputed from the saved
// logsumexp: p = exp(s - lse_i); ds = p (dout_i . v_j - delta_i); dq_i = scale sum_j ds k_j.

{{bindings}}

{{helpers}}

{{operand_fns}}

const L = {{L}};
const S = {{S}};
const D = {{D}};
const DV = {{DV}};
const BR = {{BR}};
const BC = {{BC}};

var<workgroup> k_tile: array<f32, {{k_tile_size}}>;
var<workgroup> v_tile: array<f32, {{v_tile_size}}>;

@compute @workgroup_size({{BR}})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let z = i32(wid.y);
    let row0 = i32(wid.x) * BR;
    let i = row0 + i32(lid);
    let qi = min(i, L - 1);
    var q: array<f32, D>;
    for (var c = 0i; c < D; c++) {
        q[c] = {{q}}[q_at(z, qi, c)] * {{scale}};
    }
    var dout: array<f32, DV>;
    for (var c = 0i; c < DV; c++) {
        dout[c] = {{dout}}[dout_at(z, qi, c)];
    }
    let lse = {{lse}}[lse_at(z, qi, 0i)];
    let delta = {{delta}}[delta_at(z, qi, 0i)];
    var dq: array<f32, D>;
    let key_end = {{key_end}};
    for (var j0 = 0i; j0 < key_end; j0 += BC) {
        for (var e = i32(lid); e < BC * D; e += BR) {
            let j = min(j0 + e / D, S - 1);
            k_tile[e] = {{k}}[k_at(z, j, e % D)];
        }
        for (var e = i32(lid); e < BC * DV; e += BR) {
            let j = min(j0 + e / DV, S - 1);
            v_tile[e] = {{v}}[v_at(z, j, e % DV)];
        }
        workgroupBarrier();
        for (var jj = 0i; jj < BC; jj++) {
            let j = j0 + jj;
            if (j >= S{{causal_test}}) {
                continue;
            }
            var x = 0.0;
            for (var c = 0i; c < D; c++) {
                x = fma(q[c], k_tile[jj * D + c], x);
            }
            {{add_bias}}
            let p = exp(x - lse);
            var dp = 0.0;
            for (var c = 0i; c < DV; c++) {
                dp = fma(dout[c], v_tile[jj * DV + c], dp);
            }
            let ds = p * (dp - delta);
            for (var c = 0i; c < D; c++) {
                dq[c] = fma(ds, k_tile[jj * D + c], dq[c]);
            }
        }
        workgroupBarrier();
    }
    if (i < L) {
        let base = (z * L + i) * D;
        for (var c = 0i; c < D; c++) {
            out[base + c] = dq[c] * {{scale}};
        }
    }
}
