/*
 * Multi-buffer SHA-256 of many files (FIPS 180-4), for the context hash.
 *
 * One SHA-256 is a chain: every block depends on the one before, so a core
 * without the SHA extensions hashes one file at a few hundred MB/s. Different
 * files do not depend on each other, so this module hashes 8 (AVX2) or 16
 * (AVX-512) files at once, one file per 32-bit lane of a vector register.
 * Each lane streams its file through its own buffer (flat memory: 16 buffers
 * of LANE_BUF bytes); when a lane's file ends, the lane takes the next path.
 * Where the CPU has the SHA extensions, a third kernel interleaves two files'
 * chains with them (width 2), faster than either vector kernel there.
 *
 * The module compiles everywhere. Where the compiler cannot target x86 vector
 * instructions, or the CPU lacks them, widths() is empty and the caller
 * hashes with hashlib. The tests check every kernel against hashlib.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__) && !defined(_WIN32)
#define MB_X86 1
#include <errno.h>
#include <fcntl.h>
#include <cpuid.h>
#include <immintrin.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

#ifdef MB_X86

#define MAX_LANES 16
/* Bytes read per lane at a time; a multiple of 64. */
#define LANE_BUF (64 * 1024)
/* Room after a lane's data for the padding (at most two blocks). */
#define LANE_SLOT (LANE_BUF + 128)

static const uint32_t K[64] = {
    0x428a2f98u, 0x71374491u, 0xb5c0fbcfu, 0xe9b5dba5u, 0x3956c25bu, 0x59f111f1u,
    0x923f82a4u, 0xab1c5ed5u, 0xd807aa98u, 0x12835b01u, 0x243185beu, 0x550c7dc3u,
    0x72be5d74u, 0x80deb1feu, 0x9bdc06a7u, 0xc19bf174u, 0xe49b69c1u, 0xefbe4786u,
    0x0fc19dc6u, 0x240ca1ccu, 0x2de92c6fu, 0x4a7484aau, 0x5cb0a9dcu, 0x76f988dau,
    0x983e5152u, 0xa831c66du, 0xb00327c8u, 0xbf597fc7u, 0xc6e00bf3u, 0xd5a79147u,
    0x06ca6351u, 0x14292967u, 0x27b70a85u, 0x2e1b2138u, 0x4d2c6dfcu, 0x53380d13u,
    0x650a7354u, 0x766a0abbu, 0x81c2c92eu, 0x92722c85u, 0xa2bfe8a1u, 0xa81a664bu,
    0xc24b8b70u, 0xc76c51a3u, 0xd192e819u, 0xd6990624u, 0xf40e3585u, 0x106aa070u,
    0x19a4c116u, 0x1e376c08u, 0x2748774cu, 0x34b0bcb5u, 0x391c0cb3u, 0x4ed8aa4au,
    0x5b9cca4fu, 0x682e6ff3u, 0x748f82eeu, 0x78a5636fu, 0x84c87814u, 0x8cc70208u,
    0x90befffau, 0xa4506cebu, 0xbef9a3f7u, 0xc67178f2u,
};

static const uint32_t H0[8] = {
    0x6a09e667u, 0xbb67ae85u, 0x3c6ef372u, 0xa54ff53au,
    0x510e527fu, 0x9b05688cu, 0x1f83d9abu, 0x5be0cd19u,
};

/* The state of every lane, word-major: st[word][lane]. */
typedef uint32_t lane_state[8][MAX_LANES];

/*
 * The compression function over `nblocks` consecutive blocks of every lane.
 * Lane i's blocks start at arena + off[i]. V is the vector type, LOAD_W loads
 * the t-th message word of block b of every lane as big-endian words.
 */
