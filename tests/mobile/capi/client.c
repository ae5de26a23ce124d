/*
 * An app-side client of a pushed tfxp mobile model, on the TensorFlow Lite C API only (issue 18).
 *
 * It knows nothing of the model but what model_spec.json says: the signature subgraph 0 holds
 * (`primary_subgraph.signature`, serving_bytes for models with string inputs: the C API cannot
 * write string tensors), that signature's inputs (`signatures.<sig>.inputs`: name, dtype, shape,
 * missing_marker, byte_width), and, per variant, the tensor each input name is
 * (`variants.<v>.tensors.primary_subgraph`). The C API of TFLite 2.9 has no signature runner, so
 * inputs are fed BY NAME through the tensor names the interpreter reports (TfLiteTensorName),
 * never by the spec's order. Raw cells are read as the spec's `row_parsing` rules say
 * (tfxp/rows.py parse_value).
 *
 * Usage: client MODEL_DIR ROWS.jsonl VARIANT batch|single [--by-position]
 *        client --version
 *   ROWS.jsonl: one JSON object per line, {input name: cell}; a cell is a CSV text or a JSON value.
 *   batch: every row in one invoke; single: one invoke per row.
 *   --by-position: feed interpreter input i with the spec's i-th input where dtype and width fit
 *   (what an app that trusts the spec's order does; for tests that show it gives other answers).
 * Prints one JSON line per row: the output value (a [-1] output) or a list of K values ([-1, K]),
 * null where the model gives NaN (no answer).
 * Exit codes: 0 ok; 1 usage, spec or model error; 2 a refused cell (stderr names file:line: column).
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensorflow/lite/c/c_api.h"

enum kind { K_FLOAT32, K_INT64, K_BYTES };

typedef struct {
    const char *name;
    enum kind kind;
    int width;              /* K_BYTES: bytes per row (shape[1]); else 1 */
    float float_marker;     /* missing_marker of a float32 input ("NaN") */
    int64_t int_marker;     /* missing_marker of an int64 input */
    int tensor;             /* interpreter input position found by tensor name */
    int feed;               /* spec input whose values go to this input's tensor (--by-position) */
    void *values;           /* rows x width elements */
} Input;

static void die(int code, const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    fputs("client: ", stderr);
    vfprintf(stderr, fmt, args);
    fputc('\n', stderr);
    va_end(args);
    exit(code);
}

static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) die(1, "%s: %s", path, strerror(errno));
    size_t cap = 1 << 16, len = 0, n;
    char *buf = malloc(cap + 1);
    while (buf && (n = fread(buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) buf = realloc(buf, (cap *= 2) + 1);
    }
    if (!buf) die(1, "out of memory");
    fclose(f);
    buf[len] = '\0';
    return buf;
}

static const cJSON *get(const cJSON *object, const char *key, const char *where) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, key);
    if (!item) die(1, "model_spec.json: no %s.%s", where, key);
    return item;
}

static const char *get_string(const cJSON *object, const char *key, const char *where) {
    const cJSON *item = get(object, key, where);
    if (!cJSON_IsString(item)) die(1, "model_spec.json: %s.%s is not a string", where, key);
    return item->valuestring;
}

/* -- row parsing: model_spec.json row_parsing, as tfxp/rows.py parse_value does ----------------- */

/* Length of the UTF-8 whitespace character at s (Python's str.isspace set), 0 if none. */
static int space_at(const unsigned char *s) {
    if ((*s >= 0x09 && *s <= 0x0d) || (*s >= 0x1c && *s <= 0x20)) return 1;
    if (s[0] == 0xc2 && (s[1] == 0x85 || s[1] == 0xa0)) return 2;
    if (s[0] == 0xe1 && s[1] == 0x9a && s[2] == 0x80) return 3;                     /* U+1680 */
    if (s[0] == 0xe2 && s[1] == 0x80 && ((s[2] >= 0x80 && s[2] <= 0x8a) || s[2] == 0xa8 || s[2] == 0xa9 ||
                                         s[2] == 0xaf))
        return 3;                                                                   /* U+2000-200A, 2028/9, 202F */
    if (s[0] == 0xe2 && s[1] == 0x81 && s[2] == 0x9f) return 3;                     /* U+205F */
    if (s[0] == 0xe3 && s[1] == 0x80 && s[2] == 0x80) return 3;                     /* U+3000 */
    return 0;
}

