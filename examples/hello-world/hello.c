/* berth's hello-world: a tiny static program, the greeting docker's hello-world prints, in spirit. */
#include <unistd.h>
#include <string.h>

static const char msg[] =
    "\n"
    "Hello from berth!\n"
    "This message shows that your installation appears to be working correctly.\n"
    "\n"
    "To generate this message, berth took the following steps:\n"
    " 1. The berth client contacted the berth daemon.\n"
    " 2. The berth daemon found the \"hello-world\" image in its local store.\n"
    " 3. The berth daemon created a new container from that image which runs the\n"
    "    executable that produced the output you are currently reading.\n"
    " 4. The berth daemon streamed that output to the berth client, which sent it\n"
    "    to your terminal.\n"
    "\n"
    "To try something more ambitious, you can run a shell in a busybox container with:\n"
    " $ berth run -it busybox sh\n"
    "\n";

int main(void) {
    size_t off = 0, len = sizeof(msg) - 1;
    while (off < len) {
        ssize_t n = write(1, msg + off, len - off);
        if (n <= 0) return 1;
        off += (size_t)n;
    }
    return 0;
}
