// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * Test certificates, made with the openssl CLI so that the harness itself
 * needs no OpenSSL headers. Our own config file keeps the result independent
 * of the system openssl.cnf.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "harness.h"
#include "harness_internal.h"

#include <stdio.h>
#include <string.h>

static const char CONFIG[] = "[req]\n"
                             "distinguished_name = dn\n"
                             "prompt = no\n"
                             "[dn]\n"
                             "CN = mrconn test\n"
                             "[v3_ca]\n"
                             "basicConstraints = critical,CA:TRUE\n"
                             "keyUsage = critical,keyCertSign,cRLSign\n"
                             "subjectKeyIdentifier = hash\n"
                             "[server]\n"
                             "basicConstraints = CA:FALSE\n"
                             "keyUsage = critical,digitalSignature,keyEncipherment\n"
                             "extendedKeyUsage = serverAuth\n"
                             "subjectAltName = IP:127.0.0.1,DNS:localhost\n"
                             "authorityKeyIdentifier = keyid\n"
                             "[client]\n"
                             "basicConstraints = CA:FALSE\n"
                             "keyUsage = critical,digitalSignature,keyEncipherment\n"
                             "extendedKeyUsage = clientAuth\n"
                             "authorityKeyIdentifier = keyid\n";

struct paths {
    char cnf[300], log[300];
    char ca_crt[300], ca_key[300];
    char srv_crt[300], srv_key[300], srv_csr[300];
    char cli_crt[300], cli_key[300], cli_csr[300], cli_enc[300];
    char oca_crt[300], oca_key[300];
};

static int openssl(const char *log, const char *const *args) {
    const char *argv[32];
    int n = 0;
    argv[n++] = "openssl";
    while (*args && n < 31)
        argv[n++] = *args++;
    argv[n] = NULL;
    int rc = harness_spawn_wait(argv, log);
    if (rc != 0)
        printf("tls_make_certs: `openssl %s` failed (%d), see %s\n", argv[1], rc, log);
    return rc;
}

static int self_signed_ca(const struct paths *p, const char *crt, const char *key, const char *subject) {
    const char *a[] = {"req", "-x509", "-new", "-nodes", "-newkey", "rsa:2048", "-sha256", "-days", "3650",
                       "-keyout", key, "-out", crt, "-subj", subject, "-config", p->cnf, "-extensions",
                       "v3_ca", NULL};
    return openssl(p->log, a);
}

static int signed_leaf(const struct paths *p, const char *crt, const char *key, const char *csr,
                       const char *subject, const char *section, const char *serial) {
    const char *req[] = {"req", "-new", "-nodes", "-newkey", "rsa:2048", "-keyout", key, "-out", csr,
                         "-subj", subject, "-config", p->cnf, NULL};
    const char *sign[] = {"x509", "-req", "-in", csr, "-CA", p->ca_crt, "-CAkey", p->ca_key, "-set_serial",
                          serial, "-days", "3650", "-sha256", "-out", crt, "-extfile", p->cnf, "-extensions",
                          section, NULL};
    if (openssl(p->log, req) != 0)
        return -1;
    return openssl(p->log, sign);
}

int tls_make_certs(const char *dir) {
    struct paths p;
#define P(field, name) snprintf(p.field, sizeof p.field, "%s/%s", dir, name)
    P(cnf, "openssl.cnf");
    P(log, "openssl.log");
    P(ca_crt, "ca.crt");
    P(ca_key, "ca.key");
    P(srv_crt, "server.crt");
    P(srv_key, "server.key");
    P(srv_csr, "server.csr");
    P(cli_crt, "client.crt");
    P(cli_key, "client.key");
    P(cli_csr, "client.csr");
    P(cli_enc, "client_enc.key");
    P(oca_crt, "other_ca.crt");
    P(oca_key, "other_ca.key");
#undef P
    if (strlen(dir) > 250)
        return -1;

    FILE *f = fopen(p.cnf, "w");
    if (!f)
        return -1;
    bool wrote = fputs(CONFIG, f) >= 0;
    if (fclose(f) != 0 || !wrote)
        return -1;

    const char *encrypt[] = {"pkey", "-in", p.cli_key, "-out", p.cli_enc, "-aes256", "-passout",
                             "pass:" TLS_CLIENT_KEY_PASS, NULL};
    if (self_signed_ca(&p, p.ca_crt, p.ca_key, "/CN=mrconn test CA") != 0 ||
        signed_leaf(&p, p.srv_crt, p.srv_key, p.srv_csr, "/CN=127.0.0.1", "server", "2") != 0 ||
        signed_leaf(&p, p.cli_crt, p.cli_key, p.cli_csr, "/CN=mrconn test client", "client", "3") != 0 ||
        openssl(p.log, encrypt) != 0 ||
        self_signed_ca(&p, p.oca_crt, p.oca_key, "/CN=mrconn unrelated CA") != 0)
        return -1;
    return 0;
}
