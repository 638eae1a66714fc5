/* Cortex-M startup for TTE firmware: vector table, reset handler (copy .data from flash,
 * zero .bss, enable the FPU, start the SysTick), and fw_io.h: text and exit through ARM
 * semihosting (bkpt 0xab), which QEMU and a debug probe (pyocd) both serve, and a counter
 * (targets/cortex_m/__init__.py says what it counts). */
#include <stdint.h>

#include "fw_io.h"

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;
int main(void);

#define SYS_WRITE0 0x04
#define SYS_EXIT_EXTENDED 0x20 /* carries an exit status on 32-bit cores too */
#define ADP_STOPPED_APPLICATION_EXIT 0x20026
#define CPACR (*(volatile uint32_t *)0xE000ED88u)
#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define SYST_MAX 0x00FFFFFFu /* a 24-bit down counter */

static volatile uint32_t systick_wraps;

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

static void SysTick_Handler(void)
{
    systick_wraps++;
}

/* SysTick ticks since reset; re-read if it wrapped between the two loads */
uint32_t fw_counter(void)
{
    uint32_t wraps, value;
    do {
        wraps = systick_wraps;
        value = SYST_CVR;
    } while (wraps != systick_wraps);
    return (wraps << 24) + (SYST_MAX - value);
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
    SYST_RVR = SYST_MAX;
    SYST_CVR = 0;
    SYST_CSR = 7u; /* processor clock, interrupt on wrap, enabled */
    while (SYST_CVR == 0) {
    } /* the reload value arrives on the first tick; until then a reading would wrap */
    fw_exit(main());
}

static void Fault_Handler(void)
{
    fw_write0("fault: the firmware hit a HardFault (bad memory access or stack overflow)\n");
    fw_exit(3);
}

/* initial stack pointer, reset, NMI, HardFault, MemManage, BusFault, UsageFault, four
 * reserved, SVCall, DebugMonitor, reserved, PendSV, SysTick */
__attribute__((section(".isr_vector"), used))
static void (*const vectors[])(void) = {
    (void (*)(void))&_estack, Reset_Handler, Fault_Handler, Fault_Handler,
    Fault_Handler, Fault_Handler, Fault_Handler, 0, 0, 0, 0,
    Fault_Handler, Fault_Handler, 0, Fault_Handler, SysTick_Handler,
};
