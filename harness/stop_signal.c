/* stop_signal.c: a sweep's SIGINT / SIGTERM / SIGHUP (stop_signal.h). */
#include "stop_signal.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

/* SIGINT, SIGTERM and SIGHUP end the sweep after the current point, and the rows
 * finished so far land in a valid CSV.  The handlers are installed with sigaction
 * (no SA_RESETHAND) and stay installed until the process exits, so a second signal
 * during the wind-down (closing the profiler, renaming the CSV) changes nothing;
 * before, signal() was reset to SIG_DFL ahead of the close, and a second Ctrl-C
 * killed the process with no CSV and its temp file left behind.  A third signal is
 * a user who wants out now: the handler removes the temp file (unlink and _exit are
 * async-signal-safe) and exits 1. */
static volatile sig_atomic_t g_interrupted = 0;
static const char *volatile g_temp_path = NULL; /* set once the CSV is open */

static void on_stop_signal(int sig) {
    (void)sig;
    if (++g_interrupted >= 3) {
        static const char msg[] = "chela-bench: third signal: stopping now, no CSV written\n";
        const char *tmp = g_temp_path;
        if (tmp) unlink(tmp);
        (void)!write(2, msg, sizeof msg - 1);
        _exit(1);
    }
}

int stop_requested(void) { return g_interrupted != 0; }

void stop_signals_install(const char *temp_path) {
    g_temp_path = temp_path;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART; /* a write or wait in progress finishes, then the loop stops */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
}

void stop_signals_forget_temp(void) { g_temp_path = NULL; }
