/* Cortex-M startup for TTE firmware: vector table, reset handler (copy .data from flash,
 * zero .bss, enable the FPU), and fw_io.h through ARM semihosting (bkpt 0xab), which QEMU
 * and a debug probe (pyocd) both serve. */
#include <stdint.h>

#include "fw_io.h"

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;
int main(void);

#define SYS_WRITE0 0x04
#define SYS_EXIT_EXTENDED 0x20 /* carries an exit status on 32-bit cores too */
#define ADP_STOPPED_APPLICATION_EXIT 0x20026
#define CPACR (*(volatile uint32_t *)0xE000ED88u)

static int semihost(int op, const void *arg)
{
    register int r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void fw_write0(const char *text)
{
    semihost(SYS_WRITE0, text);
}

void fw_exit(int status)
{
    const uint32_t block[2] = {ADP_STOPPED_APPLICATION_EXIT, (uint32_t)status};
    semihost(SYS_EXIT_EXTENDED, block);
    for (;;) __asm__ volatile("wfi");
}

/* The FPU must be on before any code compiled with -mfloat-abi=hard runs, so main (and all
 * it calls) comes after this and the reset handler itself uses no float. */
void Reset_Handler(void)
{
    uint32_t *src = &_sidata, *dst = &_sdata;
    while (dst < &_edata) *dst++ = *src++;
    for (dst = &_sbss; dst < &_ebss;) *dst++ = 0;
    CPACR |= 0xFu << 20; /* CP10 and CP11: full access */
    __asm__ volatile("dsb\n\tisb" ::: "memory");
    fw_exit(main());
}

static void Fault_Handler(void)
{
    fw_write0("fault: the firmware hit a HardFault (bad memory access or stack overflow)\n");
    fw_exit(3);
}

/* initial stack pointer, reset, NMI, HardFault, MemManage, BusFault, UsageFault */
__attribute__((section(".isr_vector"), used))
static void (*const vectors[])(void) = {
    (void (*)(void))&_estack, Reset_Handler, Fault_Handler, Fault_Handler,
    Fault_Handler, Fault_Handler, Fault_Handler,
};
