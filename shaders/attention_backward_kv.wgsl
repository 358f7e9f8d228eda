// smolgrad kernel: ATTENTION backward, dk and dv (flash attention)
// {{detail}}
// One thread per key row j (BR rows per workgroup); query rows, their output gradients,
// logsumexp and delta staged through workgroup memory BC rows at a time. With
// p = exp(s - lse_i) and ds = p (dout_i . v_j - delta_i): dv_j = sum_i p dout_i and
// dk_j = scale sum_i ds q_i. Output row: dk (D values), then dv (DV values).

{{bindings}}

{{helpers}}

{{operand_fns}}

const L = {{L}};
const S = {{S}};
const D = {{D}};
const DV = {{DV}};
const BR = {{BR}};
const BC = {{BC}};

var<workgroup> q_tile: array<f32, {{q_tile_size}}>;  // scaled
var<workgroup> do_tile: array<f32, {{do_tile_size}}>;
var<workgroup> lse_tile: array<f32, BC>;
var<workgroup> delta_tile: array<f32, BC>;

@compute @workgroup_size({{BR}})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let z = i32(wid.y);
    let key0 = i32(wid.x) * BR;
    let j = key0 + i32(lid);
    let kj = min(j, S - 1);
    var k: array<f32, D>;
    for (var c = 0i; c < D; c++) {
        k[c] = {{k}}[k_at(z, kj, c)];
    }
    var v: array<f32, DV>;
    for (var c = 0i; c < DV; c++) {
        v[c] = {{v}}[v_at(z, kj, c)];
    }
    var dk: array<f32, D>;
    var dv: array<f32, DV>;
    for (var i0 = {{query_start}}; i0 < L; i0 += BC) {
        for (var e = i32(lid); e < BC * D; e += BR) {
            let i = min(i0 + e / D, L - 1);
            q_tile[e] = {{q}}[q_at(z, i, e % D)] * {{scale}};
        }
        for (var e = i32(lid); e < BC * DV; e += BR) {
            let i = min(i0 + e / DV, L - 1);
            do_tile[e] = {{dout}}[dout_at(z, i, e % DV)];
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
            for (var c = 0i; c < D; c++) {
                x = fma(q_tile[ii * D + c], k[c], x);
            }
            {{add_bias}}
            let p = exp(x - lse_tile[ii]);
            var dp = 0.0;
            for (var c = 0i; c < DV; c++) {
                dp = fma(do_tile[ii * DV + c], v[c], dp);
                dv[c] = fma(p, do_tile[ii * DV + c], dv[c]);
            }
            let ds = p * (dp - delta_tile[ii]);
            for (var c = 0i; c < D; c++) {
                dk[c] = fma(ds, q_tile[ii * D + c], dk[c]);  // q_tile holds scale * q
            }
        }
        workgroupBarrier();
    }
    if (j < S) {
        let base = (z * S + j) * (D + DV);
        for (var c = 0i; c < D; c++) {
            out[base + c] = dk[c];
        }
        for (var c = 0i; c < DV; c++) {
            out[base + D + c] = dv[c];
        }
    }
}
