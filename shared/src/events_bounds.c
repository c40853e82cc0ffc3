/* events_bounds.c - the bounds walker: before Avro C reads a body (and allocates what its
 * lengths say), walk it against the writer schema and bound every length and count. */
#include "events_internal.h"

static int bad(cursor_t *c, const char *why) {
    c->why = why;
    return -1;
}

int ens_events_read_varint(cursor_t *c, int64_t *out, int max_bytes) {
    uint64_t v = 0;
    for (int i = 0; i < max_bytes; i++) {
        if (c->p == c->end)
            return bad(c, "truncated");
        uint8_t b = *c->p++;
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *out = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
            return 0;
        }
    }
    return bad(c, "varint too long");
}

static int skip_bytes(cursor_t *c, int64_t n) {
    if (n < 0 || n > c->end - c->p)
        return bad(c, n < 0 ? "negative length" : "length beyond the end of the message");
    c->p += n;
    return 0;
}

int ens_events_skip_value(cursor_t *c, avro_schema_t s, int depth) {
    int64_t v;
    if (depth > MAX_DEPTH)
        return bad(c, "schema nested too deeply");
    switch (avro_typeof(s)) {
    case AVRO_NULL: return 0;
    case AVRO_BOOLEAN: return skip_bytes(c, 1);
    case AVRO_INT32:
        if (ens_events_read_varint(c, &v, 5))
            return -1;
        return v < INT32_MIN || v > INT32_MAX ? bad(c, "int out of range") : 0;
    case AVRO_INT64: return ens_events_read_varint(c, &v, 10);
    case AVRO_FLOAT: return skip_bytes(c, 4);
    case AVRO_DOUBLE: return skip_bytes(c, 8);
    case AVRO_STRING:
    case AVRO_BYTES: return ens_events_read_varint(c, &v, 10) ? -1 : skip_bytes(c, v);
    case AVRO_FIXED: return skip_bytes(c, avro_schema_fixed_size(s));
    case AVRO_ENUM:
        if (ens_events_read_varint(c, &v, 10))
            return -1;
        return v < 0 || v >= avro_schema_enum_number_of_symbols(s) ? bad(c, "bad enum index") : 0;
    case AVRO_UNION:
        if (ens_events_read_varint(c, &v, 10))
            return -1;
        if (v < 0 || (uint64_t)v >= avro_schema_union_size(s))
            return bad(c, "bad union branch");
        return ens_events_skip_value(c, avro_schema_union_branch(s, (int)v), depth + 1);
    case AVRO_RECORD:
        for (size_t i = 0; i < avro_schema_record_size(s); i++)
            if (ens_events_skip_value(c, avro_schema_record_field_get_by_index(s, (int)i),
                                      depth + 1))
                return -1;
        return 0;
    case AVRO_ARRAY:
    case AVRO_MAP: {
        int is_map = avro_typeof(s) == AVRO_MAP;
        avro_schema_t item = is_map ? avro_schema_map_values(s) : avro_schema_array_items(s);
        int64_t total = 0, size;
        for (;;) {
            if (ens_events_read_varint(c, &v, 10))
                return -1;
            if (v == 0)
                return 0;
            if (v < 0) { /* a negative count is followed by the block's size in bytes */
                if (v == INT64_MIN || ens_events_read_varint(c, &size, 10))
                    return bad(c, "bad block count");
                v = -v;
            }
            if (v > MAX_VALUES - total)
                return bad(c, "too many array elements");
            total += v;
            for (int64_t i = 0; i < v; i++) {
                if (is_map && (ens_events_read_varint(c, &size, 10) || skip_bytes(c, size)))
                    return -1;
                if (ens_events_skip_value(c, item, depth + 1))
                    return -1;
            }
        }
    }
    case AVRO_LINK: return ens_events_skip_value(c, avro_schema_link_target(s), depth + 1);
    default: return bad(c, "unsupported schema type");
    }
}

