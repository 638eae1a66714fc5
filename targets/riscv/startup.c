/* RV32 startup for TTE firmware: _start (global and stack pointers, FPU and vector unit on,
 * then copy .data from flash, zero .bss, run main), and fw_io.h: text and exit through
 * RISC-V semihosting (the slli/ebreak/srai sequence QEMU and debug probes recognise) and a
 * counter of retired instructions (minstret). */
#include <stdint.h>

#include "fw_io.h"

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss;
int main(void);
int fw_semihost(int op, const void *arg);

#define SYS_WRITE0 0x04
#define SYS_EXIT_EXTENDED 0x20
#define ADP_STOPPED_APPLICATION_EXIT 0x20026

/* The three trap instructions must be uncompressed and in one page: own 16-byte aligned
 * section, so no padding (which norvc could only fill with illegal zeros) comes before. */
__asm__(".section .text.fw_semihost,\"ax\",@progbits\n"
        ".balign 16\n"
        ".globl fw_semihost\n"
        "fw_semihost:\n"
        ".option push\n"
        ".option norvc\n"
        "slli x0, x0, 0x1f\n"
        "ebreak\n"
        "srai x0, x0, 7\n"
        "ret\n"
        ".option pop\n");

void fw_write0(const char *text)
{
    fw_semihost(SYS_WRITE0, text);
}

void fw_exit(int status)
{
    const uint32_t block[2] = {ADP_STOPPED_APPLICATION_EXIT, (uint32_t)status};
    fw_semihost(SYS_EXIT_EXTENDED, block);
    for (;;) __asm__ volatile("wfi");
}

uint32_t fw_counter(void)
{
    uint32_t n;
    __asm__ volatile("csrr %0, minstret" : "=r"(n));
    return n;
}

void fw_start(void)
{
    uint32_t *src = &_sidata, *dst = &_sdata;
    while (dst < &_edata) *dst++ = *src++;
    for (dst = &_sbss; dst < &_ebss;) *dst++ = 0;
    fw_exit(main());
}

/* mstatus.FS and .VS set to Dirty (0x6000 | 0x600) before any float or vector code runs:
 * QEMU 7.2 then needs no state-dirtying in translated blocks. gp for small data. */
__attribute__((naked, section(".text.entry"))) void _start(void)
{
    __asm__ volatile(".option push\n"
                     ".option norelax\n"
                     "la gp, __global_pointer$\n"
                     ".option pop\n"
                     "la sp, _estack\n"
                     "li t0, 0x6600\n"
                     "csrs mstatus, t0\n"
                     "csrwi fcsr, 0\n"
                     "j fw_start\n");
}