#define ROTR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))
#define COMPRESS_BODY(V, LOAD_W)                                                   \
    {                                                                              \
        V a, b, c, d, e, f, g, h;                                                  \
        V w[16];                                                                   \
        memcpy(&a, st[0], sizeof(V));                                              \
        memcpy(&b, st[1], sizeof(V));                                              \
        memcpy(&c, st[2], sizeof(V));                                              \
        memcpy(&d, st[3], sizeof(V));                                              \
        memcpy(&e, st[4], sizeof(V));                                              \
        memcpy(&f, st[5], sizeof(V));                                              \
        memcpy(&g, st[6], sizeof(V));                                              \
        memcpy(&h, st[7], sizeof(V));                                              \
        for (size_t blk = 0; blk < nblocks; blk++) {                               \
            V sa = a, sb = b, sc = c, sd = d, se = e, sf = f, sg = g, sh = h;      \
            _Pragma("GCC unroll 64")                                               \
            for (int t = 0; t < 64; t++) {                                         \
                V wt;                                                              \
                if (t < 16) {                                                      \
                    wt = LOAD_W(blk, t);                                           \
                } else {                                                           \
                    V w15 = w[(t - 15) & 15], w2 = w[(t - 2) & 15];                \
                    V s0 = ROTR(w15, 7) ^ ROTR(w15, 18) ^ (w15 >> 3);              \
                    V s1 = ROTR(w2, 17) ^ ROTR(w2, 19) ^ (w2 >> 10);               \
                    wt = w[t & 15] + s0 + w[(t - 7) & 15] + s1;                    \
                }                                                                  \
                w[t & 15] = wt;                                                    \
                V S1 = ROTR(e, 6) ^ ROTR(e, 11) ^ ROTR(e, 25);                     \
                V ch = (e & f) ^ (~e & g);                                         \
                V t1 = h + S1 + ch + K[t] + wt;                                    \
                V S0 = ROTR(a, 2) ^ ROTR(a, 13) ^ ROTR(a, 22);                     \
                V maj = (a & b) ^ (a & c) ^ (b & c);                               \
                h = g;                                                             \
                g = f;                                                             \
                f = e;                                                             \
                e = d + t1;                                                        \
                d = c;                                                             \
                c = b;                                                             \
                b = a;                                                             \
                a = t1 + S0 + maj;                                                 \
            }                                                                      \
            a += sa; b += sb; c += sc; d += sd;                                    \
            e += se; f += sf; g += sg; h += sh;                                    \
        }                                                                          \
        memcpy(st[0], &a, sizeof(V));                                              \
        memcpy(st[1], &b, sizeof(V));                                              \
        memcpy(st[2], &c, sizeof(V));                                              \
        memcpy(st[3], &d, sizeof(V));                                              \
        memcpy(st[4], &e, sizeof(V));                                              \
        memcpy(st[5], &f, sizeof(V));                                              \
        memcpy(st[6], &g, sizeof(V));                                              \
        memcpy(st[7], &h, sizeof(V));                                              \
    }

typedef void (*compress_fn)(lane_state st, const uint8_t *arena, const uint32_t *off,
                            size_t nblocks);

/* -- AVX-512: 16 lanes --------------------------------------------------- */
typedef uint32_t v16 __attribute__((vector_size(64)));

#define LOAD_W16(blk, t)                                                          \
    ((v16)_mm512_shuffle_epi8(                                                    \
        _mm512_i32gather_epi32(idx, arena + 64 * (blk) + 4 * (t), 1), swap))

__attribute__((target("avx512f,avx512bw"))) static void
compress16(lane_state st, const uint8_t *arena, const uint32_t *off, size_t nblocks)
{
    const __m512i idx = _mm512_loadu_si512((const void *)off);
    const __m512i swap = _mm512_broadcast_i32x4(
        _mm_setr_epi8(3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12));
    COMPRESS_BODY(v16, LOAD_W16)
}

/* -- AVX2: 8 lanes -------------------------------------------------------- */
typedef uint32_t v8 __attribute__((vector_size(32)));

#define LOAD_W8(blk, t)                                                           \
    ((v8)_mm256_shuffle_epi8(                                                     \
        _mm256_i32gather_epi32((const int *)(arena + 64 * (blk) + 4 * (t)), idx, 1), \
        swap))

__attribute__((target("avx2"))) static void
compress8(lane_state st, const uint8_t *arena, const uint32_t *off, size_t nblocks)
{
    const __m256i idx = _mm256_loadu_si256((const __m256i *)off);
    const __m256i swap = _mm256_setr_epi8(
        3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12,
        3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12);
    COMPRESS_BODY(v8, LOAD_W8)
}

