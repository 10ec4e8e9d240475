/* A native fast path for well-formed OTLP logs, traces and metrics requests: protobuf bytes -> their tables'
 * column buffers, with the GIL released for the whole walk, so another thread (a flush, another conversion)
 * runs meanwhile.
 *
 * It handles only what a Collector sends every day: every field of the three data models, attribute
 * values that are strings, bools, ints, doubles or bytes. Anything else (an array or kvlist value, entity refs, a
 * bad id length, invalid UTF-8, a field or oneof repeated where one is expected, malformed bytes) makes it give up and
 * return None; the Python converter (ptars) then handles the request and gives the answer it always gave. So
 * this file never decides what is valid, it only recognises what is plainly so.
 *
 * Output: a dict of read-only buffers (Block, below), one per column buffer (int32 string, list and map offsets,
 * UTF-8 data, fixed-width values), which _fast.py wraps as Arrow arrays without copying. Doubles are left for
 * Python to format (Go's rules, via the same code as the reference path): their rows get an empty placeholder and
 * are listed apart.
 * Enums (span kind, status code) stay numbers; Python names them as the reference path does.
 *
 * The caller may pass a limit on the rows' bytes (the buffer's whole budget): the walk counts what the rows
 * will take, the resource, scope and metric columns once for each row that Python repeats them on, and raises
 * TooLarge once the count has passed the limit (see `tally`). A request of many tiny records under one large
 * resource would otherwise become gigabytes of rows; this way it costs little more than the limit to refuse.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { OK = 0, BAIL = 1, NOMEM = 2, TOO_LARGE = 3 };
#define TRY(expr) do { int rc_ = (expr); if (rc_ != OK) return rc_; } while (0)

/* ---- what the rows will take ----------------------------------------------------------------------------- */

/* Per thread: each walk runs without the GIL, so two can run at once. `bytes` counts the buffers that become
 * the rows' columns (not the indices Python only reads), `rows` the rows (log records, spans, metric points).
 * The limit is checked where a row ends and where the walk ends. There the count is never more than the rows
 * take (a resource, scope or metric is counted once as soon as it is written, and its copies once its rows are
 * all known), so a request is refused only if its rows would pass the limit. Between two checks the walk writes
 * one item, or levels without items, which no copies amplify: it holds little more than the limit, twice that
 * counting the buffers' doubling. */
static _Thread_local struct { uint64_t bytes, rows, limit; } tally;

static int over_limit(void) { return tally.bytes > tally.limit ? TOO_LARGE : OK; }

static int row_done(void) {
    tally.rows++;
    return over_limit();
}

/* A level's row (a resource's, scope's or metric's columns, `row_bytes` of them, already counted once) ends up
 * on each of the `rows` rows under it. */
static void repeated(uint64_t row_bytes, uint64_t rows) {
    tally.bytes += row_bytes * rows - row_bytes;  /* each below 2^32: no overflow */
}

/* ---- growable buffers ------------------------------------------------------------------------------------ */

typedef struct { char *p; size_t len, cap; } Buf;

/* Into a buffer Python reads but does not keep as it is (indices, doubles before formatting): not counted. */
static int put_aux(Buf *b, const void *src, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) return NOMEM;
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->len, src, n);
    b->len += n;
    return OK;
}
static int put(Buf *b, const void *src, size_t n) {
    tally.bytes += n;
    return put_aux(b, src, n);
}
static int put_i32(Buf *b, int32_t v) { return put(b, &v, 4); }
static int put_i64(Buf *b, int64_t v) { return put(b, &v, 8); }

/* A string column: int32 offsets (starting at 0) and the UTF-8 bytes back to back. */
typedef struct { Buf off, data; int64_t n; } Str;

static int str_open(Str *s) { return s->off.len ? OK : put_i32(&s->off, 0); }  /* the leading 0 offset */
static int str_end(Str *s) {  /* close the string whose bytes were just put */
    if (s->data.len > INT32_MAX) return BAIL;
    s->n++;
    return put_i32(&s->off, (int32_t)s->data.len);
}
static int str_add(Str *s, const void *p, size_t n) {
    TRY(str_open(s));
    TRY(put(&s->data, p, n));
    return str_end(s);
}

/* AnyValue text: a string column plus the rows holding doubles, which Python formats. */
typedef struct { Str text; Buf double_rows, double_values; } Val;

/* map<string, string>: int32 offsets into keys/values. */
typedef struct { Buf off; Str keys; Val values; int64_t entries; } Map;

/* List and map offsets: a leading 0, then after each list or map the count of items so far. */
static int offsets_open(Buf *off) { return off->len ? OK : put_i32(off, 0); }
static int list_end(Buf *off, int64_t items) {
    if (items > INT32_MAX) return BAIL;
    return put_i32(off, (int32_t)items);
}
static int map_end(Map *m) { return list_end(&m->off, m->entries); }
/* A level's columns get their leading offsets before its row is counted: Python's copies of the row do not
 * repeat them. */
static int map_open(Map *m) {
    TRY(offsets_open(&m->off));
    TRY(str_open(&m->keys));
    return str_open(&m->values.text);
}

/* ---- protobuf reading ------------------------------------------------------------------------------------ */

typedef struct { const uint8_t *p, *end; } Rd;

static int varint(Rd *r, uint64_t *out) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end) return BAIL;
        uint8_t b = *r->p++;
        v |= (uint64_t)(b & 0x7F) << shift;
        if (b < 0x80) { *out = v; return OK; }
    }
    return BAIL;
}

/* One field: its number and wire type; a scalar in *v, a length-delimited body in *sub. */
static int next_field(Rd *r, uint32_t *num, int *wt, uint64_t *v, Rd *sub) {
    uint64_t tag;
    TRY(varint(r, &tag));
    if ((tag >> 3) == 0 || (tag >> 3) > 0x1FFFFFFF) return BAIL;
    *num = (uint32_t)(tag >> 3);
    *wt = (int)(tag & 7);
    switch (*wt) {
    case 0: return varint(r, v);
    case 1:
        if (r->end - r->p < 8) return BAIL;
        memcpy(v, r->p, 8);  /* little-endian host (x86_64, aarch64) */
        r->p += 8;
        return OK;
    case 5: {
        uint32_t x;
        if (r->end - r->p < 4) return BAIL;
        memcpy(&x, r->p, 4);
        r->p += 4;
        *v = x;
        return OK;
    }
    case 2: {
        uint64_t len;
        TRY(varint(r, &len));
        if (len > (uint64_t)(r->end - r->p)) return BAIL;
        sub->p = r->p;
        sub->end = r->p + len;
        r->p += len;
        return OK;
    }
    default: return BAIL;  /* groups */
    }
}

/* Each singular field may appear once: protobuf would merge or overwrite repeats, and a Collector never sends
 * them, so rather than match ptars' choice we leave such requests to it. */
static int once(uint64_t *seen, uint32_t num) {
    uint64_t bit = 1ULL << (num & 63);
    if (*seen & bit) return BAIL;
    *seen |= bit;
    return OK;
}

