/* vot_lorat._crop_kernel: CropBatch's crops on the CPU in one pass, from the rasterised regions to the
 * normalised batch.
 *
 * CropBatch's tensor operations (vot_lorat/crop.py) compute the bilinear taps in numpy, gather every output
 * pixel's source bytes into one buffer, blend the rows in a second, weight the columns in place, add the pairs
 * into the batch and paint the padding: dozens of small numpy calls and four trips through buffers larger
 * than the caches a forward pass leaves behind. Here the taps are computed with the same float operations
 * as crop._linear_taps (built without fused multiply-adds, so they round alike), and each output row is made
 * in two small buffers that stay in the first-level cache. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* One output pixel's bilinear tap along an axis, as crop._linear_taps places it (F.interpolate, bilinear,
 * align_corners=False): i is the pixel's index in the target range. Gives the first source pixel (from the
 * start of the source range) and the weight of the pixel after it. */
static int64_t linear_tap(int64_t i, int64_t out_len, int64_t in_len, float *second)
{
    const double scale = (double)(float)((double)in_len / (double)out_len);
    double position = scale * ((double)i + 0.5) - 0.5;
    if (position < 0)
        position = 0;
    const float rounded = (float)position;
    int64_t first = (int64_t)rounded;
    if (first > in_len - 1)
        first = in_len - 1;
    *second = first < in_len - 1 ? rounded - (float)first : 0.0f;
    return first;
}

typedef struct {
    int64_t start, end;  /* the target range: crop pixels [start, end) are image pixels; the rest is padding */
    int64_t source, source_len;  /* the source range's first pixel and length (at least 1: check_ranges) */
} Axis;

static void fill_crops(const uint8_t *image, int64_t height, int64_t width, Py_ssize_t count, Py_ssize_t size,
                       const int64_t *targets, const int64_t *sources, const float *fills, const float *scale,
                       const float *shift, float *out, int32_t *cols, float *col_w, uint8_t *taps, float *blend)
{
    const Py_ssize_t plane = size * size;
    uint8_t *restrict top_taps = taps, *restrict bottom_taps = taps + 6 * size;
    for (Py_ssize_t k = 0; k < count; ++k) {
        const int64_t *t = targets + 4 * k, *s = sources + 4 * k; /* x1, y1, x2, y2 */
        const Axis ax = {t[0], t[2], s[0], s[2] - s[0]}, ay = {t[1], t[3], s[1], s[3] - s[1]};
        const Py_ssize_t columns = ax.end - ax.start, rows = ay.end - ay.start;
        /* each column's pair of source pixels (c, c + 1) and their weights times the channel scale; a pair at
         * the last image column starts one pixel earlier, its weights swapped */
        for (Py_ssize_t x = 0; x < columns; ++x) {
            float second;
            int64_t c = ax.source + linear_tap(x, columns, ax.source_len, &second);
            float w_left = 1.0f - second, w_right = second;
            if (c >= width - 1) {
                c -= 1;
                w_left = second;
                w_right = 1.0f - second;
            }
            cols[x] = (int32_t)c;
            for (int ch = 0; ch < 3; ++ch) {
                col_w[6 * x + ch] = w_left * scale[ch];
                col_w[6 * x + 3 + ch] = w_right * scale[ch];
            }
        }
        const Py_ssize_t span = 6 * columns;
        for (Py_ssize_t y = 0; y < size; ++y) {
            float *row[3];
            for (int ch = 0; ch < 3; ++ch)
                row[ch] = out + (k * 3 + ch) * plane + y * size;
            if (y < ay.start || y >= ay.end || columns == 0) {
                for (int ch = 0; ch < 3; ++ch)
                    for (Py_ssize_t x = 0; x < size; ++x)
                        row[ch][x] = fills[3 * k + ch];
                continue;
            }
            float w_bottom;
            const int64_t r = ay.source + linear_tap(y - ay.start, rows, ay.source_len, &w_bottom);
            const float w_top = 1.0f - w_bottom;
            const uint8_t *top = image + r * width * 3;
            const uint8_t *bottom = image + (r + 1 < height ? r + 1 : height - 1) * width * 3;
            for (Py_ssize_t x = 0; x < columns; ++x) {
                memcpy(top_taps + 6 * x, top + 3 * (int64_t)cols[x], 6);
                memcpy(bottom_taps + 6 * x, bottom + 3 * (int64_t)cols[x], 6);
            }
            for (Py_ssize_t i = 0; i < span; ++i)
                blend[i] = ((float)top_taps[i] * w_top + (float)bottom_taps[i] * w_bottom) * col_w[i];
            for (int ch = 0; ch < 3; ++ch) {
                float *restrict image_part = row[ch] + ax.start;
                for (Py_ssize_t x = 0; x < ax.start; ++x)
                    row[ch][x] = fills[3 * k + ch];
                for (Py_ssize_t x = 0; x < columns; ++x)
                    image_part[x] = (blend[6 * x + ch] + blend[6 * x + 3 + ch]) + shift[ch];
                for (Py_ssize_t x = ax.end; x < size; ++x)
                    row[ch][x] = fills[3 * k + ch];
            }
        }
    }
}

