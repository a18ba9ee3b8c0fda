/* SPDX-License-Identifier: MIT */
/* env-file.c: systemd's EnvironmentFile= syntax, and reading the files. */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "env-file.h"
#include "env-files.h"
#include "util.h"
#include "unit.h"

/* Parses len bytes of text into x, a fresh list when x->index is NULL. */
static int parse_into(EnvList *x, const char *text, size_t len, EnvFileSkipped skipped, void *userdata,
                      unsigned *ret_line) {
        if (!x->index)
                ck_assert_int_eq(env_list_init(x), 0);
        int r = env_file_parse(text, len, x, skipped, userdata, ret_line);
        ck_assert_uint_eq(x->n, strv_length(x->l));
        return r;
}

/* Parses text (to its terminating NUL) into a fresh list, and returns its
 * entries (NULL for none). */
static char **parse(const char *text, int *ret_r, unsigned *ret_line) {
        EnvList x = {};
        unsigned line = 0;
        *ret_r = parse_into(&x, text, strlen(text), NULL, NULL, &line);
        if (ret_line)
                *ret_line = line;
        char **l = TAKE_PTR(x.l);
        env_list_done(&x);
        return l;
}

/* Asserts that text parses to exactly the entries of want. */
static void parses_to(const char *text, const char *const *want) {
        int r;
        char **l = parse(text, &r, NULL);
        ck_assert_int_eq(r, 0);
        size_t i = 0;
        for (; want[i]; i++) {
                ck_assert_msg(l && l[i], "entry %zu missing: want \"%s\"", i, want[i]);
                ck_assert_str_eq(l[i], want[i]);
        }
        ck_assert_msg(!l || !l[i], "one entry more than wanted: \"%s\"", l[i]);
        strv_free(l);
}

#define PARSES_TO(text, ...) parses_to(text, (const char *const[]) { __VA_ARGS__, NULL })

/* The cases of systemd's own src/test/test-env-file.c (v252), each with
 * what load_env_file() makes of it. */
START_TEST(test_systemd_cases) {
        /* Later entries win, in the place of the first; backslash-newline
         * joins lines; blanks after the value go, an escaped one stays. */
        PARSES_TO("a=a\n"
                  "a=b\n"
                  "a=b\n"
                  "a=a\n"
                  "b=b\\\n"
                  "c\n"
                  "d= d\\\n"
                  "e  \\\n"
                  "f  \n"
                  "g=g\\ \n"
                  "h= ąęół\\ śćńźżµ \n"
                  "i=i\\",
                  "a=a", "b=bc", "d=de  f", "g=g ", "h=ąęół śćńźżµ", "i=i");
        PARSES_TO("a=a\\\n", "a=a");
        /* Comments continue with a backslash too; a line with no '=' is
         * none, nor is one of an invalid name. */
        int r;
        char **l = parse("#SPAMD_ARGS=\"-d --socketpath=/var/lib/bulwark/spamd \\\n"
                         "#--nouser-config                                     \\\n"
                         "normal=line                                          \\\n"
                         ";normal=ignored                                      \\\n"
                         "normal_ignored                                       \\\n"
                         "normal ignored                                       \\\n",
                         &r, NULL);
        ck_assert_int_eq(r, 0);
        ck_assert_ptr_null(l);
        PARSES_TO("# Generated\n"
                  "\n"
                  "HWMON_MODULES=\"coretemp f71882fg\"\n"
                  "\n"
                  "# For compatibility reasons\n"
                  "\n"
                  "MODULE_0=coretemp\n"
                  "MODULE_1=f71882fg",
                  "HWMON_MODULES=coretemp f71882fg", "MODULE_0=coretemp", "MODULE_1=f71882fg");
        PARSES_TO("a=\nb=", "a=", "b=");
        /* Outside quotes a backslash keeps the next character as it is;
         * in single quotes nothing is special; in double quotes it escapes
         * " \ ` $ and a newline, and stays before anything else. */
        PARSES_TO("a=\\ \\n \\t \\x \\y \\' \n"
                  "b= \\$'                  \n"
                  "c= ' \\n\\t\\$\\`\\\\\n"
                  "'   \n"
                  "d= \" \\n\\t\\$\\`\\\\\n"
                  "\"   \n",
                  "a= n t x y '", "b=$'", "c= \\n\\t\\$\\`\\\\\n", "d= \\n\\t$`\\\n");
}
END_TEST