/* -- SHA extensions (SHA-NI): 2 lanes -------------------------------------
 * The CPU's own SHA-256 rounds. One chain waits on each instruction's
 * latency, so two files' chains are interleaved: on Zen 4 two run at 1.9x
 * the speed of one (3.4 against 1.8 GB/s per core), about twice 16 AVX-512
 * lanes, and a lane left idle costs nothing but the slots the other does
 * not use. The state of a lane sits in two registers as the instructions
 * want it: (a, b, e, f) and (c, d, g, h), highest word first. Each
 * sha256rnds2 does two rounds with the low two words of W+K and leaves the
 * new (a, b, e, f) in its first operand, so the two registers swap roles
 * every call. sha256msg1/msg2 build the next four message words from the
 * last sixteen. */
#define NI_LANES 2

__attribute__((target("sha,sse4.1,ssse3"))) static void
compress_ni(lane_state st, const uint8_t *arena, const uint32_t *off, size_t nblocks)
{
    const __m128i swap = _mm_setr_epi8(3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12);
    __m128i abef[NI_LANES], cdgh[NI_LANES];
    for (int l = 0; l < NI_LANES; l++) {
        abef[l] = _mm_set_epi32((int)st[0][l], (int)st[1][l], (int)st[4][l], (int)st[5][l]);
        cdgh[l] = _mm_set_epi32((int)st[2][l], (int)st[3][l], (int)st[6][l], (int)st[7][l]);
    }
    for (size_t blk = 0; blk < nblocks; blk++) {
        __m128i abef0[NI_LANES], cdgh0[NI_LANES];
        __m128i w[NI_LANES][4]; /* message words 4q..4q+3 of each lane, cycling */
        for (int l = 0; l < NI_LANES; l++) {
            abef0[l] = abef[l];
            cdgh0[l] = cdgh[l];
        }
        _Pragma("GCC unroll 16")
        for (int q = 0; q < 16; q++) {
            const __m128i k = _mm_loadu_si128((const __m128i *)&K[4 * q]);
            _Pragma("GCC unroll 2")
            for (int l = 0; l < NI_LANES; l++) {
                __m128i m;
                if (q < 4) {
                    const uint8_t *p = arena + off[l] + 64 * blk + 16 * q;
                    m = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)p), swap);
                } else {
                    /* W[t] = s1(W[t-2]) + W[t-7] + s0(W[t-15]) + W[t-16], t = 4q.. */
                    __m128i part = _mm_sha256msg1_epu32(w[l][q & 3], w[l][(q + 1) & 3]);
                    part = _mm_add_epi32(
                        part, _mm_alignr_epi8(w[l][(q + 3) & 3], w[l][(q + 2) & 3], 4));
                    m = _mm_sha256msg2_epu32(part, w[l][(q + 3) & 3]);
                }
                w[l][q & 3] = m;
                __m128i wk = _mm_add_epi32(m, k);
                cdgh[l] = _mm_sha256rnds2_epu32(cdgh[l], abef[l], wk); /* rounds t, t+1 */
                abef[l] = _mm_sha256rnds2_epu32(abef[l], cdgh[l],     /* t+2, t+3 */
                                                _mm_shuffle_epi32(wk, 0x0e));
            }
        }
        for (int l = 0; l < NI_LANES; l++) {
            abef[l] = _mm_add_epi32(abef[l], abef0[l]);
            cdgh[l] = _mm_add_epi32(cdgh[l], cdgh0[l]);
        }
    }
    for (int l = 0; l < NI_LANES; l++) {
        uint32_t x[4], y[4];
        _mm_storeu_si128((__m128i *)x, abef[l]); /* x[3] = a, x[2] = b, x[1] = e, x[0] = f */
        _mm_storeu_si128((__m128i *)y, cdgh[l]);
        st[0][l] = x[3];
        st[1][l] = x[2];
        st[4][l] = x[1];
        st[5][l] = x[0];
        st[2][l] = y[3];
        st[3][l] = y[2];
        st[6][l] = y[1];
        st[7][l] = y[0];
    }
}