/* Strict UTF-8, as proto3 requires of string fields (no overlongs, surrogates or code points past U+10FFFF). */
static int utf8_ok(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) { i++; continue; }
        size_t k;
        uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) { k = 1; cp = c & 0x1F; }
        else if (c >= 0xE0 && c <= 0xEF) { k = 2; cp = c & 0x0F; }
        else if (c >= 0xF0 && c <= 0xF4) { k = 3; cp = c & 0x07; }
        else return 0;
        if (n - i <= k) return 0;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + j] & 0x3F);
        }
        if ((k == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (k == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
            return 0;
        i += k + 1;
    }
    return 1;
}

/* A string field's text; an absent field (an empty reader) gives "". */
static int text(Str *s, Rd sub) {
    size_t n = (size_t)(sub.end - sub.p);
    if (!utf8_ok(sub.p, n)) return BAIL;
    return str_add(s, sub.p, n);
}

static int empty(Str *s) { return str_add(s, "", 0); }

/* ---- values ---------------------------------------------------------------------------------------------- */

static int put_decimal(Str *s, int64_t v) {
    char tmp[24];
    int i = sizeof tmp;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do { tmp[--i] = (char)('0' + u % 10); u /= 10; } while (u);
    if (v < 0) tmp[--i] = '-';
    return str_add(s, tmp + i, sizeof tmp - (size_t)i);
}

static int put_base64(Str *s, const uint8_t *p, size_t n) {
    static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    TRY(str_open(s));
    for (size_t i = 0; i < n; i += 3) {
        uint32_t x = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
        char q[4] = {A[x >> 18 & 63], A[x >> 12 & 63], i + 1 < n ? A[x >> 6 & 63] : '=', i + 2 < n ? A[x & 63] : '='};
        TRY(put(&s->data, q, 4));
    }
    return str_end(s);
}

/* AnyValue -> its ClickHouse text (pcommon AsString); an absent or empty value is "". */
static int any_value(Val *out, const Rd *value) {
    if (!value) return empty(&out->text);
    Rd r = *value;
    int kinds = 0;
    uint32_t num; int wt; uint64_t v = 0; Rd sub = {0};
    Rd body = {0}; uint64_t scalar = 0; uint32_t kind = 0;
    while (r.p < r.end) {
        TRY(next_field(&r, &num, &wt, &v, &sub));
        if (num >= 1 && num <= 7) {
            kinds++;
            kind = num;
            scalar = v;
            body = sub;
        }
    }
    if (kinds == 0) return empty(&out->text);
    if (kinds > 1) return BAIL;
    switch (kind) {
    case 1: if (wt != 2) return BAIL; return text(&out->text, body);
    case 2: if (wt != 0) return BAIL; return scalar ? str_add(&out->text, "true", 4) : str_add(&out->text, "false", 5);
    case 3: if (wt != 0) return BAIL; return put_decimal(&out->text, (int64_t)scalar);
    case 4: {
        if (wt != 1) return BAIL;
        double d;
        memcpy(&d, &scalar, 8);
        int64_t row = out->text.n;
        TRY(put_aux(&out->double_rows, &row, 8));
        TRY(put_aux(&out->double_values, &d, 8));
        return empty(&out->text);
    }
    case 7: if (wt != 2) return BAIL; return put_base64(&out->text, body.p, (size_t)(body.end - body.p));
    default: return BAIL;  /* arrays and kvlists: JSON text, left to Python */
    }
}

/* One KeyValue into a map; `last_service` gets the value's entry index when the key is service.name. */
static int key_value(Map *m, Rd r, int64_t *last_service) {
    uint64_t seen = 0, v;
    uint32_t num; int wt;
    Rd sub, key = {0}, value = {0};
    int has_value = 0;
    while (r.p < r.end) {
        TRY(next_field(&r, &num, &wt, &v, &sub));
        if (num == 1 || num == 2) {
            if (wt != 2) return BAIL;
            TRY(once(&seen, num));
            if (num == 1) key = sub; else { value = sub; has_value = 1; }
        }
    }
    size_t klen = (size_t)(key.end - key.p);
    if (klen && !utf8_ok(key.p, klen)) return BAIL;
    if (last_service && klen == 12 && memcmp(key.p, "service.name", 12) == 0) *last_service = m->entries;
    TRY(str_add(&m->keys, key.p, klen));
    TRY(any_value(&m->values, has_value ? &value : NULL));
    m->entries++;
    return OK;
}

/* ---- resources and scopes, shared by every signal --------------------------------------------------------- */

/* The resource and scope columns, written once per resource and scope; each item records the index of its
 * resource and scope, and Python repeats the columns per item (Levels.repeat), as the reference path does. */
typedef struct {
    Buf item_resource, item_scope;
    Map resource_attributes;
    Str resource_schema_url;
    Buf resource_dropped, service_entry;
    int64_t resources;
    Str scope_name, scope_version, scope_schema_url;
    Map scope_attributes;
    Buf scope_dropped;
    int64_t scopes;
} Levels;

/* One item (a log record, a span): its fields into the signal's columns. */
typedef int (*ItemFn)(void *signal, Rd item);

static int hex_id(Str *s, Rd id, size_t width) {
    static const char H[] = "0123456789abcdef";
    size_t n = (size_t)(id.end - id.p);
    if (n == 0) return empty(s);
    if (n != width) return BAIL;  /* rejected per item by the reference path */
    int zero = 1;
    for (size_t i = 0; i < n; i++) zero &= id.p[i] == 0;
    if (zero) return empty(s);
    char out[32];
    for (size_t i = 0; i < n; i++) { out[2 * i] = H[id.p[i] >> 4]; out[2 * i + 1] = H[id.p[i] & 15]; }
    return str_add(s, out, 2 * n);
}

static int uint32_field(int wt, uint64_t v, int64_t *out) {
    if (wt != 0 || v > UINT32_MAX) return BAIL;
    *out = (int64_t)v;
    return OK;
}

/* Resource{Logs,Spans,Metrics} and Scope{Logs,Spans,Metrics} share a shape: 1 the resource or scope, 2 the
 * repeated children, 3 the schema URL. The first and last are found first, wherever they sit, so that their
 * columns are written once. */
static int envelope(Rd r, Rd *head, Rd *schema_url) {
    uint64_t seen = 0, v;
    uint32_t num; int wt;
    Rd sub;
    *head = *schema_url = (Rd){0};
    while (r.p < r.end) {
        TRY(next_field(&r, &num, &wt, &v, &sub));
        if (num == 1 || num == 3) {
            if (wt != 2) return BAIL;
            TRY(once(&seen, num));
            if (num == 1) *head = sub; else *schema_url = sub;
        } else if (num == 2 && wt != 2) return BAIL;
    }
    return OK;
}

/* One Scope{Logs,Spans,Metrics}: its scope's columns once, then its items. */
static int scope_walk(Levels *L, Rd r, int32_t resource, ItemFn item, void *signal) {
    uint64_t v;
    uint32_t num; int wt;
    Rd sub, scope, schema_url;
    TRY(envelope(r, &scope, &schema_url));
    if (L->scopes == INT32_MAX) return BAIL;
    int32_t index = (int32_t)L->scopes++;
    Rd name = {0}, version = {0};
    int64_t dropped = 0;
    uint64_t scope_seen = 0;
    TRY(map_open(&L->scope_attributes));
    TRY(str_open(&L->scope_name));
    TRY(str_open(&L->scope_version));
    TRY(str_open(&L->scope_schema_url));
    uint64_t bytes = tally.bytes;
    while (scope.p && scope.p < scope.end) {
        TRY(next_field(&scope, &num, &wt, &v, &sub));
        if (num != 3 && num <= 4) TRY(once(&scope_seen, num));
        switch (num) {
        case 1: if (wt != 2) return BAIL; name = sub; break;
        case 2: if (wt != 2) return BAIL; version = sub; break;
        case 3: if (wt != 2) return BAIL; TRY(key_value(&L->scope_attributes, sub, NULL)); break;
        case 4: TRY(uint32_field(wt, v, &dropped)); break;
        default: break;
        }
    }
    TRY(map_end(&L->scope_attributes));
    TRY(text(&L->scope_name, name));
    TRY(text(&L->scope_version, version));
    TRY(put_i64(&L->scope_dropped, dropped));
    TRY(text(&L->scope_schema_url, schema_url));
    bytes = tally.bytes - bytes;
    uint64_t rows = tally.rows;
    while (r.p < r.end) {
        TRY(next_field(&r, &num, &wt, &v, &sub));
        if (num == 2) {
            TRY(put_aux(&L->item_resource, &resource, 4));
            TRY(put_aux(&L->item_scope, &index, 4));
            TRY(item(signal, sub));
        }
    }
    repeated(bytes, tally.rows - rows);
    return OK;
}

/* One Resource{Logs,Spans,Metrics}: its resource's columns once, then its scopes. */
static int resource_walk(Levels *L, Rd r, ItemFn item, void *signal) {
    uint64_t v;
    uint32_t num; int wt;
    Rd sub, resource, schema_url;
    TRY(envelope(r, &resource, &schema_url));
    if (L->resources == INT32_MAX) return BAIL;
    int32_t index = (int32_t)L->resources++;
    int64_t dropped = 0, service = -1;
    uint64_t resource_seen = 0;
    TRY(map_open(&L->resource_attributes));
    TRY(str_open(&L->resource_schema_url));
    uint64_t bytes = tally.bytes;
    while (resource.p && resource.p < resource.end) {
        TRY(next_field(&resource, &num, &wt, &v, &sub));
        switch (num) {
        case 1: if (wt != 2) return BAIL; TRY(key_value(&L->resource_attributes, sub, &service)); break;
        case 2: TRY(once(&resource_seen, num)); TRY(uint32_field(wt, v, &dropped)); break;
        case 3: return BAIL;  /* entity refs: rare, left to the reference path */
        default: break;
        }
    }
    TRY(map_end(&L->resource_attributes));
    TRY(put_i64(&L->resource_dropped, dropped));
    TRY(put_aux(&L->service_entry, &service, 8));
    TRY(text(&L->resource_schema_url, schema_url));
    bytes = tally.bytes - bytes;
    uint64_t rows = tally.rows;
    while (r.p < r.end) {
        TRY(next_field(&r, &num, &wt, &v, &sub));
        if (num == 2) TRY(scope_walk(L, sub, index, item, signal));
    }
    repeated(bytes, tally.rows - rows);
    return OK;
}

/* Export{Logs,Trace,Metrics}ServiceRequest: field 1, the repeated Resource{Logs,Spans,Metrics}. */
static int request_walk(Levels *L, Rd r, ItemFn item, void *signal) {
    uint32_t num; int wt; uint64_t v; Rd sub;
    while (r.p < r.end) {
        TRY(next_field(&r, &num, &wt, &v, &sub));
        if (num == 1) {
            if (wt != 2) return BAIL;
            TRY(resource_walk(L, sub, item, signal));
        }
    }
    return OK;
}

static int count_item(int64_t *n) {
    if (*n == INT32_MAX) return BAIL;
    (*n)++;
    return OK;
}

/* ---- logs ------------------------------------------------------------------------------------------------ */

typedef struct {
    Levels levels;
    Buf timestamp, observed, severity_number, trace_flags, flags, dropped;
    Str trace_id, span_id, severity_text, event_name;
    Val body;
    Map attributes;
    int64_t records;
} Logs;

static int log_record(void *signal, Rd r) {
    Logs *L = signal;
    uint64_t seen = 0, v, time = 0, observed = 0;
    uint32_t num; int wt;
    Rd sub, trace_id = {0}, span_id = {0}, severity_text = {0}, event_name = {0}, body = {0};
    int has_body = 0;
    int32_t severity = 0;
    uint32_t flags = 0;
    int64_t dropped = 0;
    TRY(offsets_open(&L->attributes.off));
    while (r.p < r.end) {
        TRY(next_field(&r, &num, &wt, &v, &sub));
        if (num != 6 && num <= 12) TRY(once(&seen, num));
        switch (num) {
        case 1: if (wt != 1) return BAIL; time = v; break;
        case 11: if (wt != 1) return BAIL; observed = v; break;
        case 2: if (wt != 0) return BAIL; severity = (int32_t)(uint32_t)v; break;
        case 3: if (wt != 2) return BAIL; severity_text = sub; break;
        case 5: if (wt != 2) return BAIL; body = sub; has_body = 1; break;
        case 6: if (wt != 2) return BAIL; TRY(key_value(&L->attributes, sub, NULL)); break;
        case 7: TRY(uint32_field(wt, v, &dropped)); break;
        case 8: if (wt != 5) return BAIL; flags = (uint32_t)v; break;
        case 9: if (wt != 2) return BAIL; trace_id = sub; break;
        case 10: if (wt != 2) return BAIL; span_id = sub; break;
        case 12: if (wt != 2) return BAIL; event_name = sub; break;
        default: break;  /* unknown fields are skipped, as protobuf does */
        }
    }
    TRY(map_end(&L->attributes));
    /* The log data model: Timestamp if set, else ObservedTimestamp; stored in microseconds. */
    TRY(put_i64(&L->timestamp, (int64_t)((time ? time : observed) / 1000)));
    TRY(put_i64(&L->observed, (int64_t)(observed / 1000)));
    TRY(put_i32(&L->severity_number, severity));
    TRY(put_i32(&L->trace_flags, (int32_t)(flags & 0xFF)));
    TRY(put_i64(&L->flags, (int64_t)flags));
    TRY(put_i64(&L->dropped, dropped));
    TRY(hex_id(&L->trace_id, trace_id, 16));
    TRY(hex_id(&L->span_id, span_id, 8));
    TRY(text(&L->severity_text, severity_text));
    TRY(text(&L->event_name, event_name));
    TRY(any_value(&L->body, has_body ? &body : NULL));
    TRY(row_done());
    return count_item(&L->records);
}

/* ---- traces ---------------------------------------------------------------------------------------------- */

typedef struct {
    Levels levels;
    /* per span */
    Buf timestamp, end_timestamp, duration, kind, status_code, flags, dropped, dropped_events, dropped_links;
    Str trace_id, span_id, parent_span_id, trace_state, name, status_message;
    Map attributes;
    int64_t spans;
    /* per event, with each span's first event in event_off */
    Buf event_off, event_time, event_dropped;
    Str event_name;
    Map event_attributes;
    int64_t events;
    /* per link, likewise */
    Buf link_off, link_flags, link_dropped;
    Str link_trace_id, link_span_id, link_trace_state;
    Map link_attributes;
    int64_t links;
} Traces;

static int span_event(Traces *T, Rd r) {
    uint64_t seen = 0, v, time = 0;
    uint32_t num; int wt;
    Rd sub, name = {0};
    int64_t dropped = 0;
    TRY(offsets_open(&T->event_attributes.off));
    while (r.p < r.end) {
        TRY(next_field(&r, &num, &wt, &v, &sub));
        if (num != 3 && num <= 4) TRY(once(&seen, num));
        switch (num) {
        case 1: if (wt != 1) return BAIL; time = v; break;
        case 2: if (wt != 2) return BAIL; name = sub; break;
        case 3: if (wt != 2) return BAIL; TRY(key_value(&T->event_attributes, sub, NULL)); break;
        case 4: TRY(uint32_field(wt, v, &dropped)); break;
        default: break;
        }
    }
    TRY(map_end(&T->event_attributes));
    TRY(put_i64(&T->event_time, (int64_t)(time / 1000)));
    TRY(text(&T->event_name, name));
    TRY(put_i64(&T->event_dropped, dropped));
    return count_item(&T->events);
}

static int span_link(Traces *T, Rd r) {
    uint64_t seen = 0, v;
    uint32_t num; int wt;
    Rd sub, trace_id = {0}, span_id = {0}, trace_state = {0};
    int64_t dropped = 0;
    uint32_t flags = 0;
    TRY(offsets_open(&T->link_attributes.off));
    while (r.p < r.end) {
        TRY(next_field(&r, &num, &wt, &v, &sub));
        if (num != 4 && num <= 6) TRY(once(&seen, num));
        switch (num) {
        case 1: if (wt != 2) return BAIL; trace_id = sub; break;
        case 2: if (wt != 2) return BAIL; span_id = sub; break;
        case 3: if (wt != 2) return BAIL; trace_state = sub; break;
        case 4: if (wt != 2) return BAIL; TRY(key_value(&T->link_attributes, sub, NULL)); break;
        case 5: TRY(uint32_field(wt, v, &dropped)); break;
        case 6: if (wt != 5) return BAIL; flags = (uint32_t)v; break;
        default: break;
        }
    }
    TRY(map_end(&T->link_attributes));
    TRY(hex_id(&T->link_trace_id, trace_id, 16));
    TRY(hex_id(&T->link_span_id, span_id, 8));
    TRY(text(&T->link_trace_state, trace_state));
    TRY(put_i64(&T->link_flags, (int64_t)flags));
    TRY(put_i64(&T->link_dropped, dropped));
    return count_item(&T->links);
}

/* Status: 2 the message, 3 the code (field 1 is reserved). */
static int span_status(Rd r, Rd *message, int32_t *code) {
    uint64_t seen = 0, v;
    uint32_t num; int wt;
    Rd sub;
    while (r.p < r.end) {
        TRY(next_field(&r, &num, &wt, &v, &sub));
        if (num == 2 || num == 3) TRY(once(&seen, num));
        if (num == 2) { if (wt != 2) return BAIL; *message = sub; }
        else if (num == 3) { if (wt != 0) return BAIL; *code = (int32_t)(uint32_t)v; }
    }
    return OK;
}

static int span(void *signal, Rd r) {
    Traces *T = signal;
    uint64_t seen = 0, v, start = 0, end = 0;
    uint32_t num; int wt;
    Rd sub, trace_id = {0}, span_id = {0}, parent = {0}, trace_state = {0}, name = {0}, status = {0};
    int has_status = 0;
    int32_t kind = 0, code = 0;
    uint32_t flags = 0;
    int64_t dropped = 0, dropped_events = 0, dropped_links = 0;
    TRY(offsets_open(&T->attributes.off));
    TRY(offsets_open(&T->event_off));
    TRY(offsets_open(&T->link_off));
    while (r.p < r.end) {
        TRY(next_field(&r, &num, &wt, &v, &sub));
        if (num != 9 && num != 11 && num != 13 && num <= 16) TRY(once(&seen, num));
        switch (num) {
        case 1: if (wt != 2) return BAIL; trace_id = sub; break;
        case 2: if (wt != 2) return BAIL; span_id = sub; break;
        case 3: if (wt != 2) return BAIL; trace_state = sub; break;
        case 4: if (wt != 2) return BAIL; parent = sub; break;
        case 5: if (wt != 2) return BAIL; name = sub; break;
        case 6: if (wt != 0) return BAIL; kind = (int32_t)(uint32_t)v; break;
        case 7: if (wt != 1) return BAIL; start = v; break;
        case 8: if (wt != 1) return BAIL; end = v; break;
        case 9: if (wt != 2) return BAIL; TRY(key_value(&T->attributes, sub, NULL)); break;
        case 10: TRY(uint32_field(wt, v, &dropped)); break;
        case 11: if (wt != 2) return BAIL; TRY(span_event(T, sub)); break;
        case 12: TRY(uint32_field(wt, v, &dropped_events)); break;
        case 13: if (wt != 2) return BAIL; TRY(span_link(T, sub)); break;
        case 14: TRY(uint32_field(wt, v, &dropped_links)); break;
        case 15: if (wt != 2) return BAIL; status = sub; has_status = 1; break;
        case 16: if (wt != 5) return BAIL; flags = (uint32_t)v; break;
        default: break;
        }
    }
    Rd message = {0};
    if (has_status) TRY(span_status(status, &message, &code));
    TRY(map_end(&T->attributes));
    TRY(list_end(&T->event_off, T->events));
    TRY(list_end(&T->link_off, T->links));
    TRY(put_i64(&T->timestamp, (int64_t)(start / 1000)));
    TRY(put_i64(&T->end_timestamp, (int64_t)(end / 1000)));
    TRY(put_i64(&T->duration, (int64_t)(end - start)));  /* nanoseconds; wraps like the reference's uint64 */
    TRY(put_i32(&T->kind, kind));
    TRY(put_i32(&T->status_code, code));
    TRY(put_i64(&T->flags, (int64_t)flags));
    TRY(put_i64(&T->dropped, dropped));
    TRY(put_i64(&T->dropped_events, dropped_events));
    TRY(put_i64(&T->dropped_links, dropped_links));
    TRY(hex_id(&T->trace_id, trace_id, 16));
    TRY(hex_id(&T->span_id, span_id, 8));
    TRY(hex_id(&T->parent_span_id, parent, 8));
    TRY(text(&T->trace_state, trace_state));
    TRY(text(&T->name, name));
    TRY(text(&T->status_message, message));
    TRY(row_done());
    return count_item(&T->spans);
}

/* ---- metrics --------------------------------------------------------------------------------------------- */

/* The five metric types' data points, one table each. One struct serves every type; a type leaves the columns
 * it does not have empty. Each point records its metric, whose columns (name, unit, ...) are written once. */
enum { GAUGE, SUM, HISTOGRAM, EXPONENTIAL_HISTOGRAM, SUMMARY, KINDS };

typedef struct {
    int64_t n;
    Buf metric, start, time, flags;
    Map attributes;
    /* exemplars, with each point's first exemplar in ex_off */
    Buf ex_off, ex_time, ex_value, ex_int, ex_int_valid;
    Map ex_attributes;
    Str ex_span_id, ex_trace_id;
    int64_t exemplars;
    /* gauge and sum: the value as a double, and the integer when the point holds one */
    Buf value, value_valid, int_value, int_valid;
    /* histograms and summaries; sum, min and max are optional in histograms */
    Buf count, sum, sum_valid, min, min_valid, max, max_valid;
    /* histogram: bucket counts and explicit bounds, each a list per point */
    Buf counts_off, counts, bounds_off, bounds;
    /* exponential histogram */
    Buf scale, zero_count, zero_threshold, pos_offset, pos_off, pos_counts, neg_offset, neg_off, neg_counts;
    int64_t pos_n, neg_n;
    /* summary: (quantile, value) pairs, a list per point */
    Buf q_off, q_quantile, q_value;
    int64_t quantiles, counts_n, bounds_n;
} Points;

typedef struct {
    Levels levels;
    Str name, description, unit;
    Map metadata;
    Buf temporality, monotonic;
    int64_t metrics;
    Points kinds[KINDS];
} Metrics;

static int put_f64(Buf *b, double v) { return put(b, &v, 8); }
/* Whether an optional value was sent: Python makes a validity bitmap of these bytes, or drops them. */
static int put_valid(Buf *b, int present) { uint8_t v = present != 0; return put_aux(b, &v, 1); }

static double as_double(uint64_t bits) {
    double d;
    memcpy(&d, &bits, 8);
    return d;
}

static int32_t zigzag32(uint64_t v) {  /* sint32: protobuf reads 32 bits, then undoes the zigzag */
    uint32_t u = (uint32_t)v;
    return (int32_t)((u >> 1) ^ (~(u & 1) + 1));
}

/* A repeated fixed64 or double, packed (one length-delimited run) or not (one 8-byte field each). */
static int fixed64s(Buf *out, int64_t *n, int wt, uint64_t v, Rd sub) {
    if (wt == 1) { (*n)++; return put(out, &v, 8); }
    if (wt != 2 || (sub.end - sub.p) % 8) return BAIL;
    *n += (sub.end - sub.p) / 8;
    return put(out, sub.p, (size_t)(sub.end - sub.p));
}

/* A repeated uint64, packed or not; stored as int64 (values above 2^63 wrap, as in the reference). */
static int varints(Buf *out, int64_t *n, int wt, uint64_t v, Rd sub) {
    if (wt == 0) { (*n)++; return put_i64(out, (int64_t)v); }
    if (wt != 2) return BAIL;
    while (sub.p < sub.end) {
        TRY(varint(&sub, &v));
        TRY(put_i64(out, (int64_t)v));
        (*n)++;
    }
    return OK;
}

/* An exemplar's value is a oneof: a second one (of either kind) is left to protobuf's rules, in ptars. */
#define VALUE_ONEOF 40

static int exemplar(Points *P, Rd r) {
    uint64_t seen = 0, v, time = 0, double_bits = 0, int_bits = 0;
    uint32_t num; int wt;
    Rd sub, span_id = {0}, trace_id = {0};
    int has_double = 0, has_int = 0;
    TRY(offsets_open(&P->ex_attributes.off));
    while (r.p < r.end) {
        TRY(next_field(&r, &num, &wt, &v, &sub));
        if (num >= 2 && num <= 6) TRY(once(&seen, num == 3 || num == 6 ? VALUE_ONEOF : num));
        switch (num) {
        case 7: if (wt != 2) return BAIL; TRY(key_value(&P->ex_attributes, sub, NULL)); break;
        case 2: if (wt != 1) return BAIL; time = v; break;
        case 3: if (wt != 1) return BAIL; double_bits = v; has_double = 1; break;
        case 6: if (wt != 1) return BAIL; int_bits = v; has_int = 1; break;
        case 4: if (wt != 2) return BAIL; span_id = sub; break;
        case 5: if (wt != 2) return BAIL; trace_id = sub; break;
        default: break;
        }
    }
    TRY(map_end(&P->ex_attributes));
    TRY(put_i64(&P->ex_time, (int64_t)(time / 1000)));
    /* Value: the double, else the integer as a double, else NaN; IntValue: the integer or null. */
    double value = has_double ? as_double(double_bits) : has_int ? (double)(int64_t)int_bits : NAN;
    TRY(put_f64(&P->ex_value, value));
    TRY(put_i64(&P->ex_int, (int64_t)int_bits));
    TRY(put_valid(&P->ex_int_valid, has_int));
    TRY(hex_id(&P->ex_span_id, span_id, 8));
    TRY(hex_id(&P->ex_trace_id, trace_id, 16));
    return count_item(&P->exemplars);
}

/* What a point of any type has: its metric, times, flags, attributes and exemplars (by type-specific field
 * numbers), opened before its fields are read and closed after, with the lists only its type has. */
enum { BUCKETS = 1, EXPONENTIAL = 2, QUANTILES = 4 };
typedef struct { uint32_t attributes, exemplars, flags; unsigned lists; } Layout;
static const Layout LAYOUTS[KINDS] = {{7, 5, 8, 0}, {7, 5, 8, 0}, {9, 8, 10, BUCKETS}, {1, 11, 10, EXPONENTIAL},
                                      {7, 0, 8, QUANTILES}};

typedef struct { uint64_t seen, start, time, flags; } Common;

static int point_open(Points *P, const Layout *L) {
    TRY(offsets_open(&P->attributes.off));
    if (L->exemplars) TRY(offsets_open(&P->ex_off));
    if (L->lists & BUCKETS) { TRY(offsets_open(&P->counts_off)); TRY(offsets_open(&P->bounds_off)); }
    if (L->lists & EXPONENTIAL) { TRY(offsets_open(&P->pos_off)); TRY(offsets_open(&P->neg_off)); }
    if (L->lists & QUANTILES) TRY(offsets_open(&P->q_off));
    return OK;
}

/* A field every type shares; *taken says whether it was one. */
static int common_field(Points *P, const Layout *L, Common *c, uint32_t num, int wt, uint64_t v, Rd sub,
                        int *taken) {
    *taken = 1;
    if (num == 2 || num == 3) {
        TRY(once(&c->seen, num));
        if (wt != 1) return BAIL;
        if (num == 2) c->start = v; else c->time = v;
    } else if (num == L->attributes) {
        if (wt != 2) return BAIL;
        return key_value(&P->attributes, sub, NULL);
    } else if (L->exemplars && num == L->exemplars) {
        if (wt != 2) return BAIL;
        return exemplar(P, sub);
    } else if (num == L->flags) {
        TRY(once(&c->seen, num));
        int64_t flags;
        TRY(uint32_field(wt, v, &flags));
        c->flags = (uint64_t)flags;
    } else *taken = 0;
    return OK;
}

static int point_close(Points *P, const Layout *L, int32_t metric, const Common *c) {
    TRY(map_end(&P->attributes));
    if (L->exemplars) TRY(list_end(&P->ex_off, P->exemplars));
    if (L->lists & BUCKETS) { TRY(list_end(&P->counts_off, P->counts_n)); TRY(list_end(&P->bounds_off, P->bounds_n)); }
    if (L->lists & EXPONENTIAL) { TRY(list_end(&P->pos_off, P->pos_n)); TRY(list_end(&P->neg_off, P->neg_n)); }
    if (L->lists & QUANTILES) TRY(list_end(&P->q_off, P->quantiles));
    TRY(put_aux(&P->metric, &metric, 4));
    TRY(put_i64(&P->start, (int64_t)(c->start / 1000)));
    TRY(put_i64(&P->time, (int64_t)(c->time / 1000)));
    TRY(put_i64(&P->flags, (int64_t)c->flags));
    TRY(row_done());
    return count_item(&P->n);
}

/* An optional double (histogram sum, min, max): the value and whether it was sent. */
static int optional_double(Buf *value, Buf *valid, int present, uint64_t bits) {
    TRY(put_f64(value, present ? as_double(bits) : 0.0));
    return put_valid(valid, present);
}

static int number_point(Points *P, Rd r, int32_t metric) {
    const Layout *L = &LAYOUTS[GAUGE];
    Common c = {0};
    uint64_t v, double_bits = 0, int_bits = 0;
    uint32_t num; int wt, taken;
    Rd sub;
    int has_double = 0, has_int = 0;
    TRY(point_open(P, L));
    while (r.p < r.end) {
        TRY(next_field(&r, &num, &wt, &v, &sub));
        TRY(common_field(P, L, &c, num, wt, v, sub, &taken));
        if (taken) continue;
        if (num == 4 || num == 6) {
            TRY(once(&c.seen, VALUE_ONEOF));
            if (wt != 1) return BAIL;
            if (num == 4) { double_bits = v; has_double = 1; } else { int_bits = v; has_int = 1; }
        }
    }
    double value = has_double ? as_double(double_bits) : (double)(int64_t)int_bits;
    TRY(put_f64(&P->value, value));
    TRY(put_valid(&P->value_valid, has_double || has_int));
    TRY(put_i64(&P->int_value, (int64_t)int_bits));
    TRY(put_valid(&P->int_valid, has_int));
    return point_close(P, L, metric, &c);
}

static int histogram_point(Points *P, Rd r, int32_t metric) {
    const Layout *L = &LAYOUTS[HISTOGRAM];
    Common c = {0};
    uint64_t v, count = 0, sum = 0, min = 0, max = 0;
    uint32_t num; int wt, taken;
    Rd sub;
    int has_sum = 0, has_min = 0, has_max = 0;
    TRY(point_open(P, L));
    while (r.p < r.end) {
        TRY(next_field(&r, &num, &wt, &v, &sub));
        TRY(common_field(P, L, &c, num, wt, v, sub, &taken));
        if (taken) continue;
        if (num == 4 || num == 5 || num == 11 || num == 12) {
            TRY(once(&c.seen, num));
            if (wt != 1) return BAIL;
        }
        switch (num) {
        case 4: count = v; break;
        case 5: sum = v; has_sum = 1; break;
        case 11: min = v; has_min = 1; break;
        case 12: max = v; has_max = 1; break;
        case 6: TRY(fixed64s(&P->counts, &P->counts_n, wt, v, sub)); break;
        case 7: TRY(fixed64s(&P->bounds, &P->bounds_n, wt, v, sub)); break;
        default: break;
        }
    }
    TRY(put_i64(&P->count, (int64_t)count));
    TRY(optional_double(&P->sum, &P->sum_valid, has_sum, sum));
    TRY(optional_double(&P->min, &P->min_valid, has_min, min));
    TRY(optional_double(&P->max, &P->max_valid, has_max, max));
    return point_close(P, L, metric, &c);
}

/* Buckets: 1 the offset (sint32), 2 the counts (packed uint64). */
static int buckets(Rd r, Buf *offset, Buf *counts, int64_t *n) {
    uint64_t seen = 0, v;
    uint32_t num; int wt;
    Rd sub;
    int32_t first = 0;
    while (r.p < r.end) {
        TRY(next_field(&r, &num, &wt, &v, &sub));
        if (num == 1) {
            TRY(once(&seen, num));
            if (wt != 0) return BAIL;
            first = zigzag32(v);
        } else if (num == 2) TRY(varints(counts, n, wt, v, sub));
    }
    return put_i32(offset, first);
}

static int exponential_point(Points *P, Rd r, int32_t metric) {
    const Layout *L = &LAYOUTS[EXPONENTIAL_HISTOGRAM];
    Common c = {0};
    uint64_t v, count = 0, sum = 0, min = 0, max = 0, zero_count = 0, zero_threshold = 0;
    uint32_t num; int wt, taken;
    Rd sub, positive = {0}, negative = {0};
    int has_sum = 0, has_min = 0, has_max = 0;
    int32_t scale = 0;
    TRY(point_open(P, L));
    while (r.p < r.end) {
        TRY(next_field(&r, &num, &wt, &v, &sub));
        TRY(common_field(P, L, &c, num, wt, v, sub, &taken));
        if (taken) continue;
        if (num >= 4 && num <= 14) TRY(once(&c.seen, num));
        switch (num) {
        case 4: if (wt != 1) return BAIL; count = v; break;
        case 5: if (wt != 1) return BAIL; sum = v; has_sum = 1; break;
        case 6: if (wt != 0) return BAIL; scale = zigzag32(v); break;
        case 7: if (wt != 1) return BAIL; zero_count = v; break;
        case 8: if (wt != 2) return BAIL; positive = sub; break;
        case 9: if (wt != 2) return BAIL; negative = sub; break;
        case 12: if (wt != 1) return BAIL; min = v; has_min = 1; break;
        case 13: if (wt != 1) return BAIL; max = v; has_max = 1; break;
        case 14: if (wt != 1) return BAIL; zero_threshold = v; break;
        default: break;
        }
    }
    TRY(buckets(positive, &P->pos_offset, &P->pos_counts, &P->pos_n));
    TRY(buckets(negative, &P->neg_offset, &P->neg_counts, &P->neg_n));
    TRY(put_i64(&P->count, (int64_t)count));
    TRY(optional_double(&P->sum, &P->sum_valid, has_sum, sum));
    TRY(optional_double(&P->min, &P->min_valid, has_min, min));
    TRY(optional_double(&P->max, &P->max_valid, has_max, max));
    TRY(put_i32(&P->scale, scale));
    TRY(put_i64(&P->zero_count, (int64_t)zero_count));
    TRY(put_f64(&P->zero_threshold, as_double(zero_threshold)));
    return point_close(P, L, metric, &c);
}

/* ValueAtQuantile: 1 the quantile, 2 the value. */
static int quantile(Points *P, Rd r) {
    uint64_t seen = 0, v, q = 0, value = 0;
    uint32_t num; int wt;
    Rd sub;
    while (r.p < r.end) {
        TRY(next_field(&r, &num, &wt, &v, &sub));
        if (num == 1 || num == 2) {
            TRY(once(&seen, num));
            if (wt != 1) return BAIL;
            if (num == 1) q = v; else value = v;
        }
    }
    TRY(put_f64(&P->q_quantile, as_double(q)));
    TRY(put_f64(&P->q_value, as_double(value)));
    return count_item(&P->quantiles);
}

static int summary_point(Points *P, Rd r, int32_t metric) {
    const Layout *L = &LAYOUTS[SUMMARY];
    Common c = {0};
    uint64_t v, count = 0, sum = 0;
    uint32_t num; int wt, taken;
    Rd sub;
    TRY(point_open(P, L));
    while (r.p < r.end) {
        TRY(next_field(&r, &num, &wt, &v, &sub));
        TRY(common_field(P, L, &c, num, wt, v, sub, &taken));
        if (taken) continue;
        if (num == 4 || num == 5) {
            TRY(once(&c.seen, num));
            if (wt != 1) return BAIL;
            if (num == 4) count = v; else sum = v;
        } else if (num == 6) {
            if (wt != 2) return BAIL;
            TRY(quantile(P, sub));
        }
    }
    TRY(put_i64(&P->count, (int64_t)count));
    TRY(put_f64(&P->sum, as_double(sum)));
    return point_close(P, L, metric, &c);
}

typedef int (*PointFn)(Points *, Rd, int32_t);
static const PointFn POINTS[KINDS] = {number_point, number_point, histogram_point, exponential_point, summary_point};
static const uint32_t KIND_FIELD[KINDS] = {5, 7, 9, 10, 11};  /* Metric's data oneof */

/* Written after the points, so not counted (their rows' copies would be): the count stays below the rows. */
static int metric_kind(Metrics *M, int32_t temporality, int monotonic) {
    uint8_t flag = monotonic != 0;
    TRY(put_aux(&M->temporality, &temporality, 4));
    return put_aux(&M->monotonic, &flag, 1);
}

/* The metric's data message: 1 its points; 2 the aggregation temporality and 3 monotonicity where it has them. */
static int metric_data(Metrics *M, int kind, Rd r, int32_t metric) {
    uint64_t seen = 0, v;
    uint32_t num; int wt;
    Rd sub;
    int32_t temporality = 0;
    int monotonic = 0;
    while (r.p < r.end) {
        TRY(next_field(&r, &num, &wt, &v, &sub));
        if (num == 1) {
            if (wt != 2) return BAIL;
            TRY(POINTS[kind](&M->kinds[kind], sub, metric));
        } else if (num == 2 && kind != GAUGE && kind != SUMMARY) {
            TRY(once(&seen, num));
            if (wt != 0) return BAIL;
            temporality = (int32_t)(uint32_t)v;
        } else if (num == 3 && kind == SUM) {
            TRY(once(&seen, num));
            if (wt != 0) return BAIL;
            monotonic = v != 0;
        }
    }
    return metric_kind(M, temporality, monotonic);
}

static int metric(void *signal, Rd r) {
    Metrics *M = signal;
    uint64_t seen = 0, v;
    uint32_t num; int wt;
    Rd sub, name = {0}, description = {0}, unit = {0}, data = {0};
    int kind = -1;
    if (M->metrics == INT32_MAX) return BAIL;
    int32_t index = (int32_t)M->metrics;
    TRY(map_open(&M->metadata));
    TRY(str_open(&M->name));
    TRY(str_open(&M->description));
    TRY(str_open(&M->unit));
    uint64_t bytes = tally.bytes;
    while (r.p < r.end) {
        TRY(next_field(&r, &num, &wt, &v, &sub));
        switch (num) {
        case 1: TRY(once(&seen, num)); if (wt != 2) return BAIL; name = sub; break;
        case 2: TRY(once(&seen, num)); if (wt != 2) return BAIL; description = sub; break;
        case 3: TRY(once(&seen, num)); if (wt != 2) return BAIL; unit = sub; break;
        case 12: if (wt != 2) return BAIL; TRY(key_value(&M->metadata, sub, NULL)); break;
        default:
            for (int k = 0; k < KINDS; k++) {
                if (num != KIND_FIELD[k]) continue;
                TRY(once(&seen, VALUE_ONEOF));  /* one data message, of one type */
                if (wt != 2) return BAIL;
                kind = k;
                data = sub;
            }
        }
    }
    TRY(map_end(&M->metadata));
    TRY(text(&M->name, name));
    TRY(text(&M->description, description));
    TRY(text(&M->unit, unit));
    bytes = tally.bytes - bytes;
    uint64_t rows = tally.rows;
    if (kind >= 0) TRY(metric_data(M, kind, data, index));
    else TRY(metric_kind(M, 0, 0));
    repeated(bytes, tally.rows - rows);
    return count_item(&M->metrics);
}

/* ---- Python ---------------------------------------------------------------------------------------------- */

static void buf_free(Buf *b) { free(b->p); }
static void str_free(Str *s) { buf_free(&s->off); buf_free(&s->data); }
static void val_free(Val *v) { str_free(&v->text); buf_free(&v->double_rows); buf_free(&v->double_values); }
static void map_free(Map *m) { buf_free(&m->off); str_free(&m->keys); val_free(&m->values); }

static void levels_free(Levels *L) {
    Buf *bufs[] = {&L->item_resource, &L->item_scope, &L->resource_dropped, &L->service_entry, &L->scope_dropped};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) buf_free(bufs[i]);
    Str *strs[] = {&L->resource_schema_url, &L->scope_name, &L->scope_version, &L->scope_schema_url};
    for (size_t i = 0; i < sizeof strs / sizeof *strs; i++) str_free(strs[i]);
    map_free(&L->resource_attributes);
    map_free(&L->scope_attributes);
}

