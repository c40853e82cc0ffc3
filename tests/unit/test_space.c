/* test_space.c - search space validation, seeded sampling and trial configuration parsing. */
#include "ensflow/space.h"

#include <jansson.h>
#include <math.h>

#include "ensflow/nn.h"

#include "check.h"

static char errstr[512];

static const char *custom =
    "{\"layers\":{\"int\":[2,4]},\"width\":[32,96],\"lr\":{\"log_uniform\":[0.001,0.01]},"
    "\"momentum\":0.9,\"batch_size\":[16,32],\"weight_decay\":{\"uniform\":[0,0.01]}}";

static void expect_invalid(const char *space, const char *needle) {
    errstr[0] = '\0';
    ens_err_t err = ens_space_validate(space, errstr, sizeof errstr);
    if (err != ENS_ERR_INVALID || (needle && !strstr(errstr, needle)))
        fprintf(stderr, "space %s: rc %d, errstr \"%s\" (wanted \"%s\")\n", space, err, errstr,
                needle ? needle : "");
    CHECK_EQ_INT(err, ENS_ERR_INVALID);
    if (needle)
        CHECK(strstr(errstr, needle) != NULL);
}

static void test_validate(void) {
    CHECK_OK(ens_space_validate(NULL, errstr, sizeof errstr));
    CHECK_OK(ens_space_validate("", errstr, sizeof errstr));
    CHECK_OK(ens_space_validate("{}", errstr, sizeof errstr));
    CHECK_OK(ens_space_validate(custom, errstr, sizeof errstr));
    CHECK_OK(ens_space_validate("{\"lr\":0.01}", errstr, sizeof errstr));

    expect_invalid("{\"dropout_rate\":0.5}", "dropout_rate");
    expect_invalid("{\"lr\":", NULL);
    expect_invalid("[1,2]", NULL); /* JSON but not an object */
    expect_invalid("{\"width\":[]}", "width");
    expect_invalid("{\"lr\":{\"uniform\":[0.1,0.01]}}", "lr");
    expect_invalid("{\"weight_decay\":{\"log_uniform\":[0,0.001]}}", "weight_decay");
    expect_invalid("{\"momentum\":1.5}", "momentum");
    expect_invalid("{\"batch_size\":[64,100000]}", "batch_size");
    expect_invalid("{\"layers\":{\"int\":[0,2]}}", "layers");
    expect_invalid("{\"width\":[64.5]}", "width");
    expect_invalid("{\"lr\":\"fast\"}", "lr");
    expect_invalid("{\"lr\":{\"normal\":[0,1]}}", "lr");
    expect_invalid("{\"lr\":{\"uniform\":[0.1]}}", "lr");
    expect_invalid("{\"layers\":{\"log_uniform\":[1,3]}}", "layers");
}

/* Parse a sampled config and check it lies inside the custom space. */
static void check_in_custom(const char *json) {
    ens_trial_config_t cfg;
    CHECK_OK(ens_trial_config_parse(json, &cfg, errstr, sizeof errstr));
    CHECK(cfg.n_hidden >= 2 && cfg.n_hidden <= 4);
    for (int l = 0; l < cfg.n_hidden; l++)
        CHECK(cfg.hidden[l] == 32 || cfg.hidden[l] == 96);
    CHECK(cfg.lr >= 0.001 && cfg.lr <= 0.01);
    CHECK_NEAR(cfg.momentum, 0.9, 0);
    CHECK(cfg.batch_size == 16 || cfg.batch_size == 32);
    CHECK(cfg.weight_decay >= 0 && cfg.weight_decay <= 0.01);
}