/* -- the driver ----------------------------------------------------------- */
typedef struct {
    Py_ssize_t item; /* index of the path being hashed, -1 when idle */
    int fd;
    size_t start, end; /* unhashed bytes of the buffer */
    uint64_t length;   /* bytes read so far */
    uint64_t expect;   /* a regular file's size from fstat; 0: read to a read of 0 */
    int final;         /* padding appended: the buffer ends the message */
} lane_t;

/* A path's status: hashed, an errno, or skipped (larger than the limit). */
#define HASHED 0
#define SKIPPED -1

typedef struct {
    Py_ssize_t count;
    char **paths;
    long long limit; /* skip files larger than this; -1: none */
    unsigned char (*digests)[32];
    int *status;
} job_t;

/* The kernels this CPU can run, widest first. */
static int widths_known = 0;
static int can16 = 0, can8 = 0, can_ni = 0;

static void detect(void)
{
    if (widths_known)
        return;
    __builtin_cpu_init();
    can16 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
    can8 = __builtin_cpu_supports("avx2");
    unsigned int a = 0, b = 0, c = 0, d = 0;
    /* CPUID leaf 7: EBX bit 29 is the SHA extensions */
    can_ni = __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & (1u << 29))
           && __builtin_cpu_supports("sse4.1") && __builtin_cpu_supports("ssse3");
    widths_known = 1;
}

static void lane_reset(lane_state st, int i)
{
    for (int w = 0; w < 8; w++)
        st[w][i] = H0[w];
}

/* Give lane `i` the next path that opens; record the ones that do not, and
 * skip (leave for the caller) the ones larger than job->limit. */
static void lane_take(lane_t *lane, lane_state st, int i, job_t *job, Py_ssize_t *next)
{
    lane->item = -1;
    while (*next < job->count) {
        Py_ssize_t item = (*next)++;
        int fd;
        do {
            fd = open(job->paths[item], O_RDONLY | O_CLOEXEC);
        } while (fd < 0 && errno == EINTR);
        if (fd < 0) {
            job->status[item] = errno;
            continue;
        }
        struct stat info;
        if (fstat(fd, &info) != 0) {
            job->status[item] = errno;
            close(fd);
            continue;
        }
        if (S_ISREG(info.st_mode) && job->limit >= 0 && (long long)info.st_size > job->limit) {
            job->status[item] = SKIPPED;
            close(fd);
            continue;
        }
#ifdef POSIX_FADV_SEQUENTIAL
        if (info.st_size > LANE_BUF)
            posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
#endif
        lane->item = item;
        lane->fd = fd;
        lane->start = lane->end = 0;
        lane->length = 0;
        /* once a regular file's size is read, its end is known without
           another read (as filehash.sha256_fd does); empty ones are read */
        lane->expect = S_ISREG(info.st_mode) ? (uint64_t)info.st_size : 0;
        lane->final = 0;
        lane_reset(st, i);
        return;
    }
}

static void lane_close(lane_t *lane)
{
    if (lane->fd >= 0)
        close(lane->fd);
    lane->fd = -1;
}

/* Read until the lane has a whole block to hash (or its padded end); 0, or an errno. */
static int lane_fill(lane_t *lane, uint8_t *buf)
{
    while (lane->end - lane->start < 64 && !lane->final) {
        size_t keep = lane->end - lane->start;
        memmove(buf, buf + lane->start, keep);
        lane->start = 0;
        lane->end = keep;
        ssize_t n = read(lane->fd, buf + keep, LANE_BUF - keep);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        if (n > 0) {
            lane->end += (size_t)n;
            lane->length += (uint64_t)n;
            if (lane->length != lane->expect)
                continue;
        }
        /* the end of the file: 0x80, zeros, and the length in bits */
        uint64_t bits = lane->length * 8;
        buf[lane->end++] = 0x80;
        while ((lane->end % 64) != 56)
            buf[lane->end++] = 0;
        for (int k = 7; k >= 0; k--)
            buf[lane->end++] = (uint8_t)(bits >> (8 * k));
        lane->final = 1;
        lane_close(lane);
    }
    return 0;
}

