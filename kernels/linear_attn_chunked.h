/* linear_attn_chunked.h: moved to kernels/linear_attn/chunked.h.  This forward keeps the CHELA
 * layer (kernels/chela_fused.cu) building until it includes "linear_attn/chunked.h" itself;
 * delete it then. */
#include "linear_attn/chunked.h"