START_TEST(test_quotes_and_blanks) {
        /* Quoted parts and unquoted ones after them join; a quote is one
         * only at the value's start or right after another. */
        PARSES_TO("A=\"x y\"'z'\n", "A=x yz");
        PARSES_TO("A=\"x y\"z 'w'\n", "A=x yz 'w'");
        PARSES_TO("  KEY  =  value with  blanks  \n", "KEY=value with  blanks");
        PARSES_TO("A=\"  kept  \"\n", "A=  kept  ");
        /* An unterminated quote runs to the end of the text. */
        PARSES_TO("A=\"open\nB=1\n", "A=open\nB=1\n");
        /* '=' in the value, '#' after the start of one. */
        PARSES_TO("URL=postgres://u:p@h/db?x=1#frag\n", "URL=postgres://u:p@h/db?x=1#frag");
        /* A key with blanks inside is no valid name. */
        PARSES_TO("A B=1\nC=2\n", "C=2");
}
END_TEST

START_TEST(test_line_ends) {
        /* \r ends a line as \n does (a file written on Windows). */
        PARSES_TO("A=1\r\nB=2\r\n", "A=1", "B=2");
        PARSES_TO("A=1\rB=2", "A=1", "B=2");
        /* ... but after a backslash in double quotes it stays, with it. */
        PARSES_TO("A=\"x\\\ry\"\n", "A=x\\\ry");
}
END_TEST

static void record_skipped(const char *key, unsigned line, const char *why, void *userdata) {
        char *buf = userdata;
        size_t k = strlen(buf);
        snprintf(buf + k, 256 - k, "%s@%u;", key, line);
}

START_TEST(test_invalid_names_skipped) {
        char skipped[256] = "";
        EnvList x = {};
        unsigned line = 0;
        const char *text = "1A=x\nOK_1=y\n\nexport B=z\n=v\nA-B=w\n_=u\n";
        ck_assert_int_eq(parse_into(&x, text, strlen(text), record_skipped, skipped, &line), 0);
        ck_assert_uint_eq(x.n, 2);
        char **l = x.l;
        ck_assert_str_eq(l[0], "OK_1=y");
        ck_assert_str_eq(l[1], "_=u");
        /* Each with the line it is on. A line that starts with '=' is a
         * key with no '=' after it: no assignment, dropped silently. */
        ck_assert_str_eq(skipped, "1A@1;export B@4;A-B@6;");
        env_list_done(&x);
}
END_TEST

START_TEST(test_not_utf8) {
        int r;
        unsigned line;
        char **l = parse("A=1\nB=\xff\n", &r, &line);
        ck_assert_int_eq(r, -EILSEQ);
        ck_assert_uint_eq(line, 2);
        strv_free(l);
        l = parse("A=1\n\nK\xc3=1\n", &r, &line);
        ck_assert_int_eq(r, -EILSEQ);
        ck_assert_uint_eq(line, 3);
        strv_free(l);
        /* Valid multi-byte text is fine. */
        PARSES_TO("GREETING=grüß dich\n", "GREETING=grüß dich");
}
END_TEST

/* systemd 252's load_env_file() reads the file with read_full_file() and
 * no size to return, which refuses a NUL anywhere in it (-EBADMSG): the
 * unit does not start, and "-" skips the whole file. */
START_TEST(test_nul_refused) {
        static const struct {
                const char *text;
                size_t len;
                unsigned line;
        } cases[] = {
#define CASE(text, line) { text, sizeof text - 1, line }
                CASE("A=1\nB=2\0C=3\n", 2),
                CASE("A=1\n\0", 2),
                CASE("\0A=1\n", 1),
                /* A line the comment before it continues. */
                CASE("# a comment \\\n\0\nA=1\n", 2),
                CASE("A=\"x\ny\0\"\n", 2),
#undef CASE
        };
        for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
                EnvList x = {};
                unsigned line = 0;
                ck_assert_int_eq(parse_into(&x, cases[i].text, cases[i].len, NULL, NULL, &line), -EBADMSG);
                ck_assert_uint_eq(line, cases[i].line);
                ck_assert_uint_eq(x.n, 0);
                env_list_done(&x);
        }
}
END_TEST