static void lane_digest(lane_state st, int i, unsigned char out[32])
{
    for (int w = 0; w < 8; w++) {
        uint32_t v = st[w][i];
        out[4 * w] = (unsigned char)(v >> 24);
        out[4 * w + 1] = (unsigned char)(v >> 16);
        out[4 * w + 2] = (unsigned char)(v >> 8);
        out[4 * w + 3] = (unsigned char)v;
    }
}

/* Hash every path of `job`; 0, or -1 when out of memory. */
static int run_job(job_t *job, int lanes, compress_fn compress)
{
    uint8_t *arena = calloc(MAX_LANES, LANE_SLOT); /* idle lanes hash zeros */
    if (arena == NULL)
        return -1;
    lane_t lane[MAX_LANES];
    lane_state st;
    uint32_t off[MAX_LANES];
    Py_ssize_t next = 0;
    memset(st, 0, sizeof(st));
    for (int i = 0; i < MAX_LANES; i++) {
        lane[i].fd = -1;
        lane[i].item = -1;
        off[i] = (uint32_t)(i * LANE_SLOT);
    }
    for (int i = 0; i < lanes; i++)
        lane_take(&lane[i], st, i, job, &next);
    for (;;) {
        size_t blocks = SIZE_MAX;
        for (int i = 0; i < lanes; i++) {
            while (lane[i].item >= 0) {
                uint8_t *buf = arena + (size_t)i * LANE_SLOT;
                int err = lane_fill(&lane[i], buf);
                if (err == 0)
                    break;
                job->status[lane[i].item] = err;
                lane_close(&lane[i]);
                lane_take(&lane[i], st, i, job, &next);
            }
            if (lane[i].item < 0) {
                off[i] = (uint32_t)(i * LANE_SLOT); /* idle: hashes its own buffer */
                continue;
            }
            size_t have = (lane[i].end - lane[i].start) / 64;
            if (have < blocks)
                blocks = have;
            off[i] = (uint32_t)(i * LANE_SLOT + lane[i].start);
        }
        if (blocks == SIZE_MAX)
            break; /* every lane idle: all done */
        compress(st, arena, off, blocks);
        for (int i = 0; i < lanes; i++) {
            if (lane[i].item < 0)
                continue;
            lane[i].start += 64 * blocks;
            if (lane[i].final && lane[i].start == lane[i].end) {
                lane_digest(st, i, job->digests[lane[i].item]);
                lane_take(&lane[i], st, i, job, &next);
            }
        }
    }
    for (int i = 0; i < lanes; i++)
        lane_close(&lane[i]);
    free(arena);
    return 0;
}

/* The kernel of `*width` lanes (0: the widest), setting *width; NULL with
 * ValueError set when this CPU has no such kernel. */
static compress_fn pick(int *width)
{
    detect();
    if ((*width == 0 || *width == 16) && can16) {
        *width = 16;
        return compress16;
    }
    if ((*width == 0 || *width == 8) && can8) {
        *width = 8;
        return compress8;
    }
    if ((*width == 0 || *width == NI_LANES) && can_ni) {
        *width = NI_LANES;
        return compress_ni;
    }
    PyErr_Format(PyExc_ValueError, "no %d-lane kernel on this CPU", *width);
    return NULL;
}

/* Run the width-lane kernel over 64 KiB of every lane, rounds times, from
 * memory; 0, or -1 with an exception set. */