static void test_sample(void) {
    char *a = NULL, *b = NULL, *c = NULL;
    CHECK_OK(ens_space_sample(custom, 42, 3, &a, errstr, sizeof errstr));
    CHECK_OK(ens_space_sample(custom, 42, 3, &b, errstr, sizeof errstr));
    CHECK_OK(ens_space_sample(custom, 42, 4, &c, errstr, sizeof errstr));
    CHECK(a && b && c);
    if (a && b && c) {
        CHECK_STR(a, b);
        CHECK(strcmp(a, c) != 0);
    }
    free(a);
    free(b);
    free(c);

    /* 500 samples stay inside the declared ranges and cover both ends of the choices */
    int seen_layers[5] = {0}, distinct = 0;
    double lr_min = 1, lr_max = 0;
    char *prev = NULL;
    for (int i = 0; i < 500; i++) {
        char *s = NULL;
        CHECK_OK(ens_space_sample(custom, 7, i, &s, errstr, sizeof errstr));
        if (!s)
            break;
        check_in_custom(s);
        ens_trial_config_t cfg;
        if (ens_trial_config_parse(s, &cfg, errstr, sizeof errstr) == ENS_OK) {
            if (cfg.n_hidden >= 2 && cfg.n_hidden <= 4)
                seen_layers[cfg.n_hidden]++;
            lr_min = cfg.lr < lr_min ? cfg.lr : lr_min;
            lr_max = cfg.lr > lr_max ? cfg.lr : lr_max;
        }
        distinct += prev && strcmp(prev, s) != 0;
        free(prev);
        prev = s;
    }
    free(prev);
    CHECK(seen_layers[2] > 0 && seen_layers[3] > 0 && seen_layers[4] > 0);
    CHECK(distinct > 450);
    /* log-uniform over a decade: both ends are reached */
    CHECK(lr_min < 0.0015 && lr_max > 0.007);

    /* the default space: widths among its choices, layers 1..3 */
    for (int i = 0; i < 200; i++) {
        char *s = NULL;
        ens_trial_config_t cfg;
        CHECK_OK(ens_space_sample(NULL, 1, i, &s, errstr, sizeof errstr));
        CHECK_OK(ens_trial_config_parse(s, &cfg, errstr, sizeof errstr));
        CHECK(cfg.n_hidden >= 1 && cfg.n_hidden <= 3);
        for (int l = 0; l < cfg.n_hidden; l++)
            CHECK(cfg.hidden[l] == 64 || cfg.hidden[l] == 128 || cfg.hidden[l] == 256 ||
                  cfg.hidden[l] == 512);
        CHECK(cfg.lr >= 0.005 && cfg.lr <= 0.1);
        CHECK(cfg.weight_decay >= 1e-6 && cfg.weight_decay <= 1e-3);
        free(s);
    }
    char *bad = NULL;
    CHECK_EQ_INT(ens_space_sample("{\"nope\":1}", 1, 0, &bad, errstr, sizeof errstr),
                 ENS_ERR_INVALID);
    CHECK(bad == NULL);
}

/* The parsed struct holds exactly the sampled JSON values. */
static void test_round_trip(void) {
    char *s = NULL;
    ens_trial_config_t cfg;
    CHECK_OK(ens_space_sample(custom, 99, 11, &s, errstr, sizeof errstr));
    CHECK_OK(ens_trial_config_parse(s, &cfg, errstr, sizeof errstr));
    json_error_t jerr;
    json_t *j = s ? json_loads(s, 0, &jerr) : NULL;
    CHECK(j != NULL);
    if (j) {
        json_t *h = json_object_get(j, "hidden");
        CHECK_EQ_INT(cfg.n_hidden, json_array_size(h));
        for (int l = 0; l < cfg.n_hidden; l++)
            CHECK_EQ_INT(cfg.hidden[l], json_integer_value(json_array_get(h, (size_t)l)));
        CHECK_NEAR(cfg.lr, json_number_value(json_object_get(j, "lr")), 0);
        CHECK_NEAR(cfg.momentum, json_number_value(json_object_get(j, "momentum")), 0);
        CHECK_EQ_INT(cfg.batch_size, json_integer_value(json_object_get(j, "batch_size")));
        CHECK_NEAR(cfg.weight_decay, json_number_value(json_object_get(j, "weight_decay")), 0);
        json_decref(j);
    }
    free(s);
}

