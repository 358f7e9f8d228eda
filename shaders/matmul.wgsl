// smolgrad kernel: MATMUL (tiled)
// {{detail}}
// Workgroup (x, y, z) computes the TILE x TILE output tile at rows TILE*y, columns
// TILE*x of batch z; each of its (TILE/4)^2 threads computes a 4x4 micro-tile. Slices of
// K are staged through workgroup memory, 16 at a time. Edges are bounds-checked.

{{common}}
const TILE = {{TILE}}i;
const TILE_K = 16i;

var<workgroup> a_tile: array<array<vec4<{{T}}>, {{WG}}>, 16>;  // [k][row / 4][row % 4]
var<workgroup> b_tile: array<array<vec4<{{T}}>, {{WG}}>, 16>;  // [k][column / 4][column % 4]

@compute @workgroup_size({{WG}}, {{WG}})
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) local: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let a_base = a_batch(i32(wid.z));
    let b_base = b_batch(i32(wid.z));
    let row0 = i32(wid.y) * TILE;
    let col0 = i32(wid.x) * TILE;
    let tx = i32(local.x);
    let ty = i32(local.y);
    let t = i32(lid);

    var acc: array<vec4<{{T}}>, 4>;  // acc[i][j]: row 4*ty + i, column 4*tx + j (zero-initialised)
    for (var k0 = 0i; k0 < K; k0 += TILE_K) {
        // stage A[row0.., k0..] (TILE x 16) and B[k0.., col0..] (16 x TILE): TILE*16/threads elements per thread each
        for (var s = 0i; s < {{LOADS}}i; s++) {
            let e = t + s * {{THREADS}}i;
            let r = e / TILE_K;
            let ka = e % TILE_K;
            var va = {{zero}};
            if (row0 + r < M && k0 + ka < K) {
                va = {{T}}({{a}}[a_base + (row0 + r) * A_ROW_STRIDE + (k0 + ka) * A_COL_STRIDE]);  // (to the compute type: half operands are stored as 16 bits)
            }
            a_tile[ka][r / 4][r % 4] = va;

            let kb = e / TILE;
            let c = e % TILE;
            var vb = {{zero}};
            if (k0 + kb < K && col0 + c < N) {
                vb = {{T}}({{b}}[b_base + (k0 + kb) * B_ROW_STRIDE + (col0 + c) * B_COL_STRIDE]);
            }
            b_tile[kb][c / 4][c % 4] = vb;
        }
        workgroupBarrier();

        for (var kk = 0i; kk < TILE_K; kk++) {
            let a_reg = a_tile[kk][ty];
            let b_reg = b_tile[kk][tx];
            for (var i = 0i; i < 4i; i++) {
                let a_val = a_reg[i];
                {{mul_add}}
            }
        }
        workgroupBarrier();
    }

    let out_base = i32(wid.z) * M * N;
    for (var i = 0i; i < 4i; i++) {
        let row = row0 + 4 * ty + i;
        for (var j = 0i; j < 4i; j++) {
            let col = col0 + 4 * tx + j;
            if (row < M && col < N) {
                out[out_base + row * N + col] = epilogue(acc[i][j], i32(wid.z), row, col);
            }
        }
    }
}