/* The text without surrounding whitespace (Python's str.strip()), as a new string the caller frees. */
static char *strip(const char *text) {
    const unsigned char *s = (const unsigned char *)text;
    int n;
    while ((n = space_at(s)) > 0) s += n;
    size_t len = strlen((const char *)s), end = 0, i = 0;
    while (i < len) {             /* end: just past the last non-space character */
        n = space_at(s + i);
        if (n == 0) end = ++i;
        else i += n;
    }
    char *out = malloc(end + 1);
    if (!out) die(1, "out of memory");
    memcpy(out, s, end);
    out[end] = '\0';
    return out;
}

static int blank(const char *text) {
    char *stripped = strip(text);
    int empty = stripped[0] == '\0';
    free(stripped);
    return empty;
}

/* A float as Python's float() reads text: decimal or exponent, inf/infinity/nan, no hex. */
static int parse_double(const char *text, double *out) {
    if (!*text || strpbrk(text, "xX(")) return 0;   /* strtod also takes hex and nan(...); Python does not */
    char *end;
    errno = 0;
    *out = strtod(text, &end);
    return *end == '\0';
}

/* Stripped text -> 1 an exact int64 in `integer`; 2 a double in `value`; -1 refused. */
static int parse_text(const char *s, enum kind kind, double *value, int64_t *integer, const char **why) {
    if (kind == K_INT64) {   /* an integer in decimal first: exact beyond 2^53 */
        const char *digits = s + (*s == '+' || *s == '-');
        if (*digits && strspn(digits, "0123456789") == strlen(digits)) {
            char *end;
            errno = 0;
            long long v = strtoll(s, &end, 10);
            if (errno == ERANGE) { *why = "out of int64 range"; return -1; }
            if (v == INT64_MIN) { *why = "int64's minimum, the missing marker"; return -1; }
            *integer = v;
            return 1;
        }
    }
    if (!parse_double(s, value)) { *why = "not a number"; return -1; }
    return 2;
}

/* One cell -> 1 value, 0 missing, -1 refused (why in `why`). Python's rules: tfxp/rows.py parse_value. */
static int parse_cell(const cJSON *cell, const Input *in, double *number, int64_t *integer, const char **text,
                      char *buf, size_t size, const char **why) {
    if (!cell || cJSON_IsNull(cell)) return 0;
    if (cJSON_IsString(cell) && blank(cell->valuestring)) return 0;
    if (in->kind == K_BYTES) {
        if (cJSON_IsString(cell)) { *text = cell->valuestring; return 1; }
        if (cJSON_IsBool(cell)) { *text = cJSON_IsTrue(cell) ? "True" : "False"; return 1; }
        if (cJSON_IsNumber(cell) && cell->valuedouble == floor(cell->valuedouble) &&
            fabs(cell->valuedouble) <= 9007199254740992.0) {
            snprintf(buf, size, "%.0f", cell->valuedouble);   /* an integer's decimal text */
            *text = buf;
            return 1;
        }
        *why = "a JSON number other than an integer up to 2^53 in a string column: send the text";
        return -1;
    }
    if (cJSON_IsBool(cell)) { *why = "a boolean, not a number"; return -1; }
    double value;
    if (cJSON_IsNumber(cell)) {
        value = cell->valuedouble;
        if (in->kind == K_INT64 && fabs(value) > 9007199254740992.0) {
            *why = "a JSON number beyond 2^53 is not exact as a double: send it as a string";
            return -1;
        }
    } else if (cJSON_IsString(cell)) {
        char *s = strip(cell->valuestring);
        int got = parse_text(s, in->kind, &value, integer, why);
        free(s);
        if (got != 2) return got;   /* 2: a double in `value`, checked below */
    } else {
        *why = "not a number";
        return -1;
    }
    if (isnan(value)) return 0;   /* the text nan is missing */
    if (in->kind == K_FLOAT32) { *number = value; return 1; }
    if (isinf(value) || value != floor(value)) { *why = "not an integer"; return -1; }
    if (value >= 9223372036854775808.0 || value < -9223372036854775808.0) { *why = "out of int64 range"; return -1; }
    if (value == -9223372036854775808.0) { *why = "int64's minimum, the missing marker"; return -1; }
    *integer = (int64_t)value;
    return 1;
}

