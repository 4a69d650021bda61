/*
 * A DTLS 1.2 echo server on GnuTLS that numbers its handshake messages from the client's ClientHello instead of
 * from 0, in one of two modes:
 *
 *   cookies  its own stateless cookie exchange (gnutls_dtls_cookie_send/verify, as gnutls-serv does), but the
 *            HelloVerifyRequest carries the hello's message_seq and the ServerHello follows on from it. A client
 *            that has already answered a balancer's HelloVerifyRequest then reads this one too and completes.
 *   none     no cookie exchange: the handshake starts at whatever message_seq the first hello has.
 *
 * gnutls-serv sends its HelloVerifyRequest with message_seq 0 (and, with --nocookie, waits for a hello with
 * message_seq 0). After the balancer's HelloVerifyRequest the client only reads message_seq 1 onwards (RFC 6347
 * §4.2.2), so behind a balancer with helloVerify that server is never heard.
 *
 * Built by the end-to-end tests with `cc` against the libgnutls that gnutls-cli uses; the declarations needed are
 * written out here so that no development headers are required.
 *
 * Usage: gnutls-cookie-server ADDR PORT CERT KEY NAME cookies|none
 * Prints one line per event: ACCEPT, HELLO-VERIFY <message_seq>, HANDSHAKE <sni|->, DATA <line>, CLOSED,
 * FAILED <step> <code>. Answers each line of data with "<NAME> echo <line>". One client at a time; runs until killed.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

typedef struct gnutls_session_int *gnutls_session_t;
typedef struct gnutls_certificate_credentials_st *gnutls_certificate_credentials_t;
typedef struct {
  unsigned char *data;
  unsigned int size;
} gnutls_datum_t;
typedef struct {
  unsigned int record_seq;
  unsigned int hsk_read_seq;
  unsigned int hsk_write_seq;
} gnutls_dtls_prestate_st;
typedef ssize_t (*gnutls_push_func)(void *ptr, const void *data, size_t size);

int gnutls_global_init(void);
int gnutls_certificate_allocate_credentials(gnutls_certificate_credentials_t *cred);
int gnutls_certificate_set_x509_key_file(gnutls_certificate_credentials_t cred, const char *cert, const char *key, int type);
int gnutls_key_generate(gnutls_datum_t *key, unsigned int key_size);
int gnutls_init(gnutls_session_t *session, unsigned int flags);
void gnutls_deinit(gnutls_session_t session);
int gnutls_set_default_priority(gnutls_session_t session);
int gnutls_credentials_set(gnutls_session_t session, int type, void *cred);
void gnutls_transport_set_int2(gnutls_session_t session, int recv_fd, int send_fd);
void gnutls_handshake_set_timeout(gnutls_session_t session, unsigned int ms);
void gnutls_record_set_timeout(gnutls_session_t session, unsigned int ms);
int gnutls_dtls_cookie_send(gnutls_datum_t *key, void *client_data, size_t client_data_size,
                            gnutls_dtls_prestate_st *prestate, void *ptr, gnutls_push_func push_func);
int gnutls_dtls_cookie_verify(gnutls_datum_t *key, void *client_data, size_t client_data_size, void *msg,
                              size_t msg_size, gnutls_dtls_prestate_st *prestate);
void gnutls_dtls_prestate_set(gnutls_session_t session, gnutls_dtls_prestate_st *prestate);
int gnutls_handshake(gnutls_session_t session);
ssize_t gnutls_record_recv(gnutls_session_t session, void *data, size_t size);
ssize_t gnutls_record_send(gnutls_session_t session, const void *data, size_t size);
int gnutls_bye(gnutls_session_t session, int how);
int gnutls_server_name_get(gnutls_session_t session, void *data, size_t *length, unsigned int *type, unsigned int index);
int gnutls_error_is_fatal(int error);

#define GNUTLS_SERVER 1
#define GNUTLS_DATAGRAM 4
#define GNUTLS_CRD_CERTIFICATE 1
#define GNUTLS_X509_FMT_PEM 1
#define GNUTLS_SHUT_WR 1

#define IDLE_MS 10000

/* Offsets in a datagram that starts with a ClientHello record. */
#define RECORD_SEQ_LOW 10
#define MESSAGE_SEQ 17
#define HELLO_MIN 25

struct reply_to {
  int fd;
  struct sockaddr_in peer;
};

static ssize_t push_to(void *ptr, const void *data, size_t size) {
  struct reply_to *to = ptr;
  return sendto(to->fd, data, size, 0, (struct sockaddr *)&to->peer, sizeof to->peer);
}

