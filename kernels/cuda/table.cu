/* kernels/cuda/table.cu: the CUDA kernel tables, float32 and bf16 (fields in kern_table's and
 * kern_bf16_table's order). */
#include "kernels/cuda/cuda_kernels.h"

static const char *cuda_gemm_name(void)
{
    return "cublas";
}

/* The float32 table's scratch (NH x T x T floats per batch row) holds the bf16 kernels' float32
 * scores and d(att) as well. */
static const kern_bf16_table kern_cuda_bf16 = {
    "cuda-bf16",
    cuda_gemm_name,
    kern_cuda_bf16_encoder_forward,
    kern_cuda_bf16_encoder_backward,
    kern_cuda_bf16_layernorm_forward,
    kern_cuda_bf16_layernorm_backward,
    kern_cuda_bf16_matmul_forward,
    kern_cuda_bf16_matmul_backward,
    kern_cuda_attention_scratch_bytes,
    kern_cuda_bf16_attention_forward,
    kern_cuda_bf16_attention_backward,
    kern_cuda_bf16_gelu_forward,
    kern_cuda_bf16_gelu_backward,
    kern_cuda_bf16_residual_forward,
    kern_cuda_bf16_accumulate,
    kern_cuda_bf16_softmax_xent,
    kern_cuda_bf16_adamw_master,
    kern_cuda_bf16_adamw_sr,
    kern_cuda_bf16_to_bf16,
    kern_cuda_bf16_to_f32,
};

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
    &kern_cuda_bf16,
};
