/*
 * cgroup_test - /proc/self/cgroup texts (v1 with the controller in a comma list, v2, hybrid, junk),
 * the CPU quota files of v2 and v1 (quota, none, rounding up, junk), and this process's usable CPUs
 * against its own affinity mask
 */
#include <sched.h>
#include <string.h>

#include "base/cgroup.h"
#include "tests/lib/check.h"

static void test_path(void)
{
    static const struct {
        const char *text, *controller, *want;
        bool v2;
    } cases[] = {
        {"12:cpu,cpuacct:/system.slice/ringmail.service\n4:memory:/m\n0::/u\n", "cpu",
         "/system.slice/ringmail.service", false},
        {"12:cpu,cpuacct:/a\n4:memory:/m\n0::/u\n", "memory", "/m", false},
        {"12:cpuacct,cpu:/b\n", "cpu", "/b", false},
        {"12:cpuset:/c\n0::/unified\n", "cpu", "/unified", true},       /* cpuset is not cpu */
        {"0::/user.slice/user-0.slice/session-1.scope\n", "cpu", "/user.slice/user-0.slice/session-1.scope", true},
        {"0::/\n", "memory", "/", true},
        {"0::/last-without-newline", "cpu", "/last-without-newline", true},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[256] = "";
        bool v2 = !cases[i].v2;
        bool ok = cgroup_path(cases[i].text, cases[i].controller, &v2, out, sizeof(out));
        CHECK(ok && strcmp(out, cases[i].want) == 0 && v2 == cases[i].v2, "case %zu: %d %s v2 %d", i, ok, out, v2);
    }
    static const char *const none[] = {"", "junk\n", "4:memory:relative\n", "1:name=systemd:\n", "x:y\n"};
    for (size_t i = 0; i < sizeof(none) / sizeof(none[0]); i++) {
        char out[64];
        bool v2;
        CHECK(!cgroup_path(none[i], "cpu", &v2, out, sizeof(out)), "no cgroup in case %zu", i);
    }
    char small[4];
    bool v2;
    CHECK(!cgroup_path("4:cpu:/a/long/path\n", "cpu", &v2, small, sizeof(small)), "path over cap");
    CHECK(!cgroup_path("0::/a/long/path\n", "cpu", &v2, small, sizeof(small)), "v2 path over cap");
}

static void test_quota(void)
{
    unsigned n = 0;
    CHECK(cgroup_cpu_max("200000 100000\n", &n) && n == 2, "v2 two CPUs: %u", n);
    CHECK(cgroup_cpu_max("150000 100000", &n) && n == 2, "v2 1.5 CPUs round up: %u", n);
    CHECK(cgroup_cpu_max("50000 100000\n", &n) && n == 1, "v2 half a CPU: %u", n);
    CHECK(!cgroup_cpu_max("max 100000\n", &n), "v2 no quota");
    CHECK(!cgroup_cpu_max("100000 0\n", &n), "v2 zero period");
    CHECK(!cgroup_cpu_max("100000\n", &n), "v2 no period");
    CHECK(!cgroup_cpu_max("100000 100000 7\n", &n), "v2 trailing junk");
    CHECK(!cgroup_cpu_max("", &n), "v2 empty");
    CHECK(cgroup_cpu_max("99999999999999999 1\n", &n) && n == 4096, "v2 huge quota capped: %u", n);
    CHECK(cgroup_cpu_v1("400000\n", "100000\n", &n) && n == 4, "v1 four CPUs: %u", n);
    CHECK(cgroup_cpu_v1("250000", "100000", &n) && n == 3, "v1 2.5 round up: %u", n);
    CHECK(!cgroup_cpu_v1("-1\n", "100000\n", &n), "v1 no quota");
    CHECK(!cgroup_cpu_v1("100000x\n", "100000\n", &n), "v1 junk");
    CHECK(!cgroup_cpu_v1("100000\n", "0\n", &n), "v1 zero period");
}

static void test_cpus(void)
{
    cpu_set_t set;
    CHECK(sched_getaffinity(0, sizeof(set), &set) == 0, "affinity");
    unsigned mask = (unsigned)CPU_COUNT(&set), n = cgroup_cpus();
    CHECK(n >= 1 && n <= mask, "usable CPUs %u within the affinity mask's %u", n, mask);
    /* one CPU in the mask: one usable, whatever the cgroup allows */
    cpu_set_t one;
    CPU_ZERO(&one);
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &set)) {
            CPU_SET(c, &one);
            break;
        }
    CHECK(sched_setaffinity(0, sizeof(one), &one) == 0, "narrow the mask");
    CHECK(cgroup_cpus() == 1, "one CPU in the mask: %u", cgroup_cpus());
    CHECK(sched_setaffinity(0, sizeof(set), &set) == 0, "restore the mask");
}

int main(void)
{
    test_path();
    test_quota();
    test_cpus();
    CHECK_EXIT();
}
