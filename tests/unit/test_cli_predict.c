/* test_cli_predict.c - predict's request ids: which answers are this run's, and which request. */
#include "check.h"
#include "cli.h"

int main(void) {
    const char *run = "0a1b2c3d-4e5f-6789-abcd-ef0123456789";
    CHECK_EQ_INT(cli_request_index("0a1b2c3d-0", run, 10), 0);
    CHECK_EQ_INT(cli_request_index("0a1b2c3d-9", run, 10), 9);
    CHECK_EQ_INT(cli_request_index("0a1b2c3d-1234", run, 2000), 1234);
    /* not a request of this run, or not one sent yet */
    CHECK_EQ_INT(cli_request_index("0a1b2c3d-probe", run, 10), -1); /* the probe: not request 0 */
    CHECK_EQ_INT(cli_request_index("0a1b2c3d-10", run, 10), -1);
    CHECK_EQ_INT(cli_request_index("ffffffff-3", run, 10), -1);
    CHECK_EQ_INT(cli_request_index("0a1b2c3d-3x", run, 10), -1);
    CHECK_EQ_INT(cli_request_index("0a1b2c3d-", run, 10), -1);
    CHECK_EQ_INT(cli_request_index("0a1b2c3d--3", run, 10), -1);
    CHECK_EQ_INT(cli_request_index("0a1b2c3d+3", run, 10), -1);
    CHECK_EQ_INT(cli_request_index("0a1b2c3d-99999999999999999999", run, 10), -1);
    CHECK_EQ_INT(cli_request_index("0a1b", run, 10), -1);
    CHECK_EQ_INT(cli_request_index(NULL, run, 10), -1);
    return check_done("test_cli_predict");
}
