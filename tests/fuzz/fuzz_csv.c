/* fuzz_csv.c: libFuzzer target for the results reader used by compare: the
 * input is written to a file and read back; it must parse or fail with one line. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "csv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char path[64];
    if (!path[0]) snprintf(path, sizeof path, "/tmp/fuzz_csv_%ld.csv", (long)getpid());
    /* half the inputs get the real header, so the fuzzer reaches the row parser */
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    if (size && (data[0] & 1)) fprintf(f, "%s\n", csv_header());
    fwrite(data, 1, size, f);
    fclose(f);
    csv_row_t *rows = NULL;
    char err[512] = "";
    int n = csv_read(path, &rows, err, sizeof err);
    if (n < -1 || (n == -1 && (!err[0] || strchr(err, '\n')))) abort();
    if (n >= 0) {
        for (int i = 0; i < n; i++)
            if (memchr(rows[i].status, 0, sizeof rows[i].status) == NULL) abort();
    }
    free(rows);
    return 0;
}