START_TEST(test_adds_to_a_list) {
        /* A second text replaces the first's entries in place. */
        EnvList x = {};
        unsigned line;
        ck_assert_int_eq(parse_into(&x, "A=1\nB=2\n", 8, NULL, NULL, &line), 0);
        ck_assert_int_eq(parse_into(&x, "B=3\nC=4\n", 8, NULL, NULL, &line), 0);
        ck_assert_uint_eq(x.n, 3);
        char **l = x.l;
        ck_assert_str_eq(l[0], "A=1");
        ck_assert_str_eq(l[1], "B=3");
        ck_assert_str_eq(l[2], "C=4");
        env_list_done(&x);
}
END_TEST

/* ---- files ---- */

static char dir[] = "/tmp/test-env-file.XXXXXX";

static void setup(void) {
        strcpy(dir, "/tmp/test-env-file.XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        ck_assert_int_eq(system(cmd), 0);
}

static char *path_of(const char *name) {
        char *p;
        ck_assert_int_ge(asprintf(&p, "%s/%s", dir, name), 0);
        return p;
}

static char *write_file(const char *name, const char *text) {
        char *p = path_of(name);
        FILE *f = fopen(p, "w");
        ck_assert_ptr_nonnull(f);
        fputs(text, f);
        ck_assert_int_eq(fclose(f), 0);
        return p;
}

/* Reads specs; returns the result, the list in *ret (NULL on failure). */
static int read_specs(char *const *specs, char ***ret, char **ret_failed, unsigned *ret_line) {
        char *failed = (char *) "poison";
        unsigned line = 99;
        char **l = NULL;
        int r = env_files_read(specs, &l, &failed, &line);
        if (r == 0) {
                ck_assert_ptr_nonnull(l);
                ck_assert_ptr_null(failed);
        } else
                ck_assert_ptr_nonnull(failed);
        *ret = l;
        *ret_failed = failed;
        if (ret_line)
                *ret_line = line;
        return r;
}

START_TEST(test_files_in_order) {
        _cleanup_free_ char *a = write_file("a.conf", "A=1\nB=1\n"), *b = write_file("b.conf", "B=2\nC=2\n");
        char *specs[] = { a, b, NULL };
        char **l, *failed;
        ck_assert_int_eq(read_specs(specs, &l, &failed, NULL), 0);
        ck_assert_uint_eq(strv_length(l), 3);
        ck_assert_str_eq(l[0], "A=1");
        ck_assert_str_eq(l[1], "B=2");
        ck_assert_str_eq(l[2], "C=2");
        strv_free(l);
}
END_TEST

START_TEST(test_missing_file) {
        _cleanup_free_ char *missing = path_of("missing.conf");
        _cleanup_free_ char *optional = strjoin2("-", missing);
        _cleanup_free_ char *a = write_file("a.conf", "A=1\n");
        char **l, *failed;

        /* Required: the start fails, and names the file. */
        char *specs[] = { a, missing, NULL };
        ck_assert_int_eq(read_specs(specs, &l, &failed, NULL), -ENOENT);
        ck_assert_ptr_null(l);
        ck_assert_str_eq(failed, missing);
        free(failed);

        /* Optional: skipped. */
        char *specs2[] = { a, optional, NULL };
        ck_assert_int_eq(read_specs(specs2, &l, &failed, NULL), 0);
        ck_assert_uint_eq(strv_length(l), 1);
        strv_free(l);

        /* Only optional and missing: an empty list, not NULL. */
        char *specs3[] = { optional, NULL };
        ck_assert_int_eq(read_specs(specs3, &l, &failed, NULL), 0);
        ck_assert_ptr_null(l[0]);
        strv_free(l);
}
END_TEST

/* After a file "A=1" (a), the file bad fails the read with error at line;
 * optional ("-bad"), it adds nothing, not even its lines before that. */
static void check_bad_file(char *a, char *bad, int error, unsigned at_line) {
        _cleanup_free_ char *optional = strjoin2("-", bad);
        char **l, *failed;
        unsigned line;

        char *specs[] = { a, bad, NULL };
        ck_assert_int_eq(read_specs(specs, &l, &failed, &line), error);
        ck_assert_str_eq(failed, bad);
        ck_assert_uint_eq(line, at_line);
        free(failed);

        char *specs2[] = { a, optional, NULL };
        ck_assert_int_eq(read_specs(specs2, &l, &failed, NULL), 0);
        ck_assert_uint_eq(strv_length(l), 1);
        ck_assert_str_eq(l[0], "A=1");
        strv_free(l);
}

START_TEST(test_bad_file_required_and_optional) {
        _cleanup_free_ char *a = write_file("a.conf", "A=1\n"), *bad = write_file("bad.conf", "B=2\nC=\xfe\n");
        check_bad_file(a, bad, -EILSEQ, 2);
}
END_TEST

START_TEST(test_file_with_nul) {
        _cleanup_free_ char *a = write_file("a.conf", "A=1\n"), *nul = path_of("nul.conf");
        FILE *f = fopen(nul, "w");
        ck_assert_ptr_nonnull(f);
        ck_assert_uint_eq(fwrite("B=2\n\0C=3\n", 1, 9, f), 9);
        ck_assert_int_eq(fclose(f), 0);
        /* The whole file fails, as systemd refuses it; "-" skips it, B=2
         * before the NUL too. */
        check_bad_file(a, nul, -EBADMSG, 2);
}
END_TEST

START_TEST(test_glob) {
        _cleanup_free_ char *b = write_file("20-b.conf", "B=2\nX=b\n"), *a = write_file("10-a.conf", "A=1\nX=a\n");
        _cleanup_free_ char *pattern = path_of("*.conf"), *none = path_of("*.none");
        char **l, *failed;
        (void) a; /* kept for their cleanup: clang's -Wunused-variable */
        (void) b;
        /* Sorted: 20-b's X wins. */
        char *specs[] = { pattern, NULL };
        ck_assert_int_eq(read_specs(specs, &l, &failed, NULL), 0);
        ck_assert_uint_eq(strv_length(l), 3);
        ck_assert_str_eq(l[0], "A=1");
        ck_assert_str_eq(l[1], "X=b");
        ck_assert_str_eq(l[2], "B=2");
        strv_free(l);
        /* A glob that matches nothing is a missing file. */
        char *specs2[] = { none, NULL };
        ck_assert_int_eq(read_specs(specs2, &l, &failed, NULL), -ENOENT);
        ck_assert_str_eq(failed, none);
        free(failed);
}
END_TEST

START_TEST(test_not_a_regular_file) {
        _cleanup_free_ char *fifo = path_of("fifo");
        ck_assert_int_eq(mkfifo(fifo, 0600), 0);
        char **l, *failed;
        /* A FIFO without a writer: refused at once, not waited on. */
        char *specs[] = { fifo, NULL };
        ck_assert_int_eq(read_specs(specs, &l, &failed, NULL), -EBADFD);
        free(failed);
        char *specs2[] = { dir, NULL };
        ck_assert_int_eq(read_specs(specs2, &l, &failed, NULL), -EISDIR);
        free(failed);
}
END_TEST

START_TEST(test_handoffs_own_variables_skipped) {
        _cleanup_free_ char *a =
                write_file("a.conf", "LISTEN_FDS=9\nA=1\nNOTIFY_SOCKET=/x\nHANDOFF_ENVIRONMENT_KEYS=:Z\nLISTEN_FDSX=1\n");
        char *specs[] = { a, NULL };
        char **l, *failed;
        ck_assert_int_eq(read_specs(specs, &l, &failed, NULL), 0);
        ck_assert_uint_eq(strv_length(l), 2);
        ck_assert_str_eq(l[0], "A=1");
        ck_assert_str_eq(l[1], "LISTEN_FDSX=1");
        strv_free(l);
}
END_TEST

START_TEST(test_names) {
        char *l[] = { (char *) "A=1", (char *) "LONG_NAME=x=y", (char *) "E=", NULL };
        _cleanup_free_ char *names = env_file_names(l);
        ck_assert_str_eq(names, ":A:LONG_NAME:E");
        ck_assert(env_file_names_valid(names));
        _cleanup_free_ char *none = env_file_names(NULL);
        ck_assert_str_eq(none, "");
        ck_assert(env_file_names_valid(none));

        ck_assert(!env_file_names_valid("A"));
        ck_assert(!env_file_names_valid(":"));
        ck_assert(!env_file_names_valid(":A:"));
        ck_assert(!env_file_names_valid(":A::B"));
        ck_assert(!env_file_names_valid(":1A"));
        ck_assert(!env_file_names_valid(":A=1"));
        ck_assert(!env_file_names_valid(":A B"));
}
END_TEST

START_TEST(test_devices_and_proc) {
        char **l, *failed;
        /* /dev/null is an empty file, as systemd has it. */
        char *specs[] = { (char *) "/dev/null", NULL };
        ck_assert_int_eq(read_specs(specs, &l, &failed, NULL), 0);
        ck_assert_ptr_null(l[0]);
        strv_free(l);

        /* A file that says it has size 0 is read all the same: our own
         * environment, whose NULs systemd refuses as any other (the line
         * of the first one, from the same bytes). */
        FILE *f = fopen("/proc/self/environ", "r");
        ck_assert_ptr_nonnull(f);
        static char text[1 << 20];
        size_t k = fread(text, 1, sizeof text - 1, f);
        fclose(f);
        ck_assert_uint_gt(k, 0);
        unsigned want_line = 1, line;
        for (size_t i = 0; text[i]; i++)
                want_line += text[i] == '\n';
        char *specs2[] = { (char *) "/proc/self/environ", NULL };
        ck_assert_int_eq(read_specs(specs2, &l, &failed, &line), -EBADMSG);
        ck_assert_str_eq(failed, "/proc/self/environ");
        ck_assert_uint_eq(line, want_line);
        free(failed);
}
END_TEST

START_TEST(test_limits) {
        char **l, *failed;
        unsigned line;

        /* Size: ENV_FILE_MAX_SIZE is read; one byte more is refused, also
         * from a device that never ends. */
        _cleanup_free_ char *big = path_of("big.conf");
        FILE *f = fopen(big, "w");
        ck_assert_ptr_nonnull(f);
        fputs("A=1\n", f);
        for (size_t i = 4; i < ENV_FILE_MAX_SIZE; i++)
                fputc(i + 1 == ENV_FILE_MAX_SIZE ? '\n' : '#', f);
        ck_assert_int_eq(fclose(f), 0);
        char *specs[] = { big, NULL };
        ck_assert_int_eq(read_specs(specs, &l, &failed, NULL), 0);
        ck_assert_uint_eq(strv_length(l), 1);
        strv_free(l);
        f = fopen(big, "a");
        ck_assert_ptr_nonnull(f);
        fputc('\n', f);
        ck_assert_int_eq(fclose(f), 0);
        ck_assert_int_eq(read_specs(specs, &l, &failed, NULL), -EFBIG);
        free(failed);
        char *zero[] = { (char *) "/dev/zero", NULL };
        ck_assert_int_eq(read_specs(zero, &l, &failed, NULL), -EFBIG);
        free(failed);

        /* Entries: ENV_FILE_MAX_ENTRIES, then one more refused, with its
         * line; also across two files. */
        _cleanup_free_ char *many = path_of("many.conf"), *more = write_file("more.conf", "A=1\nB1=2\n");
        f = fopen(many, "w");
        ck_assert_ptr_nonnull(f);
        for (int i = 0; i < ENV_FILE_MAX_ENTRIES; i++)
                fprintf(f, "V%d=%d\n", i, i);
        ck_assert_int_eq(fclose(f), 0);
        char *specs2[] = { many, NULL };
        ck_assert_int_eq(read_specs(specs2, &l, &failed, NULL), 0);
        ck_assert_uint_eq(strv_length(l), ENV_FILE_MAX_ENTRIES);
        strv_free(l);
        char *specs3[] = { many, more, NULL };
        ck_assert_int_eq(read_specs(specs3, &l, &failed, NULL), -E2BIG);
        ck_assert_str_eq(failed, more);
        free(failed);
        f = fopen(many, "a");
        ck_assert_ptr_nonnull(f);
        fputs("V1=again\nEXTRA=1\n", f);
        ck_assert_int_eq(fclose(f), 0);
        ck_assert_int_eq(read_specs(specs2, &l, &failed, &line), -E2BIG);
        ck_assert_uint_eq(line, ENV_FILE_MAX_ENTRIES + 2);
        free(failed);

        /* An optional file that would go over is skipped whole: none of
         * its variables, not even those that fit. */
        _cleanup_free_ char *most = path_of("most.conf"), *over = write_file("over.conf", "W0=0\nW1=1\nW2=2\n");
        _cleanup_free_ char *optional = strjoin2("-", over);
        f = fopen(most, "w");
        ck_assert_ptr_nonnull(f);
        for (int i = 0; i < ENV_FILE_MAX_ENTRIES - 2; i++)
                fprintf(f, "V%d=%d\n", i, i);
        ck_assert_int_eq(fclose(f), 0);
        char *specs4[] = { most, optional, NULL };
        ck_assert_int_eq(read_specs(specs4, &l, &failed, NULL), 0);
        ck_assert_uint_eq(strv_length(l), ENV_FILE_MAX_ENTRIES - 2);
        for (size_t i = 0; l[i]; i++)
                ck_assert_msg(l[i][0] != 'W', "%s from the skipped file", l[i]);
        strv_free(l);

        /* The size is of all files together. */
        _cleanup_free_ char *half = path_of("half.conf");
        f = fopen(half, "w");
        ck_assert_ptr_nonnull(f);
        for (size_t i = 0; i < ENV_FILE_MAX_SIZE / 2 + 1; i++)
                fputc('#', f);
        ck_assert_int_eq(fclose(f), 0);
        char *specs5[] = { half, half, NULL };
        ck_assert_int_eq(read_specs(specs5, &l, &failed, NULL), -EFBIG);
        ck_assert_str_eq(failed, half);
        free(failed);
}
END_TEST

START_TEST(test_glob_skips_dot_entries) {
        _cleanup_free_ char *hidden = write_file(".env", "H=1\n"), *pattern = path_of(".*");
        char *specs[] = { pattern, NULL };
        (void) hidden;
        char **l, *failed;
        ck_assert_int_eq(read_specs(specs, &l, &failed, NULL), 0);
        ck_assert_uint_eq(strv_length(l), 1);
        ck_assert_str_eq(l[0], "H=1");
        strv_free(l);
        /* Only . and .. match: that is no match, as for systemd. */
        _cleanup_free_ char *empty = path_of("empty"), *dots = path_of("empty/.*");
        ck_assert_int_eq(mkdir(empty, 0700), 0);
        char *specs2[] = { dots, NULL };
        ck_assert_int_eq(read_specs(specs2, &l, &failed, NULL), -ENOENT);
        free(failed);
}
END_TEST

static Suite *env_file_suite(void) {
        Suite *s = suite_create("env-file");
        TCase *tc = tcase_create("parse");
        tcase_add_test(tc, test_systemd_cases);
        tcase_add_test(tc, test_quotes_and_blanks);
        tcase_add_test(tc, test_line_ends);
        tcase_add_test(tc, test_invalid_names_skipped);
        tcase_add_test(tc, test_not_utf8);
        tcase_add_test(tc, test_nul_refused);
        tcase_add_test(tc, test_adds_to_a_list);
        tcase_add_test(tc, test_names);
        suite_add_tcase(s, tc);
        tc = tcase_create("files");
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, test_files_in_order);
        tcase_add_test(tc, test_missing_file);
        tcase_add_test(tc, test_bad_file_required_and_optional);
        tcase_add_test(tc, test_file_with_nul);
        tcase_add_test(tc, test_glob);
        tcase_add_test(tc, test_not_a_regular_file);
        tcase_add_test(tc, test_handoffs_own_variables_skipped);
        tcase_add_test(tc, test_devices_and_proc);
        tcase_add_test(tc, test_limits);
        tcase_add_test(tc, test_glob_skips_dot_entries);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return unit_run(env_file_suite());
}
