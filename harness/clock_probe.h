/* clock_probe.h: the SM clock while a sample runs, not only as found before the sweep.
 *
 * Why: on the H100 the whole-layer calls (~4 ms each, back to back for about a second) run
 * into the board's software power cap; nvidia-smi showed the SM clock falling from 1980 to
 * 1440-1650 MHz within them, while a stage timed alone for 20 samples stays near 1980
 * (profiles/NOTES.md, session 11).  A time is only comparable with the clock it ran at.
 * How (nvbench's habit): a stamp kernel of one block an SM records clock64() and
 * %globaltimer on each SM it lands on, once before and once after a sample, outside the
 * sample's events; the sample's clock is the median over SMs stamped both times of
 * cycles / nanoseconds. */
#ifndef CHELA_CLOCK_PROBE_H
#define CHELA_CLOCK_PROBE_H

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct clock_probe clock_probe_t;

/* NULL with the error recorded (bench_last_error) if the device memory is not there. */
clock_probe_t *clock_probe_create(void);
void clock_probe_destroy(clock_probe_t *p);
/* Stamps the start (which = 0) or the end (1) of sample `tag` on stream st. */
int clock_probe_stamp(clock_probe_t *p, int which, unsigned tag, cudaStream_t st);
/* After both stamps of sample `tag` (synchronizes st): its SM clock in MHz, NAN if no SM
 * was stamped both times. */
double clock_probe_mhz(clock_probe_t *p, unsigned tag, cudaStream_t st);

#ifdef __cplusplus
}
#endif
#endif
