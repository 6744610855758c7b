/* kernels/cpu/table.c: the CPU kernel table. */
#include "kernels/cpu/bf16.h"

const kern_table kern_cpu = {
    .name = "cpu",
    .encoder_forward = kern_cpu_encoder_forward,
    .encoder_backward = kern_cpu_encoder_backward,
    .layernorm_forward = kern_cpu_layernorm_forward,
    .layernorm_backward = kern_cpu_layernorm_backward,
    .matmul_forward = kern_cpu_matmul_forward,
    .matmul_backward = kern_cpu_matmul_backward,
    .attention_scratch_bytes = kern_cpu_attention_scratch_bytes,
    .attention_forward = kern_cpu_attention_forward,
    .attention_backward = kern_cpu_attention_backward,
    .gelu_forward = kern_cpu_gelu_forward,
    .gelu_backward = kern_cpu_gelu_backward,
    .residual_forward = kern_cpu_residual_forward,
    .accumulate = kern_cpu_accumulate,
    .softmax_xent = kern_cpu_softmax_xent,
    .adamw = kern_cpu_adamw,
    .zero = kern_cpu_zero,
    .copy = kern_cpu_copy,
    .upload = kern_cpu_upload,
    .status = kern_cpu_status,
    .check = kern_cpu_status, /* nothing is queued on the host */
    .bf16 = &kern_cpu_bf16,
};