static void logs_free(Logs *L) {
    levels_free(&L->levels);
    Buf *bufs[] = {&L->timestamp, &L->observed, &L->severity_number, &L->trace_flags, &L->flags, &L->dropped};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) buf_free(bufs[i]);
    Str *strs[] = {&L->trace_id, &L->span_id, &L->severity_text, &L->event_name};
    for (size_t i = 0; i < sizeof strs / sizeof *strs; i++) str_free(strs[i]);
    val_free(&L->body);
    map_free(&L->attributes);
    free(L);
}

static void traces_free(Traces *T) {
    levels_free(&T->levels);
    Buf *bufs[] = {&T->timestamp, &T->end_timestamp, &T->duration, &T->kind, &T->status_code, &T->flags,
                   &T->dropped, &T->dropped_events, &T->dropped_links, &T->event_off, &T->event_time,
                   &T->event_dropped, &T->link_off, &T->link_flags, &T->link_dropped};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) buf_free(bufs[i]);
    Str *strs[] = {&T->trace_id, &T->span_id, &T->parent_span_id, &T->trace_state, &T->name, &T->status_message,
                   &T->event_name, &T->link_trace_id, &T->link_span_id, &T->link_trace_state};
    for (size_t i = 0; i < sizeof strs / sizeof *strs; i++) str_free(strs[i]);
    map_free(&T->attributes);
    map_free(&T->event_attributes);
    map_free(&T->link_attributes);
    free(T);
}

