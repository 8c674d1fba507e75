/*
 * cfg_toml - bridge from toml++ 3.3 to a tree of plain C nodes (the only C++ file in the tree)
 *
 * cfg_toml_parse() parses TOML text with toml++ and copies the result into struct cfg_toml_node,
 * keeping the line and column where each key (or array element) was written, so that the C side
 * reports "file:line" for its own checks. Table members come out in document order: toml++ keeps
 * them sorted by name, so they are sorted back by the position of their key.
 * Dates and times are kept as their TOML text. Strings and keys containing NUL are refused,
 * because C code would silently see a shorter string.
 * Errors: a syntax error becomes "NAME:LINE:COL: message" in *err; no C++ exception leaves this
 * file (everything is caught at the C boundary).
 */
#include "cfg/cfg_toml.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <new>
#include <sstream>
#include <string>
#include <string_view>

#include <toml++/toml.h>

extern "C" {
#include "base/mem.h"
}

namespace {

/* toml++ already bounds nesting; this is a second guard so hostile input cannot grow the stack */
constexpr int CFG_TOML_MAX_DEPTH = 512;

/* raised inside the conversion for input toml++ accepts but the C tree cannot carry */
struct convert_error {
    unsigned line;
    unsigned column;
    const char *message;
};

cfg_toml_node *node_new(cfg_toml_type type, const toml::source_position &pos)
{
    auto *n = static_cast<cfg_toml_node *>(xcalloc(1, sizeof(cfg_toml_node)));
    n->type = type;
    n->line = pos.line;
    n->column = pos.column;
    return n;
}

char *copy_text(std::string_view s, const toml::source_position &pos, const char *what)
{
    if (s.find('\0') != std::string_view::npos)
        throw convert_error{pos.line, pos.column, what};
    return xstrndup(s.data(), s.size());
}

template <typename T>
char *format_value(const T &v)
{
    std::ostringstream os;
    os << v;
    std::string s = os.str();
    return xstrndup(s.data(), s.size());
}

void convert(const toml::node &src, cfg_toml_node *dst, int depth);

cfg_toml_node *convert_new(const toml::node &src, const toml::source_position &pos, int depth)
{
    cfg_toml_node *n = nullptr;
    if (depth > CFG_TOML_MAX_DEPTH)
        throw convert_error{pos.line, pos.column, "values nested too deeply"};
    switch (src.type()) {
    case toml::node_type::table: n = node_new(CFG_TOML_TABLE, pos); break;
    case toml::node_type::array: n = node_new(CFG_TOML_ARRAY, pos); break;
    case toml::node_type::string: n = node_new(CFG_TOML_STRING, pos); break;
    case toml::node_type::integer: n = node_new(CFG_TOML_INT, pos); break;
    case toml::node_type::floating_point: n = node_new(CFG_TOML_FLOAT, pos); break;
    case toml::node_type::boolean: n = node_new(CFG_TOML_BOOL, pos); break;
    case toml::node_type::date:
    case toml::node_type::time:
    case toml::node_type::date_time: n = node_new(CFG_TOML_DATETIME, pos); break;
    default: throw convert_error{pos.line, pos.column, "value of an unknown type"};
    }
    try {
        convert(src, n, depth);
    } catch (...) {
        cfg_toml_free(n);
        throw;
    }
    return n;
}

/* children are attached one at a time, counted as they go, so a partial tree is always freeable */
void convert(const toml::node &src, cfg_toml_node *dst, int depth)
{
    switch (src.type()) {
    case toml::node_type::table: {
        const toml::table &t = *src.as_table();
        dst->children = static_cast<cfg_toml_node **>(xcalloc(t.size() ? t.size() : 1, sizeof(cfg_toml_node *)));
        for (auto &&[k, v] : t) {
            /* the key's own position: where the operator wrote the name, also for [table] headers */
            toml::source_position pos = k.source().begin;
            if (!pos)
                pos = v.source().begin;
            char *key = copy_text(k.str(), pos, "key contains a NUL character");
            cfg_toml_node *child;
            try {
                child = convert_new(v, pos, depth + 1);
            } catch (...) {
                free(key);
                throw;
            }
            child->key = key;
            dst->children[dst->n_children++] = child;
        }
        std::stable_sort(dst->children, dst->children + dst->n_children,
                         [](const cfg_toml_node *a, const cfg_toml_node *b) {
                             return a->line != b->line ? a->line < b->line : a->column < b->column;
                         });
        break;
    }
    case toml::node_type::array: {
        const toml::array &a = *src.as_array();
        dst->children = static_cast<cfg_toml_node **>(xcalloc(a.size() ? a.size() : 1, sizeof(cfg_toml_node *)));
        for (const toml::node &v : a)
            dst->children[dst->n_children++] = convert_new(v, v.source().begin, depth + 1);
        break;
    }
    case toml::node_type::string:
        dst->str = copy_text(src.as_string()->get(), src.source().begin, "string contains a NUL character");
        break;
    case toml::node_type::integer: dst->i = src.as_integer()->get(); break;
    case toml::node_type::floating_point: dst->f = src.as_floating_point()->get(); break;
    case toml::node_type::boolean: dst->b = src.as_boolean()->get(); break;
    case toml::node_type::date: dst->str = format_value(*src.as_date()); break;
    case toml::node_type::time: dst->str = format_value(*src.as_time()); break;
    case toml::node_type::date_time: dst->str = format_value(*src.as_date_time()); break;
    default: break;
    }
}

void set_err(char **err, const char *name, unsigned line, unsigned column, const char *msg)
{
    if (err)
        *err = xasprintf("%s:%u:%u: %s", name, line, column, msg);
}

} // namespace

