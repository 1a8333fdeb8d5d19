#include <fnmatch.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <solv/solv_xfopen.h>
#include <stdio.h>

#include "comps.h"
#include "log.h"
#include "util.h"

/* comps.xml of a whole distribution is a few MB; this is ample. */
#define COMPS_MAX (256U * 1024U * 1024U)

typedef struct CompsPackage {
        char *name;
        char *requires; /* conditional packages: the package that must be installed too */
        GroupPackageType type;
} CompsPackage;

typedef struct CompsGroup {
        char *id;
        char *name; /* the untranslated name */
        CompsPackage *packages;
        size_t n_packages;
        char **groups;          /* environments: their mandatory groups */
        char **optional_groups; /* environments: their optional groups */
        bool environment;
} CompsGroup;

struct Comps {
        CompsGroup *items;
        size_t n_items;
};

static void xml_freep(char **p) {
        if (*p)
                xmlFree(*p);
}

Comps *comps_new(void) {
        return calloc(1, sizeof(Comps));
}

Comps *comps_free(Comps *c) {
        if (!c)
                return NULL;
        for (size_t i = 0; i < c->n_items; i++) {
                CompsGroup *g = &c->items[i];

                free(g->id);
                free(g->name);
                for (size_t k = 0; k < g->n_packages; k++) {
                        free(g->packages[k].name);
                        free(g->packages[k].requires);
                }
                free(g->packages);
                strv_free(g->groups);
                strv_free(g->optional_groups);
        }
        free(c->items);
        free(c);
        return NULL;
}

void comps_expansion_release(CompsExpansion *e) {
        strv_free(e->groups);
        strv_free(e->packages);
        *e = (CompsExpansion) {};
}

static CompsGroup *comps_find(Comps *c, const char *id, bool environment) {
        for (size_t i = 0; i < c->n_items; i++)
                if (c->items[i].environment == environment && streq(c->items[i].id, id))
                        return &c->items[i];
        return NULL;
}

/* The text of an element, trimmed; caller frees with xmlFree. */
static char *node_text(xmlNode *n) {
        xmlChar *t = xmlNodeGetContent(n);
        char *s = (char *) t, *e;

        if (!s)
                return NULL;
        while (*s == ' ' || *s == '\n' || *s == '\t' || *s == '\r')
                memmove(s, s + 1, strlen(s));
        e = s + strlen(s);
        while (e > s && (e[-1] == ' ' || e[-1] == '\n' || e[-1] == '\t' || e[-1] == '\r'))
                *--e = 0;
        return s;
}

static bool node_is(xmlNode *n, const char *name) {
        return n->type == XML_ELEMENT_NODE && streq((const char *) n->name, name);
}

static int add_package(CompsGroup *g, xmlNode *n) {
        _cleanup_(xml_freep) char *name = node_text(n);
        xmlChar *type = xmlGetProp(n, (const xmlChar *) "type");
        xmlChar *requires = xmlGetProp(n, (const xmlChar *) "requires");
        GroupPackageType t = GROUP_PACKAGE_DEFAULT; /* dnf's default for a packagereq */
        CompsPackage *p;
        int r = 0;

        if (type && streq((char *) type, "mandatory"))
                t = GROUP_PACKAGE_MANDATORY;
        else if (type && streq((char *) type, "optional"))
                t = GROUP_PACKAGE_OPTIONAL;
        else if (type && streq((char *) type, "conditional"))
                t = GROUP_PACKAGE_CONDITIONAL;
        if (isempty(name))
                goto out;
        for (size_t i = 0; i < g->n_packages; i++)
                if (streq(g->packages[i].name, name))
                        goto out;
        p = realloc(g->packages, sizeof(CompsPackage) * (g->n_packages + 1));
        if (!p) {
                r = -ENOMEM;
                goto out;
        }
        g->packages = p;
        p = &g->packages[g->n_packages];
        *p = (CompsPackage) { .name = strdup(name), .type = t };
        if (t == GROUP_PACKAGE_CONDITIONAL && requires && *requires)
                p->requires = strdup((char *) requires);
        if (!p->name || (t == GROUP_PACKAGE_CONDITIONAL && requires && *requires && !p->requires)) {
                free(p->name);
                free(p->requires);
                r = -ENOMEM;
                goto out;
        }
        g->n_packages++;
out:
        xmlFree(type);
        xmlFree(requires);
        return r;
}

