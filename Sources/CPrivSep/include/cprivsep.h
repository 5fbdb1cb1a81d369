/* Thin C shims for what Swift cannot call directly (CMSG macros, variadic syscalls). */
#ifndef CPRIVSEP_H
#define CPRIVSEP_H
#endif
