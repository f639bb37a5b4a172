/* hbm_counters.c: DRAM bytes per variant run through the CUPTI Range Profiler.
 *
 * Why the Range Profiler: in CUDA 13.0 every target-side cuptiProfiler* session
 * call is deprecated in favour of it, it needs only libcupti (which dlopen()s
 * libnvperf_host/target itself), and its host half (cupti_profiler_host.h)
 * validates metric names offline, which is what the CI test uses.
 *
 * Why a *user* range with *user* replay (not auto range): the harness wants
 * the bytes of one invocation of a variant, i.e. the sum over all its kernels,
 * possibly on several streams.  Auto range makes one range per kernel and
 * synchronizes the context after each launch, which serializes multi-stream
 * variants and can deadlock kernels that wait on each other; the per-kernel
 * values would then have to be summed here.  One user range around the whole
 * invocation gives the sum directly and leaves launches asynchronous.  User
 * range requires user (or application) replay; with our one-pass metric set the
 * first Stop already reports isAllPassSubmitted, so nothing is ever re-run and
 * no checkpoint/restore is needed.  open() refuses a config image that needs
 * more than one pass.  (If user ranges ever misbehave on a driver, the fallback
 * is CUPTI_AutoRange + CUPTI_KernelReplay with maxRangesPerPass >= kernels per
 * invocation, summing the ranges in end(); see profiles/cupti-notes.md.)
 *
 * begin/end both synchronize the device: work still running from before begin
 * must not land in the range, and the range must not close before the last
 * kernel of the variant has finished on every stream.  This is a profiling
 * pass, never a timed one, so the syncs cost nothing that matters.
 *
 * No libcuda link: the CUcontext/CUdevice CUPTI wants come from the driver
 * through cudaGetDriverEntryPointByVersion, so binaries still load (and report
 * "no CUDA device") on machines without a driver. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* dl_iterate_phdr, RTLD_NOLOAD */
#endif
#include "hbm_counters.h"

#include <dlfcn.h>
#include <limits.h>
#include <link.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda.h> /* types only (CUcontext, CUdevice, CUresult); no libcuda link */
#include <cuda_runtime_api.h>
#include <cupti_profiler_host.h> /* needs the empty <string> shim in C: see CMakeLists.txt */
#include <cupti_profiler_target.h>
#include <cupti_range_profiler.h>
#include <cupti_result.h>
#include <cupti_target.h>

#include "bench_check.h"

const char *const HBM_METRICS[HBM_NUM_METRICS] = {
    "dram__bytes_read.sum",   /* bytes */
    "dram__bytes_write.sum",  /* bytes */
    "gpu__time_duration.sum", /* ns    */
};

/* One range per begin/end; a little headroom costs a few KB of image. */
#define HBM_MAX_RANGES 4

enum { RANGE_NONE = 0, RANGE_STARTED = 1, RANGE_PUSHED = 2 };

struct hbm_counters {
    int device;
    CUcontext ctx;
    int profiler_initialized; /* cuptiProfilerInitialize succeeded */
    CUpti_Profiler_Host_Object *host;
    CUpti_RangeProfiler_Object *rp;
    uint8_t *avail;
    size_t avail_size;
    uint8_t *config;
    size_t config_size;
    uint8_t *counter_data;
    size_t counter_data_size;
    int range_state;
    char range_name[256]; /* our copy: the caller's string may not outlive begin() */
};

/* ---- small helpers ------------------------------------------------------ */