extern "C" struct cfg_toml_node *cfg_toml_parse(const char *text, size_t len, const char *name, char **err)
{
    if (err)
        *err = nullptr;
    if (!name)
        name = "(text)";
    try {
        toml::table root = toml::parse(std::string_view(text ? text : "", text ? len : 0), std::string_view(name));
        toml::source_position start{1, 1};
        return convert_new(root, start, 0);
    } catch (const toml::parse_error &e) {
        std::string msg(e.description());
        set_err(err, name, e.source().begin.line, e.source().begin.column, msg.c_str());
    } catch (const convert_error &e) {
        set_err(err, name, e.line, e.column, e.message);
    } catch (const std::bad_alloc &) {
        set_err(err, name, 0, 0, "out of memory while parsing");
    } catch (const std::exception &e) {
        set_err(err, name, 0, 0, e.what());
    } catch (...) {
        set_err(err, name, 0, 0, "unexpected error while parsing");
    }
    return nullptr;
}

extern "C" void cfg_toml_free(struct cfg_toml_node *node)
{
    if (!node)
        return;
    for (size_t i = 0; i < node->n_children; i++)
        cfg_toml_free(node->children[i]);
    free(node->children);
    free(node->key);
    free(node->str);
    free(node);
}

extern "C" const struct cfg_toml_node *cfg_toml_find(const struct cfg_toml_node *table, const char *key)
{
    if (!table || table->type != CFG_TOML_TABLE || !key)
        return nullptr;
    for (size_t i = 0; i < table->n_children; i++) {
        if (table->children[i]->key && std::strcmp(table->children[i]->key, key) == 0)
            return table->children[i];
    }
    return nullptr;
}

extern "C" const char *cfg_toml_type_name(enum cfg_toml_type t)
{
    switch (t) {
    case CFG_TOML_TABLE: return "table";
    case CFG_TOML_ARRAY: return "array";
    case CFG_TOML_STRING: return "string";
    case CFG_TOML_INT: return "integer";
    case CFG_TOML_FLOAT: return "float";
    case CFG_TOML_BOOL: return "boolean";
    case CFG_TOML_DATETIME: return "date-time";
    }
    return "unknown";
}
