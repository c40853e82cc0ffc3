/* events_internal.h - what the parts of the event codec share (events*.c only): the field
 * tables that map each event struct onto its Avro record, the schemas loaded once, and the
 * cursor of the bounds walker. */
#ifndef ENSFLOW_EVENTS_INTERNAL_H
#define ENSFLOW_EVENTS_INTERNAL_H

#include <avro.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "ensflow/events.h"

#define HDR_LEN 10                   /* C3 01 + 8-byte fingerprint */
#define MAX_VALUES (16 * 1024 * 1024) /* floats in a tensor, elements of any array */
#define MAX_MEMBERS 100000            /* members, ensembles, model versions */
#define MAX_DEPTH 32                  /* schema nesting while validating a body */

/* How a C member maps to its Avro field. Arrays keep their element count in an int32_t
 * member (count_off) that has no Avro field of its own: it is the array's length. */
typedef enum {
    K_ID,      /* char[size] <-> string; longer strings are an error */
    K_STR,     /* char * <-> string (never NULL) */
    K_OPTSTR,  /* char * <-> ["null","string"] */
    K_INT,     /* int32_t <-> int */
    K_LONG,    /* int64_t <-> long */
    K_OPTLONG, /* int64_t <-> ["null","long"], 0 <-> null */
    K_DOUBLE,  /* double <-> double */
    K_ENUM,    /* C enum <-> Avro enum with the same symbol order, max symbols */
    K_INTS,    /* int32_t[max] in the struct <-> array<int> */
    K_FLOATS,  /* float * <-> array<float> */
    K_DOUBLES, /* double * <-> array<double> */
    K_IDS,     /* char (*)[ENS_ID_MAX] <-> array<string> */
    K_RECS,    /* sub->size-byte records <-> array<record> */
    K_BYTES,   /* uint8_t * with a size_t length at count_off <-> bytes */
} kind_t;

typedef struct rec rec_t;
typedef struct {
    const char *name;
    kind_t kind;
    size_t off, size;  /* the member */
    size_t count_off;  /* arrays and bytes: the member holding the length */
    int32_t max;       /* arrays: most elements; enums: number of symbols */
    int shared;        /* the count was set by an earlier array: lengths must match */
    const rec_t *sub;  /* K_RECS: the element record */
} field_t;

struct rec {
    size_t size;
    int n;
    const field_t *f;
};

/* An event type: its Avro record's name and its field table. */
typedef struct {
    const char *name;
    rec_t rec;
} ev_type_t;

typedef struct {
    ens_event_type_t type;
    int current;
    uint64_t fp;
    avro_schema_t writer;       /* the schema of the file */
    avro_schema_t reader;       /* current schema, or for history files its projection onto
                                 * the writer's fields (Avro C cannot fill reader defaults) */
    avro_value_iface_t *iface;  /* generic class of reader */
    const char *file;
} known_t;

typedef struct {
    const uint8_t *p, *end;
    const char *why;
} cursor_t;

/* The single-object header: C3 01, then the writer schema's fingerprint, little-endian. */
static inline void ens_events_put_header(uint8_t *out, uint64_t fp) {
    out[0] = 0xC3;
    out[1] = 0x01;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (uint8_t)(fp >> (8 * i));
}

/* --- events_schema.c: field tables, schemas and their fingerprints -------------------------- */

extern const rec_t ens_events_common_rec;            /* event_id, occurred_at */
extern const ev_type_t ens_events_types[ENS_EV__COUNT];

/* Load the embedded schemas once; ENS_ERR_AVRO naming what is wrong with them. */
ens_err_t ens_events_init(char *errstr, size_t errstr_size);
/* After ens_events_init: the current schema of type, the schema of fingerprint fp (NULL when
 * unknown), and the JSON "fields" of the current schema of type (for defaults). */
const known_t *ens_events_current(ens_event_type_t type);
const known_t *ens_events_by_fingerprint(uint64_t fp);
const json_t *ens_events_current_fields(ens_event_type_t type);
/* The "fields" of the record a field holds directly or as array items (JSON), or NULL. */
json_t *ens_events_nested_fields(const json_t *field);

/* --- events_bounds.c: bound every length of a body before Avro C allocates anything -------- */

/* An Avro long (zig-zag varint of at most max_bytes) from c; -1 with c->why on error. */
int ens_events_read_varint(cursor_t *c, int64_t *out, int max_bytes);
/* Walk one value of schema s; -1 with c->why when the body is malformed or too large. */
int ens_events_skip_value(cursor_t *c, avro_schema_t s, int depth);

/* --- events_direct.c: InferenceRequest without Avro C's generic values ---------------------- */

/* 1 when written into buf and len, 0 when the generic path must encode it. */
int ens_events_encode_request_direct(const ens_event_t *ev, uint64_t fp, uint8_t **buf,
                                     size_t *len);
/* 1 when body (the current InferenceRequest schema) was read into ev, 0 when the generic path
 * must decode it (ev may then hold a partly read request: the caller frees it). */
int ens_events_decode_request_direct(const uint8_t *body, size_t n, ens_event_t *ev);

#endif
