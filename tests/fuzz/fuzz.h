/*
 * fuzz - what every libFuzzer target here shares: the entry point and CHECK, which traps (libFuzzer then
 * saves the input as a crash) when an invariant of the code under test does not hold
 */
#ifndef RINGMAIL_FUZZ_H
#define RINGMAIL_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                             \
    do {                                                                                                     \
        if (!(x))                                                                                            \
            __builtin_trap();                                                                                \
    } while (0)

#endif
