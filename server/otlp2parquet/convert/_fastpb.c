/* A native fast path for well-formed OTLP logs and traces requests: protobuf bytes -> the `logs` or `traces`
 * table's column buffers, with the GIL released for the whole walk, so another thread (a flush, another
 * conversion) runs meanwhile.
 *
 * It handles only what a Collector sends every day: every field of the logs and traces data models, attribute
 * values that are strings, bools, ints, doubles or bytes. Anything else (an array or kvlist value, entity refs, a
 * bad id length, invalid UTF-8, a field repeated where one is expected, malformed bytes) makes it give up and
 * return None; the Python converter (ptars) then handles the request and gives the answer it always gave. So
 * this file never decides what is valid, it only recognises what is plainly so.
 *
 * Output: a dict of bytes objects, one per buffer (int32 string, list and map offsets, UTF-8 data, fixed-width
 * values), which _fast.py wraps as Arrow arrays without copying. Doubles are left for Python to format (Go's
 * rules, via the same code as the reference path): their rows get an empty placeholder and are listed apart.
 * Enums (span kind, status code) stay numbers; Python names them as the reference path does.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { OK = 0, BAIL = 1, NOMEM = 2 };
#define TRY(expr) do { int rc_ = (expr); if (rc_ != OK) return rc_; } while (0)

/* ---- growable buffers ------------------------------------------------------------------------------------ */

typedef struct { char *p; size_t len, cap; } Buf;

static int put(Buf *b, const void *src, size_t n) {
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
        TRY(put_i64(&out->double_rows, out->text.n));
        TRY(put(&out->double_values, &d, 8));
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

/* Resource{Logs,Spans} and Scope{Logs,Spans} share a shape: 1 the resource or scope, 2 the repeated children,
 * 3 the schema URL. The first and last are found first, wherever they sit, so that their columns are written
 * once. */
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

/* One Scope{Logs,Spans}: its scope's columns once, then its items. */
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
    TRY(offsets_open(&L->scope_attributes.off));
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
    while (r.p < r.end) {
        TRY(next_field(&r, &num, &wt, &v, &sub));
        if (num == 2) {
            TRY(put_i32(&L->item_resource, resource));
            TRY(put_i32(&L->item_scope, index));
            TRY(item(signal, sub));
        }
    }
    return OK;
}

/* One Resource{Logs,Spans}: its resource's columns once, then its scopes. */
static int resource_walk(Levels *L, Rd r, ItemFn item, void *signal) {
    uint64_t v;
    uint32_t num; int wt;
    Rd sub, resource, schema_url;
    TRY(envelope(r, &resource, &schema_url));
    if (L->resources == INT32_MAX) return BAIL;
    int32_t index = (int32_t)L->resources++;
    int64_t dropped = 0, service = -1;
    uint64_t resource_seen = 0;
    TRY(offsets_open(&L->resource_attributes.off));
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
    TRY(put_i64(&L->service_entry, service));
    TRY(text(&L->resource_schema_url, schema_url));
    while (r.p < r.end) {
        TRY(next_field(&r, &num, &wt, &v, &sub));
        if (num == 2) TRY(scope_walk(L, sub, index, item, signal));
    }
    return OK;
}

/* Export{Logs,Trace}ServiceRequest: field 1, the repeated Resource{Logs,Spans}. */
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
    return count_item(&T->spans);
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

static int set_bytes(PyObject *d, const char *name, const Buf *b) {
    PyObject *o = PyBytes_FromStringAndSize(b->p ? b->p : "", (Py_ssize_t)b->len);
    if (!o) return -1;
    int rc = PyDict_SetItemString(d, name, o);
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

/* The walk with the GIL released, then the buffers as a dict; None when the walk gave up. */
static PyObject *decode(PyObject *arg, size_t size, size_t levels_at, ItemFn item, int (*to_dict)(PyObject *, void *),
                        void (*release)(void *)) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    char *signal = calloc(1, size);
    if (!signal) { PyBuffer_Release(&view); return PyErr_NoMemory(); }
    Levels *levels = (Levels *)(signal + levels_at);
    Rd r = {(const uint8_t *)view.buf, (const uint8_t *)view.buf + view.len};
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = request_walk(levels, r, item, signal);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    PyObject *out = NULL;
    if (rc == OK) {
        out = PyDict_New();
        if (out && to_dict(out, signal)) Py_CLEAR(out);
    } else if (rc == NOMEM) PyErr_NoMemory();
    else { Py_INCREF(Py_None); out = Py_None; }
    release(signal);
    return out;
}

static void release_logs(void *signal) { logs_free(signal); }
static void release_traces(void *signal) { traces_free(signal); }

static PyObject *decode_logs(PyObject *self, PyObject *arg) {
    (void)self;
    return decode(arg, sizeof(Logs), offsetof(Logs, levels), log_record, logs_dict, release_logs);
}

static PyObject *decode_traces(PyObject *self, PyObject *arg) {
    (void)self;
    return decode(arg, sizeof(Traces), offsetof(Traces, levels), span, traces_dict, release_traces);
}

static PyMethodDef methods[] = {
    {"decode_logs", decode_logs, METH_O,
     "ExportLogsServiceRequest bytes -> a dict of column buffers, or None to leave the request to ptars."},
    {"decode_traces", decode_traces, METH_O,
     "ExportTraceServiceRequest bytes -> a dict of column buffers, or None to leave the request to ptars."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_fastpb", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__fastpb(void) { return PyModule_Create(&module); }
