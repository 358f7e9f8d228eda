// smolgrad kernel: ATTENTION backward, dk and dv (flash attention)
// {{detail}}
// One thread per key row j (BR rows per workgroup); query rows, their output gradients,
// logsumexp and delta staged through workgroup memory BC rows at a time. With
// p = exp(s - lse_i) and ds = p (dout_i . v_j - delta_i): dv_j = sum_i p dout_i and
// dk_j = scale sum_i ds q_i. Output row: dk (D values), then dv (DV values).

{{common}}

var<workgroup> q_tile: array<{{V}}, {{q_tile_size}}>;  // scaled
var<workgroup> do_tile: array<{{V}}, {{do_tile_size}}>;
var<workgroup> lse_tile: array<f32, BC>;
var<workgroup> delta_tile: array<f32, BC>;

@compute @workgroup_size({{BR}})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let z = i32(wid.y);
    let key0 = i32(wid.x) * BR;
    let j = key0 + i32(lid);
    let kj = min(j, S - 1);
    var k: array<{{V}}, D4>;
    for (var c = 0i; c < D4; c++) {
        k[c] = k_load(z, kj, c);
    }
    var v: array<{{V}}, DV4>;
    for (var c = 0i; c < DV4; c++) {
        v[c] = v_load(z, kj, c);
    }
    var dk: array<{{V}}, D4>;
    var dv: array<{{V}}, DV4>;
    for (var i0 = {{query_start}}; i0 < L; i0 += BC) {
        for (var e = i32(lid); e < BC * D4; e += BR) {
            q_tile[e] = q_load(z, min(i0 + e / D4, L - 1), e % D4) * {{scale}};
        }
        for (var e = i32(lid); e < BC * DV4; e += BR) {
            do_tile[e] = dout_load(z, min(i0 + e / DV4, L - 1), e % DV4);
        }
        for (var e = i32(lid); e < BC; e += BR) {
            let i = min(i0 + e, L - 1);
            lse_tile[e] = {{lse}}[lse_at(z, i, 0i)];
            delta_tile[e] = {{delta}}[delta_at(z, i, 0i)];
        }
        workgroupBarrier();
        for (var ii = 0i; ii < BC; ii++) {
            let i = i0 + ii;
            if (i >= L{{causal_test}}) {
                continue;
            }
            var x = 0.0;
            for (var c = 0i; c < D4; c++) {
                x = x + vdot(q_tile[ii * D4 + c], k[c]);
            }
            {{add_bias}}
            let p = exp(x - lse_tile[ii]);
            var dp = 0.0;
            for (var c = 0i; c < DV4; c++) {
                dp = dp + vdot(do_tile[ii * DV4 + c], v[c]);
                dv[c] = fma({{V}}(p), do_tile[ii * DV4 + c], dv[c]);
            }
            let ds = p * (dp - delta_tile[ii]);
            for (var c = 0i; c < D4; c++) {
                dk[c] = fma({{V}}(ds), q_tile[ii * D4 + c], dk[c]);  // q_tile holds scale * q
            }
        }
        workgroupBarrier();
    }
    if (j < S) {
        let base = (z * S + j) * (D + DV);
        for (var c = 0i; c < D4; c++) {
            for (var t = 0i; t < W; t++) {
                out[base + c * W + t] = part(dk[c], t);
            }
        }
        for (var c = 0i; c < DV4; c++) {
            for (var t = 0i; t < W; t++) {
                out[base + D + c * W + t] = part(dv[c], t);
            }
        }
    }
}
