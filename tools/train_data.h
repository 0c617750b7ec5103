/* train_data.h — xcat-train's data: SASRec-format logs or a synthetic generator, and the
 * leave-one-out split (last item: test target, second-last: validation target). */
#ifndef XCAT_TRAIN_DATA_H
#define XCAT_TRAIN_DATA_H

#include <stddef.h>
#include <stdint.h>

/* Users' time-ordered item sequences, CSR: user u has items[offsets[u] .. offsets[u+1]).
 * Item ids are >= 1; id 0 is the padding item (never a target, banned in evaluation), so the
 * catalog has num_items = max id + 1 entries. */
typedef struct train_data {
    int64_t num_users, num_items, num_events;
    int64_t *offsets; /* num_users + 1 */
    int32_t *items;   /* num_events */
} train_data;

typedef struct synth_options {
    int64_t users, items;
    int32_t min_len, max_len;
    double zipf_s;     /* popularity exponent of the catalog */
    double follow_p;   /* probability that the next item follows the planted successor */
    uint64_t seed;
} synth_options;

void synth_options_init(synth_options *o);

/* Read a `user item` per line log (users grouped, time-ordered, ids >= 1). Returns 0, or -1
 * with a message in err. */
int train_data_load(const char *path, train_data *d, char *err, size_t err_size);
/* Planted structure: each item has a successor (a fixed random permutation); the next item of a
 * sequence is the successor of the current one with probability follow_p, else a Zipf draw. A
 * model that learns transitions beats popularity by a wide margin, so learning is visible. */
int train_data_synthetic(const synth_options *o, train_data *d, char *err, size_t err_size);
void train_data_free(train_data *d);

/* Leave-one-out: users with >= 3 items train on items[0 .. n−2) (positions predict the next
 * item), validate on item n−2 given items[0 .. n−2), test on item n−1 given items[0 .. n−1). */
typedef struct train_split {
    int64_t num_train_positions; /* (user, t) pairs: history items[..t], target items[t+1] */
    int64_t *pos_user;           /* num_train_positions */
    int32_t *pos_t;
    int64_t num_eval_users;      /* users with a validation/test target */
    int64_t *eval_user;
    int64_t *item_counts;        /* num_items: occurrences in the training part (for samplers) */
} train_split;

int train_split_make(const train_data *d, train_split *s, char *err, size_t err_size);
void train_split_free(train_split *s);

#endif