/* A buffer handed to Python as it is: the walk's malloc'd bytes, read-only through the buffer protocol, freed
 * with the object. Copying each into a bytes object cost as much again as writing it (PyBytes_FromStringAndSize
 * was about 2 % of a saturated traces sidecar's CPU, perf), and the copy touched fresh pages. */
typedef struct { PyObject_HEAD char *p; Py_ssize_t len; } Block;

static int block_getbuffer(PyObject *self, Py_buffer *view, int flags) {
    Block *b = (Block *)self;
    return PyBuffer_FillInfo(view, self, b->p ? b->p : (void *)"", b->len, 1, flags);
}
static void block_dealloc(PyObject *self) {
    free(((Block *)self)->p);
    Py_TYPE(self)->tp_free(self);
}
static PyBufferProcs block_as_buffer = {block_getbuffer, NULL};
static PyTypeObject BlockType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "otlp2parquet.convert._fastpb.Block",
    .tp_basicsize = sizeof(Block),
    .tp_dealloc = block_dealloc,
    .tp_as_buffer = &block_as_buffer,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "One column buffer of a walk, owned here and read through the buffer protocol.",
};

/* Moves `b` into the dict as a Block (shrunk to its length, so the rows' buffers hold what the walk counted); `b`
 * is left empty, and its free a no-op. */