static void fill(Input *in, int row, const cJSON *cell, const char *rows_path, int line) {
    double number = 0;
    int64_t integer = 0;
    const char *text = "", *why = "";
    char buf[512];
    int got = parse_cell(cell, in, &number, &integer, &text, buf, sizeof buf, &why);
    if (got < 0) {
        char *shown = cJSON_PrintUnformatted(cell);
        const char *dtype = in->kind == K_FLOAT32 ? "float32" : in->kind == K_INT64 ? "int64" : "string";
        die(2, "%s:%d: %s: cannot read %s as %s (%s)", rows_path, line, in->name, shown, dtype, why);
    }
    if (in->kind == K_FLOAT32) {
        ((float *)in->values)[row] = got ? (float)number : in->float_marker;
    } else if (in->kind == K_INT64) {
        ((int64_t *)in->values)[row] = got ? integer : in->int_marker;
    } else {   /* UTF-8 bytes cut to the width, zero-padded; missing: all zeros (the marker 0) */
        unsigned char *dst = (unsigned char *)in->values + (size_t)row * in->width;
        memset(dst, 0, in->width);
        if (got) {
            size_t len = strlen(text);
            memcpy(dst, text, len < (size_t)in->width ? len : (size_t)in->width);
        }
    }
}

/* -- the spec --------------------------------------------------------------------------------- */

static Input *read_inputs(const cJSON *spec, const char *signature, int *count) {
    const cJSON *declared = get(get(get(spec, "signatures", ""), signature, "signatures"), "inputs", signature);
    *count = cJSON_GetArraySize(declared);
    Input *inputs = calloc(*count, sizeof(Input));
    int i = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, declared) {
        Input *in = &inputs[i];
        in->name = get_string(item, "name", "signatures.inputs");
        const char *dtype = get_string(item, "dtype", in->name);
        const cJSON *marker = get(item, "missing_marker", in->name);
        in->width = 1;
        in->feed = i;
        if (strcmp(dtype, "float32") == 0) {
            in->kind = K_FLOAT32;
            if (cJSON_IsString(marker) && strcmp(marker->valuestring, "NaN") == 0) in->float_marker = NAN;
            else if (cJSON_IsNumber(marker)) in->float_marker = (float)marker->valuedouble;
            else die(1, "model_spec.json: %s: missing_marker is not a float", in->name);
        } else if (strcmp(dtype, "int64") == 0) {
            in->kind = K_INT64;
            /* int64's minimum is -2^63, exact as a double (cJSON holds numbers as doubles) */
            if (!cJSON_IsNumber(marker)) die(1, "model_spec.json: %s: missing_marker is not a number", in->name);
            in->int_marker = (int64_t)marker->valuedouble;
        } else if (strcmp(dtype, "uint8") == 0) {
            in->kind = K_BYTES;
            in->width = get(item, "byte_width", in->name)->valueint;
            if (!cJSON_IsNumber(marker) || marker->valueint != 0)
                die(1, "model_spec.json: %s: a byte input's missing_marker is not 0", in->name);
        } else {
            die(1, "model_spec.json: %s: dtype %s cannot be written through the C API", in->name, dtype);
        }
        i++;
    }
    return inputs;
}

/* The tensor name the spec gives `name` in this variant's subgraph 0. */
static const char *tensor_name(const cJSON *side, const char *name) {
    const cJSON *item;
    cJSON_ArrayForEach(item, side) {
        if (strcmp(get_string(item, "name", "primary_subgraph"), name) == 0)
            return get_string(item, "tensor", "primary_subgraph");
    }
    die(1, "model_spec.json: the variant's primary_subgraph has no tensor for %s", name);
    return NULL;
}

static int find_input(TfLiteInterpreter *interpreter, const char *tensor) {
    for (int i = 0; i < TfLiteInterpreterGetInputTensorCount(interpreter); i++) {
        if (strcmp(TfLiteTensorName(TfLiteInterpreterGetInputTensor(interpreter, i)), tensor) == 0) return i;
    }
    die(1, "the model's subgraph 0 has no input tensor %s (model_spec.json names it)", tensor);
    return -1;
}

static int find_output(TfLiteInterpreter *interpreter, const char *tensor) {
    for (int i = 0; i < TfLiteInterpreterGetOutputTensorCount(interpreter); i++) {
        if (strcmp(TfLiteTensorName(TfLiteInterpreterGetOutputTensor(interpreter, i)), tensor) == 0) return i;
    }
    die(1, "the model's subgraph 0 has no output tensor %s (model_spec.json names it)", tensor);
    return -1;
}

