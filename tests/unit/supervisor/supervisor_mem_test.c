/*
 * supervisor_mem_test - the readers of the kernel's memory files and the level rule (supervisor_mem.c),
 * table-driven, on texts as cgroup v1, cgroup v2 and /proc/meminfo write them
 */
#include <string.h>

#include "supervisor/supervisor.h"
#include "tests/lib/check.h"

static void test_cgroup_path(void)
{
    static const struct {
        const char *text;
        bool found, v2;
        const char *path;
    } cases[] = {
        {"12:pids:/\n4:memory:/process_api/b57\n0::/\n", true, false, "/process_api/b57"},
        {"5:cpu,memory,blkio:/docker/abc\n", true, false, "/docker/abc"},
        {"5:memoryx:/nope\n0::/system.slice/ringmail.service\n", true, true, "/system.slice/ringmail.service"},
        {"0::/\n", true, true, "/"},
        {"0::/user.slice", true, true, "/user.slice"}, /* no final newline */
        {"1:name=systemd:/\n", false, false, NULL},
        {"4:memory:\n", false, false, NULL},              /* empty path */
        {"4:memory:relative\n", false, false, NULL},
        {"garbage\n::\n:\n", false, false, NULL},
        {"", false, false, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char path[256] = "";
        bool v2 = false;
        bool found = supervisor_mem_cgroup_path(cases[i].text, &v2, path, sizeof(path));
        CHECK(found == cases[i].found, "case %zu: found %d", i, found);
        if (found && cases[i].found) {
            CHECK(v2 == cases[i].v2, "case %zu: v2 %d", i, v2);
            CHECK(strcmp(path, cases[i].path) == 0, "case %zu: path %s", i, path);
        }
    }
    char small[8];
    bool v2;
    CHECK(!supervisor_mem_cgroup_path("4:memory:/a/long/path\n", &v2, small, sizeof(small)), "path over cap");
}

static void test_fields(void)
{
    static const char meminfo[] = "MemTotal:       24684000 kB\nMemFree:        20000000 kB\n"
                                  "MemAvailable:   23332000 kB\n";
    static const char stat1[] = "cache 100\ninactive_file 7\ntotal_inactive_file 4096\n";
    uint64_t v = 0;
    CHECK(supervisor_mem_field(meminfo, "MemTotal", &v) && v == UINT64_C(24684000) * 1024, "MemTotal %llu",
          (unsigned long long)v);
    CHECK(supervisor_mem_field(meminfo, "MemAvailable", &v) && v == UINT64_C(23332000) * 1024, "MemAvailable");
    CHECK(!supervisor_mem_field(meminfo, "Mem", &v), "a prefix is not a key");
    CHECK(supervisor_mem_field(stat1, "total_inactive_file", &v) && v == 4096, "total_inactive_file");
    CHECK(supervisor_mem_field(stat1, "inactive_file", &v) && v == 7, "inactive_file, not total_inactive_file");
    CHECK(!supervisor_mem_field("inactive_file x\n", "inactive_file", &v), "not a number");
    CHECK(!supervisor_mem_field("inactive_file 99999999999999999999999\n", "inactive_file", &v), "overflow");
    CHECK(!supervisor_mem_field("MemTotal: 99999999999999999 kB\n", "MemTotal", &v), "kB overflow");
    CHECK(supervisor_mem_number("1073741824\n", &v) && v == 1073741824, "limit");
    CHECK(!supervisor_mem_number("max\n", &v), "v2 max is no number");
    CHECK(!supervisor_mem_number("12abc\n", &v), "trailing garbage");
    CHECK(!supervisor_mem_number("", &v), "empty");
}

static void test_level(void)
{
    const uint64_t M = UINT64_C(1) << 20;
    CHECK(supervisor_mem_level_for(1024 * M, 100 * M, 256 * M, 64 * M) == SHM_MEM_OK, "plenty");
    CHECK(supervisor_mem_level_for(1024 * M, 800 * M, 256 * M, 64 * M) == SHM_MEM_LOW, "under soft");
    CHECK(supervisor_mem_level_for(1024 * M, 1000 * M, 256 * M, 64 * M) == SHM_MEM_EXHAUSTED, "under hard");
    CHECK(supervisor_mem_level_for(1024 * M, 2048 * M, 0, 0) == SHM_MEM_EXHAUSTED, "over the limit");
    CHECK(supervisor_mem_level_for(1024 * M, 1024 * M, 0, 0) == SHM_MEM_EXHAUSTED, "at the limit: no headroom");
    CHECK(supervisor_mem_level_for(1024 * M, 1023 * M, 0, 0) == SHM_MEM_OK, "no reserves");
}

int main(void)
{
    test_cgroup_path();
    test_fields();
    test_level();
    CHECK_EXIT();
}
