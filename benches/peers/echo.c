/*
 * The floor of benches/peers.sh: a UDP "server" that sends every query back as its own
 * reply, with the QR bit set and nothing else changed. No DNS parsing, no answer: what it
 * costs is the kernel's part of a loopback query and reply (receive, send, waking the
 * client) with the batching of recvmmsg/sendmmsg, the least any server can spend on them.
 * dnsperf counts these replies as answers (same ID, same question; rcode NOERROR).
 *
 *   gcc -O2 -Wall -Werror -o echo benches/peers/echo.c
 *   ./echo PORT          (listens on 127.0.0.1:PORT; SIGTERM ends it)
 *
 * Linux only (recvmmsg, sendmmsg). Single-threaded, blocking.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BATCH 32
/* Larger than any query dnsperf sends; a longer datagram is truncated to this (and its
 * reply is the truncated copy), which no DNS client would notice here. */
#define BUF 4096

static unsigned char buf[BATCH][BUF];
static struct sockaddr_in from[BATCH];
static struct iovec rx_iov[BATCH], tx_iov[BATCH];
static struct mmsghdr rx[BATCH], tx[BATCH];

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    char *end;
    long port = strtol(argv[1], &end, 10);
    if (*argv[1] == '\0' || *end != '\0' || port < 1 || port > 65535) {
        fprintf(stderr, "echo: bad port '%s'\n", argv[1]);
        return 2;
    }

    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) {
        perror("echo: socket");
        return 1;
    }
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        perror("echo: bind");
        return 1;
    }

    for (int i = 0; i < BATCH; i++) {
        rx_iov[i] = (struct iovec){ .iov_base = buf[i], .iov_len = BUF };
        rx[i].msg_hdr.msg_iov = &rx_iov[i];
        rx[i].msg_hdr.msg_iovlen = 1;
        rx[i].msg_hdr.msg_name = &from[i];
        tx[i].msg_hdr.msg_iovlen = 1;
    }

    for (;;) {
        for (int i = 0; i < BATCH; i++) rx[i].msg_hdr.msg_namelen = sizeof from[i];
        /* MSG_WAITFORONE: block for the first datagram, then take whatever else is
         * already queued (up to BATCH) without waiting for more. */
        int n = recvmmsg(fd, rx, BATCH, MSG_WAITFORONE, NULL);
        if (n < 0) {
            if (errno == EINTR) continue;
            perror("echo: recvmmsg");
            return 1;
        }
        int m = 0;
        for (int i = 0; i < n; i++) {
            unsigned len = rx[i].msg_len;
            if (len < 12) continue; /* shorter than a DNS header: dropped */
            buf[i][2] |= 0x80;      /* QR: a response */
            tx_iov[m] = (struct iovec){ .iov_base = buf[i], .iov_len = len };
            tx[m].msg_hdr.msg_iov = &tx_iov[m];
            tx[m].msg_hdr.msg_name = &from[i];
            tx[m].msg_hdr.msg_namelen = rx[i].msg_hdr.msg_namelen;
            m++;
        }
        /* sendmmsg may send fewer than asked: send the rest. An error on the first of
         * them (returned as -1) drops that one reply, as a full socket buffer would. */
        for (int done = 0; done < m;) {
            int k = sendmmsg(fd, tx + done, (unsigned)(m - done), 0);
            if (k < 0) {
                if (errno == EINTR) continue;
                done++;
                continue;
            }
            done += k;
        }
    }
}