static TfLiteType tflite_type(enum kind kind) {
    return kind == K_FLOAT32 ? kTfLiteFloat32 : kind == K_INT64 ? kTfLiteInt64 : kTfLiteUInt8;
}

/* --by-position: tensor position p gets the spec's p-th input where its dtype and width fit. */
static void feed_by_position(Input *inputs, int count) {
    for (int i = 0; i < count; i++) {
        int p = inputs[i].tensor;
        if (p < count && inputs[p].kind == inputs[i].kind && inputs[p].width == inputs[i].width) inputs[i].feed = p;
    }
}

/* -- running ---------------------------------------------------------------------------------- */

static void check(TfLiteStatus status, const char *what) {
    if (status != kTfLiteOk) die(1, "%s failed", what);
}

/* Resizes every input to `rows` rows and allocates: the batch dimension is dynamic ([-1], [-1, width]). */
static void resize(TfLiteInterpreter *interpreter, const Input *inputs, int count, int rows) {
    for (int i = 0; i < count; i++) {
        int dims[2] = {rows, inputs[i].width};
        check(TfLiteInterpreterResizeInputTensor(interpreter, inputs[i].tensor, dims, inputs[i].kind == K_BYTES ? 2 : 1),
              "TfLiteInterpreterResizeInputTensor");
    }
    check(TfLiteInterpreterAllocateTensors(interpreter), "TfLiteInterpreterAllocateTensors");
}

static size_t element_size(enum kind kind) {
    return kind == K_FLOAT32 ? sizeof(float) : kind == K_INT64 ? sizeof(int64_t) : 1;
}

/* Rows [first, first + rows) -> out[first * per_row ...]. */
static void invoke(TfLiteInterpreter *interpreter, const Input *inputs, int count, int output, int first, int rows,
                   int per_row, float *out) {
    for (int i = 0; i < count; i++) {
        const Input *source = &inputs[inputs[i].feed];
        size_t row_bytes = element_size(source->kind) * source->width;
        check(TfLiteTensorCopyFromBuffer(TfLiteInterpreterGetInputTensor(interpreter, inputs[i].tensor),
                                         (const char *)source->values + (size_t)first * row_bytes, row_bytes * rows),
              "TfLiteTensorCopyFromBuffer");
    }
    check(TfLiteInterpreterInvoke(interpreter), "TfLiteInterpreterInvoke");
    const TfLiteTensor *tensor = TfLiteInterpreterGetOutputTensor(interpreter, output);
    if (TfLiteTensorType(tensor) != kTfLiteFloat32) die(1, "the output tensor is not float32");
    size_t bytes = sizeof(float) * (size_t)rows * per_row;
    if (TfLiteTensorByteSize(tensor) != bytes)
        die(1, "the output holds %zu bytes, not %d rows x %d floats", TfLiteTensorByteSize(tensor), rows, per_row);
    check(TfLiteTensorCopyToBuffer(tensor, out + (size_t)first * per_row, bytes), "TfLiteTensorCopyToBuffer");
}

static void print_value(float v) {
    if (isnan(v)) fputs("null", stdout);
    else printf("%.9g", v);   /* 9 significant digits: every float32 reads back exactly */
}