static int spin(int width, long long rounds)
{
    compress_fn compress = pick(&width);
    if (compress == NULL)
        return -1;
    uint8_t *arena = calloc(MAX_LANES, LANE_SLOT);
    if (arena == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    lane_state st;
    uint32_t off[MAX_LANES];
    memset(st, 0, sizeof(st));
    for (int i = 0; i < MAX_LANES; i++)
        off[i] = (uint32_t)(i * LANE_SLOT);
    Py_BEGIN_ALLOW_THREADS
    for (long long r = 0; r < rounds; r++)
        compress(st, arena, off, LANE_BUF / 64);
    Py_END_ALLOW_THREADS
    free(arena);
    return 0;
}

#else

static int spin(int width, long long rounds)
{
    PyErr_SetString(PyExc_ValueError, "no multi-buffer kernel on this platform");
    return -1;
}

#endif /* MB_X86 */

PyDoc_STRVAR(spin_doc,
             "spin(width, rounds) -> None\n\n"
             "Hash 64 KiB in every lane of the width-lane kernel, rounds times, from\n"
             "memory and with the GIL released, for timing the kernels against each\n"
             "other (nothing is read and no digest is returned). Raises ValueError for\n"
             "a width this CPU lacks.");

static PyObject *mb_spin(PyObject *self, PyObject *args)
{
    int width;
    long long rounds;
    if (!PyArg_ParseTuple(args, "iL:spin", &width, &rounds) || spin(width, rounds) != 0)
        return NULL;
    Py_RETURN_NONE;
}

PyDoc_STRVAR(widths_doc,
             "widths() -> tuple\n\n"
             "The lane counts of the kernels this CPU runs, widest first: 16 with\n"
             "AVX-512, 8 with AVX2, 2 with the SHA extensions (two chains interleaved);\n"
             "empty where this module cannot hash.");

static PyObject *mb_widths(PyObject *self, PyObject *unused)
{
    PyObject *out = PyTuple_New(0);
#ifdef MB_X86
    detect();
    int have[3] = {can16, can8, can_ni};
    int lanes[3] = {16, 8, NI_LANES};
    for (int k = 0; k < 3 && out != NULL; k++) {
        if (!have[k])
            continue;
        PyObject *w = Py_BuildValue("(i)", lanes[k]);
        PyObject *joined = w == NULL ? NULL : PySequence_Concat(out, w);
        Py_XDECREF(w);
        Py_SETREF(out, joined);
    }
#endif
    return out;
}

PyDoc_STRVAR(hash_files_doc,
             "hash_files(paths, width=0, limit=-1) -> list\n\n"
             "The sha256 hexdigest of each file, in order. Instead of a digest: the\n"
             "errno (an int) where a file cannot be opened or read, and None where it\n"
             "is larger than limit bytes (limit -1: no limit), for the caller to hash.\n"
             "width: the kernel, one of widths() (0: the widest; 2: the SHA extensions,\n"
             "two files at once). Releases the GIL while it reads and hashes.\n"
             "Raises ValueError for a width this CPU lacks.");

static PyObject *mb_hash_files(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"paths", "width", "limit", NULL};
    PyObject *seq;
    int width = 0;
    long long limit = -1;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|iL:hash_files", keywords, &seq, &width,
                                     &limit))
        return NULL;
#ifndef MB_X86
    PyErr_SetString(PyExc_ValueError, "no multi-buffer kernel on this platform");
    return NULL;
#else
    compress_fn compress = pick(&width);
    if (compress == NULL)
        return NULL;
    PyObject *fast = PySequence_Fast(seq, "paths must be a sequence");
    if (fast == NULL)
        return NULL;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(fast);
    PyObject *encoded = PyList_New(count);
    job_t job = {count, NULL, limit < 0 ? -1 : limit, NULL, NULL};
    PyObject *result = NULL;
    if (encoded == NULL)
        goto done;
    job.paths = PyMem_Calloc((size_t)count + 1, sizeof(char *));
    job.digests = PyMem_Calloc((size_t)count + 1, 32);
    job.status = PyMem_Calloc((size_t)count + 1, sizeof(int));
    if (job.paths == NULL || job.digests == NULL || job.status == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *raw = NULL;
        if (!PyUnicode_FSConverter(PySequence_Fast_GET_ITEM(fast, i), &raw))
            goto done;
        PyList_SET_ITEM(encoded, i, raw);
        job.paths[i] = PyBytes_AS_STRING(raw);
        if ((Py_ssize_t)strlen(job.paths[i]) != PyBytes_GET_SIZE(raw)) {
            PyErr_SetString(PyExc_ValueError, "embedded null byte");
            goto done;
        }
    }
    int failed;
    Py_BEGIN_ALLOW_THREADS
    failed = run_job(&job, width, compress);
    Py_END_ALLOW_THREADS
    if (failed) {
        PyErr_NoMemory();
        goto done;
    }
    result = PyList_New(count);
    if (result == NULL)
        goto done;
    static const char hex[] = "0123456789abcdef";
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item;
        if (job.status[i] == SKIPPED) {
            Py_INCREF(Py_None);
            item = Py_None;
        } else if (job.status[i] != HASHED) {
            item = PyLong_FromLong(job.status[i]);
        } else {
            item = PyUnicode_New(64, 127);
            if (item != NULL) {
                Py_UCS1 *out = PyUnicode_1BYTE_DATA(item);
                for (int k = 0; k < 32; k++) {
                    out[2 * k] = (Py_UCS1)hex[job.digests[i][k] >> 4];
                    out[2 * k + 1] = (Py_UCS1)hex[job.digests[i][k] & 15];
                }
            }
        }
        if (item == NULL) {
            Py_CLEAR(result);
            goto done;
        }
        PyList_SET_ITEM(result, i, item);
    }
