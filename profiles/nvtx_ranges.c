/* nvtx_ranges.c: see nvtx_ranges.h. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* pthread_once under -std=c11 */
#endif
#include "nvtx_ranges.h"

#include <pthread.h>
#include <stddef.h>

#include <nvtx3/nvToolsExt.h>
#include <nvtx3/nvToolsExtCudaRt.h>

/* matplotlib's tab10: distinct, and readable on nsys' dark and light themes. */
static const uint32_t PALETTE[] = {
    0xFF1F77B4, 0xFFFF7F0E, 0xFF2CA02C, 0xFFD62728, 0xFF9467BD,
    0xFF8C564B, 0xFFE377C2, 0xFF7F7F7F, 0xFFBCBD22, 0xFF17BECF,
};

static nvtxDomainHandle_t g_domain;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void create_domain(void) { g_domain = nvtxDomainCreateA("chela-bench"); }

uint32_t nvtx_family_color(const char *name) {
    /* FNV-1a over the family: up to the first '/' (or ' ' for bare names). */
    uint32_t h = 2166136261u;
    for (const char *p = name ? name : ""; *p && *p != '/' && *p != ' '; p++) {
        h ^= (unsigned char)*p;
        h *= 16777619u;
    }
    return PALETTE[h % (sizeof PALETTE / sizeof PALETTE[0])];
}

void nvtx_push(const char *name) {
    pthread_once(&g_once, create_domain);
    nvtxEventAttributes_t a = {0};
    a.version = NVTX_VERSION;
    a.size = NVTX_EVENT_ATTRIB_STRUCT_SIZE;
    a.colorType = NVTX_COLOR_ARGB;
    a.color = nvtx_family_color(name);
    a.messageType = NVTX_MESSAGE_TYPE_ASCII;
    a.message.ascii = name ? name : "(null)";
    nvtxDomainRangePushEx(g_domain, &a);
}

void nvtx_pop(void) {
    pthread_once(&g_once, create_domain);
    nvtxDomainRangePop(g_domain);
}

void nvtx_name_stream(struct CUstream_st *stream, const char *name) {
    nvtxNameCudaStreamA(stream, name);
}