static char *join(const char *dir, const char *file) {
    char *path = malloc(strlen(dir) + strlen(file) + 2);
    sprintf(path, "%s/%s", dir, file);
    return path;
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "--version") == 0) {
        printf("%s\n", TfLiteVersion());
        return 0;
    }
    int by_position = argc == 6 && strcmp(argv[5], "--by-position") == 0;
    if ((argc != 5 && !by_position) || (strcmp(argv[4], "batch") != 0 && strcmp(argv[4], "single") != 0))
        die(1, "usage: client MODEL_DIR ROWS.jsonl VARIANT batch|single [--by-position]");
    const char *model_dir = argv[1], *rows_path = argv[2], *variant_name = argv[3];
    int single = strcmp(argv[4], "single") == 0;

    char *spec_path = join(model_dir, "model_spec.json");
    cJSON *spec = cJSON_Parse(read_file(spec_path));
    if (!spec) die(1, "%s: invalid JSON", spec_path);
    const cJSON *variant = get(get(spec, "variants", ""), variant_name, "variants");
    const cJSON *primary = get(get(variant, "tensors", variant_name), "primary_subgraph", "tensors");
    /* Without signature runners only subgraph 0 can be run: the signature the spec says it holds. */
    const char *signature = get_string(get(spec, "primary_subgraph", ""), "signature", "primary_subgraph");
    if (strcmp(get_string(primary, "signature", "primary_subgraph"), signature) != 0)
        die(1, "model_spec.json: primary_subgraph.signature differs from variants.%s's", variant_name);
    int count;
    Input *inputs = read_inputs(spec, signature, &count);
    const cJSON *output_spec = get(spec, "output", "");
    const cJSON *shape = get(output_spec, "shape", "output");
    int per_row = cJSON_GetArraySize(shape) == 2 ? cJSON_GetArrayItem(shape, 1)->valueint : 1;

    char *model_path = join(model_dir, get_string(variant, "file", variant_name));
    TfLiteModel *model = TfLiteModelCreateFromFile(model_path);
    if (!model) die(1, "%s: TfLiteModelCreateFromFile failed", model_path);
    TfLiteInterpreterOptions *options = TfLiteInterpreterOptionsCreate();
    TfLiteInterpreterOptionsSetNumThreads(options, 1);
    TfLiteInterpreter *interpreter = TfLiteInterpreterCreate(model, options);
    if (!interpreter) die(1, "%s: TfLiteInterpreterCreate failed (ops newer than TFLite %s?)", model_path, TfLiteVersion());
    if (TfLiteInterpreterGetInputTensorCount(interpreter) != count)
        die(1, "subgraph 0 has %d inputs, signatures.%s %d", TfLiteInterpreterGetInputTensorCount(interpreter),
            signature, count);
    const cJSON *tensor_inputs = get(primary, "inputs", "primary_subgraph");
    for (int i = 0; i < count; i++) {
        inputs[i].tensor = find_input(interpreter, tensor_name(tensor_inputs, inputs[i].name));
        if (TfLiteTensorType(TfLiteInterpreterGetInputTensor(interpreter, inputs[i].tensor)) != tflite_type(inputs[i].kind))
            die(1, "input %s: the tensor's type is not the spec's dtype", inputs[i].name);
    }
    if (by_position) feed_by_position(inputs, count);
    int output = find_output(interpreter, tensor_name(get(primary, "outputs", "primary_subgraph"),
                                                      get_string(output_spec, "name", "output")));

    /* Every row is read (and a refused cell stops the run) before anything is invoked. */
    char *text = read_file(rows_path), *line = text, *next;
    cJSON **rows = NULL;
    int *lines = NULL, n = 0;
    for (int number = 1; line; line = next, number++) {
        next = strchr(line, '\n');
        if (next) *next++ = '\0';
        if (blank(line)) continue;
        cJSON *row = cJSON_Parse(line);
        if (!cJSON_IsObject(row)) die(2, "%s:%d: not a JSON object", rows_path, number);
        rows = realloc(rows, sizeof(cJSON *) * (n + 1));
        lines = realloc(lines, sizeof(int) * (n + 1));
        rows[n] = row;
        lines[n++] = number;
    }
    for (int i = 0; i < count; i++) inputs[i].values = calloc(n ? n : 1, element_size(inputs[i].kind) * inputs[i].width);
    for (int r = 0; r < n; r++) {
        for (int i = 0; i < count; i++)
            fill(&inputs[i], r, cJSON_GetObjectItemCaseSensitive(rows[r], inputs[i].name), rows_path, lines[r]);
    }

    float *out = malloc(sizeof(float) * (size_t)(n ? n : 1) * per_row);
    if (n > 0 && single) {
        resize(interpreter, inputs, count, 1);
        for (int r = 0; r < n; r++) invoke(interpreter, inputs, count, output, r, 1, per_row, out);
    } else if (n > 0) {
        resize(interpreter, inputs, count, n);
        invoke(interpreter, inputs, count, output, 0, n, per_row, out);
    }
    for (int r = 0; r < n; r++) {
        if (cJSON_GetArraySize(shape) == 2) {
            putchar('[');
            for (int k = 0; k < per_row; k++) {
                if (k) putchar(',');
                print_value(out[(size_t)r * per_row + k]);
            }
            putchar(']');
        } else {
            print_value(out[r]);
        }
        putchar('\n');
    }
    TfLiteInterpreterDelete(interpreter);
    TfLiteInterpreterOptionsDelete(options);
    TfLiteModelDelete(model);
    return 0;
}