static int set_bytes(PyObject *d, const char *name, Buf *b) {
    Block *o = PyObject_New(Block, &BlockType);
    if (!o) return -1;
    o->p = b->p;
    o->len = (Py_ssize_t)b->len;
    if (b->p && b->len < b->cap) {
        char *p = realloc(b->p, b->len ? b->len : 1);
        if (p) o->p = p;
    }
    b->p = NULL;
    b->len = b->cap = 0;
    int rc = PyDict_SetItemString(d, name, (PyObject *)o);
    Py_DECREF(o);
    return rc;
}

/* An offsets buffer; zero lists still need the single 0 offset. */
static int set_offsets(PyObject *d, const char *name, Buf *b) {
    if (offsets_open(b) != OK) { PyErr_NoMemory(); return -1; }
    return set_bytes(d, name, b);
}

/* A string column as two entries: NAME.offsets and NAME.data. */
static int set_str(PyObject *d, const char *name, Str *s) {
    char key[96];
    snprintf(key, sizeof key, "%s.offsets", name);
    if (set_offsets(d, key, &s->off)) return -1;
    snprintf(key, sizeof key, "%s.data", name);
    return set_bytes(d, key, &s->data);
}

static int set_val(PyObject *d, const char *name, Val *v) {
    char key[96];
    if (set_str(d, name, &v->text)) return -1;
    snprintf(key, sizeof key, "%s.double_rows", name);
    if (set_bytes(d, key, &v->double_rows)) return -1;
    snprintf(key, sizeof key, "%s.double_values", name);
    return set_bytes(d, key, &v->double_values);
}

