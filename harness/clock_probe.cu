/* clock_probe.cu: see clock_probe.h. */
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <vector>

#include "bench_check.h"
#include "clock_probe.h"

/* SM ids below this are recorded (H100: 132 SMs; ids are dense from 0). */
#define CLOCK_PROBE_MAX_SM 512

struct clock_stamp {
    unsigned long long cycles, ns;
    unsigned tag, pad;
};

struct clock_probe {
    clock_stamp *d_stamps; /* [2][CLOCK_PROBE_MAX_SM] */
    std::vector<clock_stamp> h;
    int blocks;
};

/* One thread a block: every SM that runs a block overwrites its own slot (blocks on the
 * same SM write nearly the same values; the last one wins). */
__global__ void clock_stamp_kernel(clock_stamp *slots, unsigned tag) {
    unsigned smid;
    unsigned long long ns;
    asm volatile("mov.u32 %0, %%smid;" : "=r"(smid));
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(ns));
    const unsigned long long cyc = clock64();
    if (smid < CLOCK_PROBE_MAX_SM) slots[smid] = clock_stamp{cyc, ns, tag, 0};
}

extern "C" clock_probe_t *clock_probe_create(void) {
    int dev = 0, sms = 0;
    if (cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess) {
        bench_set_error(__FILE__, __LINE__, "clock probe: no device");
        return nullptr;
    }
    clock_probe_t *p = new (std::nothrow) clock_probe_t();
    if (!p) return nullptr;
    const size_t bytes = 2 * CLOCK_PROBE_MAX_SM * sizeof(clock_stamp);
    if (cudaMalloc((void **)&p->d_stamps, bytes) != cudaSuccess ||
        cudaMemset(p->d_stamps, 0xff, bytes) != cudaSuccess) { /* tag ~0: never a sample's */
        (void)cudaGetLastError();
        bench_set_error(__FILE__, __LINE__, "clock probe: %zu bytes of device memory", bytes);
        cudaFree(p->d_stamps);
        delete p;
        return nullptr;
    }
    p->h.resize(2 * CLOCK_PROBE_MAX_SM);
    p->blocks = 2 * sms; /* twice the SMs, so that every idle SM likely gets one */
    return p;
}

extern "C" void clock_probe_destroy(clock_probe_t *p) {
    if (!p) return;
    cudaFree(p->d_stamps);
    delete p;
}

extern "C" int clock_probe_stamp(clock_probe_t *p, int which, unsigned tag, cudaStream_t st) {
    clock_stamp_kernel<<<p->blocks, 32, 0, st>>>(p->d_stamps + which * CLOCK_PROBE_MAX_SM, tag);
    CUDA_CHECK(cudaGetLastError());
    return 0;
}

extern "C" double clock_probe_mhz(clock_probe_t *p, unsigned tag, cudaStream_t st) {
    if (cudaMemcpyAsync(p->h.data(), p->d_stamps, p->h.size() * sizeof(clock_stamp),
                        cudaMemcpyDeviceToHost, st) != cudaSuccess ||
        cudaStreamSynchronize(st) != cudaSuccess) {
        (void)cudaGetLastError();
        return NAN;
    }
    std::vector<double> mhz;
    for (int s = 0; s < CLOCK_PROBE_MAX_SM; s++) {
        const clock_stamp &a = p->h[s], &b = p->h[CLOCK_PROBE_MAX_SM + s];
        if (a.tag != tag || b.tag != tag || b.ns <= a.ns || b.cycles <= a.cycles) continue;
        mhz.push_back((double)(b.cycles - a.cycles) * 1e3 / (double)(b.ns - a.ns));
    }
    if (mhz.empty()) return NAN;
    std::nth_element(mhz.begin(), mhz.begin() + mhz.size() / 2, mhz.end());
    return mhz[mhz.size() / 2];
}