done:
    PyMem_Free(job.paths);
    PyMem_Free(job.digests);
    PyMem_Free(job.status);
    Py_XDECREF(encoded);
    Py_DECREF(fast);
    return result;
#endif
}


/*
 * tar_fill: the per-file loop of taskgraph's tar stream
 * (taskgraph_images/taskgraph_tar.py), with the GIL released, so that a
 * Python thread hashes full buffers while this one opens and reads files.
 * Only the plain case is done here: a regular file without setuid/setgid,
 * a name of at most 100 bytes, and a member that fits in what is left of the
 * buffer. At anything else (an error, a short read, a long name, a big file,
 * content given as bytes) it stops before that member, leaving the buffer as
 * it was after the previous one, and the Python code takes that member.
 */
#if defined(__unix__) || defined(__APPLE__)
#define TAR_FILL 1
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#define TAR_BLOCK 512
#define TAR_NAME 100
/* Members whose pointers are gathered per release of the GIL. */
#define TAR_CHUNK 128

typedef struct {
    const char *name;
    Py_ssize_t name_len;
    const char *path; /* NULL: not a plain path, for Python */
} tar_entry;

static void put_octal(unsigned char *field, int digits, unsigned long long n)
{
    /* digits octal digits and a NUL, as "%0*o\0" writes them */
    field[digits] = 0;
    for (int k = digits - 1; k >= 0; k--) {
        field[k] = (unsigned char)('0' + (n & 7));
        n >>= 3;
    }
}

/* Append each entry's member at buf[*pos]; return how many were appended. */
static Py_ssize_t tar_fill_chunk(unsigned char *buf, Py_ssize_t cap, Py_ssize_t *pos,
                                 const tar_entry *entries, Py_ssize_t count, long long mtime)
{
    Py_ssize_t done = 0;
    for (; done < count; done++) {
        const tar_entry *e = &entries[done];
        if (e->path == NULL || e->name_len > TAR_NAME)
            break;
        int fd = open(e->path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0)
            break;
        struct stat st;
        if (fstat(fd, &st) != 0 || (st.st_mode & (S_IFMT | S_ISUID | S_ISGID)) != S_IFREG) {
            close(fd);
            break;
        }
        unsigned long long size = (unsigned long long)st.st_size;
        unsigned long long pad = (TAR_BLOCK - size % TAR_BLOCK) % TAR_BLOCK;
        if (size >= (unsigned long long)cap
            || (unsigned long long)*pos + TAR_BLOCK + size + pad >= (unsigned long long)cap) {
            close(fd);
            break;
        }
        unsigned char *h = buf + *pos;
        memset(h, 0, TAR_BLOCK);
        memcpy(h, e->name, (size_t)e->name_len);
        put_octal(h + 100, 7, (unsigned long long)(st.st_mode & 07777));
        put_octal(h + 108, 7, 0);
        put_octal(h + 116, 7, 0);
        put_octal(h + 124, 11, size);
        put_octal(h + 136, 11, (unsigned long long)mtime);
        memset(h + 148, ' ', 8);
        h[156] = '0';
        memcpy(h + 257, "ustar  ", 8); /* with its NUL */
        put_octal(h + 329, 7, 0);
        put_octal(h + 337, 7, 0);
        unsigned int sum = 0;
        for (int k = 0; k < TAR_BLOCK; k++)
            sum += h[k];
        put_octal(h + 148, 6, sum);
        h[155] = ' ';
        unsigned char *data = h + TAR_BLOCK;
        unsigned long long got = 0;
        while (got < size) {
            ssize_t n = read(fd, data + got, (size_t)(size - got));
            if (n <= 0)
                break;
            got += (unsigned long long)n;
        }
        close(fd);
        if (got < size)
            break; /* shrank, or a read error: Python reads it again and says which */
        memset(data + size, 0, (size_t)pad);
        *pos += TAR_BLOCK + (Py_ssize_t)(size + pad);
    }
    return done;
}