static int set_map(PyObject *d, const char *name, Map *m) {
    char key[96];
    snprintf(key, sizeof key, "%s.offsets", name);
    if (set_offsets(d, key, &m->off)) return -1;
    snprintf(key, sizeof key, "%s.keys", name);
    if (set_str(d, key, &m->keys)) return -1;
    snprintf(key, sizeof key, "%s.values", name);
    return set_val(d, key, &m->values);
}

static int set_count(PyObject *d, const char *name, int64_t n) {
    PyObject *o = PyLong_FromLongLong(n);
    if (!o) return -1;
    int rc = PyDict_SetItemString(d, name, o);
    Py_DECREF(o);
    return rc;
}

static int set_levels(PyObject *d, Levels *L) {
    return set_count(d, "resources", L->resources) || set_count(d, "scopes", L->scopes) ||
        set_bytes(d, "resource", &L->item_resource) || set_bytes(d, "scope", &L->item_scope) ||
        set_map(d, "ResourceAttributes", &L->resource_attributes) ||
        set_str(d, "ResourceSchemaUrl", &L->resource_schema_url) ||
        set_bytes(d, "ResourceDroppedAttributesCount", &L->resource_dropped) ||
        set_bytes(d, "service_entry", &L->service_entry) ||
        set_str(d, "ScopeName", &L->scope_name) || set_str(d, "ScopeVersion", &L->scope_version) ||
        set_map(d, "ScopeAttributes", &L->scope_attributes) ||
        set_bytes(d, "ScopeDroppedAttributesCount", &L->scope_dropped) ||
        set_str(d, "ScopeSchemaUrl", &L->scope_schema_url) ? -1 : 0;
}

