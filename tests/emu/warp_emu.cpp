/* warp_emu.cpp: the CPU emulation's runtime (cuda_runtime.h here): blocks as std::threads,
 * barriers, and the warp collectives by the PTX ISA's fragment layouts (mma_sync.cuh). */
#include <barrier>
#include <memory>
#include <thread>
#include <vector>

#include "cuda_runtime.h"

thread_local uint3 threadIdx;
uint3 blockIdx;
uint3 gridDim;
uint3 blockDim;
unsigned char *emu_smem;

namespace {

std::barrier<> *g_block_bar;

/* One warp's exchange: each lane's operands, visible to all lanes between two barriers. */
struct warp_x {
    uint32_t addr[32];
    float f[32];
    uint32_t a[32][4], b0[32], b1[32];
    std::barrier<> *bar;
};
warp_x g_warps[32];

float h16(uint16_t h, bool bf16) {
    return bf16 ? __uint_as_float((uint32_t)h << 16) : __half2float(__ushort_as_half(h));
}

} /* namespace */

void emu_syncthreads(void) { g_block_bar->arrive_and_wait(); }

/* __shfl_xor_sync over the full warp: every lane posts, then reads its partner's. */
float emu_shfl_xor(float v, int mask) {
    const int lane = threadIdx.x & 31;
    warp_x &w = g_warps[threadIdx.x >> 5];
    w.f[lane] = v;
    w.bar->arrive_and_wait();
    const float r = w.f[(lane ^ mask) & 31];
    w.bar->arrive_and_wait();
    return r;
}
void emu_syncwarp(void) { g_warps[threadIdx.x >> 5].bar->arrive_and_wait(); }

/* ldmatrix .x4: lanes 8i..8i+7 give the row addresses of matrix i; lane l receives row l/4,
 * elements 2(l%4), 2(l%4)+1 of matrix i, or with .trans column l/4, rows 2(l%4), 2(l%4)+1. */
void emu_ldsm(uint32_t r[4], uint32_t addr, bool trans) {
    const int lane = threadIdx.x & 31;
    warp_x &w = g_warps[threadIdx.x >> 5];
    w.addr[lane] = addr;
    w.bar->arrive_and_wait();
    for (int i = 0; i < 4; i++) {
        if (!trans) {
            const uint16_t *row = (const uint16_t *)(emu_smem + w.addr[8 * i + lane / 4]);
            r[i] = row[2 * (lane % 4)] | ((uint32_t)row[2 * (lane % 4) + 1] << 16);
        } else {
            const uint16_t *r0 = (const uint16_t *)(emu_smem + w.addr[8 * i + 2 * (lane % 4)]);
            const uint16_t *r1 =
                (const uint16_t *)(emu_smem + w.addr[8 * i + 2 * (lane % 4) + 1]);
            r[i] = r0[lane / 4] | ((uint32_t)r1[lane / 4] << 16);
        }
    }
    w.bar->arrive_and_wait();
}

/* mma.m16n8k16.row.col, fp32 accumulators: the whole A (16x16) and B (16x8) gathered from the
 * lanes' fragments, g = lane/4, q = lane%4:
 *   a0 = A[g][2q..], a1 = A[g+8][2q..], a2 = A[g][2q+8..], a3 = A[g+8][2q+8..]
 *   b0 = B[2q..2q+1][g], b1 = B[2q+8..2q+9][g];  d0,d1 = D[g][2q..], d2,d3 = D[g+8][2q..] */
void emu_mma(float d[4], const uint32_t a[4], uint32_t b0, uint32_t b1, bool bf16) {
    const int lane = threadIdx.x & 31;
    warp_x &w = g_warps[threadIdx.x >> 5];
    for (int i = 0; i < 4; i++) w.a[lane][i] = a[i];
    w.b0[lane] = b0;
    w.b1[lane] = b1;
    w.bar->arrive_and_wait();
    float A[16][16], B[16][8];
    for (int l = 0; l < 32; l++) {
        const int g = l / 4, q = l % 4;
        const int ar[4] = {g, g + 8, g, g + 8}, ac[4] = {2 * q, 2 * q, 2 * q + 8, 2 * q + 8};
        for (int i = 0; i < 4; i++) {
            A[ar[i]][ac[i]] = h16((uint16_t)(w.a[l][i] & 0xffffu), bf16);
            A[ar[i]][ac[i] + 1] = h16((uint16_t)(w.a[l][i] >> 16), bf16);
        }
        B[2 * q][g] = h16((uint16_t)(w.b0[l] & 0xffffu), bf16);
        B[2 * q + 1][g] = h16((uint16_t)(w.b0[l] >> 16), bf16);
        B[2 * q + 8][g] = h16((uint16_t)(w.b1[l] & 0xffffu), bf16);
        B[2 * q + 9][g] = h16((uint16_t)(w.b1[l] >> 16), bf16);
    }
    w.bar->arrive_and_wait();
    const int g = lane / 4, q = lane % 4;
    const int rows[4] = {g, g, g + 8, g + 8}, cols[4] = {2 * q, 2 * q + 1, 2 * q, 2 * q + 1};
    for (int e = 0; e < 4; e++) {
        float s = 0.f;
        for (int k = 0; k < 16; k++) s += A[rows[e]][k] * B[k][cols[e]];
        d[e] += s;
    }
}

void emu_launch(unsigned grid, int threads, size_t smem, const std::function<void()> &body) {
    emu_launch2(grid, 1, threads, smem, body);
}

void emu_launch2(unsigned grid_x, unsigned grid_y, int threads, size_t smem,
                 const std::function<void()> &body) {
    std::vector<unsigned char> buf(smem + 16);
    gridDim = {grid_x, grid_y, 1};
    blockDim = {(unsigned)threads, 1, 1};
    for (unsigned b = 0; b < grid_x * grid_y; b++) {
        memset(buf.data(), 0xAB, buf.size());
        emu_smem = buf.data();
        blockIdx = {b % grid_x, b / grid_x, 0};
        std::barrier<> bar(threads);
        g_block_bar = &bar;
        std::vector<std::unique_ptr<std::barrier<>>> warp_bars;
        for (int w = 0; w < (threads + 31) / 32; w++) {
            warp_bars.emplace_back(new std::barrier<>(32));
            g_warps[w].bar = warp_bars.back().get();
        }
        std::vector<std::thread> th;
        for (int t = 0; t < threads; t++)
            th.emplace_back([&body, t] {
                threadIdx = {(unsigned)t, 0, 0};
                body();
            });
        for (auto &x : th) x.join();
    }
}
