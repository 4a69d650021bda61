/*
 * A DTLS 1.2 echo server on OpenSSL's DTLSv1_listen() that takes any cookie it is given as proof enough: the
 * deployment behind a balancer that runs the HelloVerifyRequest exchange itself. A hello without a cookie still gets
 * the server's own HelloVerifyRequest, so clients can also reach it directly.
 *
 * Why DTLSv1_listen: after it accepts a hello, OpenSSL goes on with message_seq 1 on both sides, which is where a
 * client stands after the balancer's HelloVerifyRequest. A server that runs SSL_accept() alone (openssl s_server)
 * waits for a hello with message_seq 0 instead and never answers.
 *
 * Built by the end-to-end tests with `cc` against the libssl/libcrypto that the openssl command uses. The few
 * declarations needed are written out here so that no development headers are required.
 *
 * Usage: openssl-trusting-server ADDR PORT CERT KEY NAME
 * Prints one line per event: ACCEPT, HELLO-VERIFY, HANDSHAKE <sni|->, DATA <line>, CLOSED, FAILED <step> <code>.
 * Answers each line of data with "<NAME> echo <line>". One client at a time; runs until killed.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;
typedef struct ssl_method_st SSL_METHOD;
typedef struct bio_st BIO;
typedef union bio_addr_st BIO_ADDR;

const SSL_METHOD *DTLS_server_method(void);
SSL_CTX *SSL_CTX_new(const SSL_METHOD *method);
int SSL_CTX_use_certificate_file(SSL_CTX *ctx, const char *file, int type);
int SSL_CTX_use_PrivateKey_file(SSL_CTX *ctx, const char *file, int type);
void SSL_CTX_set_cookie_generate_cb(SSL_CTX *ctx, int (*cb)(SSL *, unsigned char *, unsigned int *));
void SSL_CTX_set_cookie_verify_cb(SSL_CTX *ctx, int (*cb)(SSL *, const unsigned char *, unsigned int));
SSL *SSL_new(SSL_CTX *ctx);
void SSL_free(SSL *ssl);
void SSL_set_bio(SSL *ssl, BIO *rbio, BIO *wbio);
int DTLSv1_listen(SSL *ssl, BIO_ADDR *client);
int SSL_accept(SSL *ssl);
int SSL_read(SSL *ssl, void *buf, int num);
int SSL_write(SSL *ssl, const void *buf, int num);
int SSL_shutdown(SSL *ssl);
int SSL_get_error(const SSL *ssl, int ret);
const char *SSL_get_servername(const SSL *ssl, int type);
BIO *BIO_new_dgram(int fd, int close_flag);
long BIO_ctrl(BIO *bio, int cmd, long larg, void *parg);
BIO_ADDR *BIO_ADDR_new(void);
void BIO_ADDR_free(BIO_ADDR *addr);
int BIO_ADDR_rawaddress(const BIO_ADDR *addr, void *p, size_t *l);
unsigned short BIO_ADDR_rawport(const BIO_ADDR *addr);

#define SSL_FILETYPE_PEM 1
#define BIO_NOCLOSE 0
#define BIO_CTRL_DGRAM_SET_CONNECTED 32
#define TLSEXT_NAMETYPE_host_name 0

/* A client that goes quiet for this long is given up, so that the next one is served. */
#define IDLE_SECONDS 10

static unsigned char own_cookie[16];

static int generate_cookie(SSL *ssl, unsigned char *cookie, unsigned int *length) {
  (void)ssl;
  memcpy(cookie, own_cookie, sizeof own_cookie);
  *length = sizeof own_cookie;
  printf("HELLO-VERIFY\n");
  return 1;
}

/* The balancer in front has already checked that the client receives at its address. */
static int verify_cookie(SSL *ssl, const unsigned char *cookie, unsigned int length) {
  (void)ssl;
  (void)cookie;
  return length > 0;
}

static void serve(SSL *ssl, const char *name) {
  int r = SSL_accept(ssl);
  if (r <= 0) {
    printf("FAILED accept %d\n", SSL_get_error(ssl, r));
    return;
  }
  const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  printf("HANDSHAKE %s\n", sni != NULL ? sni : "-");
  char line[4096];
  size_t used = 0;
  for (;;) {
    int n = SSL_read(ssl, line + used, (int)(sizeof line - 1 - used));
    if (n <= 0) break;
    used += (size_t)n;
    char *nl;
    while ((nl = memchr(line, '\n', used)) != NULL) {
      *nl = '\0';
      printf("DATA %s\n", line);
      char reply[4200];
      int m = snprintf(reply, sizeof reply, "%s echo %s\n", name, line);
      SSL_write(ssl, reply, m);
      used -= (size_t)(nl + 1 - line);
      memmove(line, nl + 1, used);
    }
    if (used == sizeof line - 1) used = 0;
  }
  SSL_shutdown(ssl);
}

int main(int argc, char **argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: %s ADDR PORT CERT KEY NAME\n", argv[0]);
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  FILE *random = fopen("/dev/urandom", "rb");
  if (random == NULL || fread(own_cookie, 1, sizeof own_cookie, random) != sizeof own_cookie) return 1;
  fclose(random);

  SSL_CTX *ctx = SSL_CTX_new(DTLS_server_method());
  if (ctx == NULL || SSL_CTX_use_certificate_file(ctx, argv[3], SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx, argv[4], SSL_FILETYPE_PEM) != 1) {
    printf("FAILED credentials 0\n");
    return 1;
  }
  SSL_CTX_set_cookie_generate_cb(ctx, generate_cookie);
  SSL_CTX_set_cookie_verify_cb(ctx, verify_cookie);

  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in local = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[2]))};
  if (fd < 0 || inet_pton(AF_INET, argv[1], &local.sin_addr) != 1 ||
      bind(fd, (struct sockaddr *)&local, sizeof local) != 0) {
    perror("bind");
    return 1;
  }
  printf("ACCEPT\n");

  for (;;) {
    BIO *bio = BIO_new_dgram(fd, BIO_NOCLOSE);
    SSL *ssl = SSL_new(ctx);
    BIO_ADDR *peer = BIO_ADDR_new();
    SSL_set_bio(ssl, bio, bio);
    while (DTLSv1_listen(ssl, peer) <= 0) {
    }
    /* One client at a time, as s_server does: the socket is connected to it until it is done. */
    struct sockaddr_in remote = {.sin_family = AF_INET, .sin_port = BIO_ADDR_rawport(peer)};
    size_t length = sizeof remote.sin_addr;
    BIO_ADDR_rawaddress(peer, &remote.sin_addr, &length);
    connect(fd, (struct sockaddr *)&remote, sizeof remote);
    BIO_ctrl(bio, BIO_CTRL_DGRAM_SET_CONNECTED, 0, peer);
    struct timeval idle = {.tv_sec = IDLE_SECONDS};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &idle, sizeof idle);

    serve(ssl, argv[5]);

    struct timeval forever = {0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &forever, sizeof forever);
    struct sockaddr unspec = {.sa_family = AF_UNSPEC};
    connect(fd, &unspec, sizeof unspec);
    printf("CLOSED\n");
    SSL_free(ssl);
    BIO_ADDR_free(peer);
  }
}