static int check_length(const Py_buffer *buffer, Py_ssize_t expected, const char *name)
{
    if (buffer->len != expected) {
        PyErr_Format(PyExc_ValueError, "_crop_kernel.fill: %s has %zd bytes, %zd expected", name, buffer->len,
                     expected);
        return 0;
    }
    return 1;
}

/* Every range inside its limits: target ranges within the crop, source ranges non-empty and within the image,
 * so that no index the kernel computes falls outside the buffers. */
static int check_ranges(const int64_t *targets, const int64_t *sources, Py_ssize_t count, Py_ssize_t size,
                        int64_t height, int64_t width)
{
    for (Py_ssize_t k = 0; k < count; ++k) {
        const int64_t *t = targets + 4 * k, *s = sources + 4 * k;
        for (int axis = 0; axis < 2; ++axis) {
            const int64_t limit = axis == 0 ? width : height;
            if (t[axis] < 0 || t[axis + 2] > size || t[axis] > t[axis + 2] || s[axis] < 0 ||
                s[axis + 2] > limit || s[axis] >= s[axis + 2]) {
                PyErr_Format(PyExc_ValueError,
                             "_crop_kernel.fill: crop %zd has target %lld..%lld or source %lld..%lld outside its "
                             "0..%zd crop and 0..%lld image pixels", k, (long long)t[axis], (long long)t[axis + 2],
                             (long long)s[axis], (long long)s[axis + 2], size, (long long)limit);
                return 0;
            }
        }
    }
    return 1;
}

/* fill(image, height, width, size, targets, sources, fills, scale, shift, out): see vot_lorat.crop.CropBatch. The
 * arrays are contiguous buffers: image (H, W, 3) uint8, targets and sources (N, 4) int64 (x1, y1, x2, y2,
 * end-exclusive), fills (N, 3), scale and shift (3,) float32, out (N, 3, S, S) float32. Sizes and ranges are
 * checked, so wrong arguments raise ValueError, never read or write out of bounds. */
static PyObject *fill(PyObject *self, PyObject *args)
{
    Py_buffer image, targets, sources, fills, scale, shift, out;
    Py_ssize_t height, width, size;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*nnny*y*y*y*y*w*", &image, &height, &width, &size, &targets, &sources, &fills,
                          &scale, &shift, &out))
        return NULL;
    PyObject *result = NULL;
    void *scratch = NULL;
    const Py_ssize_t count = targets.len / (Py_ssize_t)(4 * sizeof(int64_t));
    if (count < 1 || size < 1 || height < 1 || width < 2) {
        PyErr_SetString(PyExc_ValueError,
                        "_crop_kernel.fill: needs at least one crop of 1 pixel and an image of 2 columns");
        goto done;
    }
    if (!check_length(&image, height * width * 3, "image") ||
        !check_length(&targets, count * 4 * (Py_ssize_t)sizeof(int64_t), "targets") ||
        !check_length(&sources, count * 4 * (Py_ssize_t)sizeof(int64_t), "sources") ||
        !check_length(&fills, count * 3 * (Py_ssize_t)sizeof(float), "fills") ||
        !check_length(&scale, 3 * (Py_ssize_t)sizeof(float), "scale") ||
        !check_length(&shift, 3 * (Py_ssize_t)sizeof(float), "shift") ||
        !check_length(&out, count * 3 * size * size * (Py_ssize_t)sizeof(float), "out") ||
        !check_ranges(targets.buf, sources.buf, count, size, height, width))
        goto done;
    /* per output row: the column indices and weights, the two rows' bytes, the blended values */
    scratch = PyMem_Malloc(size * (sizeof(int32_t) + 6 * sizeof(float) + 12 + 6 * sizeof(float)));
    if (scratch == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    int32_t *cols = scratch;
    float *col_w = (float *)(cols + size), *blend = col_w + 6 * size;
    uint8_t *taps = (uint8_t *)(blend + 6 * size);
    Py_BEGIN_ALLOW_THREADS
    fill_crops(image.buf, height, width, count, size, targets.buf, sources.buf, fills.buf, scale.buf, shift.buf,
               out.buf, cols, col_w, taps, blend);
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
done:
    PyMem_Free(scratch);
    PyBuffer_Release(&image);
    PyBuffer_Release(&targets);
    PyBuffer_Release(&sources);
    PyBuffer_Release(&fills);
    PyBuffer_Release(&scale);
    PyBuffer_Release(&shift);
    PyBuffer_Release(&out);
    return result;
}

static PyMethodDef methods[] = {
    {"fill", fill, METH_VARARGS, "fill(image, height, width, size, targets, sources, fills, scale, shift, out)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_crop_kernel",
                                    "CropBatch's crops on the CPU in one pass", -1, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__crop_kernel(void) { return PyModule_Create(&module); }