static void put_why(char *why, size_t why_len, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static void put_why(char *why, size_t why_len, const char *fmt, ...) {
    if (!why || why_len == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, why_len, fmt, ap);
    va_end(ap);
    for (char *p = why; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
}

/* `why` gets the message just given to bench_set_error, minus its "file:line: ". */
static void why_from_last_error(char *why, size_t why_len) {
    const char *m = bench_last_error();
    const char *p = strstr(m, ": ");
    put_why(why, why_len, "%s", p ? p + 2 : m);
}

static const char *cupti_name(CUptiResult r) {
    const char *s = NULL;
    if (cuptiGetResultString(r, &s) != CUPTI_SUCCESS || !s) s = "unknown CUPTI error";
    return s;
}

/* The CUPTI results that mean "counters can't be read on this machine", each
 * with what the user can do about it.  NULL: an unexpected failure. */
static const char *unavailable_reason(CUptiResult r) {
    switch (r) {
    case CUPTI_ERROR_INSUFFICIENT_PRIVILEGES:
        return "GPU performance counters need admin rights: run as root or set "
               "NVreg_RestrictProfilingToAdminUsers=0 (see README)";
    case CUPTI_ERROR_VIRTUALIZED_DEVICE_INSUFFICIENT_PRIVILEGES:
        return "vGPU: the hypervisor has not enabled profiling for this VM";
    case CUPTI_ERROR_VIRTUALIZED_DEVICE_NOT_SUPPORTED:
        return "GPU counters are not supported on this virtualized GPU";
    case CUPTI_ERROR_MIG_DEVICE_NOT_SUPPORTED:
        return "GPU counters are not supported on a MIG instance: use a GPU with MIG disabled";
    case CUPTI_ERROR_CONFIDENTIAL_COMPUTING_NOT_SUPPORTED:
        return "GPU counters are disabled in confidential-computing mode";
    case CUPTI_ERROR_CMP_DEVICE_NOT_SUPPORTED:
        return "GPU counters are not supported on NVIDIA CMP boards";
    case CUPTI_ERROR_SLI_DEVICE_NOT_SUPPORTED:
        return "GPU counters are not supported with SLI enabled";
    case CUPTI_ERROR_WSL_DEVICE_NOT_SUPPORTED:
        return "GPU counters are not supported under WSL with this driver";
    case CUPTI_ERROR_HARDWARE_BUSY:
        return "GPU counters are busy: another profiler (ncu, nsys, DCGM profiling) holds them";
    case CUPTI_ERROR_MULTIPLE_SUBSCRIBERS_NOT_SUPPORTED:
        return "another CUPTI client is attached to this process (running under nsys/ncu?): "
               "run without it";
    case CUPTI_ERROR_NOT_SUPPORTED:
        return "GPU counters are not supported on this device or configuration";
    case CUPTI_ERROR_INVALID_CHIP_NAME:
        return "this CUPTI does not know the GPU's chip: use a CUDA toolkit at least as new as "
               "the GPU";
    default:
        return NULL;
    }
}

/* Records a failed CUPTI call: HBM_UNAVAILABLE with a reason in `why` for the
 * results above, otherwise -1 via bench_set_error (also copied to `why`). */
static int cupti_fail(const char *file, int line, const char *call, CUptiResult r, char *why,
                      size_t why_len) {
    const char *reason = unavailable_reason(r);
    if (reason) {
        put_why(why, why_len, "%s [%s]", reason, cupti_name(r));
        bench_set_error(file, line, "%s: %s", call, reason);
        return HBM_UNAVAILABLE;
    }
    bench_set_error(file, line, "%s: %s (%d)", call, cupti_name(r), (int)r);
    why_from_last_error(why, why_len);
    return -1;
}

/* In a function with `int rc`, `char *why, size_t why_len` and a `fail:` label. */
#define CUPTI_TRY(call)                                                                            \
    do {                                                                                           \
        CUptiResult r_ = (call);                                                                   \
        if (r_ != CUPTI_SUCCESS) {                                                                 \
            rc = cupti_fail(__FILE__, __LINE__, #call, r_, why, why_len);                          \
            goto fail;                                                                             \
        }                                                                                          \
    } while (0)

/* For begin/end, where every failure is -1: the message says if it was a
 * privilege/busy problem anyway. */
#define CUPTI_CHECK(call)                                                                          \
    do {                                                                                           \
        CUptiResult r_ = (call);                                                                   \
        if (r_ != CUPTI_SUCCESS) {                                                                 \
            const char *reason_ = unavailable_reason(r_);                                          \
            bench_set_error(__FILE__, __LINE__, "%s: %s (%d)%s%s", #call, cupti_name(r_), (int)r_, \
                            reason_ ? ": " : "", reason_ ? reason_ : "");                          \
            return -1;                                                                             \
        }                                                                                          \
    } while (0)

/* ---- libnvperf ---------------------------------------------------------- *
 * libcupti dlopen()s libnvperf_host.so / libnvperf_target.so by bare name and
 * has no RUNPATH of its own, so the lookup uses LD_LIBRARY_PATH, ld.so.cache
 * and the default dirs, not the RUNPATH of our executable.  A CUDA install
 * that isn't in ld.so.conf then fails deep inside CUPTI with an unhelpful
 * error.  So we load them ourselves first, from the directory libcupti was
 * loaded from (they ship side by side), falling back to the normal search;
 * their SONAMEs equal the bare names, so CUPTI's later dlopen() finds the
 * already-loaded objects.  The handles are kept for the life of the process. */

struct find_lib {
    const char *needle;
    char path[PATH_MAX];
};

static int find_lib_cb(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    struct find_lib *f = data;
    if (info->dlpi_name && strstr(info->dlpi_name, f->needle)) {
        snprintf(f->path, sizeof f->path, "%s", info->dlpi_name);
        return 1;
    }
    return 0;
}

static int load_nvperf(const char *lib, char *why, size_t why_len) {
    if (dlopen(lib, RTLD_NOW | RTLD_NOLOAD)) return 0; /* already there (loaded by us or CUPTI) */
    struct find_lib f = {.needle = "/libcupti.so"};
    char path[PATH_MAX + 64];
    if (dl_iterate_phdr(find_lib_cb, &f)) {
        char *slash = strrchr(f.path, '/');
        if (slash) slash[1] = 0;
        snprintf(path, sizeof path, "%s%s", f.path, lib);
        if (dlopen(path, RTLD_NOW | RTLD_GLOBAL)) return 0;
    } else {
        snprintf(path, sizeof path, "(libcupti not found among loaded objects)");
    }
    if (dlopen(lib, RTLD_NOW | RTLD_GLOBAL)) return 0;
    const char *err = dlerror();
    put_why(why, why_len,
            "%s not found (tried %s and the loader path: %s): install CUPTI completely or add "
            "its lib dir to LD_LIBRARY_PATH",
            lib, path, err ? err : "?");
    bench_set_error(__FILE__, __LINE__, "%s not found", lib);
    return HBM_UNAVAILABLE;
}

/* ---- config image (shared by open and the offline check) ---------------- */

/* Adds `names` to the host object, returns a malloc'd config image, its size and
 * pass count.  On a bad metric, says which one (GetMetricProperties per name). */
static int build_config(CUpti_Profiler_Host_Object *host, const char *chip,
                        const char *const *names, size_t n, uint8_t **image, size_t *image_size,
                        size_t *passes, char *why, size_t why_len) {
    int rc = -1;
    uint8_t *img = NULL;
    const char **list = calloc(n ? n : 1, sizeof *list); /* CUPTI wants const char ** */
    if (!list) {
        bench_set_error(__FILE__, __LINE__, "out of host memory");
        why_from_last_error(why, why_len);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        list[i] = names[i];
        CUpti_Profiler_Host_GetMetricProperties_Params mp = {
            .structSize = CUpti_Profiler_Host_GetMetricProperties_Params_STRUCT_SIZE,
            .pHostObject = host,
            .pMetricName = names[i],
        };
        CUptiResult r = cuptiProfilerHostGetMetricProperties(&mp);
        if (r != CUPTI_SUCCESS) {
            bench_set_error(__FILE__, __LINE__, "metric '%s' is not valid for chip %s: %s",
                            names[i], chip, cupti_name(r));
            why_from_last_error(why, why_len);
            goto fail;
        }
    }
    CUpti_Profiler_Host_ConfigAddMetrics_Params add = {
        .structSize = CUpti_Profiler_Host_ConfigAddMetrics_Params_STRUCT_SIZE,
        .pHostObject = host,
        .ppMetricNames = list,
        .numMetrics = n,
    };
    CUptiResult r = cuptiProfilerHostConfigAddMetrics(&add);
    if (r != CUPTI_SUCCESS) {
        /* Names that exist but can't be collected as given, e.g. a counter
         * without its rollup ("dram__bytes_read" instead of ".sum"). */
        char joined[256] = "";
        for (size_t i = 0, used = 0; i < n && used < sizeof joined; i++) {
            int k = snprintf(joined + used, sizeof joined - used, "%s%s", i ? " " : "", names[i]);
            if (k < 0) break;
            used += (size_t)k;
        }
        bench_set_error(__FILE__, __LINE__,
                        "metric set {%s} rejected for chip %s: %s (does every counter have a "
                        "rollup such as .sum?)",
                        joined, chip, cupti_name(r));
        why_from_last_error(why, why_len);
        goto fail;
    }
    CUpti_Profiler_Host_GetConfigImageSize_Params sz = {
        .structSize = CUpti_Profiler_Host_GetConfigImageSize_Params_STRUCT_SIZE,
        .pHostObject = host,
    };
    CUPTI_TRY(cuptiProfilerHostGetConfigImageSize(&sz));
    img = calloc(sz.configImageSize ? sz.configImageSize : 1, 1);
    if (!img) {
        bench_set_error(__FILE__, __LINE__, "out of host memory (config image)");
        why_from_last_error(why, why_len);
        goto fail;
    }
    CUpti_Profiler_Host_GetConfigImage_Params gi = {
        .structSize = CUpti_Profiler_Host_GetConfigImage_Params_STRUCT_SIZE,
        .pHostObject = host,
        .configImageSize = sz.configImageSize,
        .pConfigImage = img,
    };
    CUPTI_TRY(cuptiProfilerHostGetConfigImage(&gi));
    CUpti_Profiler_Host_GetNumOfPasses_Params np = {
        .structSize = CUpti_Profiler_Host_GetNumOfPasses_Params_STRUCT_SIZE,
        .configImageSize = sz.configImageSize,
        .pConfigImage = img,
    };
    CUPTI_TRY(cuptiProfilerHostGetNumOfPasses(&np));
    *image = img;
    *image_size = sz.configImageSize;
    *passes = np.numOfPasses;
    free(list);
    return 0;
fail:
    free(img);
    free(list);
    return rc;
}

/* ---- offline check ------------------------------------------------------ */

int hbm_counters_check_metric_list(const char *chip, const char *const *metrics, size_t num_metrics,
                                   int *num_passes, char *why, size_t why_len) {
    int rc = -1;
    uint8_t *img = NULL;
    size_t img_size = 0, passes = 0;
    CUpti_Profiler_Host_Object *host = NULL;
    if (why && why_len) why[0] = 0;
    if (!chip || !metrics || num_metrics == 0 || !num_passes) {
        bench_set_error(__FILE__, __LINE__, "hbm_counters_check_metric_list: bad arguments");
        why_from_last_error(why, why_len);
        return -1;
    }
    if (load_nvperf("libnvperf_host.so", why, why_len) != 0) return HBM_UNAVAILABLE;

    /* A NULL availability image is accepted offline for chips this CUPTI knows. */
    CUpti_Profiler_Host_Initialize_Params hi = {
        .structSize = CUpti_Profiler_Host_Initialize_Params_STRUCT_SIZE,
        .profilerType = CUPTI_PROFILER_TYPE_RANGE_PROFILER,
        .pChipName = chip,
        .pCounterAvailabilityImage = NULL,
    };
    CUptiResult r = cuptiProfilerHostInitialize(&hi);
    if (r != CUPTI_SUCCESS) {
        /* Offline, an unknown chip is a test failure, not "unavailable". */
        bench_set_error(__FILE__, __LINE__, "chip '%s' rejected by the CUPTI host API: %s (%d)",
                        chip, cupti_name(r), (int)r);
        why_from_last_error(why, why_len);
        return -1;
    }
    host = hi.pHostObject;
    rc = build_config(host, chip, metrics, num_metrics, &img, &img_size, &passes, why, why_len);
    if (rc == HBM_UNAVAILABLE) rc = -1; /* nothing machine-specific can fail here */
    if (rc == 0) *num_passes = (int)passes;
    free(img);
    CUpti_Profiler_Host_Deinitialize_Params hd = {
        .structSize = CUpti_Profiler_Host_Deinitialize_Params_STRUCT_SIZE,
        .pHostObject = host,
    };
    cuptiProfilerHostDeinitialize(&hd);
    return rc;
}

int hbm_counters_check_metrics_offline(const char *chip, int *num_passes, char *why,
                                       size_t why_len) {
    return hbm_counters_check_metric_list(chip, HBM_METRICS, HBM_NUM_METRICS, num_passes, why,
                                          why_len);
}

/* ---- session ------------------------------------------------------------ */

typedef CUresult (*pfn_cuCtxGetCurrent)(CUcontext *);
typedef CUresult (*pfn_cuDeviceGet)(CUdevice *, int);

/* A driver function through the runtime (no -lcuda). */
static int driver_fn(const char *symbol, void *fn_out, size_t fn_size) {
    void *p = NULL;
    enum cudaDriverEntryPointQueryResult q = cudaDriverEntryPointSymbolNotFound;
    cudaError_t e = cudaGetDriverEntryPointByVersion(symbol, &p, 12000, cudaEnableDefault, &q);
    if (e != cudaSuccess || q != cudaDriverEntryPointSuccess || !p)
        BENCH_FAIL("cudaGetDriverEntryPointByVersion(%s): %s, query result %d", symbol,
                   cudaGetErrorName(e), (int)q);
    memcpy(fn_out, &p, fn_size); /* object -> function pointer without a cast warning */
    return 0;
}

/* Why cuptiProfilerDeviceSupported said no, in words. */
static const char *unsupported_reason(const CUpti_Profiler_DeviceSupported_Params *p) {
    if (p->architecture == CUPTI_PROFILER_CONFIGURATION_UNSUPPORTED)
        return "this GPU architecture is not supported by the CUPTI range profiler";
    if (p->vGpu == CUPTI_PROFILER_CONFIGURATION_DISABLED)
        return "vGPU: the hypervisor has not enabled profiling for this VM";
    if (p->vGpu == CUPTI_PROFILER_CONFIGURATION_UNSUPPORTED)
        return "GPU counters are not supported on this virtualized GPU";
    if (p->confidentialCompute == CUPTI_PROFILER_CONFIGURATION_UNSUPPORTED)
        return "GPU counters are disabled in confidential-computing mode";
    if (p->cmp == CUPTI_PROFILER_CONFIGURATION_UNSUPPORTED)
        return "GPU counters are not supported on NVIDIA CMP boards";
    if (p->sli == CUPTI_PROFILER_CONFIGURATION_UNSUPPORTED)
        return "GPU counters are not supported with SLI enabled";
    if (p->wsl == CUPTI_PROFILER_CONFIGURATION_UNSUPPORTED)
        return "GPU counters are not supported under WSL with this driver";
    return "this device/configuration is not supported by the CUPTI range profiler";
}

int hbm_counters_open(int cuda_device, hbm_counters **out, char *why, size_t why_len) {
    int rc = -1;
    hbm_counters *hc = NULL;
    if (why && why_len) why[0] = 0;
    if (!out) {
        bench_set_error(__FILE__, __LINE__, "hbm_counters_open: out is NULL");
        why_from_last_error(why, why_len);
        return -1;
    }
    *out = NULL;

    /* 0. a context: the device's primary context, the one the runtime uses. */
    int ndev = 0;
    cudaError_t ce = cudaGetDeviceCount(&ndev);
    if (ce == cudaErrorNoDevice || ce == cudaErrorInsufficientDriver ||
        (ce == cudaSuccess && ndev == 0)) {
        put_why(why, why_len, "no CUDA device (%s)", ce ? cudaGetErrorName(ce) : "0 devices");
        bench_set_error(__FILE__, __LINE__, "no CUDA device");
        return HBM_UNAVAILABLE;
    }
    if (ce != cudaSuccess || cuda_device < 0 || cuda_device >= ndev) {
        bench_set_error(__FILE__, __LINE__, "hbm_counters_open(device %d): %s, %d device(s)",
                        cuda_device, cudaGetErrorName(ce), ndev);
        why_from_last_error(why, why_len);
        return -1;
    }
    hc = calloc(1, sizeof *hc);
    if (!hc) {
        bench_set_error(__FILE__, __LINE__, "out of host memory");
        why_from_last_error(why, why_len);
        return -1;
    }
    hc->device = cuda_device;
#define CUDA_TRY(call)                                                                             \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess) {                                                                   \
            bench_set_error(__FILE__, __LINE__, "%s: %s (%s)", #call, cudaGetErrorName(e_),        \
                            cudaGetErrorString(e_));                                               \
            why_from_last_error(why, why_len);                                                     \
            rc = -1;                                                                               \
            goto fail;                                                                             \
        }                                                                                          \
    } while (0)
    CUDA_TRY(cudaSetDevice(cuda_device));
    CUDA_TRY(cudaFree(0)); /* creates the primary context now */
#undef CUDA_TRY
    pfn_cuCtxGetCurrent get_ctx = NULL;
    pfn_cuDeviceGet get_dev = NULL;
    if (driver_fn("cuCtxGetCurrent", &get_ctx, sizeof get_ctx) ||
        driver_fn("cuDeviceGet", &get_dev, sizeof get_dev)) {
        why_from_last_error(why, why_len);
        rc = -1;
        goto fail;
    }
    CUdevice cu_dev = 0;
    CUresult cr = get_ctx(&hc->ctx);
    if (cr == CUDA_SUCCESS) cr = get_dev(&cu_dev, cuda_device);
    if (cr != CUDA_SUCCESS || !hc->ctx) {
        bench_set_error(__FILE__, __LINE__, "cuCtxGetCurrent/cuDeviceGet: CUresult %d, ctx %p",
                        (int)cr, (void *)hc->ctx);
        why_from_last_error(why, why_len);
        rc = -1;
        goto fail;
    }

    /* 1. CUPTI profiler, with libnvperf loaded from where libcupti lives. */
    if (load_nvperf("libnvperf_host.so", why, why_len) ||
        load_nvperf("libnvperf_target.so", why, why_len)) {
        rc = HBM_UNAVAILABLE;
        goto fail;
    }
    CUpti_Profiler_Initialize_Params pi = {.structSize =
                                               CUpti_Profiler_Initialize_Params_STRUCT_SIZE};
    CUPTI_TRY(cuptiProfilerInitialize(&pi));
    hc->profiler_initialized = 1;

    /* 2. Can this device be profiled at all (vGPU, CC, CMP, WSL, SLI)? */
    CUpti_Profiler_DeviceSupported_Params ds = {
        .structSize = CUpti_Profiler_DeviceSupported_Params_STRUCT_SIZE,
        .cuDevice = cu_dev,
        .api = CUPTI_PROFILER_RANGE_PROFILING,
    };
    CUPTI_TRY(cuptiProfilerDeviceSupported(&ds));
    if (ds.isSupported != CUPTI_PROFILER_CONFIGURATION_SUPPORTED) {
        const char *reason = unsupported_reason(&ds);
        put_why(why, why_len, "%s", reason);
        bench_set_error(__FILE__, __LINE__, "cuptiProfilerDeviceSupported: %s", reason);
        rc = HBM_UNAVAILABLE;
        goto fail;
    }

    /* 3. chip name, 4. counter availability (first place missing rights show up). */
    CUpti_Device_GetChipName_Params cn = {
        .structSize = CUpti_Device_GetChipName_Params_STRUCT_SIZE,
        .deviceIndex = (size_t)cuda_device,
    };
    CUPTI_TRY(cuptiDeviceGetChipName(&cn));
    CUpti_Profiler_GetCounterAvailability_Params ca = {
        .structSize = CUpti_Profiler_GetCounterAvailability_Params_STRUCT_SIZE,
        .ctx = hc->ctx,
    };
    CUPTI_TRY(cuptiProfilerGetCounterAvailability(&ca));
    hc->avail_size = ca.counterAvailabilityImageSize;
    hc->avail = calloc(hc->avail_size ? hc->avail_size : 1, 1);
    if (!hc->avail) {
        bench_set_error(__FILE__, __LINE__, "out of host memory");
        why_from_last_error(why, why_len);
        rc = -1;
        goto fail;
    }
    ca.pCounterAvailabilityImage = hc->avail;
    CUPTI_TRY(cuptiProfilerGetCounterAvailability(&ca));

    /* 5-8. host object and one-pass config image. */
    CUpti_Profiler_Host_Initialize_Params hi = {
        .structSize = CUpti_Profiler_Host_Initialize_Params_STRUCT_SIZE,
        .profilerType = CUPTI_PROFILER_TYPE_RANGE_PROFILER,
        .pChipName = cn.pChipName,
        .pCounterAvailabilityImage = hc->avail,
    };
    CUPTI_TRY(cuptiProfilerHostInitialize(&hi));
    hc->host = hi.pHostObject;
    size_t passes = 0;
    rc = build_config(hc->host, cn.pChipName, HBM_METRICS, HBM_NUM_METRICS, &hc->config,
                      &hc->config_size, &passes, why, why_len);
    if (rc != 0) goto fail;
    if (passes != 1) {
        bench_set_error(__FILE__, __LINE__,
                        "the HBM metric set needs %zu passes on %s; this wrapper supports 1",
                        passes, cn.pChipName);
        why_from_last_error(why, why_len);
        rc = -1;
        goto fail;
    }

    /* 9. range profiler on the context (can also report missing rights). */
    CUpti_RangeProfiler_Enable_Params en = {
        .structSize = CUpti_RangeProfiler_Enable_Params_STRUCT_SIZE,
        .ctx = hc->ctx,
    };
    CUPTI_TRY(cuptiRangeProfilerEnable(&en));
    hc->rp = en.pRangeProfilerObject;

    /* 10. counter-data image, sized once; initialised in every begin(). */
    const char *names[HBM_NUM_METRICS];
    for (int i = 0; i < HBM_NUM_METRICS; i++) names[i] = HBM_METRICS[i];
    CUpti_RangeProfiler_GetCounterDataSize_Params cds = {
        .structSize = CUpti_RangeProfiler_GetCounterDataSize_Params_STRUCT_SIZE,
        .pRangeProfilerObject = hc->rp,
        .pMetricNames = names,
        .numMetrics = HBM_NUM_METRICS,
        .maxNumOfRanges = HBM_MAX_RANGES,
        .maxNumRangeTreeNodes = HBM_MAX_RANGES,
    };
    CUPTI_TRY(cuptiRangeProfilerGetCounterDataSize(&cds));
    hc->counter_data_size = cds.counterDataSize;
    hc->counter_data = calloc(hc->counter_data_size ? hc->counter_data_size : 1, 1);
    if (!hc->counter_data) {
        bench_set_error(__FILE__, __LINE__, "out of host memory (counter data image)");
        why_from_last_error(why, why_len);
        rc = -1;
        goto fail;
    }
    *out = hc;
    return 0;
fail:
    hbm_counters_close(hc);
    return rc;
}

int hbm_counters_begin(hbm_counters *hc, const char *range_name) {
    if (!hc) BENCH_FAIL("hbm_counters_begin: NULL session");
    if (hc->range_state != RANGE_NONE) BENCH_FAIL("hbm_counters_begin: a range is already open");
    CUDA_CHECK(cudaSetDevice(hc->device));
    CUDA_CHECK(cudaDeviceSynchronize()); /* earlier work must not land in this range */
    snprintf(hc->range_name, sizeof hc->range_name, "%s",
             range_name && range_name[0] ? range_name : "hbm");

    /* Reset the image: each begin/end is a fresh, single-range collection.
     * Zeroed first too, as NVIDIA's GQE wrapper does before re-initialising. */
    memset(hc->counter_data, 0, hc->counter_data_size);
    CUpti_RangeProfiler_CounterDataImage_Initialize_Params ci = {
        .structSize = CUpti_RangeProfiler_CounterDataImage_Initialize_Params_STRUCT_SIZE,
        .pRangeProfilerObject = hc->rp,
        .counterDataSize = hc->counter_data_size,
        .pCounterData = hc->counter_data,
    };
    CUPTI_CHECK(cuptiRangeProfilerCounterDataImageInitialize(&ci));
    CUpti_RangeProfiler_SetConfig_Params sc = {
        .structSize = CUpti_RangeProfiler_SetConfig_Params_STRUCT_SIZE,
        .pRangeProfilerObject = hc->rp,
        .configSize = hc->config_size,
        .pConfig = hc->config,
        .counterDataImageSize = hc->counter_data_size,
        .pCounterDataImage = hc->counter_data,
        .range = CUPTI_UserRange,
        .replayMode = CUPTI_UserReplay,
        .maxRangesPerPass = HBM_MAX_RANGES,
        .numNestingLevels = 1,
        .minNestingLevel = 1,
        .passIndex = 0,
        .targetNestingLevel = 1,
    };
    CUPTI_CHECK(cuptiRangeProfilerSetConfig(&sc));
    CUpti_RangeProfiler_Start_Params st = {
        .structSize = CUpti_RangeProfiler_Start_Params_STRUCT_SIZE,
        .pRangeProfilerObject = hc->rp,
    };
    CUPTI_CHECK(cuptiRangeProfilerStart(&st));
    hc->range_state = RANGE_STARTED;
    CUpti_RangeProfiler_PushRange_Params pr = {
        .structSize = CUpti_RangeProfiler_PushRange_Params_STRUCT_SIZE,
        .pRangeProfilerObject = hc->rp,
        .pRangeName = hc->range_name,
    };
    CUptiResult r = cuptiRangeProfilerPushRange(&pr);
    if (r != CUPTI_SUCCESS) {
        CUpti_RangeProfiler_Stop_Params sp = {
            .structSize = CUpti_RangeProfiler_Stop_Params_STRUCT_SIZE,
            .pRangeProfilerObject = hc->rp,
        };
        cuptiRangeProfilerStop(&sp);
        hc->range_state = RANGE_NONE;
        BENCH_FAIL("cuptiRangeProfilerPushRange: %s (%d)", cupti_name(r), (int)r);
    }
    hc->range_state = RANGE_PUSHED;
    return 0;
}

int hbm_counters_end(hbm_counters *hc, double *read_bytes, double *write_bytes,
                     double *gpu_time_ns) {
    if (read_bytes) *read_bytes = -1;
    if (write_bytes) *write_bytes = -1;
    if (gpu_time_ns) *gpu_time_ns = -1;
    if (!hc) BENCH_FAIL("hbm_counters_end: NULL session");
    if (hc->range_state != RANGE_PUSHED) BENCH_FAIL("hbm_counters_end without hbm_counters_begin");

    /* Every kernel of the range, on every stream, must be done before the pop. */
    cudaError_t se = cudaDeviceSynchronize();
    CUpti_RangeProfiler_PopRange_Params pp = {
        .structSize = CUpti_RangeProfiler_PopRange_Params_STRUCT_SIZE,
        .pRangeProfilerObject = hc->rp,
    };
    CUptiResult pop_r = cuptiRangeProfilerPopRange(&pp);
    CUpti_RangeProfiler_Stop_Params sp = {
        .structSize = CUpti_RangeProfiler_Stop_Params_STRUCT_SIZE,
        .pRangeProfilerObject = hc->rp,
    };
    CUptiResult stop_r = cuptiRangeProfilerStop(&sp); /* always, to leave a clean state */
    hc->range_state = RANGE_NONE;
    if (se != cudaSuccess)
        BENCH_FAIL("cudaDeviceSynchronize in the profiled range: %s (%s)", cudaGetErrorName(se),
                   cudaGetErrorString(se));
    CUPTI_CHECK(pop_r);
    CUPTI_CHECK(stop_r);
    if (!sp.isAllPassSubmitted)
        BENCH_FAIL("CUPTI wants another replay pass (pass %zu), but the metric set was one pass",
                   sp.passIndex);

    CUpti_RangeProfiler_DecodeData_Params dd = {
        .structSize = CUpti_RangeProfiler_DecodeData_Params_STRUCT_SIZE,
        .pRangeProfilerObject = hc->rp,
    };
    CUPTI_CHECK(cuptiRangeProfilerDecodeData(&dd));
    if (dd.numOfRangeDropped) BENCH_FAIL("CUPTI dropped %zu range(s)", dd.numOfRangeDropped);
    CUpti_RangeProfiler_GetCounterDataInfo_Params di = {
        .structSize = CUpti_RangeProfiler_GetCounterDataInfo_Params_STRUCT_SIZE,
        .pCounterDataImage = hc->counter_data,
        .counterDataImageSize = hc->counter_data_size,
    };
    CUPTI_CHECK(cuptiRangeProfilerGetCounterDataInfo(&di));
    if (di.numTotalRanges != 1)
        BENCH_FAIL("expected 1 profiled range, CUPTI recorded %zu (no kernel between begin and "
                   "end?)",
                   di.numTotalRanges);

    const char *names[HBM_NUM_METRICS];
    for (int i = 0; i < HBM_NUM_METRICS; i++) names[i] = HBM_METRICS[i];
    double v[HBM_NUM_METRICS] = {0};
    CUpti_Profiler_Host_EvaluateToGpuValues_Params ev = {
        .structSize = CUpti_Profiler_Host_EvaluateToGpuValues_Params_STRUCT_SIZE,
        .pHostObject = hc->host,
        .pCounterDataImage = hc->counter_data,
        .counterDataImageSize = hc->counter_data_size,
        .rangeIndex = 0,
        .ppMetricNames = names,
        .numMetrics = HBM_NUM_METRICS,
        .pMetricValues = v,
    };
    CUPTI_CHECK(cuptiProfilerHostEvaluateToGpuValues(&ev));
    if (read_bytes) *read_bytes = v[0];
    if (write_bytes) *write_bytes = v[1];
    if (gpu_time_ns) *gpu_time_ns = v[2];
    return 0;
}

void hbm_counters_close(hbm_counters *hc) {
    if (!hc) return;
    if (hc->rp) {
        if (hc->range_state == RANGE_PUSHED) {
            CUpti_RangeProfiler_PopRange_Params pp = {
                .structSize = CUpti_RangeProfiler_PopRange_Params_STRUCT_SIZE,
                .pRangeProfilerObject = hc->rp,
            };
            cuptiRangeProfilerPopRange(&pp);
        }
        if (hc->range_state != RANGE_NONE) {
            CUpti_RangeProfiler_Stop_Params sp = {
                .structSize = CUpti_RangeProfiler_Stop_Params_STRUCT_SIZE,
                .pRangeProfilerObject = hc->rp,
            };
            cuptiRangeProfilerStop(&sp);
        }
        CUpti_RangeProfiler_Disable_Params dp = {
            .structSize = CUpti_RangeProfiler_Disable_Params_STRUCT_SIZE,
            .pRangeProfilerObject = hc->rp,
        };
        cuptiRangeProfilerDisable(&dp);
    }
    if (hc->host) {
        CUpti_Profiler_Host_Deinitialize_Params hd = {
            .structSize = CUpti_Profiler_Host_Deinitialize_Params_STRUCT_SIZE,
            .pHostObject = hc->host,
        };
        cuptiProfilerHostDeinitialize(&hd);
    }
    if (hc->profiler_initialized) {
        CUpti_Profiler_DeInitialize_Params pd = {
            .structSize = CUpti_Profiler_DeInitialize_Params_STRUCT_SIZE};
        cuptiProfilerDeInitialize(&pd);
    }
    free(hc->avail);
    free(hc->config);
    free(hc->counter_data);
    free(hc);
}
