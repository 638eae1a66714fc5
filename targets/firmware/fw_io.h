/* What a target's startup code gives the TTE firmware: text out and an exit status, both
 * through the debugger or emulator (semihosting on Cortex-M and RISC-V), and a counter of
 * executed instructions (in the target's units: McuTarget.counter_scale). */
#ifndef TTE_FW_IO_H
#define TTE_FW_IO_H

#include <stdint.h>

void fw_write0(const char *text); /* a NUL-terminated string, as is */
void fw_exit(int status) __attribute__((noreturn));
uint32_t fw_counter(void);        /* wraps modulo 2^32: subtract readings as uint32_t */

#endif
