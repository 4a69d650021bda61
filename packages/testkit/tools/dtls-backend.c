/*
 * dtls-backend ADDR PORT CERT KEY [--any-cookie]
 *
 * A DTLS 1.2 server for tests and benchmarks that serves many clients at once, as a real one does:
 * OpenSSL's DTLSv1_listen() answers hellos without a valid cookie with a stateless HelloVerifyRequest, and each
 * hello that brings one gets a process of its own with a socket connected to that client, so the listening socket
 * carries on with new clients. (openssl s_server and gnutls-serv serve one client at a time.)
 *
 * --any-cookie takes any cookie as proof: for behind a balancer that answers hellos with its own HelloVerifyRequest
 * (flowlb's `helloVerify: true`), which has checked the client's address already. The client then comes with
 * message_seq 1 and the balancer's cookie, and DTLSv1_listen() carries on from there; s_server would wait for
 * message_seq 0, and gnutls-serv answer with a HelloVerifyRequest the client has read already.
 *
 * Prints READY once bound, then per client HANDSHAKE and CLOSED, or FAILED <step>.
 *
 * Compiled by @flowlb/testkit's startDtlsBackend when first used, against the libssl the openssl command uses; the
 * few declarations it needs are written out below, so no development headers are required.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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
BIO *SSL_get_rbio(const SSL *ssl);
int DTLSv1_listen(SSL *ssl, BIO_ADDR *client);
int SSL_accept(SSL *ssl);
int SSL_read(SSL *ssl, void *buf, int num);
int SSL_shutdown(SSL *ssl);
int SSL_get_error(const SSL *ssl, int ret);
BIO *BIO_new_dgram(int fd, int close_flag);
long BIO_ctrl(BIO *bio, int cmd, long larg, void *parg);
BIO_ADDR *BIO_ADDR_new(void);
int BIO_ADDR_rawaddress(const BIO_ADDR *addr, void *p, size_t *l);
unsigned short BIO_ADDR_rawport(const BIO_ADDR *addr);

#define SSL_FILETYPE_PEM 1
#define BIO_NOCLOSE 0
#define BIO_C_SET_FD 104
#define BIO_CTRL_DGRAM_SET_CONNECTED 32
#define BIO_CTRL_DGRAM_GET_PEER 46
#define SSL_ERROR_WANT_READ 2
#define SSL_ERROR_WANT_WRITE 3

/* A client gets this long for its handshake, and again for closing, before its process gives up. */
#define CLIENT_SECONDS 8
#define COOKIE_LEN 16

static int any_cookie;
static uint8_t secret[16];
static volatile sig_atomic_t expired;

static void on_alarm(int sig) {
	(void)sig;
	expired = 1;
}

/* A keyed hash of the client's address and port: enough to tell a returning client, which is all a test needs. */
static void cookie_for(SSL *ssl, unsigned char out[COOKIE_LEN]) {
	struct sockaddr_storage peer;
	memset(&peer, 0, sizeof peer);
	BIO_ctrl(SSL_get_rbio(ssl), BIO_CTRL_DGRAM_GET_PEER, 0, &peer);
	const struct sockaddr_in *in = (const struct sockaddr_in *)&peer;
	uint64_t h[2] = {0xcbf29ce484222325ULL, 0x84222325cbf29ce4ULL};
	uint8_t material[sizeof secret + 6];
	memcpy(material, secret, sizeof secret);
	memcpy(material + sizeof secret, &in->sin_addr, 4);
	memcpy(material + sizeof secret + 4, &in->sin_port, 2);
	for (size_t i = 0; i < sizeof material; i++) {
		h[0] = (h[0] ^ material[i]) * 0x100000001b3ULL;
		h[1] = (h[1] ^ material[sizeof material - 1 - i]) * 0x100000001b3ULL;
	}
	memcpy(out, h, COOKIE_LEN);
}

static int make_cookie(SSL *ssl, unsigned char *cookie, unsigned int *length) {
	cookie_for(ssl, cookie);
	*length = COOKIE_LEN;
	return 1;
}

static int check_cookie(SSL *ssl, const unsigned char *cookie, unsigned int length) {
	if (any_cookie)
		return length > 0;
	unsigned char want[COOKIE_LEN];
	cookie_for(ssl, want);
	return length == COOKIE_LEN && memcmp(cookie, want, COOKIE_LEN) == 0;
}

/*
 * Runs an SSL call until it is done, fails, or the client's time is up. The alarm interrupts the blocking receive
 * (no SA_RESTART), which OpenSSL reports as "want read"; only then does the deadline get a say.
 */
