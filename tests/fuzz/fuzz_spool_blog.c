/*
 * fuzz_spool_blog - the body log's on-disk formats (spool/spool_db_blog.c): the 32-byte locator RocksDB keeps
 * and the segment file's records, both read back from disk
 *
 * The first 32 bytes are a locator, the rest a segment. Checks: a locator either is refused with a reason or
 * decodes within its bounds and encodes back to the same bytes; the segment is walked as the sweep walks it
 * (header after header until the first one that does not decode), each decoded header is within bounds and
 * encodes back to the same bytes, the walk always moves forward, and for a record whose body lies within the
 * input the hash is computed over exactly those bytes.
 */
#include "spool/spool_db.h"

#include <string.h>

#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *why = NULL;
    struct spool_db_blog_loc l;
    size_t head = size < SPOOL_DB_BLOG_LOC_BYTES ? size : SPOOL_DB_BLOG_LOC_BYTES;
    int rc = spool_db_blog_loc_decode(data, head, &l, &why);
    if (rc == 0) {
        CHECK(l.seg != 0 && l.off % 8 == 0 && l.off <= SPOOL_DB_BLOG_SEG_MAX && l.len <= SPOOL_DB_BLOG_BODY_MAX);
        uint8_t back[SPOOL_DB_BLOG_LOC_BYTES];
        spool_db_blog_loc_encode(&l, back);
        CHECK(memcmp(back, data, SPOOL_DB_BLOG_LOC_BYTES) == 0);
    } else {
        CHECK(why != NULL && why[0] != '\0');
    }

    const uint8_t *seg = data + head;
    size_t n = size - head, off = 0;
    while (off < n) {
        struct spool_db_blog_hdr h;
        why = NULL;
        if (spool_db_blog_hdr_decode(seg + off, n - off, &h, &why) < 0) {
            CHECK(why != NULL && why[0] != '\0');
            break;
        }
        CHECK(h.len <= SPOOL_DB_BLOG_BODY_MAX);
        uint8_t back[SPOOL_DB_BLOG_HDR_BYTES];
        spool_db_blog_hdr_encode(&h, back);
        CHECK(memcmp(back, seg + off, SPOOL_DB_BLOG_HDR_BYTES) == 0);
        size_t rec = spool_db_blog_rec_size(h.len);
        CHECK(rec >= SPOOL_DB_BLOG_HDR_BYTES + h.len && rec % 8 == 0);
        if (n - off - SPOOL_DB_BLOG_HDR_BYTES >= h.len)
            (void)spool_db_blog_hash(seg + off + SPOOL_DB_BLOG_HDR_BYTES, h.len);
        if (rec > n - off)
            break;
        off += rec; /* always forward: rec is at least a header */
    }
    return 0;
}
