// smolgrad kernel: ATTENTION forward (flash attention)
// {{detail}}
// Workgroup (x, z) owns query rows BR*x .. BR*x + BR - 1 of batch z, one row per thread
// (its query row, scaled, and its output row live in registers). Keys and values are staged
// through workgroup memory BC rows at a time; each thread keeps the running maximum m and
// sum l of its row's exp(score - m) and rescales its output when m grows (online softmax),
// so the L x S scores are never stored. Output row: p v (DV values), then logsumexp.

{{common}}

var<workgroup> k_tile: array<{{V}}, {{k_tile_size}}>;
var<workgroup> v_tile: array<{{V}}, {{v_tile_size}}>;

@compute @workgroup_size({{BR}})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let z = i32(wid.y);
    let NEG_INF = bitcast<f32>(0xff800000u);
    let row0 = i32(wid.x) * BR;
    let i = row0 + i32(lid);
    let qi = min(i, L - 1);  // rows past the end compute row L - 1 and store nothing
    var q: array<{{V}}, D4>;
    for (var c = 0i; c < D4; c++) {
        q[c] = q_load(z, qi, c) * {{scale}};
    }
    var acc: array<{{V}}, DV4>;
    var s: array<f32, BC>;
    var m = NEG_INF;
    var l = 0.0;
    let key_end = {{key_end}};
    for (var j0 = 0i; j0 < key_end; j0 += BC) {
        for (var e = i32(lid); e < BC * D4; e += BR) {
            k_tile[e] = k_load(z, min(j0 + e / D4, S - 1), e % D4);
        }
        for (var e = i32(lid); e < BC * DV4; e += BR) {
            v_tile[e] = v_load(z, min(j0 + e / DV4, S - 1), e % DV4);
        }
        workgroupBarrier();
        var block_max = NEG_INF;
        for (var jj = 0i; jj < BC; jj++) {
            let j = j0 + jj;
            var x = 0.0;
            for (var c = 0i; c < D4; c++) {
                x = x + vdot(q[c], k_tile[jj * D4 + c]);
            }
            {{add_bias}}
            if (j >= S{{causal_test}}) {
                x = NEG_INF;
            }
            s[jj] = x;
            block_max = max(block_max, x);
        }
        let m_new = max(m, block_max);
        if (m_new > NEG_INF) {  // else every score so far is masked: nothing to add yet
            let correction = exp(m - m_new);
            l = l * correction;
            for (var c = 0i; c < DV4; c++) {
                acc[c] = acc[c] * correction;
            }
            for (var jj = 0i; jj < BC; jj++) {
                let p = exp(s[jj] - m_new);
                l = l + p;
                for (var c = 0i; c < DV4; c++) {
                    acc[c] = fma({{V}}(p), v_tile[jj * DV4 + c], acc[c]);
                }
            }
            m = m_new;
        }
        workgroupBarrier();
    }
    if (i < L) {
        let base = (z * L + i) * (DV + 1);
        let nan = bitcast<f32>(0x7fc00000u);  // a fully masked row: nan, like softmax of all -inf
        let inv = 1.0 / l;
        for (var c = 0i; c < DV4; c++) {
            for (var t = 0i; t < W; t++) {
                out[base + c * W + t] = select(part(acc[c], t) * inv, nan, l == 0.0);
            }
        }
        out[base + DV] = select(m + log(l), nan, l == 0.0);
    }
}
