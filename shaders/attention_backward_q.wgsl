// smolgrad kernel: ATTENTION backward, dq (flash attention)
// {{detail}}
// One thread per query row i (BR rows per workgroup), keys and values staged through
// workgroup memory BC rows at a time. The probabilities are recomputed from the saved
// logsumexp: p = exp(s - lse_i); ds = p (dout_i . v_j - delta_i); dq_i = scale sum_j ds k_j.

{{common}}

var<workgroup> k_tile: array<{{V}}, {{k_tile_size}}>;
var<workgroup> v_tile: array<{{V}}, {{v_tile_size}}>;

@compute @workgroup_size({{BR}})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let z = i32(wid.y);
    let row0 = i32(wid.x) * BR;
    let i = row0 + i32(lid);
    let qi = min(i, L - 1);
    var q: array<{{V}}, D4>;
    for (var c = 0i; c < D4; c++) {
        q[c] = q_load(z, qi, c) * {{scale}};
    }
    var dout: array<{{V}}, DV4>;
    for (var c = 0i; c < DV4; c++) {
        dout[c] = dout_load(z, qi, c);
    }
    let lse = {{lse}}[lse_at(z, qi, 0i)];
    let delta = {{delta}}[delta_at(z, qi, 0i)];
    var dq: array<{{V}}, D4>;
    let key_end = {{key_end}};
    for (var j0 = 0i; j0 < key_end; j0 += BC) {
        for (var e = i32(lid); e < BC * D4; e += BR) {
            k_tile[e] = k_load(z, min(j0 + e / D4, S - 1), e % D4);
        }
        for (var e = i32(lid); e < BC * DV4; e += BR) {
            v_tile[e] = v_load(z, min(j0 + e / DV4, S - 1), e % DV4);
        }
        workgroupBarrier();
        for (var jj = 0i; jj < BC; jj++) {
            let j = j0 + jj;
            if (j >= S{{causal_test}}) {
                continue;
            }
            var x = 0.0;
            for (var c = 0i; c < D4; c++) {
                x = x + vdot(q[c], k_tile[jj * D4 + c]);
            }
            {{add_bias}}
            let p = exp(x - lse);
            var dp = 0.0;
            for (var c = 0i; c < DV4; c++) {
                dp = dp + vdot(dout[c], v_tile[jj * DV4 + c]);
            }
            let ds = p * (dp - delta);
            for (var c = 0i; c < D4; c++) {
                dq[c] = fma({{V}}(ds), k_tile[jj * D4 + c], dq[c]);
            }
        }
        workgroupBarrier();
    }
    if (i < L) {
        let base = (z * L + i) * D;
        for (var c = 0i; c < D4; c++) {
            for (var t = 0i; t < W; t++) {
                out[base + c * W + t] = part(dq[c], t) * {{scale}};
            }
        }
    }
}