PyDoc_STRVAR(tar_fill_doc,
             "tar_fill(buffer, pos, names, paths, start, mtime) -> (index, pos)\n\n"
             "Append the tar members names[start:] (encoded names) read from paths\n"
             "(encoded paths, or None) to the writable buffer at pos, as\n"
             "taskgraph_tar's stream writes them, while each is a plain case: a\n"
             "regular file without setuid/setgid, a name of at most 100 bytes, a\n"
             "member that fits in the rest of the buffer, read in full. Return the\n"
             "index of the first member not appended and the new position. Releases\n"
             "the GIL while it reads.");

static PyObject *mb_tar_fill(PyObject *self, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t pos, start;
    PyObject *names, *paths;
    long long mtime;
    if (!PyArg_ParseTuple(args, "w*nO!O!nL:tar_fill", &view, &pos, &PyList_Type, &names,
                          &PyList_Type, &paths, &start, &mtime))
        return NULL;
    Py_ssize_t count = PyList_GET_SIZE(names);
    if (PyList_GET_SIZE(paths) != count || pos < 0 || pos > view.len || start < 0) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "tar_fill: bad position or list lengths");
        return NULL;
    }
    tar_entry entries[TAR_CHUNK];
    Py_ssize_t index = start;
    while (index < count) {
        Py_ssize_t n = 0;
        for (; n < TAR_CHUNK && index + n < count; n++) {
            PyObject *name = PyList_GET_ITEM(names, index + n);
            PyObject *path = PyList_GET_ITEM(paths, index + n);
            if (!PyBytes_Check(name)) {
                PyBuffer_Release(&view);
                PyErr_SetString(PyExc_TypeError, "tar_fill: names must be bytes");
                return NULL;
            }
            entries[n].name = PyBytes_AS_STRING(name);
            entries[n].name_len = PyBytes_GET_SIZE(name);
            entries[n].path = NULL;
            if (PyBytes_Check(path)
                && (Py_ssize_t)strlen(PyBytes_AS_STRING(path)) == PyBytes_GET_SIZE(path))
                entries[n].path = PyBytes_AS_STRING(path);
        }
        Py_ssize_t done;
        /* names and paths stay alive: the caller holds the lists, and the
           bytes objects are immutable */
        Py_BEGIN_ALLOW_THREADS
        done = tar_fill_chunk((unsigned char *)view.buf, view.len, &pos, entries, n, mtime);
        Py_END_ALLOW_THREADS
        index += done;
        if (done < n)
            break;
    }
    PyBuffer_Release(&view);
    return Py_BuildValue("(nn)", index, pos);
}
#endif /* unix */

static PyMethodDef mb_methods[] = {
    {"widths", mb_widths, METH_NOARGS, widths_doc},
    {"spin", mb_spin, METH_VARARGS, spin_doc},
    {"hash_files", (PyCFunction)(void (*)(void))mb_hash_files, METH_VARARGS | METH_KEYWORDS,
     hash_files_doc},
#ifdef TAR_FILL
    {"tar_fill", mb_tar_fill, METH_VARARGS, tar_fill_doc},
#endif
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef mb_module = {
    PyModuleDef_HEAD_INIT, "_sha256mb",
    "Multi-buffer SHA-256 of many files at once (AVX2 / AVX-512, or SHA-NI).", -1, mb_methods,
};

PyMODINIT_FUNC PyInit__sha256mb(void)
{
    return PyModule_Create(&mb_module);
}
