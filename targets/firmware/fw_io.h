/* What a target's startup code gives the TTE firmware: text out and an exit status, both
 * through the debugger or emulator (semihosting on Cortex-M and RISC-V). */
#ifndef TTE_FW_IO_H
#define TTE_FW_IO_H

void fw_write0(const char *text); /* a NUL-terminated string, as is */
void fw_exit(int status) __attribute__((noreturn));

#endif
