"""WGSL render shaders of the live view.

`SHAPES` draws the host-built coloured triangles. The tensor panels (`HEATMAP`,
`HISTOGRAM`, `IMAGES`) draw one quad over their plot area whose fragment shader reads the
tensor's own storage buffer, so a tensor on the webgpu device is drawn without a copy to
the host. They share `PANEL_PRELUDE`: the panel's uniform and the quad's vertex shader."""

SHAPES = """
struct Frame { size: vec4f };
@group(0) @binding(0) var<uniform> frame: Frame;

struct Vertex { @builtin(position) pos: vec4f, @location(0) color: vec4f };

@vertex
fn vs_main(@location(0) xy: vec2f, @location(1) color: vec4f) -> Vertex {
    var out: Vertex;
    out.pos = vec4f(xy.x / frame.size.x * 2.0 - 1.0, 1.0 - xy.y / frame.size.y * 2.0, 0.0, 1.0);
    out.color = color;
    return out;
}

@fragment
fn fs_main(v: Vertex) -> @location(0) vec4f {
    return v.color;
}
"""

# The uniform every tensor panel gets (see render.PanelUniform for the host side).
PANEL_PRELUDE = """
struct Panel {
    rect: vec4f,      // x, y, width, height of the plot area, in pixels
    viewport: vec4f,  // width, height of the render target
    shape: vec4u,     // what the panel draws: see each shader
    strides: vec4i,   // offset, then strides in elements of the tensor's view
    extra: vec4i,     // panel specific
};
@group(0) @binding(0) var<uniform> panel: Panel;

@vertex
fn vs_main(@builtin(vertex_index) i: u32) -> @builtin(position) vec4f {
    let corner = vec2f(f32(i & 1u), f32(i >> 1u));  // a triangle strip of 4 vertices
    let xy = panel.rect.xy + corner * panel.rect.zw;
    return vec4f(xy.x / panel.viewport.x * 2.0 - 1.0, 1.0 - xy.y / panel.viewport.y * 2.0, 0.0, 1.0);
}

// where the fragment lies in the plot area, in [0, 1) on both axes (y down)
fn panel_uv(p: vec4f) -> vec2f {
    return clamp((p.xy - panel.rect.xy) / panel.rect.zw, vec2f(0.0), vec2f(0.99999));
}

const NAN_COLOR = vec4f(1.0, 0.0, 1.0, 1.0);

// dark violet -> red -> orange -> pale yellow: brightness grows with t in [0, 1]
fn sequential(t: f32) -> vec3f {
    let s = clamp(t, 0.0, 1.0) * 4.0;
    let i = min(u32(s), 3u);
    let f = s - f32(i);
    var stops = array<vec3f, 5>(
        vec3f(0.05, 0.03, 0.20), vec3f(0.36, 0.07, 0.50), vec3f(0.75, 0.20, 0.35),
        vec3f(0.98, 0.55, 0.10), vec3f(0.99, 0.97, 0.60));
    return mix(stops[i], stops[i + 1u], f);
}

// blue (negative) -> near white (zero) -> red (positive), t in [-1, 1]
fn diverging(t: f32) -> vec3f {
    let c = clamp(t, -1.0, 1.0);
    let white = vec3f(0.95, 0.95, 0.95);
    if (c < 0.0) {
        return mix(white, vec3f(0.13, 0.35, 0.85), -c);
    }
    return mix(white, vec3f(0.85, 0.18, 0.13), c);
}

// a value's colour given the tensor's range: diverging around zero when the range spans it
fn value_color(v: f32, lo: f32, hi: f32) -> vec4f {
    if (v != v) {
        return NAN_COLOR;
    }
    if (lo < 0.0 && hi > 0.0) {
        return vec4f(diverging(v / max(-lo, hi)), 1.0);
    }
    return vec4f(sequential((v - lo) / max(hi - lo, 1e-30)), 1.0);
}
"""

# shape.xy = (rows, cols); strides = (offset, row stride, col stride, -);
# range = [min, max] of the tensor
HEATMAP = PANEL_PRELUDE + """
@group(0) @binding(1) var<storage, read> data: array<f32>;
@group(0) @binding(2) var<storage, read> range: array<f32>;

@fragment
fn fs_main(@builtin(position) p: vec4f) -> @location(0) vec4f {
    let uv = panel_uv(p);
    let row = i32(uv.y * f32(panel.shape.x));
    let col = i32(uv.x * f32(panel.shape.y));
    let v = data[u32(panel.strides.x + row * panel.strides.y + col * panel.strides.z)];
    return value_color(v, range[0], range[1]);
}
"""

