/* pdl_launch.cuh: kernel<<<grid, block, smem, stream>>>(args...), with programmatic dependent
 * launch when pdl.  The kernel must wait (griddepcontrol.wait) before reading what earlier
 * kernels wrote: its blocks may then be scheduled as the previous kernel's last blocks exit
 * instead of after its completion is processed, hiding a launch gap between passes.
 * Returns 0, or -1 after bench_set_error(). */
#ifndef CHELA_PDL_LAUNCH_CUH
#define CHELA_PDL_LAUNCH_CUH

#include <cuda_runtime.h>

#include "bench_check.h"

template <typename... KArgs, typename... Args>
static int pdl_launch(bool pdl, void (*kernel)(KArgs...), unsigned grid, unsigned block,
                      size_t smem, cudaStream_t stream, Args... args) {
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3(grid);
    cfg.blockDim = dim3(block);
    cfg.dynamicSmemBytes = smem;
    cfg.stream = stream;
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = attr;
    cfg.numAttrs = pdl ? 1 : 0;
    CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, args...));
    return 0;
}

#endif