static int logs_dict(PyObject *d, void *signal) {
    Logs *L = signal;
    return set_levels(d, &L->levels) || set_count(d, "items", L->records) ||
        set_bytes(d, "Timestamp", &L->timestamp) || set_bytes(d, "ObservedTimestamp", &L->observed) ||
        set_bytes(d, "SeverityNumber", &L->severity_number) || set_bytes(d, "TraceFlags", &L->trace_flags) ||
        set_bytes(d, "Flags", &L->flags) || set_bytes(d, "DroppedAttributesCount", &L->dropped) ||
        set_str(d, "TraceId", &L->trace_id) || set_str(d, "SpanId", &L->span_id) ||
        set_str(d, "SeverityText", &L->severity_text) || set_str(d, "EventName", &L->event_name) ||
        set_val(d, "Body", &L->body) || set_map(d, "LogAttributes", &L->attributes) ? -1 : 0;
}

static int traces_dict(PyObject *d, void *signal) {
    Traces *T = signal;
    return set_levels(d, &T->levels) || set_count(d, "items", T->spans) ||
        set_bytes(d, "Timestamp", &T->timestamp) || set_bytes(d, "EndTimestamp", &T->end_timestamp) ||
        set_bytes(d, "Duration", &T->duration) || set_bytes(d, "SpanKind", &T->kind) ||
        set_bytes(d, "StatusCode", &T->status_code) || set_bytes(d, "Flags", &T->flags) ||
        set_bytes(d, "DroppedAttributesCount", &T->dropped) ||
        set_bytes(d, "DroppedEventsCount", &T->dropped_events) ||
        set_bytes(d, "DroppedLinksCount", &T->dropped_links) ||
        set_str(d, "TraceId", &T->trace_id) || set_str(d, "SpanId", &T->span_id) ||
        set_str(d, "ParentSpanId", &T->parent_span_id) || set_str(d, "TraceState", &T->trace_state) ||
        set_str(d, "SpanName", &T->name) || set_str(d, "StatusMessage", &T->status_message) ||
        set_map(d, "SpanAttributes", &T->attributes) ||
        set_count(d, "events", T->events) || set_offsets(d, "Events.offsets", &T->event_off) ||
        set_bytes(d, "Events.Timestamp", &T->event_time) || set_str(d, "Events.Name", &T->event_name) ||
        set_map(d, "Events.Attributes", &T->event_attributes) ||
        set_bytes(d, "Events.DroppedAttributesCount", &T->event_dropped) ||
        set_count(d, "links", T->links) || set_offsets(d, "Links.offsets", &T->link_off) ||
        set_str(d, "Links.TraceId", &T->link_trace_id) || set_str(d, "Links.SpanId", &T->link_span_id) ||
        set_str(d, "Links.TraceState", &T->link_trace_state) ||
        set_map(d, "Links.Attributes", &T->link_attributes) || set_bytes(d, "Links.Flags", &T->link_flags) ||
        set_bytes(d, "Links.DroppedAttributesCount", &T->link_dropped) ? -1 : 0;
}

static PyObject *TooLarge;  /* raised with the bytes counted when the walk stopped */

/* The walk with the GIL released, then the buffers as a dict; None when the walk gave up. The arguments: the
 * request's bytes and the limit on its rows' bytes (None: no limit). */
