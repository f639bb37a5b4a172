/* seqparse.h: the --seq grammar.
 *   list  := item (',' item)*
 *   item  := n | n '..' n | n '..' n ':' n
 *   n     := digits ['k' | 'K']          (k = 1024)
 * 'a..b' doubles from a while <= b (1k..64k: the 7 powers of two); 'a..b:s' steps by s.
 * Values must be in 1..SEQ_MAX_T; duplicates are dropped, order is kept. */
#ifndef CHELA_SEQPARSE_H
#define CHELA_SEQPARSE_H

#include <stddef.h>

#define SEQ_MAX_POINTS 256
#define SEQ_MAX_T (1 << 26) /* 64M tokens: far beyond any GPU memory, still an int */

/* Returns the number of lengths written to out (> 0), or -1 with a one-line
 * message in err naming the problem. */
int seq_parse(const char *spec, int *out, int max_out, char *err, size_t err_len);

#endif