static int add_group_ids(char ***list, xmlNode *n) {
        _cleanup_(xml_freep) char *id = node_text(n);

        if (isempty(id) || strv_contains(*list, id))
                return 0;
        return strv_extend(list, id);
}

/* One <group> or <environment>. */
static int add_item(Comps *c, xmlNode *node, bool environment) {
        _cleanup_(xml_freep) char *id = NULL, *name = NULL;
        CompsGroup *g;
        int r;

        for (xmlNode *n = node->children; n; n = n->next) {
                xmlChar *lang;

                if (node_is(n, "id") && !id)
                        id = node_text(n);
                if (node_is(n, "name") && !name) {
                        lang = xmlNodeGetLang(n);
                        if (!lang)
                                name = node_text(n);
                        xmlFree(lang);
                }
        }
        if (isempty(id))
                return -EBADMSG;
        g = comps_find(c, id, environment);
        if (!g) {
                g = realloc(c->items, sizeof(CompsGroup) * (c->n_items + 1));
                if (!g)
                        return -ENOMEM;
                c->items = g;
                g = &c->items[c->n_items];
                *g = (CompsGroup) { .id = strdup(id), .name = name ? strdup(name) : NULL, .environment = environment };
                if (!g->id || (name && !g->name))
                        return -ENOMEM;
                c->n_items++;
        }
        for (xmlNode *n = node->children; n; n = n->next) {
                if (!environment && node_is(n, "packagelist"))
                        for (xmlNode *p = n->children; p; p = p->next)
                                if (node_is(p, "packagereq")) {
                                        r = add_package(g, p);
                                        if (r < 0)
                                                return r;
                                }
                if (environment && (node_is(n, "grouplist") || node_is(n, "optionlist")))
                        for (xmlNode *p = n->children; p; p = p->next)
                                if (node_is(p, "groupid")) {
                                        r = add_group_ids(node_is(n, "grouplist") ? &g->groups : &g->optional_groups,
                                                          p);
                                        if (r < 0)
                                                return r;
                                }
        }
        return 0;
}

int read_decompressed(const char *path, size_t max, char **ret, size_t *ret_size) {
        _cleanup_free_ char *buf = NULL;
        size_t size = 0, alloc = 0;
        FILE *f;

        f = solv_xfopen(path, "r");
        if (!f)
                return negative_errno();
        for (;;) {
                size_t n;

                if (alloc - size < 65536) {
                        char *b;

                        if (alloc > max) {
                                fclose(f);
                                return -EFBIG;
                        }
                        b = realloc(buf, alloc + 1024 * 1024 + 1);
                        if (!b) {
                                fclose(f);
                                return -ENOMEM;
                        }
                        buf = b;
                        alloc += 1024 * 1024;
                }
                n = fread(buf + size, 1, alloc - size, f);
                size += n;
                if (n == 0)
                        break;
        }
        if (ferror(f)) {
                fclose(f);
                return -EIO;
        }
        fclose(f);
        if (!buf)
                buf = strdup("");
        if (!buf)
                return -ENOMEM;
        buf[size] = 0;
        *ret = TAKE_PTR(buf);
        *ret_size = size;
        return 0;
}

