/* stop_signal.h: how a sweep is asked to stop.  SIGINT, SIGTERM and SIGHUP set a flag that
 * the sweep reads between points (and the CPU backend between samples); a third signal
 * removes the results file's temp file and exits 1 at once. */
#ifndef CHELA_STOP_SIGNAL_H
#define CHELA_STOP_SIGNAL_H

/* Installs the handlers (kept until exit); temp_path: the file to remove on a third
 * signal, or NULL. */
void stop_signals_install(const char *temp_path);
/* The temp file is gone (renamed or removed): a third signal removes nothing. */
void stop_signals_forget_temp(void);
/* 1 once a stop signal has arrived. */
int stop_requested(void);

#endif
