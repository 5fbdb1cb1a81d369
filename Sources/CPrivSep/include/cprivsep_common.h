/* Thin C shims for what Swift cannot call directly (CMSG macros, variadic syscalls).
 * One header per concern: cprivsep_wire.h, cprivsep_sandbox.h, ... */
#ifndef CPRIVSEP_COMMON_H
#define CPRIVSEP_COMMON_H
#endif