static void serve(gnutls_session_t session, const char *name) {
  int r;
  do {
    r = gnutls_handshake(session);
  } while (r < 0 && !gnutls_error_is_fatal(r));
  if (r < 0) {
    printf("FAILED handshake %d\n", r);
    return;
  }
  char sni[256];
  size_t sni_length = sizeof sni;
  unsigned int type;
  if (gnutls_server_name_get(session, sni, &sni_length, &type, 0) == 0) printf("HANDSHAKE %s\n", sni);
  else printf("HANDSHAKE -\n");
  char line[4096];
  size_t used = 0;
  for (;;) {
    ssize_t n = gnutls_record_recv(session, line + used, sizeof line - 1 - used);
    if (n < 0 && !gnutls_error_is_fatal((int)n)) continue;
    if (n <= 0) break;
    used += (size_t)n;
    char *nl;
    while ((nl = memchr(line, '\n', used)) != NULL) {
      *nl = '\0';
      printf("DATA %s\n", line);
      char reply[4200];
      int m = snprintf(reply, sizeof reply, "%s echo %s\n", name, line);
      gnutls_record_send(session, reply, (size_t)m);
      used -= (size_t)(nl + 1 - line);
      memmove(line, nl + 1, used);
    }
    if (used == sizeof line - 1) used = 0;
  }
  gnutls_bye(session, GNUTLS_SHUT_WR);
}

int main(int argc, char **argv) {
  if (argc != 7 || (strcmp(argv[6], "cookies") != 0 && strcmp(argv[6], "none") != 0)) {
    fprintf(stderr, "usage: %s ADDR PORT CERT KEY NAME cookies|none\n", argv[0]);
    return 2;
  }
  int own_cookies = strcmp(argv[6], "cookies") == 0;
  setvbuf(stdout, NULL, _IOLBF, 0);
  gnutls_certificate_credentials_t credentials;
  gnutls_datum_t cookie_key;
  if (gnutls_global_init() < 0 || gnutls_certificate_allocate_credentials(&credentials) < 0 ||
      gnutls_certificate_set_x509_key_file(credentials, argv[3], argv[4], GNUTLS_X509_FMT_PEM) < 0 ||
      gnutls_key_generate(&cookie_key, 32) < 0) {
    printf("FAILED credentials 0\n");
    return 1;
  }

  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in local = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[2]))};
  if (fd < 0 || inet_pton(AF_INET, argv[1], &local.sin_addr) != 1 ||
      bind(fd, (struct sockaddr *)&local, sizeof local) != 0) {
    perror("bind");
    return 1;
  }
  printf("ACCEPT\n");

  unsigned char datagram[16384];
  for (;;) {
    struct reply_to to = {.fd = fd};
    socklen_t peer_length = sizeof to.peer;
    /* Peeked, not read: the session reads the hello again once the cookie has been checked. */
    ssize_t n = recvfrom(fd, datagram, sizeof datagram, MSG_PEEK, (struct sockaddr *)&to.peer, &peer_length);
    if (n < 0) continue;
    /* Only the first fragment of a hello holds the cookie; a later one on its own is no new client. */
    int first_fragment = n >= HELLO_MIN && datagram[19] == 0 && datagram[20] == 0 && datagram[21] == 0;
    if (n < HELLO_MIN || datagram[0] != 22 || datagram[13] != 1 || !first_fragment) {
      recv(fd, datagram, sizeof datagram, 0);
      continue;
    }
    unsigned int message_seq = ((unsigned int)datagram[MESSAGE_SEQ] << 8) | datagram[MESSAGE_SEQ + 1];
    gnutls_dtls_prestate_st prestate = {
        .record_seq = datagram[RECORD_SEQ_LOW],
        .hsk_read_seq = message_seq,
        /* gnutls_dtls_prestate_set() adds one: the ServerHello then has the hello's message_seq. */
        .hsk_write_seq = message_seq > 0 ? message_seq - 1 : 0,
    };
    if (own_cookies) {
      gnutls_dtls_prestate_st checked;
      memset(&checked, 0, sizeof checked);
      if (gnutls_dtls_cookie_verify(&cookie_key, &to.peer, sizeof to.peer, datagram, (size_t)n, &checked) < 0) {
        /* The client has read message_seq values up to its hello's minus one: this one it will read. */
        gnutls_dtls_prestate_st hvr = {.record_seq = datagram[RECORD_SEQ_LOW], .hsk_write_seq = message_seq};
        gnutls_dtls_cookie_send(&cookie_key, &to.peer, sizeof to.peer, &hvr, &to, push_to);
        printf("HELLO-VERIFY %u\n", message_seq);
        recv(fd, datagram, sizeof datagram, 0);
        continue;
      }
    }

    connect(fd, (struct sockaddr *)&to.peer, sizeof to.peer);
    gnutls_session_t session;
    gnutls_init(&session, GNUTLS_SERVER | GNUTLS_DATAGRAM);
    gnutls_set_default_priority(session);
    gnutls_credentials_set(session, GNUTLS_CRD_CERTIFICATE, credentials);
    gnutls_transport_set_int2(session, fd, fd);
    gnutls_handshake_set_timeout(session, IDLE_MS);
    gnutls_record_set_timeout(session, IDLE_MS);
    /* A first hello (message_seq 0) starts a plain handshake; anything later carries on from where it stands. */
    if (message_seq > 0) gnutls_dtls_prestate_set(session, &prestate);

    serve(session, argv[5]);

    gnutls_deinit(session);
    struct sockaddr unspec = {.sa_family = AF_UNSPEC};
    connect(fd, &unspec, sizeof unspec);
    printf("CLOSED\n");
  }
}