# shape.x = bins; counts[bins]; peak = [largest count]
HISTOGRAM = PANEL_PRELUDE + """
@group(0) @binding(1) var<storage, read> counts: array<f32>;
@group(0) @binding(2) var<storage, read> peak: array<f32>;

@fragment
fn fs_main(@builtin(position) p: vec4f) -> @location(0) vec4f {
    let uv = panel_uv(p);
    let bins = f32(panel.shape.x);
    let bin = u32(uv.x * bins);
    let bar_px = panel.rect.z / bins;
    let inside = (uv.x * bins - f32(bin)) * bar_px;
    let height = counts[bin] / max(peak[0], 1.0);
    if (1.0 - uv.y <= height && (bar_px < 3.0 || inside >= 1.0)) {
        return vec4f(0.35, 0.65, 0.95, 1.0);
    }
    return vec4f(0.10, 0.11, 0.14, 1.0);
}
"""

# shape = (images, height, width, grid columns); strides = (offset, image, row, col);
# extra = (label offset, label stride, target offset, target stride), a stride of -1 when
# there are none; labels and targets are int32; font = 7 rows per glyph from ASCII 32.
IMAGES = PANEL_PRELUDE + """
@group(0) @binding(1) var<storage, read> data: array<f32>;
@group(0) @binding(2) var<storage, read> range: array<f32>;
@group(0) @binding(3) var<storage, read> labels: array<i32>;
@group(0) @binding(4) var<storage, read> targets: array<i32>;
@group(0) @binding(5) var<storage, read> font: array<u32>;

const BACKGROUND = vec4f(0.10, 0.11, 0.14, 1.0);

// is pixel (x, y) of the glyph of character `code` lit?
fn glyph_pixel(code: i32, x: i32, y: i32) -> bool {
    if (x < 0 || x >= 5 || y < 0 || y >= 7) {
        return false;
    }
    let row = font[u32((code - 32) * 7 + y)];
    return ((row >> u32(4 - x)) & 1u) == 1u;
}

// the label text (up to two digits, '?' otherwise) at font pixel (x, y) of a centred strip
fn label_pixel(label: i32, x: i32, y: i32, strip_chars: i32) -> bool {
    var text = array<i32, 2>(63, 32);  // "? "
    var n = 1;
    if (label >= 0 && label < 10) {
        text[0] = 48 + label;
    } else if (label >= 10 && label < 100) {
        text[0] = 48 + label / 10;
        text[1] = 48 + label % 10;
        n = 2;
    }
    let left = (strip_chars - (n * 6 - 1)) / 2;
    let cx = x - left;
    if (cx < 0 || cx >= n * 6) {
        return false;
    }
    return glyph_pixel(text[cx / 6], cx % 6, y);
}

@fragment
fn fs_main(@builtin(position) p: vec4f) -> @location(0) vec4f {
    let count = i32(panel.shape.x);
    let columns = i32(panel.shape.w);
    let rows = (count + columns - 1) / columns;
    let cell = panel.rect.zw / vec2f(f32(columns), f32(rows));
    let local = p.xy - panel.rect.xy;
    let cx = min(i32(local.x / cell.x), columns - 1);
    let cy = min(i32(local.y / cell.y), rows - 1);
    let index = cy * columns + cx;
    if (index >= count) {
        return BACKGROUND;
    }
    let has_labels = panel.extra.y >= 0;
    let scale = max(1.0, floor(cell.x / 40.0));  // font scale of the labels
    var strip = 0.0;
    if (has_labels) {
        strip = 9.0 * scale;
    }
    let side = max(min(cell.x, cell.y - strip) - 2.0, 1.0);  // square image, 1 px gap around
    let origin = vec2f(f32(cx), f32(cy)) * cell + vec2f((cell.x - side) * 0.5, 1.0);
    let in_cell = local - origin;
    if (all(in_cell >= vec2f(0.0)) && all(in_cell < vec2f(side))) {
        let y = i32(in_cell.y / side * f32(panel.shape.y));
        let x = i32(in_cell.x / side * f32(panel.shape.z));
        let v = data[u32(panel.strides.x + index * panel.strides.y + y * panel.strides.z + x * panel.strides.w)];
        if (v != v) {
            return NAN_COLOR;
        }
        let g = clamp((v - range[0]) / max(range[1] - range[0], 1e-30), 0.0, 1.0);
        return vec4f(g, g, g, 1.0);
    }
    if (!has_labels) {
        return BACKGROUND;
    }
    let strip_top = origin.y + side + scale;
    let fy = i32(floor((local.y - strip_top) / scale));
    let strip_x = f32(cx) * cell.x;
    let fx = i32(floor((local.x - strip_x) / scale));
    let label = labels[u32(panel.extra.x + index * panel.extra.y)];
    if (!label_pixel(label, fx, fy, i32(cell.x / scale))) {
        return BACKGROUND;
    }
    if (panel.extra.w < 0) {
        return vec4f(0.90, 0.90, 0.90, 1.0);
    }
    let target_label = targets[u32(panel.extra.z + index * panel.extra.w)];
    if (label == target_label) {
        return vec4f(0.30, 0.85, 0.35, 1.0);
    }
    return vec4f(0.95, 0.30, 0.25, 1.0);
}
"""
