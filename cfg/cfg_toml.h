/*
 * cfg_toml - the C side of the toml++ bridge (cfg/cfg_toml.cc is the only C++ in the tree)
 *
 * cfg_toml_parse() parses TOML text into a tree of plain C nodes, each with the line and column
 * where it was defined, so that C code validates keys and values and reports file:line.
 * Returns the root table, or NULL with *err set to "NAME:LINE:COL: message" (heap, caller frees).
 * cfg_toml_free() frees a tree (NULL is a no-op).
 */
#ifndef RINGMAIL_CFG_TOML_H
#define RINGMAIL_CFG_TOML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum cfg_toml_type {
    CFG_TOML_TABLE = 0,
    CFG_TOML_ARRAY = 1,
    CFG_TOML_STRING = 2,
    CFG_TOML_INT = 3,
    CFG_TOML_FLOAT = 4,
    CFG_TOML_BOOL = 5,
    CFG_TOML_DATETIME = 6, /* kept as its TOML text in .str */
};

struct cfg_toml_node {
    enum cfg_toml_type type;
    char *key;       /* key within the parent table; NULL for array elements */
    unsigned line;   /* 1-based; 0 when unknown */
    unsigned column;
    char *str;       /* STRING, DATETIME */
    int64_t i;       /* INT */
    double f;        /* FLOAT */
    bool b;          /* BOOL */
    size_t n_children; /* TABLE members in document order, ARRAY elements in order */
    struct cfg_toml_node **children;
};

#ifdef __cplusplus
extern "C" {
#endif

struct cfg_toml_node *cfg_toml_parse(const char *text, size_t len, const char *name, char **err);
void cfg_toml_free(struct cfg_toml_node *node);
/* cfg_toml_find - member `key` of a table node, or NULL */
const struct cfg_toml_node *cfg_toml_find(const struct cfg_toml_node *table, const char *key);
const char *cfg_toml_type_name(enum cfg_toml_type t);

#ifdef __cplusplus
}
#endif

#endif