static PyObject *decode(PyObject *args, size_t size, size_t levels_at, ItemFn item,
                        int (*to_dict)(PyObject *, void *), void (*release)(void *)) {
    PyObject *data, *limit_arg = Py_None;
    if (!PyArg_ParseTuple(args, "O|O", &data, &limit_arg)) return NULL;
    uint64_t limit = UINT64_MAX;
    if (limit_arg != Py_None) {
        limit = PyLong_AsUnsignedLongLong(limit_arg);
        if (PyErr_Occurred()) return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) return NULL;
    char *signal = calloc(1, size);
    if (!signal) { PyBuffer_Release(&view); return PyErr_NoMemory(); }
    Levels *levels = (Levels *)(signal + levels_at);
    Rd r = {(const uint8_t *)view.buf, (const uint8_t *)view.buf + view.len};
    int rc;
    uint64_t counted;
    Py_BEGIN_ALLOW_THREADS
    tally.bytes = tally.rows = 0;
    tally.limit = limit;
    rc = request_walk(levels, r, item, signal);
    if (rc == OK) rc = over_limit();
    counted = tally.bytes;
    tally.limit = UINT64_MAX;  /* what to_dict adds (a missing leading offset) is not the walk's to refuse */
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    PyObject *out = NULL;
    if (rc == OK) {
        out = PyDict_New();
        if (out && to_dict(out, signal)) Py_CLEAR(out);
    } else if (rc == NOMEM) PyErr_NoMemory();
    else if (rc == TOO_LARGE) {
        PyObject *n = PyLong_FromUnsignedLongLong(counted);
        if (n) { PyErr_SetObject(TooLarge, n); Py_DECREF(n); }
    } else { Py_INCREF(Py_None); out = Py_None; }
    release(signal);
    return out;
}

static void release_logs(void *signal) { logs_free(signal); }
static void release_traces(void *signal) { traces_free(signal); }

static PyObject *decode_logs(PyObject *self, PyObject *args) {
    (void)self;
    return decode(args, sizeof(Logs), offsetof(Logs, levels), log_record, logs_dict, release_logs);
}

static PyObject *decode_traces(PyObject *self, PyObject *args) {
    (void)self;
    return decode(args, sizeof(Traces), offsetof(Traces, levels), span, traces_dict, release_traces);
}

static void points_free(Points *P) {
    Buf *bufs[] = {&P->metric, &P->start, &P->time, &P->flags, &P->ex_off, &P->ex_time, &P->ex_value, &P->ex_int,
                   &P->ex_int_valid, &P->value, &P->value_valid, &P->int_value, &P->int_valid, &P->count, &P->sum,
                   &P->sum_valid, &P->min, &P->min_valid, &P->max, &P->max_valid, &P->counts_off, &P->counts,
                   &P->bounds_off, &P->bounds, &P->scale, &P->zero_count, &P->zero_threshold, &P->pos_offset,
                   &P->pos_off, &P->pos_counts, &P->neg_offset, &P->neg_off, &P->neg_counts, &P->q_off,
                   &P->q_quantile, &P->q_value};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) buf_free(bufs[i]);
    str_free(&P->ex_span_id);
    str_free(&P->ex_trace_id);
    map_free(&P->attributes);
    map_free(&P->ex_attributes);
}

static void metrics_free(Metrics *M) {
    levels_free(&M->levels);
    str_free(&M->name);
    str_free(&M->description);
    str_free(&M->unit);
    map_free(&M->metadata);
    buf_free(&M->temporality);
    buf_free(&M->monotonic);
    for (int k = 0; k < KINDS; k++) points_free(&M->kinds[k]);
    free(M);
}

/* One metric type's buffers, each named "<type>.<column>"; a type without points has only its count. */
static int set_points(PyObject *d, const char *kind, Points *P) {
    char key[96];
#define KEY(column) (snprintf(key, sizeof key, "%s.%s", kind, column), key)
    if (set_count(d, KEY("n"), P->n)) return -1;
    if (!P->n) return 0;
    struct { const char *name; Buf *buf; } bufs[] = {
        {"metric", &P->metric}, {"StartTimeUnix", &P->start}, {"TimeUnix", &P->time}, {"Flags", &P->flags},
        {"Exemplars.offsets", &P->ex_off}, {"Exemplars.TimeUnix", &P->ex_time}, {"Exemplars.Value", &P->ex_value},
        {"Exemplars.IntValue", &P->ex_int}, {"Exemplars.IntValue.valid", &P->ex_int_valid},
        {"Value", &P->value}, {"Value.valid", &P->value_valid}, {"IntValue", &P->int_value},
        {"IntValue.valid", &P->int_valid}, {"Count", &P->count}, {"Sum", &P->sum}, {"Sum.valid", &P->sum_valid},
        {"Min", &P->min}, {"Min.valid", &P->min_valid}, {"Max", &P->max}, {"Max.valid", &P->max_valid},
        {"BucketCounts.offsets", &P->counts_off}, {"BucketCounts", &P->counts},
        {"ExplicitBounds.offsets", &P->bounds_off}, {"ExplicitBounds", &P->bounds}, {"Scale", &P->scale},
        {"ZeroCount", &P->zero_count}, {"ZeroThreshold", &P->zero_threshold}, {"PositiveOffset", &P->pos_offset},
        {"PositiveBucketCounts.offsets", &P->pos_off}, {"PositiveBucketCounts", &P->pos_counts},
        {"NegativeOffset", &P->neg_offset}, {"NegativeBucketCounts.offsets", &P->neg_off},
        {"NegativeBucketCounts", &P->neg_counts}, {"ValueAtQuantiles.offsets", &P->q_off},
        {"ValueAtQuantiles.Quantile", &P->q_quantile}, {"ValueAtQuantiles.Value", &P->q_value},
    };
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        if (set_bytes(d, KEY(bufs[i].name), bufs[i].buf)) return -1;
    int rc = set_count(d, KEY("exemplars"), P->exemplars) || set_map(d, KEY("Attributes"), &P->attributes) ||
        set_map(d, KEY("Exemplars.FilteredAttributes"), &P->ex_attributes) ||
        set_str(d, KEY("Exemplars.SpanId"), &P->ex_span_id) || set_str(d, KEY("Exemplars.TraceId"), &P->ex_trace_id);
#undef KEY
    return rc ? -1 : 0;
}

static int metrics_dict(PyObject *d, void *signal) {
    Metrics *M = signal;
    static const char *names[KINDS] = {"gauge", "sum", "histogram", "exponential_histogram", "summary"};
    if (set_levels(d, &M->levels) || set_count(d, "items", M->metrics) ||
        set_str(d, "MetricName", &M->name) || set_str(d, "MetricDescription", &M->description) ||
        set_str(d, "MetricUnit", &M->unit) || set_map(d, "MetricMetadata", &M->metadata) ||
        set_bytes(d, "AggregationTemporality", &M->temporality) || set_bytes(d, "IsMonotonic", &M->monotonic))
        return -1;
    for (int k = 0; k < KINDS; k++)
        if (set_points(d, names[k], &M->kinds[k])) return -1;
    return 0;
}

static void release_metrics(void *signal) { metrics_free(signal); }

static PyObject *decode_metrics(PyObject *self, PyObject *args) {
    (void)self;
    return decode(args, sizeof(Metrics), offsetof(Metrics, levels), metric, metrics_dict, release_metrics);
}

static PyMethodDef methods[] = {
    {"decode_logs", decode_logs, METH_VARARGS,
     "(ExportLogsServiceRequest bytes, limit or None) -> a dict of column buffers, or None to leave the request "
     "to ptars; TooLarge when the rows would take more than limit bytes."},
    {"decode_traces", decode_traces, METH_VARARGS,
     "(ExportTraceServiceRequest bytes, limit or None) -> a dict of column buffers, or None to leave the request "
     "to ptars; TooLarge when the rows would take more than limit bytes."},
    {"decode_metrics", decode_metrics, METH_VARARGS,
     "(ExportMetricsServiceRequest bytes, limit or None) -> a dict of column buffers, or None to leave the "
     "request to ptars; TooLarge when the rows would take more than limit bytes."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_fastpb", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__fastpb(void) {
    if (PyType_Ready(&BlockType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    TooLarge = PyErr_NewException("otlp2parquet.convert._fastpb.TooLarge", NULL, NULL);
    if (!TooLarge || PyModule_AddObjectRef(m, "TooLarge", TooLarge) < 0) {
        Py_XDECREF(TooLarge);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