static void test_parse(void) {
    ens_trial_config_t cfg;
    CHECK_OK(ens_trial_config_parse("{\"hidden\":[128,64],\"lr\":0.05,\"momentum\":0.9,"
                                    "\"batch_size\":128,\"weight_decay\":0.0001}",
                                    &cfg, errstr, sizeof errstr));
    CHECK_EQ_INT(cfg.n_hidden, 2);
    CHECK_EQ_INT(cfg.hidden[0], 128);
    CHECK_EQ_INT(cfg.hidden[1], 64);
    CHECK_NEAR(cfg.lr, 0.05, 0);
    CHECK_NEAR(cfg.momentum, 0.9, 0);
    CHECK_EQ_INT(cfg.batch_size, 128);
    CHECK_NEAR(cfg.weight_decay, 0.0001, 0);

    static const struct {
        const char *json, *needle;
    } bad[] = {
        {NULL, "JSON"},
        {"[]", "JSON"},
        {"{\"lr\":0.05,\"momentum\":0.9,\"batch_size\":128,\"weight_decay\":0}", "hidden"},
        {"{\"hidden\":[],\"lr\":0.05,\"momentum\":0.9,\"batch_size\":128,\"weight_decay\":0}",
         "hidden"},
        {"{\"hidden\":[1,2,3,4,5,6,7,8,9],\"lr\":0.05,\"momentum\":0.9,\"batch_size\":128,"
         "\"weight_decay\":0}",
         "hidden"},
        {"{\"hidden\":[0],\"lr\":0.05,\"momentum\":0.9,\"batch_size\":128,\"weight_decay\":0}",
         "hidden"},
        {"{\"hidden\":[64],\"momentum\":0.9,\"batch_size\":128,\"weight_decay\":0}", "lr"},
        {"{\"hidden\":[64],\"lr\":0.05,\"momentum\":0.9,\"weight_decay\":0}", "batch_size"},
        {"{\"hidden\":[64],\"lr\":0.05,\"momentum\":0.9,\"batch_size\":12.5,\"weight_decay\":0}",
         "batch_size"},
        {"{\"hidden\":[64],\"lr\":\"x\",\"momentum\":0.9,\"batch_size\":128,\"weight_decay\":0}",
         "lr"},
        {"{\"hidden\":[64],\"lr\":0.05,\"momentum\":1.0,\"batch_size\":128,\"weight_decay\":0}",
         "momentum"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errstr[0] = '\0';
        ens_err_t err = ens_trial_config_parse(bad[i].json, &cfg, errstr, sizeof errstr);
        if (err != ENS_ERR_INVALID || !strstr(errstr, bad[i].needle))
            fprintf(stderr, "config %zu: rc %d errstr \"%s\"\n", i, err, errstr);
        CHECK_EQ_INT(err, ENS_ERR_INVALID);
        CHECK(strstr(errstr, bad[i].needle) != NULL);
    }
}

/* Conditional parameters: {"cond": {"param": P, "values": [..]}, <range>, "else": v}. */
static void test_conditional(void) {
    const char *space =
        "{\"layers\":{\"int\":[1,3]},"
        "\"width\":{\"cond\":{\"param\":\"layers\",\"values\":[2,3]},\"choice\":[32,48],"
        "\"else\":256},"
        "\"momentum\":{\"cond\":{\"param\":\"batch_size\",\"values\":[256]},"
        "\"uniform\":[0.5,0.6]},\"batch_size\":[64,256]}";
    CHECK_OK(ens_space_validate(space, errstr, sizeof errstr));
    int seen_on = 0, seen_off = 0;
    for (int i = 0; i < 300; i++) {
        char *s = NULL, *again = NULL;
        ens_trial_config_t cfg;
        CHECK_OK(ens_space_sample(space, 5, i, &s, errstr, sizeof errstr));
        CHECK_OK(ens_space_sample(space, 5, i, &again, errstr, sizeof errstr));
        if (!s || !again)
            break;
        CHECK_STR(s, again);
        CHECK_OK(ens_trial_config_parse(s, &cfg, errstr, sizeof errstr));
        for (int l = 0; l < cfg.n_hidden; l++) {
            if (cfg.n_hidden == 1)
                CHECK_EQ_INT(cfg.hidden[l], 256); /* cond off: else */
            else
                CHECK(cfg.hidden[l] == 32 || cfg.hidden[l] == 48);
        }
        if (cfg.batch_size == 256) {
            CHECK(cfg.momentum >= 0.5 && cfg.momentum <= 0.6);
            seen_on++;
        } else {
            CHECK_NEAR(cfg.momentum, 0.9, 1e-12); /* no else: the documented fallback */
            seen_off++;
        }
        free(s);
        free(again);
    }
    CHECK(seen_on > 0 && seen_off > 0);
    expect_invalid("{\"lr\":{\"cond\":{\"param\":\"dropout_rate\",\"values\":[1]},\"uniform\":[0.01,"
                   "0.1]}}", "lr");
    expect_invalid("{\"lr\":{\"cond\":{\"param\":\"layers\"},\"uniform\":[0.01,0.1]}}", "lr");
    expect_invalid("{\"lr\":{\"cond\":{\"param\":\"width\",\"values\":[64]},\"uniform\":[0.01,"
                   "0.1]}}", "lr");
    expect_invalid("{\"lr\":{\"cond\":{\"param\":\"layers\",\"values\":[2]},\"uniform\":[0.01,"
                   "0.1],\"else\":50}}", "lr");
    expect_invalid("{\"lr\":{\"uniform\":[0.01,0.1],\"else\":0.05}}", "lr");
    expect_invalid("{\"momentum\":{\"cond\":{\"param\":\"layers\",\"values\":[2]},"
                   "\"choice\":[0.9]},\"lr\":{\"cond\":{\"param\":\"momentum\",\"values\":[0.9]},"
                   "\"uniform\":[0.01,0.1]}}", "may not itself be conditional");
    expect_invalid("{\"layers\":{\"cond\":{\"param\":\"layers\",\"values\":[2]},\"int\":[1,2]}}",
                   "layers");
    expect_invalid("{\"width\":{\"choice\":[]}}", "width");
}

/* The CNN family: opt-in, every value inside its range, deterministic, and every sampled
 * architecture builds (bounded: 60 configurations, a dozen models on 8x8 and 28x28 inputs). */
static void test_cnn(void) {
    CHECK_OK(ens_space_validate("{\"family\":[\"cnn\"]}", errstr, sizeof errstr));
    CHECK_OK(ens_space_validate("{\"family\":\"cnn\",\"optimizer\":[\"adam\",\"sgd\"],"
                                "\"conv_blocks\":{\"int\":[1,2]}}", errstr, sizeof errstr));
    expect_invalid("{\"family\":\"rnn\"}", "family");
    expect_invalid("{\"family\":1}", "family");
    expect_invalid("{\"family\":{\"uniform\":[0,1]}}", "family");
    expect_invalid("{\"optimizer\":[\"rmsprop\"]}", "optimizer");
    expect_invalid("{\"kernel\":[9]}", "kernel");
    expect_invalid("{\"family\":{\"cond\":{\"param\":\"layers\",\"values\":[1]},"
                   "\"choice\":[\"cnn\"]}}", "family");
    /* the default space stays MLP-only */
    for (int i = 0; i < 50; i++) {
        char *json = NULL;
        ens_trial_config_t cfg;
        CHECK_OK(ens_space_sample(NULL, 5, i, &json, errstr, sizeof errstr));
        CHECK(strstr(json, "family") == NULL);
        CHECK_OK(ens_trial_config_parse(json, &cfg, errstr, sizeof errstr));
        CHECK_EQ_INT(cfg.family, ENS_FAMILY_MLP);
        free(json);
    }
    int seen_opt[4] = {0}, seen_blocks[4] = {0}, mixed[2] = {0}, built = 0;
    for (int i = 0; i < 60; i++) {
        char *json = NULL, *again = NULL;
        ens_trial_config_t cfg;
        CHECK_OK(ens_space_sample("{\"family\":[\"cnn\"]}", 9, i, &json, errstr,
                                  sizeof errstr));
        CHECK_OK(ens_space_sample("{\"family\":[\"cnn\"]}", 9, i, &again, errstr,
                                  sizeof errstr));
        CHECK_STR(json, again);
        CHECK_OK(ens_trial_config_parse(json, &cfg, errstr, sizeof errstr));
        CHECK_EQ_INT(cfg.family, ENS_FAMILY_CNN);
        CHECK(cfg.optimizer >= 0 && cfg.optimizer <= 3);
        seen_opt[cfg.optimizer]++;
        if (cfg.optimizer >= 2)
            CHECK(cfg.lr >= 3e-4 && cfg.lr <= 3e-3);
        else
            CHECK_NEAR(cfg.lr, 0.05, 1e-12);
        CHECK(cfg.augment == 0 || cfg.augment == 1);
        CHECK(cfg.label_smoothing == 0 || fabs(cfg.label_smoothing - 0.05) < 1e-12 ||
              fabs(cfg.label_smoothing - 0.1) < 1e-12);
        CHECK(cfg.batch_size == 64 || cfg.batch_size == 128 || cfg.batch_size == 256);
        json_error_t jerr;
        json_t *a = json_loads(cfg.arch, 0, &jerr);
        CHECK(a != NULL);
        int nb = (int)json_integer_value(json_object_get(a, "n_blocks"));
        int w = (int)json_integer_value(json_object_get(a, "width"));
        int k = (int)json_integer_value(json_object_get(a, "kernel"));
        double dr = json_number_value(json_object_get(a, "dropout"));
        CHECK(nb >= 1 && nb <= 3);
        seen_blocks[nb]++;
        CHECK(w == 16 || w == 32 || w == 64);
        CHECK(k == 3 || k == 5);
        CHECK(dr >= 0 && dr <= 0.3);
        CHECK(json_is_boolean(json_object_get(a, "batch_norm")));
        CHECK(json_is_boolean(json_object_get(a, "residual")));
        json_decref(a);
        if (i < 12) { /* the architecture builds, on small and on Fashion-MNIST-sized images */
            ens_model_t *m = NULL;
            int side = i % 2 ? 28 : 8;
            CHECK_OK(ens_model_new_from_json(cfg.arch, 1, side, side, 10, 1, &m, errstr,
                                             sizeof errstr));
            built += m != NULL;
            ens_model_free(m);
        }
        free(json);
        free(again);
        CHECK_OK(ens_space_sample("{\"family\":[\"mlp\",\"cnn\"]}", 9, i, &json, errstr,
                                  sizeof errstr));
        CHECK_OK(ens_trial_config_parse(json, &cfg, errstr, sizeof errstr));
        mixed[cfg.family]++;
        free(json);
    }
    CHECK_EQ_INT(built, 12);
    for (int o = 0; o < 4; o++)
        CHECK(seen_opt[o] > 0);
    for (int b = 1; b <= 3; b++)
        CHECK(seen_blocks[b] > 0);
    CHECK(mixed[0] > 0 && mixed[1] > 0);
    /* an override of the CNN learning rate, and a CNN config without arch is refused */
    char *json = NULL;
    ens_trial_config_t cfg;
    CHECK_OK(ens_space_sample("{\"family\":\"cnn\",\"cnn_lr\":0.01}", 1, 3, &json, errstr,
                              sizeof errstr));
    CHECK_OK(ens_trial_config_parse(json, &cfg, errstr, sizeof errstr));
    CHECK_NEAR(cfg.lr, 0.01, 1e-12);
    free(json);
    CHECK_EQ_INT(ens_trial_config_parse("{\"family\":\"cnn\",\"optimizer\":\"adam\",\"lr\":0.01,"
                                        "\"momentum\":0.9,\"batch_size\":64,"
                                        "\"weight_decay\":0}",
                                        &cfg, errstr, sizeof errstr),
                 ENS_ERR_INVALID);
}

/* lr_restart: drawn from the space, written to the configuration only when set, and a cosine
 * cycle per job in the recipe; without it one cycle over the study's top rung. */
static void test_restart(void) {
    char *json = NULL;
    ens_trial_config_t cfg;
    ens_train_opts_t o;
    CHECK_OK(ens_space_sample("{\"family\":[\"cnn\"],\"optimizer\":[\"adamw\"]}", 1, 0,
                              &json, errstr, sizeof errstr));
    CHECK(json && !strstr(json, "lr_restart")); /* configurations made before it: the same */
    CHECK_OK(ens_trial_config_parse(json, &cfg, errstr, sizeof errstr));
    CHECK_EQ_INT(cfg.lr_restart, 0);
    ens_trial_train_opts(&cfg, 2, 6, 18, &o);
    CHECK_NEAR(o.total_epochs, 18, 1e-12);
    CHECK_NEAR(o.cycle_start_epochs, 0, 1e-12);
    free(json);
    json = NULL;
    CHECK_OK(ens_space_sample("{\"family\":[\"cnn\"],\"optimizer\":[\"adamw\"],"
                              "\"lr_restart\":1}",
                              1, 0, &json, errstr, sizeof errstr));
    CHECK(json && strstr(json, "\"lr_restart\":1"));
    CHECK_OK(ens_trial_config_parse(json, &cfg, errstr, sizeof errstr));
    CHECK_EQ_INT(cfg.lr_restart, 1);
    ens_trial_train_opts(&cfg, 2, 6, 18, &o);
    CHECK_NEAR(o.total_epochs, 6, 1e-12);
    CHECK_NEAR(o.cycle_start_epochs, 2, 1e-12);
    free(json);
    CHECK_EQ_INT(ens_space_validate("{\"lr_restart\":[0,2]}", errstr, sizeof errstr),
                 ENS_ERR_INVALID);
}

int main(void) {
    test_validate();
    test_restart();
    test_cnn();
    test_conditional();
    test_sample();
    test_round_trip();
    test_parse();
    return check_done("test_space");
}