int comps_add_file(Comps *c, const char *path, const char *repo_id) {
        _cleanup_free_ char *data = NULL;
        xmlDoc *doc;
        xmlNode *root;
        size_t size;
        int r;

        r = read_decompressed(path, COMPS_MAX, &data, &size);
        if (r < 0)
                return log_error_errno(r == -EFBIG ? -EBADMSG : r, "repository '%s': cannot read its comps '%s': %m",
                                       repo_id, path);
        doc = xmlReadMemory(data, (int) size, path, NULL, XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
        if (!doc)
                return log_error_errno(-EBADMSG, "repository '%s': its comps '%s' is not XML", repo_id, path);
        root = xmlDocGetRootElement(doc);
        if (!root || !node_is(root, "comps")) {
                xmlFreeDoc(doc);
                return log_error_errno(-EBADMSG, "repository '%s': '%s' is not comps XML (no <comps>)", repo_id,
                                       path);
        }
        r = 0;
        for (xmlNode *n = root->children; n && r >= 0; n = n->next)
                if (node_is(n, "group") || node_is(n, "environment"))
                        r = add_item(c, n, node_is(n, "environment"));
        xmlFreeDoc(doc);
        if (r == -EBADMSG)
                return log_error_errno(r, "repository '%s': comps '%s' has a group or environment without an id",
                                       repo_id, path);
        if (r < 0)
                return log_oom();
        return 0;
}

/* dnf's matching: an exact id or name wins; else a case-insensitive glob
 * over ids and names. */
static size_t comps_match(const Comps *c, const char *pattern, bool environments_only, const CompsGroup **found,
                          size_t max) {
        size_t n = 0;

        for (int pass = 0; pass < 2 && n == 0; pass++)
                for (size_t i = 0; i < c->n_items && n < max; i++) {
                        const CompsGroup *g = &c->items[i];

                        if (environments_only && !g->environment)
                                continue;
                        if (pass == 0 ? (streq(g->id, pattern) || streq_ptr(g->name, pattern))
                                      : (fnmatch(pattern, g->id, FNM_CASEFOLD) == 0 ||
                                         (g->name && fnmatch(pattern, g->name, FNM_CASEFOLD) == 0)))
                                found[n++] = g;
                }
        return n;
}

static int expand_group(const CompsGroup *g, unsigned types, CompsExpansion *e) {
        if (!strv_contains(e->groups, g->id) && strv_extend(&e->groups, g->id) < 0)
                return -ENOMEM;
        for (size_t i = 0; i < g->n_packages; i++) {
                const CompsPackage *p = &g->packages[i];
                _cleanup_free_ char *entry = NULL;

                if (!(p->type & types))
                        continue;
                entry = p->requires ? strdup_printf("(%s if %s)", p->name, p->requires) : strdup(p->name);
                if (!entry)
                        return -ENOMEM;
                if (!strv_contains(e->packages, entry) && strv_extend(&e->packages, entry) < 0)
                        return -ENOMEM;
        }
        return 0;
}

int comps_expand(const Comps *c, const char *spec, unsigned types, CompsExpansion *ret) {
        _cleanup_(comps_expansion_release) CompsExpansion e = {};
        bool env_only = spec[0] == '^';
        const CompsGroup *found[256];
        size_t n;
        int r;

        n = comps_match(c, env_only ? spec + 1 : spec, env_only, found, ELEMENTSOF(found));
        if (n == 0)
                return -ENOENT;
        e.groups = calloc(1, sizeof(char *));
        e.packages = calloc(1, sizeof(char *));
        if (!e.groups || !e.packages)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                if (!found[i]->environment) {
                        r = expand_group(found[i], types, &e);
                        if (r < 0)
                                return r;
                        continue;
                }
                if (!strv_contains(e.groups, found[i]->id) && strv_extend(&e.groups, found[i]->id) < 0)
                        return -ENOMEM;
                for (char **id = found[i]->groups; id && *id; id++) {
                        const CompsGroup *g = comps_find((Comps *) c, *id, false);

                        /* dnf skips a group its comps do not have */
                        if (!g)
                                continue;
                        r = expand_group(g, types, &e);
                        if (r < 0)
                                return r;
                }
        }
        strv_sort_unique(e.packages);
        *ret = e;
        e = (CompsExpansion) {};
        return 0;
}
