/* Checks the parts of the contract that need no EAL: ABI version, status names, argument validation. */
#include "hyb_transport.h"

#include <stdio.h>
#include <string.h>

static int failures;

static void check(int ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "FAIL: %s\n", what);
        failures++;
    }
}

int main(void) {
    check(hyb_abi_version() == HYB_ABI_VERSION, "abi version matches the header");
    check(strcmp(hyb_status_name(HYB_EEAL), "HYB_EEAL") == 0, "status names are the enum names");
    check(strcmp(hyb_status_name(12345), "HYB_UNKNOWN") == 0, "unknown status has a name");
    hyb_port_config_t config = {1514, 1024, 8191, 0};
    hyb_port_t *port = NULL;
    check(hyb_port_open("net_memif0", &config, &port) == HYB_ESTATE, "port before EAL init is refused");
    check(hyb_port_open(NULL, &config, &port) == HYB_EINVAL, "null vdev is refused");
    check(hyb_eal_init(0, NULL) == HYB_EINVAL, "empty argv is refused");
    check(hyb_port_send(NULL, NULL, NULL, 0, 0) == HYB_EINVAL, "null port is refused");
    printf("%d passed, %d failed\n", 7 - failures, failures);
    return failures == 0 ? 0 : 1;
}