static int until_done(SSL *ssl, int (*step)(SSL *)) {
	for (;;) {
		int r = step(ssl);
		if (r > 0)
			return r;
		int e = SSL_get_error(ssl, r);
		if (expired || (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE))
			return r;
	}
}

static int read_until_closed(SSL *ssl) {
	char buf[2048];
	return SSL_read(ssl, buf, sizeof buf);
}

static int bound_socket(const struct sockaddr_in *addr) {
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	int one = 1;
	/* The listening socket and every client's connected one share the address; the kernel gives each client's
	 * datagrams to the socket connected to it. */
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
	    bind(fd, (const struct sockaddr *)addr, sizeof *addr) != 0)
		return -1;
	return fd;
}

/* In the client's own process: moves the handshake to a socket connected to the client and sees it through. */
static void serve(SSL *ssl, const struct sockaddr_in *local, BIO_ADDR *client) {
	struct sockaddr_in peer;
	memset(&peer, 0, sizeof peer);
	peer.sin_family = AF_INET;
	peer.sin_port = BIO_ADDR_rawport(client);
	size_t len = sizeof peer.sin_addr;
	int fd = bound_socket(local);
	if (fd < 0 || BIO_ADDR_rawaddress(client, &peer.sin_addr, &len) != 1 || connect(fd, (struct sockaddr *)&peer, sizeof peer) != 0) {
		printf("FAILED connect\n");
		return;
	}
	BIO *bio = SSL_get_rbio(ssl);
	BIO_ctrl(bio, BIO_C_SET_FD, BIO_NOCLOSE, &fd);
	BIO_ctrl(bio, BIO_CTRL_DGRAM_SET_CONNECTED, 0, client);
	alarm(CLIENT_SECONDS);
	if (until_done(ssl, SSL_accept) <= 0) {
		printf("FAILED handshake\n");
		return;
	}
	printf("HANDSHAKE\n");
	expired = 0;
	alarm(CLIENT_SECONDS);
	/* Returns at the client's close_notify, an error, or the alarm. */
	until_done(ssl, read_until_closed);
	SSL_shutdown(ssl);
	printf("CLOSED\n");
}

int main(int argc, char **argv) {
	if (argc < 5 || argc > 6 || (argc == 6 && strcmp(argv[5], "--any-cookie") != 0)) {
		fprintf(stderr, "usage: %s ADDR PORT CERT KEY [--any-cookie]\n", argv[0]);
		return 2;
	}
	any_cookie = argc == 6;
	setvbuf(stdout, NULL, _IOLBF, 0);
	FILE *urandom = fopen("/dev/urandom", "rb");
	if (!urandom || fread(secret, 1, sizeof secret, urandom) != sizeof secret) {
		fprintf(stderr, "cannot read /dev/urandom\n");
		return 1;
	}
	fclose(urandom);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_alarm;
	sigaction(SIGALRM, &sa, NULL);
	/* Client processes are not waited for. */
	signal(SIGCHLD, SIG_IGN);

	SSL_CTX *ctx = SSL_CTX_new(DTLS_server_method());
	if (!ctx || SSL_CTX_use_certificate_file(ctx, argv[3], SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, argv[4], SSL_FILETYPE_PEM) != 1) {
		fprintf(stderr, "cannot load %s and %s\n", argv[3], argv[4]);
		return 1;
	}
	SSL_CTX_set_cookie_generate_cb(ctx, make_cookie);
	SSL_CTX_set_cookie_verify_cb(ctx, check_cookie);

	struct sockaddr_in local;
	memset(&local, 0, sizeof local);
	local.sin_family = AF_INET;
	local.sin_port = htons((unsigned short)atoi(argv[2]));
	int fd = inet_pton(AF_INET, argv[1], &local.sin_addr) == 1 ? bound_socket(&local) : -1;
	if (fd < 0) {
		fprintf(stderr, "cannot bind %s:%s: %s\n", argv[1], argv[2], strerror(errno));
		return 1;
	}
	printf("READY\n");

	BIO_ADDR *client = BIO_ADDR_new();
	for (;;) {
		SSL *ssl = SSL_new(ctx);
		BIO *bio = BIO_new_dgram(fd, BIO_NOCLOSE);
		SSL_set_bio(ssl, bio, bio);
		/* Blocks until a hello with a good cookie arrives; the others are answered and forgotten. */
		int r;
		while ((r = DTLSv1_listen(ssl, client)) == 0)
			;
		if (r > 0 && fork() == 0) {
			close(fd);
			serve(ssl, &local, client);
			_exit(0);
		}
		SSL_free(ssl);
	}
}
