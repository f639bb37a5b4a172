/* settings.h: a variant's knobs as data (nvbench's axes).
 *
 * A variant declares its settings in its row of the variant table: name, allowed
 * values, default, one line of help.  Users set one with `--set name=value` and
 * sweep one with `--set name=a,b,c` (one row per combination); `--list` prints them.
 * Every value is an int; "auto" (SETTING_AUTO) means "the variant's planner decides",
 * and a setting may list words instead of integers ("auto|cudnn|flash"): word n of the list
 * is stored as n, read with settings_is(s, "attn", "cudnn") and printed as the word.
 * which is every setting's default, so a run without --set is the tuned default.
 * The variant sees its values through shape_t.set (settings_get) and reports what it
 * resolved them to in the row's `config` column.  Nothing reads the environment. */
#ifndef CHELA_SETTINGS_H
#define CHELA_SETTINGS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SETTING_AUTO (-1)
#define SETTINGS_MAX 12  /* per variant */
#define SETTING_VALUES_MAX 32 /* values one --set may sweep */

typedef struct {
    const char *name;   /* "la_seg": unique across variants unless it means the same */
    const char *values; /* '|'-separated: "auto", integers, ranges "lo..hi": "auto|64..1048576",
                           or words (starting with a letter): "auto|cudnn|flash"; never both */
    const char *help;   /* one line, what auto resolves to included */
} setting_def_t;

typedef struct settings {
    const setting_def_t *def; /* the variant's table (NULL-name terminated), or NULL */
    int n;
    int val[SETTINGS_MAX];
    unsigned user_set; /* bit i: val[i] came from --set */
} settings_t;

/* Number of definitions in a NULL-name-terminated table (0 for NULL). */
int setting_defs_count(const setting_def_t *defs);
/* Parses text ("auto", "8192", "8k") against d's allowed values.  Returns 0, or -1 with a
 * one-line message naming the setting and its allowed values. */
int setting_parse(const setting_def_t *d, const char *text, int *out, char *err, size_t len);
/* The value of `name`, or SETTING_AUTO when s is NULL or does not declare it. */
int settings_get(const struct settings *s, const char *name);
/* 1 when setting `name` of s holds `word` ("auto" for an unset or undeclared one), else 0. */
int settings_is(const struct settings *s, const char *name, const char *word);
/* Value v of setting d as text: "auto", the word it stands for, or the integer. */
void setting_value_text(const setting_def_t *d, int v, char *buf, size_t len);
/* "name=value ..." of the settings the user set (only_user) or of all, "" when none. */
void settings_format(const struct settings *s, int only_user, char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
