/* kernels/cuda/table.cu: the CUDA kernel table (fields in kern_table's order). */
#include "kernels/cuda/cuda_kernels.h"

const kern_table kern_cuda = {
    "cuda",
    kern_cuda_encoder_forward,
    kern_cuda_encoder_backward,
    kern_cuda_layernorm_forward,
    kern_cuda_layernorm_backward,
    kern_cuda_matmul_forward,
    kern_cuda_matmul_backward,
    kern_cuda_attention_scratch_bytes,
    kern_cuda_attention_forward,
    kern_cuda_attention_backward,
    kern_cuda_gelu_forward,
    kern_cuda_gelu_backward,
    kern_cuda_residual_forward,
    kern_cuda_accumulate,
    kern_cuda_softmax_xent,
    kern_cuda_adamw,
    kern_cuda_zero,
    kern_cuda_copy,
    kern_cuda_upload,
    kern_cuda_status,
    kern_cuda_check_only,
};
