/* test_evaluator.c - float16 storage of probabilities and the measured cost of a model. */
#include "evaluator.h"

#include "check.h"

static void test_f16(void) {
    static const float in[] = {0.0f, 1.0f, 0.5f, 0.1f, 65504.0f, 0x1p-24f, -1.0f, 1e-9f, 1e6f,
                               0x1p-14f, 1.0f + 0x1p-11f, 1.0f + 0x1p-11f + 0x1p-12f};
    static const uint16_t want[] = {0x0000, 0x3c00, 0x3800, 0x2e66, 0x7bff, 0x0001, 0xbc00,
                                    0x0000, 0x7c00, 0x0400, 0x3c00 /* tie: to even */,
                                    0x3c01 /* above the tie */};
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++)
        CHECK_EQ_INT(ens_evaluator_f16(in[i]), want[i]);
    /* every probability in [0, 1] within half a unit in the last place (2^-12 relative) */
    for (int q = 1; q <= 100000; q++) {
        float x = (float)q / 100000.0f;
        uint16_t h = ens_evaluator_f16(x);
        int e = (h >> 10) & 0x1f;
        float back = e ? ldexpf(1.0f + (float)(h & 0x3ff) / 1024.0f, e - 15)
                       : ldexpf((float)(h & 0x3ff), -24);
        CHECK(fabsf(back - x) <= x * 0x1p-11f + 0x1p-25f);
    }
}

static void test_cost(void) {
    int32_t hidden[] = {16};
    ens_model_t *m = NULL;
    CHECK_OK(ens_model_new_mlp(8, hidden, 1, 3, 1, &m));
    float x[64 * 8];
    for (int i = 0; i < 64 * 8; i++)
        x[i] = (float)(i % 7) / 7.0f;
    for (int i = 0; i < ENS_EVALUATOR_N_PROFILE; i++) {
        double ms = ens_evaluator_ms_per_sample(m, x, 64, ens_evaluator_profile_batches[i], 2);
        CHECK(ms > 0 && ms < 100);
    }
    CHECK_EQ_INT(ens_evaluator_profile_batches[0], 1);
    CHECK_EQ_INT(ens_evaluator_profile_batches[3], 128);
    /* the FLOPs the evaluator stores: counted per layer, 8-16-3 with a fused ReLU:
     * (2*8*16 + 16 + 16) + (2*16*3 + 3) + 3*3 = 288 + 99 + 9 = 396 (2*params would be 390) */
    CHECK_EQ_INT(ens_model_flops_per_sample(m), 396);
    ens_model_free(m);
}

int main(void) {
    test_f16();
    test_cost();
    return check_done("test_evaluator");
}
